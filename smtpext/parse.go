package smtpext

// This file mirrors the command-line parsing of go-smtp v0.26.0
// (parse.go, conn.go) so that the layer interprets every command line the
// way go-smtp will. It is written independently from the behaviour, not
// copied; a go-smtp upgrade must rerun the differential tests
// (diff_test.go), which compare the two on generated sessions.

import (
	"errors"
	"strconv"
	"strings"
)

var errSyntax = errors.New("smtpext: syntax")

// isASCII reports whether s holds only 7-bit bytes, so that the ASCII fast
// paths below give the same result as the Unicode-aware strings functions
// go-smtp calls.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// upper is strings.ToUpper; ASCII input avoids its allocation when already
// upper case.
func upper(s string) string { return strings.ToUpper(s) }

// parseCommand splits a command line (without its LF) the way go-smtp's
// parseCmd does: any line whose upper-cased form starts with STARTTLS is
// STARTTLS; otherwise the verb is the first four bytes and the argument
// follows a single space.
func parseCommand(line string) (verb, arg string, err error) {
	line = strings.TrimRight(line, "\r\n")
	if len(line) >= 8 && isASCII(line[:8]) {
		if strings.EqualFold(line[:8], "STARTTLS") {
			return "STARTTLS", "", nil
		}
	} else if !isASCII(line) && strings.HasPrefix(strings.ToUpper(line), "STARTTLS") {
		// Unicode case mapping (U+017F LATIN SMALL LETTER LONG S
		// upper-cases to S) can spell STARTTLS with non-ASCII bytes.
		return "STARTTLS", "", nil
	}
	switch l := len(line); {
	case l == 0:
		return "", "", nil
	case l < 4:
		return "", "", errSyntax
	case l == 4:
		return upper(line), "", nil
	case l == 5:
		return "", "", errSyntax
	}
	if line[4] != ' ' {
		return "", "", errSyntax
	}
	return upper(line[:4]), strings.TrimSpace(line[5:]), nil
}

// cutPrefixFold is strings.CutPrefix ignoring case, as go-smtp does it.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// pathScanner reads the path of MAIL FROM / RCPT TO exactly as far as
// go-smtp's parser does (RFC 5321 section 4.1.2, with go-smtp's leniency),
// so that the parameters start where go-smtp will look for them.
type pathScanner struct{ s string }

func (p *pathScanner) peek() (byte, bool) {
	if p.s == "" {
		return 0, false
	}
	return p.s[0], true
}

func (p *pathScanner) next() (byte, bool) {
	b, ok := p.peek()
	if ok {
		p.s = p.s[1:]
	}
	return b, ok
}

func (p *pathScanner) accept(b byte) bool {
	if c, ok := p.peek(); ok && c == b {
		p.s = p.s[1:]
		return true
	}
	return false
}

func (p *pathScanner) reversePath() (string, error) {
	if strings.HasPrefix(p.s, "<>") {
		p.s = p.s[2:]
		return "", nil
	}
	return p.path()
}

func (p *pathScanner) forwardPath() (string, error) {
	const pm = "<postmaster>"
	if len(p.s) >= len(pm) && strings.EqualFold(p.s[:len(pm)], pm) {
		addr := p.s[1 : len(pm)-1]
		p.s = p.s[len(pm):]
		return addr, nil
	}
	return p.path()
}

func (p *pathScanner) path() (string, error) {
	bracket := p.accept('<')
	if p.accept('@') {
		// Source route (a-d-l): skipped up to the colon.
		i := strings.IndexByte(p.s, ':')
		if i < 0 {
			return "", errSyntax
		}
		p.s = p.s[i+1:]
	}
	mbox, err := p.mailbox()
	if err != nil {
		return "", err
	}
	if bracket && !p.accept('>') {
		return "", errSyntax
	}
	return mbox, nil
}

func (p *pathScanner) mailbox() (string, error) {
	start := p.s
	local, quoted, err := p.localPart()
	if err != nil {
		return "", err
	}
	if local == "" || !p.accept('@') {
		return "", errSyntax
	}
	i := 0
	for i < len(p.s) && p.s[i] != ' ' && p.s[i] != '\t' && p.s[i] != '>' {
		i++
	}
	domain := p.s[:i]
	p.s = p.s[i:]
	if domain == "" || domain[len(domain)-1] == '@' {
		// go-smtp refuses a mailbox ending in "@".
		return "", errSyntax
	}
	if !quoted {
		// local "@" domain as written: no need to build it.
		return start[:len(start)-len(p.s)], nil
	}
	return local + "@" + domain, nil
}

// localPart reads the local part; quoted reports a quoted string, whose
// value (without quotes and backslashes) is built, while an unquoted one
// is a substring of the input.
func (p *pathScanner) localPart() (local string, quoted bool, err error) {
	if p.accept('"') {
		var sb strings.Builder
		for {
			c, ok := p.next()
			switch c {
			case '\\':
				c, ok = p.next()
			case '"':
				if ok {
					return sb.String(), true, nil
				}
			}
			if !ok {
				return "", true, errSyntax
			}
			sb.WriteByte(c)
		}
	}
	for i := 0; ; i++ {
		if i == len(p.s) || p.s[i] == '@' {
			local, p.s = p.s[:i], p.s[i:]
			return local, false, nil
		}
		switch p.s[i] {
		case '(', ')', '<', '>', '[', ']', ':', ';', '\\', ',', '"', ' ', '\t':
			return "", false, errSyntax
		}
	}
}

// envelope is a MAIL FROM or RCPT TO argument split the way go-smtp splits
// it: the address, the bytes of the path as written, and the parameters
// (the rest, whose fields are strings.Fields of it, as go-smtp's
// parseArgs uses; iterate them with strings.FieldsSeq).
type envelope struct {
	addr   string
	path   string
	params string
}

// fields returns the parameter fields (nil when there is nothing after the
// path).
func (e envelope) fields() []string {
	if e.params == "" {
		return nil
	}
	return strings.Fields(e.params)
}

// parseEnvelope parses the argument of MAIL (prefix "FROM:") or RCPT
// (prefix "TO:"). ok is false when go-smtp would refuse the line before
// looking at parameters, or when a field is malformed (more than one '='),
// in which case go-smtp refuses the whole command with 501: the layer then
// passes the line on untouched and lets go-smtp answer.
func parseEnvelope(arg string, rcpt bool) (envelope, bool) {
	prefix := "FROM:"
	if rcpt {
		prefix = "TO:"
	}
	rest, ok := cutPrefixFold(arg, prefix)
	if !ok {
		return envelope{}, false
	}
	trimmed := strings.TrimSpace(rest)
	p := pathScanner{s: trimmed}
	var addr string
	var err error
	if rcpt {
		addr, err = p.forwardPath()
	} else {
		addr, err = p.reversePath()
	}
	if err != nil {
		return envelope{}, false
	}
	env := envelope{addr: addr, path: trimmed[:len(trimmed)-len(p.s)], params: p.s}
	for f := range strings.FieldsSeq(p.s) {
		if strings.Count(f, "=") > 1 {
			return envelope{}, false
		}
	}
	return env, true
}

// splitParam splits one field into its upper-cased keyword and its value,
// as go-smtp's parseArgs does (no '=' means an empty value).
func splitParam(field string) (name, value string, hasValue bool) {
	name, value, hasValue = strings.Cut(field, "=")
	return strings.ToUpper(name), value, hasValue
}

// bdatArgs parses the argument of BDAT as go-smtp does. ok is false when
// go-smtp answers 501 without reading a chunk.
func bdatArgs(arg string) (size int64, last, ok bool) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, false
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, false
		}
		last = true
	}
	n, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0, false, false
	}
	return int64(n), last, true
}
