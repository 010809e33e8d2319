package tracking

import (
	"encoding/xml"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/msgtrack/msgtrack/mtrk"
)

// LogFlags are the bits of the log_tracking and log_futurerelease MTA
// options.
type LogFlags int

// Log flag bits.
const (
	// LogTransaction (bit 0) puts the field in transaction log entries
	// (attribute mt or fr in the XML form).
	LogTransaction LogFlags = 1 << 0
	// LogProbe (bit 1) puts it in the LOG_ACTION mapping table probe.
	LogProbe LogFlags = 1 << 1
)

// LogPlace says where a field is going.
type LogPlace int

// Places.
const (
	PlaceTransaction LogPlace = iota
	PlaceProbe
)

func (f LogFlags) in(p LogPlace) bool {
	if p == PlaceProbe {
		return f&LogProbe != 0
	}
	return f&LogTransaction != 0
}

// LogConfig holds the two options: log_tracking and log_futurerelease.
type LogConfig struct {
	Tracking      LogFlags
	FutureRelease LogFlags
}

// LogInfo is what the fields are made from.
type LogInfo struct {
	// Certifier and Timeout of the message (zero Certifier: untracked).
	Certifier mtrk.Certifier
	Timeout   time.Duration
	// ReleaseAt is the FUTURERELEASE release time (zero: no hold) and Now
	// the time of the log entry (zero: time.Now).
	ReleaseAt time.Time
	Now       time.Time
}

// TrackingField returns the log_tracking value: the tracking ID in its
// MTRK= form (unpadded base64), a colon and the timeout in whole seconds.
func TrackingField(cert mtrk.Certifier, timeout time.Duration) string {
	return cert.String() + ":" + strconv.FormatInt(int64(timeout/time.Second), 10)
}

// FutureReleaseField returns the log_futurerelease value: the release
// time as an offset in whole seconds from now (never negative).
func FutureReleaseField(release, now time.Time) string {
	d := release.Sub(now)
	if d < 0 {
		d = 0
	}
	return strconv.FormatInt(int64(d/time.Second), 10)
}

func (i LogInfo) now() time.Time {
	if i.Now.IsZero() {
		return time.Now()
	}
	return i.Now
}

// TrackingValue returns the tracking field for place p, and false when
// log_tracking does not enable it there or the message is untracked.
func (c LogConfig) TrackingValue(p LogPlace, i LogInfo) (string, bool) {
	if !c.Tracking.in(p) || len(i.Certifier) == 0 {
		return "", false
	}
	return TrackingField(i.Certifier, i.Timeout), true
}

// FutureReleaseValue returns the future release field for place p, and
// false when log_futurerelease does not enable it there or there is no
// hold.
func (c LogConfig) FutureReleaseValue(p LogPlace, i LogInfo) (string, bool) {
	if !c.FutureRelease.in(p) || i.ReleaseAt.IsZero() {
		return "", false
	}
	return FutureReleaseField(i.ReleaseAt, i.now()), true
}

// Fields returns fields (a transaction log line's or a LOG_ACTION probe's,
// per p) with the enabled values inserted: the tracking field right after
// fields[envIDIndex] (the envelope ID, so before the deferred delivery
// time) and the future release field right after fields[uidIndex] (the
// mailbox UID). A negative index leaves that field out. fields is not
// modified.
func (c LogConfig) Fields(p LogPlace, fields []string, envIDIndex, uidIndex int, i LogInfo) []string {
	out := slices.Clone(fields)
	tv, tok := c.TrackingValue(p, i)
	fv, fok := c.FutureReleaseValue(p, i)
	// Insert the later position first so the earlier index stays valid.
	type ins struct {
		at int
		v  string
	}
	var list []ins
	if tok && envIDIndex >= 0 && envIDIndex < len(fields) {
		list = append(list, ins{envIDIndex + 1, tv})
	}
	if fok && uidIndex >= 0 && uidIndex < len(fields) {
		list = append(list, ins{uidIndex + 1, fv})
	}
	slices.SortStableFunc(list, func(a, b ins) int { return b.at - a.at })
	for _, x := range list {
		out = slices.Insert(out, x.at, x.v)
	}
	return out
}

// XMLAttrs returns the attributes of the XML transaction log form: mt
// (log_tracking bit 0) and fr (log_futurerelease bit 0), when enabled.
func (c LogConfig) XMLAttrs(i LogInfo) []xml.Attr {
	var a []xml.Attr
	if v, ok := c.TrackingValue(PlaceTransaction, i); ok {
		a = append(a, xml.Attr{Name: xml.Name{Local: "mt"}, Value: v})
	}
	if v, ok := c.FutureReleaseValue(PlaceTransaction, i); ok {
		a = append(a, xml.Attr{Name: xml.Name{Local: "fr"}, Value: v})
	}
	return a
}

// SlogAttrs returns the same values as slog attributes named mt and fr,
// for MTAs that write their transaction log through log/slog.
func (c LogConfig) SlogAttrs(i LogInfo) []slog.Attr {
	var a []slog.Attr
	if v, ok := c.TrackingValue(PlaceTransaction, i); ok {
		a = append(a, slog.String("mt", v))
	}
	if v, ok := c.FutureReleaseValue(PlaceTransaction, i); ok {
		a = append(a, slog.String("fr", v))
	}
	return a
}
