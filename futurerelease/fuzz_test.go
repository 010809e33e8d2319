package futurerelease

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseAdvertisement(f *testing.F) {
	for _, s := range []string{
		"86400 2026-08-03T00:00:00Z", "FUTURERELEASE 86400 2026-08-03T00:00:00Z", "  1\t2026-08-03t00:00:00z ",
		"1209600 999999999", "86400", "", "x y", "86400 1990-12-31T23:59:60Z", "0 0000-01-01T00:00:00+01:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAdvertisement(s)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("%q: %T", s, err)
			}
			return
		}
		if a.MaxInterval < 0 || a.MaxInterval > MaxInterval {
			t.Fatalf("%q: interval %v", s, a.MaxInterval)
		}
		if y := a.MaxDateTime.Year(); y < 0 || y > 9999 {
			return // an offset moved a year-0000 or 9999 date outside four digits
		}
		out := a.String()
		b, err := ParseAdvertisement(out)
		if err != nil {
			t.Fatalf("%q -> %q: %v", s, out, err)
		}
		if b.MaxInterval != a.MaxInterval || !b.MaxDateTime.Equal(a.MaxDateTime) || b.String() != out {
			t.Fatalf("%q -> %q -> %q", s, out, b.String())
		}
	})
}

func FuzzParseHoldFor(f *testing.F) {
	for _, s := range []string{"0", "1", "3600", "999999999", "1234567890", "", "-1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseHoldFor(s)
		if err != nil {
			return
		}
		if d < 0 || d > MaxInterval || d%time.Second != 0 {
			t.Fatalf("%q: %v", s, d)
		}
		out := FormatHoldFor(d)
		d2, err := ParseHoldFor(out)
		if err != nil || d2 != d || FormatHoldFor(d2) != out {
			t.Fatalf("%q -> %q: %v %v", s, out, d2, err)
		}
	})
}

func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{
		"2026-08-03T00:00:00Z", "2026-08-03t00:00:00z", "1990-12-31T23:59:60Z", "1990-12-31T15:59:60-08:00",
		"1985-04-12T23:20:50.52Z", "1937-01-01T12:00:27.87+00:20", "2026-02-29T00:00:00Z", "1785715200", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseDateTime(s)
		if err != nil {
			if _, err2 := ParseHoldUntil(s); err2 == nil {
				t.Fatalf("%q: HOLDUNTIL accepts what ParseDateTime refuses", s)
			}
			return
		}
		if tm.Location() != time.UTC {
			t.Fatalf("%q: not UTC", s)
		}
		if std, err := time.Parse(time.RFC3339Nano, s); err == nil && !std.Equal(tm) {
			t.Fatalf("%q: time.Parse says %v, we say %v", s, std, tm)
		}
		if _, err := ParseHoldUntil(s); err != nil {
			t.Fatalf("%q: HOLDUNTIL refuses a date-time: %v", s, err)
		}
		if y := tm.Year(); y < 0 || y > 9999 {
			return
		}
		out := FormatDateTime(tm)
		tm2, err := ParseDateTime(out)
		if err != nil || !tm2.Equal(tm) || FormatDateTime(tm2) != out {
			t.Fatalf("%q -> %q: %v %v", s, out, tm2, err)
		}
		if strings.ContainsAny(out, "tz+") {
			t.Fatalf("%q: output %q not canonical", s, out)
		}
	})
}

func FuzzValidate(f *testing.F) {
	f.Add("HOLDFOR", "60", "BODY", "8BITMIME", int64(3600))
	f.Add("HOLDUNTIL", "2026-08-02T13:00:00Z", "holdfor", "1", int64(86400))
	f.Add("holduntil", "2020-01-01T00:00:00Z", "", "", int64(0))
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string, maxSecs int64) {
		l := Limits{MaxInterval: time.Duration(maxSecs%1e9) * time.Second}
		h, present, err := Validate([]MailParam{{n1, v1}, {n2, v2}}, l, now)
		if err != nil {
			if !present {
				t.Fatalf("error without a hold parameter: %v", err)
			}
			var e *Error
			if !asError(err, &e) {
				t.Fatalf("%T", err)
			}
			return
		}
		if !present {
			return
		}
		if h.Until.Before(now) || h.Until.Sub(now) > l.MaxInterval {
			t.Fatalf("release %v outside [now, now+%v]", h.Until, l.MaxInterval)
		}
	})
}

func asError(err error, e **Error) bool {
	x, ok := err.(*Error)
	*e = x
	return ok
}
