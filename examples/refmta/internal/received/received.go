// Package received builds the Received trace header field an SMTP server
// prepends to every message it accepts (RFC 5321 section 4.4) and counts
// existing ones for loop detection (RFC 5321 section 6.3).
//
// The field follows the Time-stamp-line grammar of RFC 5321 section 4.4:
//
//	Received: from <EHLO domain> (<rDNS name> [<IP>])
//		by <our host> with <protocol> id <queue id>
//		for <rcpt>; <RFC 5322 date-time>
//
// The protocol is one of RFC 3848's names (SMTP, ESMTP, ESMTPS, ESMTPA,
// ESMTPSA). The EHLO argument comes from the client and is untrusted: when
// it is not a syntactically valid domain or address literal the From
// clause says "unknown" and the argument, with unsafe characters replaced,
// goes into the TCP-info comment as helo=... "for" is given only when the
// transaction has exactly one recipient (RFC 5321 section 7.6: listing
// several would disclose Bcc recipients). Long fields are folded at
// clause boundaries (RFC 5322 section 2.2.3).
package received

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// Info describes the transaction a Received field records.
type Info struct {
	// Helo is the EHLO or HELO argument as the client sent it.
	Helo string
	// RemoteIP is the client's address.
	RemoteIP netip.Addr
	// RemoteHost is the client's reverse-DNS name, if it was verified
	// (forward-confirmed); "" otherwise.
	RemoteHost string
	// By is this server's host name.
	By string
	// ESMTP is true after EHLO (false after HELO).
	ESMTP bool
	// TLS is true when the transaction ran over TLS.
	TLS bool
	// Auth is true when the client authenticated.
	Auth bool
	// TLSDetail, if set, is added as a comment after the protocol, e.g.
	// "TLS1.3 TLS_AES_128_GCM_SHA256".
	TLSDetail string
	// ID is the queue (spool) identifier of the message.
	ID string
	// Rcpts are the transaction's recipients; "for" is written only when
	// there is exactly one.
	Rcpts []string
	// Time is when the message was received.
	Time time.Time
}

// Protocol returns the RFC 3848 protocol name for the transaction.
func (i Info) Protocol() string {
	if !i.ESMTP {
		return "SMTP"
	}
	p := "ESMTP"
	if i.TLS {
		p += "S"
	}
	if i.Auth {
		p += "A"
	}
	return p
}

// Field returns the complete header field, folded and ending in CRLF.
func Field(i Info) string {
	var clauses []string
	from := "from unknown"
	helo := strings.TrimSpace(i.Helo)
	heloOK := ValidDomain(helo) || validLiteral(helo)
	if heloOK {
		from = "from " + helo
	}
	var tcp []string
	if !heloOK && helo != "" {
		tcp = append(tcp, "helo="+sanitize(helo, 64))
	}
	if i.RemoteHost != "" && ValidDomain(i.RemoteHost) {
		tcp = append(tcp, i.RemoteHost)
	}
	if i.RemoteIP.IsValid() {
		tcp = append(tcp, addressLiteral(i.RemoteIP))
	}
	if len(tcp) > 0 {
		from += " (" + strings.Join(tcp, " ") + ")"
	}
	clauses = append(clauses, from)
	by := i.By
	if !ValidDomain(by) {
		by = "localhost"
	}
	clauses = append(clauses, "by "+by)
	with := "with " + i.Protocol()
	if i.TLSDetail != "" {
		with += " (" + sanitize(i.TLSDetail, 100) + ")"
	}
	clauses = append(clauses, with)
	if id := sanitize(i.ID, 64); id != "" && !strings.ContainsAny(id, " ()") {
		clauses = append(clauses, "id "+id)
	}
	if len(i.Rcpts) == 1 {
		if r := sanitize(strings.Trim(i.Rcpts[0], "<>"), 256); r != "" && !strings.ContainsAny(r, " <>") {
			clauses = append(clauses, "for <"+r+">")
		}
	}
	t := i.Time
	if t.IsZero() {
		t = time.Now()
	}
	clauses[len(clauses)-1] += ";"
	clauses = append(clauses, t.Format(time.RFC1123Z))
	return fold("Received:", clauses)
}

// fold joins clauses after name, breaking lines before a clause when the
// line would pass 78 characters.
func fold(name string, clauses []string) string {
	var b strings.Builder
	b.WriteString(name)
	col := len(name)
	for _, c := range clauses {
		if col+1+len(c) > 78 && col > len(name) {
			b.WriteString("\r\n\t")
			col = 8
		} else {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(c)
		col += len(c)
	}
	b.WriteString("\r\n")
	return b.String()
}

func addressLiteral(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.WithZone("").String() + "]"
}

// sanitize keeps printable ASCII except parentheses and backslash (which
// would end or escape the comment), replacing others with "?", and cuts
// the result to max bytes.
func sanitize(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '(' || c == ')' || c == '\\' {
			if c == ' ' {
				b.WriteByte(' ')
			} else {
				b.WriteByte('?')
			}
			continue
		}
		b.WriteByte(c)
	}
	return strings.TrimSpace(b.String())
}

// ValidDomain reports whether s is an RFC 5321 section 4.1.2 Domain:
// dot-separated labels of letters, digits and inner hyphens, at most 63
// octets each and 255 in all.
func ValidDomain(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validLiteral accepts "[1.2.3.4]" and "[IPv6:...]".
func validLiteral(s string) bool {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	in := s[1 : len(s)-1]
	if v6, ok := strings.CutPrefix(in, "IPv6:"); ok {
		a, err := netip.ParseAddr(v6)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(in)
	return err == nil && a.Is4()
}

// DefaultHopLimit is the Received count at which a message is refused as
// looping. RFC 5321 section 6.3 asks for a threshold of "at least 100".
const DefaultHopLimit = 100

// LoopError reports a message with too many Received fields.
type LoopError struct {
	// Hops is the number of Received fields found.
	Hops int
	// Limit is the threshold that was reached.
	Limit int
}

// Error implements error.
func (e *LoopError) Error() string {
	return fmt.Sprintf("received: %d Received fields, limit %d: mail loop", e.Hops, e.Limit)
}

// SMTPReply implements the project's SMTP reply convention: 554 5.4.6,
// "routing loop detected" (RFC 3463 section 3.5).
func (e *LoopError) SMTPReply() (int, [3]int, string) {
	return 554, [3]int{5, 4, 6}, "Too many hops: mail loop detected"
}

// Check returns a *LoopError when hops reaches limit (DefaultHopLimit when
// limit <= 0).
func Check(hops, limit int) error {
	if limit <= 0 {
		limit = DefaultHopLimit
	}
	if hops >= limit {
		return &LoopError{Hops: hops, Limit: limit}
	}
	return nil
}

// Count reads a message's header section from r (up to the first empty
// line, or EOF) and returns the number of Received fields in it. Field
// names compare case-insensitively, and the obsolete form with blanks
// before the colon (RFC 5322 section 4.5) counts too. Continuation lines
// and the body are never counted. Lines of any length are handled.
func Count(r io.Reader) (int, error) {
	br := bufio.NewReader(r)
	n := 0
	atStart := true
	for {
		line, err := br.ReadSlice('\n')
		if atStart {
			if len(line) > 0 && len(bytes.TrimRight(line, "\r\n")) == 0 {
				return n, nil // the empty line ending the header section
			}
			if isReceived(line) {
				n++
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			atStart = false // rest of an overlong line
			continue
		case err == io.EOF:
			return n, nil
		case err != nil:
			return n, err
		}
		atStart = true
	}
}

// CountBytes is Count over an in-memory message or header section.
func CountBytes(msg []byte) int {
	n, _ := Count(bytes.NewReader(msg))
	return n
}

func isReceived(line []byte) bool {
	const name = "received"
	if len(line) < len(name)+1 || !bytes.EqualFold(line[:len(name)], []byte(name)) {
		return false
	}
	rest := bytes.TrimLeft(line[len(name):], " \t")
	return len(rest) > 0 && rest[0] == ':'
}
