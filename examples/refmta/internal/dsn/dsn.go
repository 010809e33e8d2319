// Package dsn builds RFC 3464 delivery status notifications: a
// multipart/report message (RFC 6522, formerly RFC 3462) with
// report-type=delivery-status and three parts, a human-readable
// explanation, the message/delivery-status report, and the returned
// message (message/rfc822) or its header (text/rfc822-headers).
//
// # What the package decides (RFC 3461)
//
//   - NOTIFY (RFC 3461 section 4.1): a recipient is reported only when its
//     NOTIFY asks for the action: FAILURE for "failed", DELAY for
//     "delayed", SUCCESS for "delivered", "relayed" and "expanded"; NEVER
//     for nothing. Without NOTIFY the default is FAILURE only (the section
//     lets an MTA add DELAY; this one sends no delay notices).
//   - RET (section 4.3): HDRS returns the header section only; FULL, or no
//     RET, returns the whole message unless it is larger than MaxFull,
//     in which case the header is returned and the explanation says so.
//   - ENVID (section 4.4) becomes Original-Envelope-Id, ORCPT (section
//     4.2) becomes Original-Recipient, both decoded from xtext (section 5
//     of RFC 3461); a decoded value that would not be safe field text
//     (controls, non-ASCII) is kept in its xtext form instead.
//   - The DSN is sent with the null reverse-path (RFC 3461 section 6.2,
//     RFC 5321 section 4.5.5), and none is ever built for a message whose
//     reverse-path was null: Build returns ErrNullSender, which is what
//     stops notification loops.
//
// An expired queue lifetime is reported with Action "failed" and the last
// temporary status (4.4.7 "delivery time expired" by default, RFC 3463
// section 3.5), the way RFC 3464 section 2.3.4 allows a 4.x.x status for
// a failed recipient.
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Action is an RFC 3464 section 2.3.3 action value.
type Action string

// The action values.
const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed"
	Expanded  Action = "expanded"
)

// ErrNullSender: the message had the null reverse-path, so no DSN may be
// sent about it (RFC 3461 section 6.2).
var ErrNullSender = errors.New("dsn: no notification for a message from the null sender")

// ErrNotRequested: no recipient's NOTIFY asks for a report of its action.
var ErrNotRequested = errors.New("dsn: no recipient asked for this notification")

// Notify is a parsed NOTIFY parameter.
type Notify struct {
	// Never is NOTIFY=NEVER.
	Never bool
	// Success, Failure and Delay are the keywords present.
	Success, Failure, Delay bool
	// Given is false when there was no NOTIFY parameter.
	Given bool
}

// ParseNotify parses a raw NOTIFY value ("" when the parameter was
// absent). NEVER must stand alone (RFC 3461 section 4.1).
func ParseNotify(s string) (Notify, error) {
	if s == "" {
		return Notify{}, nil
	}
	n := Notify{Given: true}
	for _, k := range strings.Split(s, ",") {
		switch strings.ToUpper(strings.TrimSpace(k)) {
		case "NEVER":
			n.Never = true
		case "SUCCESS":
			n.Success = true
		case "FAILURE":
			n.Failure = true
		case "DELAY":
			n.Delay = true
		default:
			return Notify{}, fmt.Errorf("dsn: bad NOTIFY keyword %q", k)
		}
	}
	if n.Never && (n.Success || n.Failure || n.Delay) {
		return Notify{}, errors.New("dsn: NOTIFY=NEVER combined with other keywords")
	}
	return n, nil
}

// Wants reports whether a recipient with this NOTIFY wants a report of a.
func (n Notify) Wants(a Action) bool {
	if !n.Given {
		return a == Failed
	}
	switch a {
	case Failed:
		return n.Failure
	case Delayed:
		return n.Delay
	case Delivered, Relayed, Expanded:
		return n.Success
	}
	return false
}

// DecodeXtext decodes RFC 3461 section 4 xtext ("+" followed by two hex
// digits stands for that octet). The RFC asks senders for upper-case
// digits; lower case is accepted on input.
func DecodeXtext(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+3 > len(s) {
				return "", fmt.Errorf("dsn: truncated xtext escape in %q", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil || s[i+1] == '+' || s[i+1] == '-' {
				return "", fmt.Errorf("dsn: bad xtext escape in %q", s)
			}
			b.WriteByte(byte(v))
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", fmt.Errorf("dsn: invalid xtext character %q", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// fieldText returns the decoded xtext when it is safe as field text, and
// the raw value otherwise.
func fieldText(raw string) string {
	d, err := DecodeXtext(raw)
	if err != nil {
		return sanitize(raw)
	}
	for i := 0; i < len(d); i++ {
		if d[i] < ' ' || d[i] > '~' {
			return sanitize(raw)
		}
	}
	return d
}

// sanitize drops anything that could break a header line.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// Recipient is one recipient's entry in the report.
type Recipient struct {
	// Addr is the final recipient address (Final-Recipient).
	Addr string
	// ORcpt is the raw ORCPT parameter ("rfc822;xtext"), "" if absent.
	ORcpt string
	// Notify is the raw NOTIFY parameter, "" if absent.
	Notify string
	// Action is what happened.
	Action Action
	// Status is the RFC 3463 status code, e.g. "5.1.1". Empty: derived
	// from Diagnostic, else 5.0.0 for failed, 4.0.0 for delayed, 2.0.0.
	Status string
	// Diagnostic is the reason, typically the remote SMTP reply
	// ("550 5.1.1 no such user"); written as "Diagnostic-Code: smtp; ...".
	Diagnostic string
	// RemoteMTA is the host that gave the Diagnostic, "" if local.
	RemoteMTA string
	// LastAttempt is when delivery was last tried (zero: omitted).
	LastAttempt time.Time
	// WillRetryUntil is for delayed reports (zero: omitted).
	WillRetryUntil time.Time
}

// Report is the input to Build.
type Report struct {
	// ReportingMTA is this host's name (Reporting-MTA: dns; ...).
	ReportingMTA string
	// Sender is the original message's reverse-path, the DSN's recipient.
	Sender string
	// EnvID is the raw ENVID parameter, "" if absent.
	EnvID string
	// Ret is the raw RET parameter: "FULL", "HDRS" or "".
	Ret string
	// Arrival is when the original message arrived (zero: omitted).
	Arrival time.Time
	// Recipients are candidates for the report; those whose NOTIFY does
	// not ask for their Action are left out.
	Recipients []Recipient
	// Date stamps the DSN; zero means time.Now().
	Date time.Time
	// MaxFull is the largest original returned whole; default 1 MiB.
	MaxFull int64
}

// DSN is a built notification, ready to be queued.
type DSN struct {
	// From is the envelope reverse-path to use: always "" (null).
	From string
	// To is the envelope recipient: the original sender.
	To string
	// Reported lists the recipients included in the report.
	Reported []string
	// Message is the complete message, CRLF line endings.
	Message []byte
}

// Build makes the notification for r, reading the original message from
// original (it may be nil when nothing is to be returned). It returns
// ErrNullSender or ErrNotRequested when no notification must be sent.
func Build(r Report, original io.Reader) (*DSN, error) {
	if strings.Trim(r.Sender, "<> ") == "" {
		return nil, ErrNullSender
	}
	var rcpts []Recipient
	for _, rc := range r.Recipients {
		n, err := ParseNotify(rc.Notify)
		if err != nil {
			n = Notify{} // a malformed NOTIFY cannot have been accepted; use the default
		}
		if n.Wants(rc.Action) {
			rcpts = append(rcpts, rc)
		}
	}
	if len(rcpts) == 0 {
		return nil, ErrNotRequested
	}
	date := r.Date
	if date.IsZero() {
		date = time.Now()
	}
	maxFull := r.MaxFull
	if maxFull <= 0 {
		maxFull = 1 << 20
	}
	host := r.ReportingMTA
	if host == "" {
		host = "localhost"
	}

	// The returned content.
	var content []byte
	headersOnly := strings.EqualFold(r.Ret, "HDRS")
	truncated := false
	if original != nil {
		var err error
		if headersOnly {
			content, err = readHeader(original)
		} else {
			content, err = io.ReadAll(io.LimitReader(original, maxFull+1))
			if err == nil && int64(len(content)) > maxFull {
				headersOnly, truncated = true, true
				content, err = readHeader(bytes.NewReader(content))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("dsn: reading the original message: %w", err)
		}
		content = toCRLF(content)
	}

	boundary, err := newBoundary(content)
	if err != nil {
		return nil, err
	}
	mid, err := randomHex(12)
	if err != nil {
		return nil, err
	}

	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...); b.WriteString("\r\n") }
	subject := "Delivery Status Notification"
	switch rcpts[0].Action {
	case Failed:
		subject = "Undelivered Mail Returned to Sender"
	case Delayed:
		subject = "Delayed Mail (still being retried)"
	case Delivered, Relayed, Expanded:
		subject = "Successful Mail Delivery Report"
	}
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", sanitize(host))
	w("To: <%s>", sanitize(strings.Trim(r.Sender, "<>")))
	w("Subject: %s", subject)
	w("Date: %s", date.Format(time.RFC1123Z))
	w("Message-ID: <%s.dsn@%s>", mid, sanitize(host))
	w("Auto-Submitted: auto-replied")
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;")
	w("\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated message.")
	w("")

	// Part 1: for people.
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=utf-8")
	w("Content-Description: Notification")
	w("")
	w("This is the mail system at host %s.", sanitize(host))
	w("")
	for _, rc := range rcpts {
		w("<%s>: %s", sanitize(rc.Addr), explain(rc))
	}
	if truncated {
		w("")
		w("The message was larger than %d bytes; only its header is returned.", maxFull)
	}
	w("")

	// Part 2: message/delivery-status (RFC 3464 section 2).
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("Content-Description: Delivery report")
	w("")
	if r.EnvID != "" {
		w("Original-Envelope-Id: %s", fieldText(r.EnvID))
	}
	w("Reporting-MTA: dns; %s", sanitize(host))
	if !r.Arrival.IsZero() {
		w("Arrival-Date: %s", r.Arrival.Format(time.RFC1123Z))
	}
	for _, rc := range rcpts {
		w("")
		if typ, addr, ok := strings.Cut(rc.ORcpt, ";"); ok && typ != "" {
			w("Original-Recipient: %s;%s", sanitize(typ), fieldText(addr))
		}
		w("Final-Recipient: rfc822; %s", sanitize(rc.Addr))
		w("Action: %s", rc.Action)
		w("Status: %s", status(rc))
		if rc.RemoteMTA != "" {
			w("Remote-MTA: dns; %s", sanitize(rc.RemoteMTA))
		}
		if rc.Diagnostic != "" {
			w("Diagnostic-Code: smtp; %s", sanitize(rc.Diagnostic))
		}
		if !rc.LastAttempt.IsZero() {
			w("Last-Attempt-Date: %s", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if !rc.WillRetryUntil.IsZero() && rc.Action == Delayed {
			w("Will-Retry-Until: %s", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	w("")

	// Part 3: the returned message or header.
	if original != nil {
		w("--%s", boundary)
		if headersOnly {
			w("Content-Type: text/rfc822-headers")
			w("Content-Description: Undelivered message headers")
		} else {
			w("Content-Type: message/rfc822")
			w("Content-Description: Undelivered message")
			if has8bit(content) {
				w("Content-Transfer-Encoding: 8bit")
			}
		}
		w("")
		b.Write(content)
		if len(content) > 0 && !bytes.HasSuffix(content, []byte("\r\n")) {
			b.WriteString("\r\n")
		}
		w("")
	}
	w("--%s--", boundary)

	d := &DSN{From: "", To: strings.Trim(r.Sender, "<>"), Message: b.Bytes()}
	for _, rc := range rcpts {
		d.Reported = append(d.Reported, rc.Addr)
	}
	return d, nil
}

func explain(rc Recipient) string {
	switch rc.Action {
	case Failed:
		if rc.Diagnostic == "" {
			return "delivery failed permanently"
		}
		return "delivery failed: " + sanitize(rc.Diagnostic)
	case Delayed:
		return "delivery delayed, still trying: " + sanitize(rc.Diagnostic)
	case Delivered:
		return "delivered"
	case Relayed:
		return "relayed to a system that sends no further notifications"
	case Expanded:
		return "delivered to a list or alias"
	}
	return string(rc.Action)
}

// status returns the RFC 3463 code for rc: its Status, the enhanced code
// of its Diagnostic, or a generic one for its Action.
func status(rc Recipient) string {
	if validStatus(rc.Status) {
		return rc.Status
	}
	if f := strings.Fields(rc.Diagnostic); len(f) >= 2 && validStatus(f[1]) {
		return f[1]
	}
	switch rc.Action {
	case Failed:
		if f := strings.Fields(rc.Diagnostic); len(f) >= 1 && len(f[0]) == 3 && f[0][0] == '4' {
			return "4.0.0"
		}
		return "5.0.0"
	case Delayed:
		return "4.0.0"
	}
	return "2.0.0"
}

// validStatus checks RFC 3463 section 2 syntax: class "." subject "."
// detail, class 2, 4 or 5, subject up to 3 digits, detail up to 3 digits.
func validStatus(s string) bool {
	p := strings.Split(s, ".")
	if len(p) != 3 || (p[0] != "2" && p[0] != "4" && p[0] != "5") {
		return false
	}
	for _, x := range p[1:] {
		if x == "" || len(x) > 3 || strings.Trim(x, "0123456789") != "" {
			return false
		}
	}
	return true
}

// readHeader returns the header section of a message, up to and including
// the empty line (or all of it, if there is no body).
func readHeader(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	var out []byte
	for {
		line, err := br.ReadBytes('\n')
		out = append(out, line...)
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0 {
			return out, nil
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// toCRLF turns bare LF line ends into CRLF.
func toCRLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("dsn: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newBoundary returns a random boundary that does not occur in content.
func newBoundary(content []byte) (string, error) {
	for {
		h, err := randomHex(12)
		if err != nil {
			return "", err
		}
		bd := "dsn-" + h
		if !bytes.Contains(content, []byte(bd)) {
			return bd, nil
		}
	}
}
