package mtqp

// This file holds the whole MTQP wire grammar: the greeting and its option
// advertisement, reply lines and multi-line replies, the command line
// syntax and limits, the TRACK (and RECALL) arguments and STARTTLS. Every
// piece names the section of RFC 3887 it follows.
//
// Verification status (checked again in this revision). Every stored copy
// of RFC 3887 reachable from this project's reference search (2rfc.net,
// getrfc.com, rfc-editor.org, the inline-errata rendering, the gemini
// mirrors of rfc3887.txt, docstore, hjp.at, potaroo, the datatracker
// drafts draft-ietf-msgtrk-mtqp-00 to -12) gives back only the first page
// of the document: the abstract, section 1 and section 1.1. Dozens of
// targeted queries (greeting, reply codes, options, TRACK reply, COMMENT,
// STARTTLS, SRV, referrals, IANA, ABNF) returned that same first page. What
// could be checked, and where:
//
//   - Section 1: MTQP is the query half of the tracking solution (RFC 3885
//     enables, RFC 3886's message/tracking-status reports), with "active
//     requests" and both request and chaining referrals (Client.TrackPath).
//   - Section 1.1: the syntax is ABNF; undefined terminals come from the
//     URI, RFC 3885, SMTP and SMTP service extension documents, which fits
//     SMTP-style replies and an ESMTP-style option list but does not fix
//     their exact shape.
//   - A keyword index of the RFC (rfc-ref.org) quotes, from later
//     sections: MTQP is similar to many other line-oriented Internet
//     protocols; the client opens a TCP connection to use the service;
//     IANA assigned system port 1038; a passage on the TLS certificate
//     serving virtual hosts of several domains (which is why Dialer checks
//     the certificate against the domain asked for, not the SRV target);
//     message tracking is not an end-to-end mechanism.
//   - A protocol summary page (four commands, case-insensitive ASCII,
//     SP/HTAB separators, 998 characters before CRLF) and the RFC index
//     metadata (updated by RFC 8553 and RFC 8996; verified errata 214,
//     215, 3721 and 5044 exist, their content unread).
//
// Everything else below is marked UNVERIFIED with the reason: the text of
// sections 2 to 9 was not retrievable, so the greeting code, the reply
// codes, the option list's shape, the framing of the report in a TRACK
// reply, the COMMENT and QUIT replies, the vnd. naming rule and the
// section numbers cited follow /work/shared/SPEC.md and the SMTP
// conventions (RFC 5321 section 4.2, RFC 3207, RFC 1869) that section 1.1
// points to. They are pointers to check, not verified references; nothing
// on the wire was changed on the strength of memory alone.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Port is the IANA-registered MTQP port (confirmed: RFC 3887's IANA
// considerations assign system port 1038; the section number, 9, is
// unchecked).
const Port = 1038

// SRVService and SRVProto name the SRV record a client looks up to find a
// domain's MTQP server: _mtqp._tcp.<domain> (RFC 3887's server discovery,
// section 5 UNVERIFIED: the text was not retrievable; that RFC 8553
// updates RFC 3887 is confirmed from the RFC index, and RFC 8553 only
// re-registers underscored names).
const (
	SRVService = "mtqp"
	SRVProto   = "tcp"
)

// MaxLineLength is the longest command line, in characters, before the
// CRLF (RFC 3887 section 2: "A command message is limited to 998
// characters before the CRLF"; confirmed). The server applies the same
// limit to reply lines it reads as a client, plus the reply code prefix.
const MaxLineLength = 998

// Command keywords (RFC 3887 sections 3 and 4; confirmed: TRACK,
// STARTTLS, COMMENT, QUIT). RECALL is this package's non-standard command,
// see OptionRecall.
const (
	CmdTrack    = "TRACK"
	CmdStartTLS = "STARTTLS"
	CmdComment  = "COMMENT"
	CmdQuit     = "QUIT"
	CmdRecall   = "RECALL"
)

// Options advertised in the greeting (RFC 3887's option response, section
// 3 UNVERIFIED; per SPEC.md options are registered with IANA like ESMTP
// extensions, with an identifier, parameters, added commands and affected
// commands; section 1.1 cites the SMTP service extension framework, which
// fits, but the registration text itself was not retrievable).
//
// OptionStartTLS is the only option RFC 3887 registers (SPEC.md).
//
// OptionRecall is NOT STANDARD. It is advertised exactly like STARTTLS, as
// one option line of the greeting, and a client uses RECALL only when the
// greeting lists it (Client.Recall). Its name follows the rule that
// unregistered (vendor) options start with "vnd." (SPEC.md; UNVERIFIED:
// the RFC's wording of that rule was not retrievable): "vnd." + the vendor
// name + "." + the option. It adds the
// command RECALL, which takes exactly TRACK's arguments and answers with a
// message/tracking-status report whose recipient groups carry the
// X-Recall-Status extension field (see RecallStatus).
const (
	OptionStartTLS = "STARTTLS"
	OptionRecall   = "vnd.msgtrack.recall"
)

// Reply codes. MTQP replies are SMTP-style: three digits, then "-" on
// every line but the last and SP on the last (RFC 3887 section 2, which
// borrows RFC 5321 section 4.2; the code values themselves are
// UNVERIFIED against RFC 3887 and chosen from RFC 5321/RFC 3207 meanings).
const (
	CodeGreeting       = 250 // initial response and option list (UNVERIFIED: SMTP would use 220)
	CodeOK             = 250 // TRACK/RECALL report, COMMENT
	CodeClosing        = 221 // QUIT
	CodeReadyTLS       = 220 // STARTTLS: go ahead (RFC 3207 section 4)
	CodeUnavailable    = 421 // too many connections, timeout, shutting down
	CodeRateLimited    = 450 // too many failed queries from this address
	CodeLocalError     = 451 // backend failed
	CodeTLSUnavailable = 454 // STARTTLS without a configured certificate (RFC 3207)
	CodeUnknownCommand = 500 // unrecognised command, line too long, garbage
	CodeSyntax         = 501 // bad arguments
	CodeBadSequence    = 503 // STARTTLS twice
	CodeNeedTLS        = 530 // TRACK/RECALL before STARTTLS with RequireTLS (RFC 3207)
	CodeNotFound       = 550 // unknown envelope ID or wrong secret (one answer for both)
)

// Fixed reply texts. The not-found text is one constant so that an unknown
// envelope ID and a wrong secret produce byte-identical replies.
const (
	textNotFound    = "No such message, or wrong secret"
	textRateLimited = "Too many failed queries, try again later"
	textNeedTLS     = "Must issue a STARTTLS command first"
	textTooLong     = "Line too long"
	textUnknown     = "Command not recognized"
	textLocalError  = "Local error in processing"
)

// ErrLineTooLong is returned by ReadLine for a line over MaxLineLength;
// the rest of that line has been consumed.
var ErrLineTooLong = errors.New("mtqp: line too long")

// ReadLine reads one line ending in LF (RFC 3887 section 2 requires CRLF;
// a bare LF is accepted, as SMTP servers do) and returns it without the
// line ending. A line longer than max characters is consumed up to its LF
// and reported as ErrLineTooLong, so that the reader stays in step and one
// oversized line never stalls or desynchronises the connection.
func ReadLine(r *bufio.Reader, max int) (string, error) {
	var buf []byte
	tooLong := false
	for {
		frag, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(frag) > max+2 {
				tooLong = true
				buf = nil
			} else {
				buf = append(buf, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && (len(buf) > 0 || tooLong) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		break
	}
	if tooLong {
		return "", ErrLineTooLong
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	if len(buf) > max {
		return "", ErrLineTooLong
	}
	return string(buf), nil
}

// Command is one parsed command line.
type Command struct {
	// Verb is the keyword in upper case.
	Verb string
	// Args are the parameters, split on runs of SP and HTAB.
	Args []string
	// Rest is everything after the keyword and its separator, unsplit
	// (COMMENT's free text).
	Rest string
}

// ParseCommand splits a command line (RFC 3887 section 2: commands are
// case-insensitive ASCII; keywords and parameters are separated by one or
// more SP or HTAB characters; confirmed). It fails for an empty line and for
// any byte outside printable ASCII, SP and HTAB.
func ParseCommand(line string) (Command, error) {
	for i := 0; i < len(line); i++ {
		c := line[i]
		if (c < 0x20 && c != '\t') || c > 0x7e {
			return Command{}, fmt.Errorf("mtqp: byte 0x%02x in command line", c)
		}
	}
	line = strings.TrimLeft(line, " \t")
	if line == "" {
		return Command{}, errors.New("mtqp: empty command line")
	}
	verb, rest, _ := strings.Cut(line, " ")
	if i := strings.IndexByte(verb, '\t'); i >= 0 {
		verb, rest = line[:i], line[i+1:]
	}
	rest = strings.TrimLeft(rest, " \t")
	return Command{Verb: strings.ToUpper(verb), Args: strings.FieldsFunc(rest, isWSP), Rest: rest}, nil
}

func isWSP(r rune) bool { return r == ' ' || r == '\t' }

// TrackArgs are TRACK's (and RECALL's) two parameters.
//
//	track-command = "TRACK" 1*WSP envid 1*WSP secret *WSP CRLF
//
// envid is the RFC 3461 ENVID value in its xtext form (RFC 3461 section 4,
// the same form it has in MAIL FROM); secret is the tracking secret A in
// base64 (RFC 3885 section 3's alphabet; padding optional). The exact
// argument syntax is RFC 3887 section 4 (UNVERIFIED: xtext for the envid
// and base64 for the secret follow SPEC.md and RFC 3885).
type TrackArgs struct {
	EnvID  string // decoded from xtext
	Secret []byte // decoded from base64
}

// ParseTrackArgs parses the arguments of TRACK or RECALL.
func ParseTrackArgs(args []string) (TrackArgs, error) {
	if len(args) != 2 {
		return TrackArgs{}, fmt.Errorf("mtqp: want 2 parameters (envid, secret), have %d", len(args))
	}
	envid, err := DecodeXtext(args[0])
	if err != nil {
		return TrackArgs{}, err
	}
	if envid == "" {
		return TrackArgs{}, errors.New("mtqp: empty envelope ID")
	}
	secret, err := decodeSecret(args[1])
	if err != nil {
		return TrackArgs{}, err
	}
	return TrackArgs{EnvID: envid, Secret: secret}, nil
}

// FormatTrack builds a TRACK or RECALL command line (without CRLF).
func FormatTrack(verb, envid string, secret []byte) string {
	return verb + " " + EncodeXtext(envid) + " " + base64.RawStdEncoding.EncodeToString(secret)
}

func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return nil, errors.New("mtqp: secret is not base64")
		}
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("mtqp: secret is not base64")
	}
	return b, nil
}

// EncodeXtext encodes s as RFC 3461 section 4 xtext: "+" followed by two
// upper-case hex digits for "+", "=", and any byte outside "!" to "~".
func EncodeXtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// DecodeXtext decodes RFC 3461 section 4 xtext. Lower-case hex digits are
// accepted (tolerance); "=" and bytes outside "!" to "~" are refused.
func DecodeXtext(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", errors.New("mtqp: truncated xtext escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", errors.New("mtqp: bad xtext escape")
			}
			b.WriteByte(byte(v))
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", fmt.Errorf("mtqp: byte 0x%02x in xtext", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// Reply is one complete server reply: a code and its lines of text.
type Reply struct {
	Code  int
	Lines []string
}

// Text returns the reply's lines joined with newlines.
func (r Reply) Text() string { return strings.Join(r.Lines, "\n") }

// AppendReply appends the wire form of a reply (RFC 3887 section 2, after
// RFC 5321 section 4.2): every line but the last is code "-" text CRLF,
// the last is code SP text CRLF. A reply with no lines is a bare code line.
func AppendReply(dst []byte, code int, lines ...string) []byte {
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, l := range lines {
		dst = strconv.AppendInt(dst, int64(code), 10)
		if i == len(lines)-1 {
			dst = append(dst, ' ')
		} else {
			dst = append(dst, '-')
		}
		dst = append(dst, l...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// ReadReply reads one complete reply. All lines must carry the same code;
// the code must be three digits 2-5, 0-5, 0-9 (RFC 5321 section 4.2).
// Lines are limited to MaxLineLength plus the four-character prefix, and
// a reply to maxLines lines.
func ReadReply(r *bufio.Reader, maxLines int) (Reply, error) {
	var rep Reply
	for {
		line, err := ReadLine(r, MaxLineLength+4)
		if err != nil {
			return Reply{}, err
		}
		if len(line) < 3 || !isReplyCode(line[:3]) || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
			return Reply{}, fmt.Errorf("mtqp: malformed reply line %q", truncate(line, 40))
		}
		code, _ := strconv.Atoi(line[:3])
		if rep.Lines != nil && code != rep.Code {
			return Reply{}, fmt.Errorf("mtqp: reply code changed from %d to %d inside a reply", rep.Code, code)
		}
		rep.Code = code
		text := ""
		if len(line) > 4 {
			text = line[4:]
		}
		rep.Lines = append(rep.Lines, text)
		if len(line) == 3 || line[3] == ' ' {
			return rep, nil
		}
		if len(rep.Lines) >= maxLines {
			return Reply{}, fmt.Errorf("mtqp: reply longer than %d lines", maxLines)
		}
	}
}

func isReplyCode(s string) bool {
	return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '5' && s[2] >= '0' && s[2] <= '9'
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Greeting is the server's initial response and option list (RFC 3887
// section 3), shaped like an ESMTP EHLO reply (UNVERIFIED):
//
//	greeting    = "250-" domain SP text CRLF *( "250-" option-line CRLF ) "250 " option-line CRLF
//	            / "250 " domain SP text CRLF
//	option-line = option-name *( SP option-param )
//
// The greeting is sent again after a successful STARTTLS, without
// STARTTLS in it, so a client learns what is offered under TLS
// (UNVERIFIED; RFC 3207 instead has the client ask with EHLO).
type Greeting struct {
	Domain  string
	Text    string
	Options []string // option lines, e.g. "STARTTLS", "vnd.msgtrack.recall"
}

// Lines returns the reply lines of the greeting.
func (g Greeting) Lines() []string {
	first := g.Domain
	if g.Text != "" {
		first += " " + g.Text
	}
	return append([]string{first}, g.Options...)
}

// ParseGreeting interprets a greeting reply. Any 2xx code is accepted (the
// server sends CodeGreeting; a client stays tolerant while the code is
// UNVERIFIED), anything else is returned as a *ReplyError (421: busy).
func ParseGreeting(r Reply) (Greeting, error) {
	if r.Code < 200 || r.Code > 299 {
		return Greeting{}, &ReplyError{Code: r.Code, Lines: r.Lines}
	}
	first := ""
	if len(r.Lines) > 0 {
		first = strings.TrimLeft(r.Lines[0], " \t")
	}
	dom, text, _ := strings.Cut(first, " ")
	if dom == "" {
		return Greeting{}, errors.New("mtqp: greeting without a domain")
	}
	return Greeting{Domain: dom, Text: text, Options: append([]string(nil), r.Lines[1:]...)}, nil
}

// Has reports whether the greeting advertises the option (option names
// are case-insensitive, like ESMTP keywords).
func (g Greeting) Has(option string) bool {
	for _, l := range g.Options {
		name, _, _ := strings.Cut(l, " ")
		if strings.EqualFold(name, option) {
			return true
		}
	}
	return false
}

// ReportMediaType is the media type of a TRACK answer's body (RFC 3886
// section 3).
const ReportMediaType = "message/tracking-status"

// A TRACK or RECALL success reply carries the report as a MIME entity,
// one body line per reply line (UNVERIFIED: RFC 3887 section 4 defines the
// exact framing):
//
//	track-reply = "250-Content-Type: message/tracking-status" CRLF
//	              "250-" CRLF
//	              *( "250-" report-line CRLF )
//	              "250 " text CRLF
//
// Every body line is prefixed, so no dot-stuffing is needed and a body
// line can never be mistaken for the end of the reply.
const reportHeader = "Content-Type: " + ReportMediaType

// reportLines splits a formatted report into reply lines, with the MIME
// header in front.
func reportLines(body []byte, final string) []string {
	lines := []string{reportHeader, ""}
	lines = append(lines, strings.Split(strings.TrimSuffix(string(body), "\r\n"), "\r\n")...)
	return append(lines, final)
}

// appendReportReply appends the wire form of a TRACK/RECALL success reply
// for a formatted report body (CRLF lines) directly, the same bytes as
// AppendReply(dst, CodeOK, reportLines(body, final)...).
func appendReportReply(dst, body []byte, final string) []byte {
	dst = append(dst, "250-"+reportHeader+"\r\n250-\r\n"...)
	for len(body) > 0 {
		i := bytes.Index(body, []byte("\r\n"))
		if i < 0 {
			i = len(body)
		}
		dst = append(dst, "250-"...)
		dst = append(dst, body[:i]...)
		dst = append(dst, '\r', '\n')
		if i == len(body) {
			break
		}
		body = body[i+2:]
	}
	dst = append(dst, "250 "...)
	dst = append(dst, final...)
	return append(dst, '\r', '\n')
}

// splitReportReply extracts the raw report body (CRLF line endings) from a
// TRACK or RECALL success reply.
func splitReportReply(r Reply) ([]byte, error) {
	ls := r.Lines
	if len(ls) < 3 {
		return nil, errors.New("mtqp: report reply too short")
	}
	ls = ls[:len(ls)-1] // final text line
	i := 0
	for ; i < len(ls) && ls[i] != ""; i++ {
		name, val, ok := strings.Cut(ls[i], ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Content-Type") {
			mt, _, _ := strings.Cut(strings.TrimSpace(val), ";")
			if !strings.EqualFold(strings.TrimSpace(mt), ReportMediaType) {
				return nil, fmt.Errorf("mtqp: report of type %q", mt)
			}
		}
	}
	if i == len(ls) {
		return nil, errors.New("mtqp: report reply without a MIME header")
	}
	var b bytes.Buffer
	for _, l := range ls[i+1:] {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}
