package mtqp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Report is a message/tracking-status body (RFC 3886 section 3): one group
// of per-message fields followed by one group per recipient, groups
// separated by a blank line, the same shape as RFC 3464's
// message/delivery-status.
//
// Round trips: Parse(Format(r)) equals r for any valid r whose dates have
// whole seconds and whose text values carry no leading or trailing white
// space; Format(Parse(b)) equals b for any b in canonical form (the form
// Format writes: CRLF line endings, known fields in the order below, one
// space after each colon and after each ";", extension fields last,
// folded by Format's rule).
type Report struct {
	// EnvelopeID is Original-Envelope-Id (RFC 3886 section 3.2; required in
	// a tracking report, since a query names it).
	EnvelopeID string
	// ReportingMTA is Reporting-MTA, normally "dns; host" (required).
	ReportingMTA TypedValue
	// ArrivalDate is Arrival-Date; the zero time means absent.
	ArrivalDate time.Time
	// Extensions are the other per-message fields, in the order read.
	Extensions []Field
	// Recipients are the per-recipient groups (at least one).
	Recipients []Recipient
}

// Recipient is one per-recipient group (RFC 3886 section 3.3).
//
// The field set (per message: Original-Envelope-Id, Reporting-MTA,
// Arrival-Date; per recipient: the seven below) was checked against an
// independent implementation's table of RFC 3886 fields, not against the
// RFC's own text. That table confirms SPEC.md's guess that the
// message/delivery-status fields Diagnostic-Code, Final-Log-ID,
// Received-From-MTA and DSN-Gateway are not tracking-status fields: when a
// writer sends them anyway they arrive in Extensions, in order, and are
// written back unchanged.
type Recipient struct {
	// OriginalRecipient is Original-Recipient (the ORCPT value); optional.
	OriginalRecipient TypedValue
	// FinalRecipient is Final-Recipient, "rfc822; user@example.com"
	// (required).
	FinalRecipient TypedValue
	// Action is what happened to the message for this recipient (required).
	Action Action
	// Status is the RFC 3463 status code (required).
	Status Status
	// RemoteMTA is Remote-MTA; with ActionTransferred it names the MTA to
	// ask next (the referral the client can follow). Optional.
	RemoteMTA TypedValue
	// LastAttemptDate is Last-Attempt-Date; zero means absent.
	LastAttemptDate time.Time
	// WillRetryUntil is Will-Retry-Until; zero means absent.
	WillRetryUntil time.Time
	// Extensions are the other fields of the group, in the order read.
	Extensions []Field
}

// Field is one extension field: a name and its unfolded value.
type Field struct {
	Name  string
	Value string
}

// TypedValue is a "type; value" field body such as "dns; mx.example.com"
// or "rfc822; user@example.com" (RFC 3464 section 2.1.2 address-type /
// mta-name-type, which RFC 3886 reuses). The zero value means absent.
type TypedValue struct {
	Type  string
	Value string
}

// Address types and MTA name types (RFC 3464 sections 2.1.2 and 2.1.3).
const (
	TypeRFC822 = "rfc822"
	TypeDNS    = "dns"
)

// DNS returns the TypedValue "dns; host".
func DNS(host string) TypedValue { return TypedValue{Type: TypeDNS, Value: host} }

// RFC822 returns the TypedValue "rfc822; addr".
func RFC822(addr string) TypedValue { return TypedValue{Type: TypeRFC822, Value: addr} }

// IsZero reports whether the value is absent.
func (t TypedValue) IsZero() bool { return t.Type == "" && t.Value == "" }

// String returns "type; value".
func (t TypedValue) String() string { return t.Type + "; " + t.Value }

// Action is a per-recipient action value, in lower case (the RFC's values
// are case-insensitive).
type Action string

// Action values. The first five are RFC 3464 section 2.3.3's; transferred
// and opaque are RFC 3886's tracking additions (the list of seven is
// confirmed by an independent implementation; the one-line meanings below
// are this package's reading). Unknown values are kept as read, in lower
// case.
const (
	ActionFailed      Action = "failed"
	ActionDelayed     Action = "delayed"
	ActionDelivered   Action = "delivered"
	ActionRelayed     Action = "relayed"
	ActionExpanded    Action = "expanded"
	ActionTransferred Action = "transferred" // passed to an MTA that can be tracked further: see RemoteMTA
	ActionOpaque      Action = "opaque"      // passed where tracking information cannot be obtained
)

// Status is an RFC 3463 enhanced status code class.subject.detail.
type Status struct {
	Class, Subject, Detail int
}

// Status codes a tracking report commonly carries. StatusRelayedNonCompliant
// is X.1.9, "message relayed to non-compliant mailer": the address was
// valid, but the message went to a system that does not speak the
// tracking protocol, so nothing more can be reported. RFC 3886's header
// says it updates RFC 3463, and the IANA enhanced status code registry
// (RFC 5248) lists X.1.9 with that meaning and RFC 3886 as its reference;
// checked against several independent copies of the registry, not
// against RFC 3886's own section text, which could not be read.
var (
	StatusDelivered           = Status{2, 0, 0}
	StatusDelayed             = Status{4, 0, 0}
	StatusRelayedNonCompliant = Status{2, 1, 9}
)

// String returns "c.s.d".
func (s Status) String() string {
	return strconv.Itoa(s.Class) + "." + strconv.Itoa(s.Subject) + "." + strconv.Itoa(s.Detail)
}

// Valid reports whether the code has RFC 3463 section 2's shape: class 2,
// 4 or 5, subject and detail 0 to 999.
func (s Status) Valid() bool {
	return (s.Class == 2 || s.Class == 4 || s.Class == 5) && s.Subject >= 0 && s.Subject <= 999 && s.Detail >= 0 && s.Detail <= 999
}

// ParseStatus parses "c.s.d". Anything after the code and white space
// (a comment some writers add) is ignored.
func ParseStatus(v string) (Status, error) {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t("); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return Status{}, fmt.Errorf("mtqp: status %q is not class.subject.detail", v)
	}
	var n [3]int
	for i, p := range parts {
		if p == "" || len(p) > 3 || (i == 0 && len(p) != 1) {
			return Status{}, fmt.Errorf("mtqp: bad status %q", v)
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return Status{}, fmt.Errorf("mtqp: bad status %q", v)
			}
		}
		n[i], _ = strconv.Atoi(p)
	}
	s := Status{n[0], n[1], n[2]}
	if !s.Valid() {
		return Status{}, fmt.Errorf("mtqp: status class %d not 2, 4 or 5", s.Class)
	}
	return s, nil
}

// Canonical field names.
const (
	fOriginalEnvelopeID = "Original-Envelope-Id"
	fReportingMTA       = "Reporting-MTA"
	fArrivalDate        = "Arrival-Date"
	fOriginalRecipient  = "Original-Recipient"
	fFinalRecipient     = "Final-Recipient"
	fAction             = "Action"
	fStatus             = "Status"
	fRemoteMTA          = "Remote-MTA"
	fLastAttemptDate    = "Last-Attempt-Date"
	fWillRetryUntil     = "Will-Retry-Until"
)

// foldWidth is the line length Format folds at (RFC 5322 section 2.1.1's
// recommended 78 characters).
const foldWidth = 78

// Format writes the report in canonical form with CRLF line endings.
func (r *Report) Format() ([]byte, error) {
	return r.AppendFormat(nil)
}

// AppendFormat appends the canonical form of the report to dst.
// A report with a line over 998 characters after folding (a very long
// value without white space) is refused: RFC 5322 section 2.1.1's limit,
// which also keeps every line of a TRACK reply within MTQP's.
func (r *Report) AppendFormat(dst []byte) (_ []byte, err error) {
	if err := r.Validate(); err != nil {
		return dst, err
	}
	start := len(dst)
	defer func() {
		if err == nil {
			err = checkLineLengths(dst[start:])
		}
	}()
	dst = appendField(dst, fOriginalEnvelopeID, r.EnvelopeID)
	dst = appendField(dst, fReportingMTA, r.ReportingMTA.String())
	if !r.ArrivalDate.IsZero() {
		dst = appendField(dst, fArrivalDate, FormatDate(r.ArrivalDate))
	}
	for _, f := range r.Extensions {
		dst = appendField(dst, f.Name, f.Value)
	}
	for _, rc := range r.Recipients {
		dst = append(dst, '\r', '\n')
		if !rc.OriginalRecipient.IsZero() {
			dst = appendField(dst, fOriginalRecipient, rc.OriginalRecipient.String())
		}
		dst = appendField(dst, fFinalRecipient, rc.FinalRecipient.String())
		dst = appendField(dst, fAction, string(rc.Action))
		dst = appendField(dst, fStatus, rc.Status.String())
		if !rc.RemoteMTA.IsZero() {
			dst = appendField(dst, fRemoteMTA, rc.RemoteMTA.String())
		}
		if !rc.LastAttemptDate.IsZero() {
			dst = appendField(dst, fLastAttemptDate, FormatDate(rc.LastAttemptDate))
		}
		if !rc.WillRetryUntil.IsZero() {
			dst = appendField(dst, fWillRetryUntil, FormatDate(rc.WillRetryUntil))
		}
		for _, f := range rc.Extensions {
			dst = appendField(dst, f.Name, f.Value)
		}
	}
	return dst, nil
}

// Validate checks that the report can be written: required fields present,
// names and values free of line breaks and control characters.
func (r *Report) Validate() error {
	if err := checkValue(fOriginalEnvelopeID, r.EnvelopeID, true); err != nil {
		return err
	}
	if err := checkTyped(fReportingMTA, r.ReportingMTA, true); err != nil {
		return err
	}
	if err := checkExtensions(r.Extensions); err != nil {
		return err
	}
	if len(r.Recipients) == 0 {
		return errors.New("mtqp: report without recipients")
	}
	for i, rc := range r.Recipients {
		if err := rc.validate(); err != nil {
			return fmt.Errorf("recipient %d: %w", i+1, err)
		}
	}
	return nil
}

func (rc *Recipient) validate() error {
	if err := checkTyped(fOriginalRecipient, rc.OriginalRecipient, false); err != nil {
		return err
	}
	if err := checkTyped(fFinalRecipient, rc.FinalRecipient, true); err != nil {
		return err
	}
	if rc.Action == "" || !isToken(string(rc.Action)) || strings.ToLower(string(rc.Action)) != string(rc.Action) {
		return fmt.Errorf("mtqp: bad Action %q", rc.Action)
	}
	if !rc.Status.Valid() {
		return fmt.Errorf("mtqp: bad Status %v", rc.Status)
	}
	if err := checkTyped(fRemoteMTA, rc.RemoteMTA, false); err != nil {
		return err
	}
	return checkExtensions(rc.Extensions)
}

var knownNames = [...]string{fOriginalEnvelopeID, fReportingMTA, fArrivalDate, fOriginalRecipient,
	fFinalRecipient, fAction, fStatus, fRemoteMTA, fLastAttemptDate, fWillRetryUntil}

// canonical returns the canonical spelling of a field RFC 3886 defines,
// matched case-insensitively, and whether it is one.
func canonical(n string) (string, bool) {
	for _, k := range knownNames {
		if len(k) == len(n) && strings.EqualFold(k, n) {
			return k, true
		}
	}
	return n, false
}

func isKnown(n string) bool {
	_, ok := canonical(n)
	return ok
}

func checkExtensions(fs []Field) error {
	for _, f := range fs {
		if !isFieldName(f.Name) {
			return fmt.Errorf("mtqp: bad field name %q", f.Name)
		}
		if isKnown(f.Name) {
			return fmt.Errorf("mtqp: %s is not an extension field", f.Name)
		}
		if err := checkValue(f.Name, f.Value, false); err != nil {
			return err
		}
	}
	return nil
}

func checkTyped(name string, t TypedValue, required bool) error {
	if t.IsZero() {
		if required {
			return fmt.Errorf("mtqp: %s missing", name)
		}
		return nil
	}
	if !isToken(t.Type) {
		return fmt.Errorf("mtqp: %s: bad type %q", name, t.Type)
	}
	return checkValue(name, t.Value, true)
}

func checkValue(name, v string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("mtqp: %s missing", name)
		}
		return nil
	}
	if strings.TrimLeft(v, " \t") != v || strings.TrimRight(v, " \t") != v {
		return fmt.Errorf("mtqp: %s: value has leading or trailing white space", name)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("mtqp: %s: control character 0x%02x in value", name, c)
		}
	}
	return nil
}

// isFieldName reports RFC 5322 section 3.6.8 ftext: printable ASCII but ":".
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ':' {
			return false
		}
	}
	return true
}

// isToken: an address or MTA type (atom) or an action value.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ';' || c == ':' || c == '(' || c == ')' {
			return false
		}
	}
	return true
}

// appendField writes "Name: value" CRLF, folded: while a line is longer
// than foldWidth, it is broken before the last run of SP/HTAB that starts
// at or before foldWidth (or, failing that, the first such run after it),
// provided the broken-off line keeps some text of the value. The white
// space starts the continuation line (RFC 5322 section 2.2.3), so
// unfolding (deleting the CRLF) gives back the value exactly. A run of
// text with no white space is never broken.
func appendField(dst []byte, name, value string) []byte {
	line := name + ": " + value
	min := len(name) + 3 // the cut must leave at least one value byte on the first line
	for len(line) > foldWidth {
		cut := -1
		ok := func(i int) bool {
			return i >= min && (line[i] == ' ' || line[i] == '\t') && line[i-1] != ' ' && line[i-1] != '\t'
		}
		for i := foldWidth; i > 0; i-- {
			if i < len(line) && ok(i) {
				cut = i
				break
			}
		}
		if cut < 0 {
			for i := foldWidth + 1; i < len(line); i++ {
				if ok(i) {
					cut = i
					break
				}
			}
		}
		if cut < 0 {
			break
		}
		dst = append(dst, line[:cut]...)
		dst = append(dst, '\r', '\n')
		line = line[cut:]
		// A continuation line starts with white space; it must keep a
		// non-white byte before its own cut.
		min = len(line) - len(strings.TrimLeft(line, " \t")) + 1
	}
	dst = append(dst, line...)
	return append(dst, '\r', '\n')
}

// ParseReport parses a message/tracking-status body. It is tolerant of
// what real writers produce: LF or CRLF line endings, folded lines, field
// names in any case, extra white space around ":" and ";", blank lines
// before the first group and several between groups, a missing address
// type (taken as rfc822; dns for MTA fields), comments after a status code
// and the obsolete date forms of RFC 5322 section 4.3. It refuses a body
// that lacks a required field, a recipient group or has an unparseable
// status or date, and a field that repeats in one group.
func ParseReport(b []byte) (*Report, error) {
	groups, err := splitGroups(b)
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		return nil, errors.New("mtqp: empty report")
	}
	r := &Report{}
	seen := map[string]bool{}
	for _, f := range groups[0] {
		known := isKnown(f.Name) // names were canonicalised by splitGroups
		if known {
			if seen[f.Name] {
				return nil, fmt.Errorf("mtqp: %s repeated", f.Name)
			}
			seen[f.Name] = true
		}
		switch f.Name {
		case fOriginalEnvelopeID:
			r.EnvelopeID = f.Value
		case fReportingMTA:
			r.ReportingMTA = parseTyped(f.Value, TypeDNS)
		case fArrivalDate:
			if r.ArrivalDate, err = ParseDate(f.Value); err != nil {
				return nil, fmt.Errorf("mtqp: Arrival-Date: %w", err)
			}
		default:
			if known {
				return nil, fmt.Errorf("mtqp: per-recipient field %s in the per-message group", f.Name)
			}
			r.Extensions = append(r.Extensions, f)
		}
	}
	for gi, g := range groups[1:] {
		rc, err := parseRecipient(g)
		if err != nil {
			return nil, fmt.Errorf("recipient %d: %w", gi+1, err)
		}
		r.Recipients = append(r.Recipients, rc)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func parseRecipient(g []Field) (Recipient, error) {
	var rc Recipient
	var err error
	seen := map[string]bool{}
	for _, f := range g {
		known := isKnown(f.Name)
		if known {
			if seen[f.Name] {
				return rc, fmt.Errorf("mtqp: %s repeated", f.Name)
			}
			seen[f.Name] = true
		}
		switch f.Name {
		case fOriginalRecipient:
			rc.OriginalRecipient = parseTyped(f.Value, TypeRFC822)
		case fFinalRecipient:
			rc.FinalRecipient = parseTyped(f.Value, TypeRFC822)
		case fAction:
			v := f.Value
			if i := strings.IndexAny(v, " \t("); i >= 0 {
				v = v[:i]
			}
			rc.Action = Action(strings.ToLower(v))
		case fStatus:
			if rc.Status, err = ParseStatus(f.Value); err != nil {
				return rc, err
			}
		case fRemoteMTA:
			rc.RemoteMTA = parseTyped(f.Value, TypeDNS)
		case fLastAttemptDate:
			if rc.LastAttemptDate, err = ParseDate(f.Value); err != nil {
				return rc, fmt.Errorf("mtqp: Last-Attempt-Date: %w", err)
			}
		case fWillRetryUntil:
			if rc.WillRetryUntil, err = ParseDate(f.Value); err != nil {
				return rc, fmt.Errorf("mtqp: Will-Retry-Until: %w", err)
			}
		default:
			if known {
				return rc, fmt.Errorf("mtqp: per-message field %s in a recipient group", f.Name)
			}
			rc.Extensions = append(rc.Extensions, f)
		}
	}
	return rc, nil
}

// parseTyped splits "type; value"; without ";" the whole is the value and
// the type is def.
func parseTyped(v, def string) TypedValue {
	t, val, ok := strings.Cut(v, ";")
	if !ok {
		return TypedValue{Type: def, Value: strings.TrimSpace(v)}
	}
	t = strings.TrimSpace(t)
	if !isToken(t) {
		return TypedValue{Type: def, Value: strings.Trim(v, " \t")}
	}
	return TypedValue{Type: t, Value: strings.Trim(val, " \t")}
}

// splitGroups splits the body into groups of unfolded fields.
func splitGroups(b []byte) ([][]Field, error) {
	var groups [][]Field
	var cur []Field
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) > MaxLineLength {
			return nil, fmt.Errorf("mtqp: line %d longer than %d characters", i+1, MaxLineLength)
		}
		if i == len(lines)-1 && len(l) == 0 {
			break
		}
		if len(bytes.Trim(l, " \t")) == 0 {
			if cur != nil {
				groups = append(groups, cur)
				cur = nil
			}
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if len(cur) == 0 {
				return nil, errors.New("mtqp: continuation line without a field")
			}
			last := &cur[len(cur)-1]
			last.Value = strings.Trim(last.Value+string(l), " \t")
			continue
		}
		name, val, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return nil, fmt.Errorf("mtqp: line %d is not a field", i+1)
		}
		n := string(bytes.TrimRight(name, " \t"))
		if !isFieldName(n) {
			return nil, fmt.Errorf("mtqp: bad field name %q", truncate(n, 40))
		}
		n, _ = canonical(n)
		cur = append(cur, Field{Name: n, Value: string(bytes.Trim(val, " \t"))})
	}
	if cur != nil {
		groups = append(groups, cur)
	}
	for _, g := range groups {
		for _, f := range g {
			for i := 0; i < len(f.Value); i++ {
				if c := f.Value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					return nil, fmt.Errorf("mtqp: %s: control character 0x%02x", f.Name, c)
				}
			}
		}
	}
	return groups, nil
}

// checkLineLengths enforces the 998-character line limit on formatted
// output.
func checkLineLengths(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		if n := len(bytes.TrimSuffix(b[:i], []byte("\r"))); n > MaxLineLength {
			return fmt.Errorf("mtqp: formatted line of %d characters (limit %d)", n, MaxLineLength)
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return nil
}
