package futurerelease

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// Names of the extension (RFC 4865 section 3): the EHLO keyword and the two
// MAIL parameters, exactly one of which a client may use.
const (
	Keyword   = "FUTURERELEASE"
	HoldFor   = "HOLDFOR"
	HoldUntil = "HOLDUNTIL"
)

// MaxIntervalDigits bounds an interval (future-release-integer = 1*9DIGIT,
// RFC 4865 section 3); MaxInterval is the largest interval it can spell.
const (
	MaxIntervalDigits = 9
	MaxInterval       = 999999999 * time.Second
)

// Advertisement is the parameter text of the EHLO keyword (RFC 4865
// section 3):
//
//	FUTURERELEASE <max-future-release-interval> <max-future-release-date-time>
//
// MaxInterval is the longest hold in seconds, MaxDateTime the latest
// release time the server accepts.
type Advertisement struct {
	MaxInterval time.Duration
	MaxDateTime time.Time
}

// String returns the exact parameter text, without the keyword:
// "86400 2026-08-03T00:00:00Z". The interval is written in whole seconds
// kept within 0 to MaxInterval, the date-time as FormatDateTime does.
func (a Advertisement) String() string {
	var buf [MaxIntervalDigits + 1 + len("2006-01-02T15:04:05.999999999Z")]byte
	b := strconv.AppendInt(buf[:0], clampSeconds(a.MaxInterval), 10)
	b = append(b, ' ')
	return string(appendDateTime(b, a.MaxDateTime))
}

// EHLOLine returns the whole extension line, "FUTURERELEASE " + a.String().
func (a Advertisement) EHLOLine() string { return Keyword + " " + a.String() }

func clampSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if s < 0 {
		return 0
	}
	if s > int64(MaxInterval/time.Second) {
		return int64(MaxInterval / time.Second)
	}
	return s
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// nextField returns the next run of non-blank bytes of s from i and where
// it ends.
func nextField(s string, i int) (field string, end int) {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	start := i
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	return s[start:i], i
}

// ParseAdvertisement parses what a server wrote after the EHLO keyword,
// or the whole extension line including "FUTURERELEASE" (compared without
// regard to case). It tolerates leading, trailing and repeated spaces and
// tabs, and a trailing CR or LF.
//
// A peer that advertises the date-time as an integer (one widely deployed
// server writes Unix time there) is not silently misread: the error
// matches ErrUnixDateTime, and in that case alone the returned
// Advertisement is filled in, with MaxDateTime read as Unix seconds, so a
// caller can choose to use it knowingly. Any other error returns the zero
// Advertisement.
func ParseAdvertisement(params string) (Advertisement, error) {
	params = strings.TrimRight(params, "\r\n")
	f1, i := nextField(params, 0)
	if strings.EqualFold(f1, Keyword) {
		f1, i = nextField(params, i)
	}
	f2, i := nextField(params, i)
	if extra, _ := nextField(params, i); extra != "" {
		return Advertisement{}, &Error{Reason: Malformed, Param: Keyword, Detail: "has more than two parameters"}
	}
	if f1 == "" || f2 == "" {
		return Advertisement{}, &Error{Reason: Malformed, Param: Keyword, Detail: "needs an interval and a date-time"}
	}
	iv, ok := parseInterval(f1)
	if !ok {
		return Advertisement{}, &Error{Reason: Malformed, Param: Keyword, Detail: "interval is not 1 to 9 digits"}
	}
	if n, ok := parseUnix(f2); ok {
		return Advertisement{MaxInterval: iv, MaxDateTime: time.Unix(n, 0).UTC()},
			&Error{Reason: UnixDateTime, Param: Keyword, Detail: "date-time is an integer (Unix time?), not RFC 3339"}
	}
	t, ok := parseDateTime(f2)
	if !ok {
		return Advertisement{}, &Error{Reason: Malformed, Param: Keyword, Detail: "date-time is not RFC 3339"}
	}
	return Advertisement{MaxInterval: iv, MaxDateTime: t}, nil
}

// parseUnix reads an all-digit field of up to 18 digits (no overflow).
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// parseInterval reads 1*9DIGIT seconds.
func parseInterval(s string) (time.Duration, bool) {
	if s == "" || len(s) > MaxIntervalDigits {
		return 0, false
	}
	n, ok := parseUnix(s)
	return time.Duration(n) * time.Second, ok
}

// ParseHoldFor parses a HOLDFOR value, future-release-interval = 1*9DIGIT
// seconds (RFC 4865 section 3). It does not allocate.
func ParseHoldFor(value string) (time.Duration, error) {
	d, ok := parseInterval(value)
	if !ok {
		return 0, &Error{Reason: Malformed, Param: HoldFor, Detail: "is not 1 to 9 digits of seconds"}
	}
	return d, nil
}

// FormatHoldFor writes d as a HOLDFOR value: whole seconds, truncated, kept
// within 0 to MaxInterval.
func FormatHoldFor(d time.Duration) string { return strconv.FormatInt(clampSeconds(d), 10) }

// ParseHoldUntil parses a HOLDUNTIL value: an RFC 3339 date-time (RFC 4865
// section 3 as corrected by erratum 2040, which replaces the dangling
// Internet-style-date-time-UTC with RFC 3339's date-time), parsed as
// ParseDateTime does. An integer is refused with its own message, because
// that is a known client and server defect. It does not allocate on
// success.
func ParseHoldUntil(value string) (time.Time, error) {
	if _, ok := parseUnix(value); ok {
		return time.Time{}, &Error{Reason: Malformed, Param: HoldUntil, Detail: "is an integer; it must be an RFC 3339 date-time"}
	}
	t, ok := parseDateTime(value)
	if !ok {
		return time.Time{}, &Error{Reason: Malformed, Param: HoldUntil, Detail: "is not an RFC 3339 date-time"}
	}
	return t, nil
}

// MailParam is one MAIL FROM parameter: Name as the client wrote it (names
// are compared without regard to case, RFC 5321 section 4.1.2) and Value,
// "" when the parameter had none.
type MailParam struct {
	Name  string
	Value string
}

// String returns "NAME=VALUE", or "NAME" when Value is empty.
func (p MailParam) String() string {
	if p.Value == "" {
		return p.Name
	}
	return p.Name + "=" + p.Value
}

// ParamsFromMap turns parameters held in a map (as go-smtp and similar
// libraries keep them) into the slice Validate takes, sorted by name so the
// error reported for a bad command is the same every time.
func ParamsFromMap(m map[string]string) []MailParam {
	out := make([]MailParam, 0, len(m))
	for k, v := range m {
		out = append(out, MailParam{Name: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// HoldForParam returns the MAIL parameter asking for a hold of d.
func HoldForParam(d time.Duration) MailParam {
	return MailParam{Name: HoldFor, Value: FormatHoldFor(d)}
}

// HoldUntilParam returns the MAIL parameter asking for release at t,
// rounded up to a whole second: sub-second release times serve no purpose,
// some servers' date-time parsers refuse fractions, and rounding up never
// asks for a release before t.
func HoldUntilParam(t time.Time) MailParam {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		t = r.Add(time.Second)
	}
	return MailParam{Name: HoldUntil, Value: FormatDateTime(t)}
}

func canonicalName(name string) string {
	switch {
	case strings.EqualFold(name, HoldFor):
		return HoldFor
	case strings.EqualFold(name, HoldUntil):
		return HoldUntil
	}
	return strings.ToUpper(name)
}

// Limits are a server's future-release policy, checked at MAIL time.
//
// MaxInterval is the longest hold (max-future-release-interval).
// MaxDateTime, when not zero, is a fixed latest release time; when zero,
// the latest release is now + MaxInterval, recomputed at each check, so a
// client that asks for the full advertised interval a few seconds after
// EHLO is not refused.
type Limits struct {
	MaxInterval time.Duration
	MaxDateTime time.Time
}

// Latest returns the latest release time l accepts at now.
func (l Limits) Latest(now time.Time) time.Time {
	latest := now.Add(l.MaxInterval)
	if !l.MaxDateTime.IsZero() && l.MaxDateTime.Before(latest) {
		latest = l.MaxDateTime
	}
	return latest
}

// Advertise returns the EHLO advertisement for l at now: the interval in
// whole seconds and the latest release time rounded down to the second.
func (l Limits) Advertise(now time.Time) Advertisement {
	iv := l.MaxInterval.Truncate(time.Second)
	return Advertisement{MaxInterval: iv, MaxDateTime: l.Latest(now).UTC().Truncate(time.Second)}
}

// Limits returns the limits a server advertised, for a client to check a
// request against before sending it.
func (a Advertisement) Limits() Limits {
	return Limits(a)
}

// Hold is an accepted hold request.
type Hold struct {
	// Name is the parameter used: HoldFor or HoldUntil.
	Name string
	// For is the HOLDFOR value (zero for HOLDUNTIL).
	For time.Duration
	// Requested is the HOLDUNTIL value in UTC (zero for HOLDFOR).
	Requested time.Time
	// Until is the release time: the message may leave the queue at Until
	// and not before. For HOLDFOR=0 and for a HOLDUNTIL not after the
	// moment of the MAIL command, Until is that moment (release at once).
	Until time.Time
}

// Value returns the parameter value in its exact wire form.
func (h Hold) Value() string {
	if h.Name == HoldUntil {
		return FormatDateTime(h.Requested)
	}
	return FormatHoldFor(h.For)
}

// MailParam returns the hold as a MAIL parameter, for a client or for
// logging.
func (h Hold) MailParam() MailParam { return MailParam{Name: h.Name, Value: h.Value()} }

// Remaining returns how long h still holds the message at instant at; zero
// once released.
func (h Hold) Remaining(at time.Time) time.Duration { return Remaining(h.Until, at) }

// Held reports whether h still holds the message at instant at.
func (h Hold) Held(at time.Time) bool { return Held(h.Until, at) }

// LogOffset is LogOffset(h.Until, now).
func (h Hold) LogOffset(now time.Time) int64 { return LogOffset(h.Until, now) }

// ReleaseTime returns the release time of a HOLDFOR of d received at now.
// A negative d counts as zero.
func ReleaseTime(now time.Time, d time.Duration) time.Time {
	if d < 0 {
		d = 0
	}
	return now.Add(d)
}

// Remaining returns release - at, or zero when release is not after at.
func Remaining(release, at time.Time) time.Duration {
	if !release.After(at) {
		return 0
	}
	return release.Sub(at)
}

// Held reports whether a message released at release is still held at
// instant at (at is before release).
func Held(release, at time.Time) bool { return at.Before(release) }

// LogOffset returns the future-release offset the reference product logs
// under log_futurerelease (the "fr" attribute): the seconds from now until
// release, rounded up so that a message still held never logs 0, and 0
// when release is not after now.
func LogOffset(release, now time.Time) int64 {
	d := Remaining(release, now)
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// Validate checks the hold parameters of one MAIL command against a
// server's limits at now, the moment of the MAIL command. params are the
// command's parameters in order; those that are not HOLDFOR or HOLDUNTIL
// are ignored. present is false when there is no hold parameter (and err
// is nil); otherwise either hold is the accepted request or err is an
// *Error with its SMTP reply, about the first offending parameter in order:
//
//   - both HOLDFOR and HOLDUNTIL (Conflict), or either twice (Duplicate);
//   - a value that is not RFC 4865 section 3 syntax (Malformed);
//   - a hold longer than l.MaxInterval (BeyondInterval) or a release after
//     l.Latest(now) (BeyondDateTime): refused, never shortened.
//
// HOLDFOR=0 and a HOLDUNTIL not after now are accepted as "release at
// once": the syntax allows them (1*9DIGIT includes 0; any date-time is a
// date-time), the client's intent — do not deliver before this instant — is
// met by releasing now, and a client whose clock is a little ahead of the
// server's would otherwise be refused for asking for a release a second
// away.
func Validate(params []MailParam, l Limits, now time.Time) (hold Hold, present bool, err error) {
	var name, value string
	for _, p := range params {
		n := ""
		switch {
		case strings.EqualFold(p.Name, HoldFor):
			n = HoldFor
		case strings.EqualFold(p.Name, HoldUntil):
			n = HoldUntil
		default:
			continue
		}
		switch name {
		case "":
			name, value = n, p.Value
		case n:
			return Hold{}, true, &Error{Reason: Duplicate, Param: n, Detail: "is given more than once"}
		default:
			return Hold{}, true, &Error{Reason: Conflict, Param: n, Detail: "cannot be combined with " + name}
		}
	}
	if name == "" {
		return Hold{}, false, nil
	}
	h := Hold{Name: name}
	if name == HoldFor {
		d, err := ParseHoldFor(value)
		if err != nil {
			return Hold{}, true, err
		}
		h.For, h.Until = d, ReleaseTime(now, d)
	} else {
		t, err := ParseHoldUntil(value)
		if err != nil {
			return Hold{}, true, err
		}
		h.Requested, h.Until = t, t
		if !t.After(now) {
			h.Until = now
		}
	}
	if h.Until.Sub(now) > l.MaxInterval {
		return Hold{}, true, &Error{Reason: BeyondInterval, Param: name,
			Detail: "asks for a hold longer than the maximum of " + strconv.FormatInt(clampSeconds(l.MaxInterval), 10) + " seconds"}
	}
	if !l.MaxDateTime.IsZero() && h.Until.After(l.MaxDateTime) {
		return Hold{}, true, &Error{Reason: BeyondDateTime, Param: name,
			Detail: "asks for a release after " + FormatDateTime(l.MaxDateTime.Truncate(time.Second))}
	}
	return h, true, nil
}
