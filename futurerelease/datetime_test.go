package futurerelease

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func utc(y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
}

func TestParseDateTimeValid(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-08-03T00:00:00Z", utc(2026, 8, 3, 0, 0, 0, 0)},
		{"2026-08-03t00:00:00z", utc(2026, 8, 3, 0, 0, 0, 0)},
		{"2026-08-03T00:00:00z", utc(2026, 8, 3, 0, 0, 0, 0)},
		{"2026-08-03t00:00:00Z", utc(2026, 8, 3, 0, 0, 0, 0)},
		{"1985-04-12T23:20:50.52Z", utc(1985, 4, 12, 23, 20, 50, 520000000)},     // RFC 3339 section 5.8
		{"1996-12-19T16:39:57-08:00", utc(1996, 12, 20, 0, 39, 57, 0)},           // RFC 3339 section 5.8
		{"1990-12-31T23:59:60Z", utc(1991, 1, 1, 0, 0, 0, 0)},                    // RFC 3339 section 5.8, leap second
		{"1990-12-31T15:59:60-08:00", utc(1991, 1, 1, 0, 0, 0, 0)},               // RFC 3339 section 5.8, same leap second
		{"1937-01-01T12:00:27.87+00:20", utc(1937, 1, 1, 11, 40, 27, 870000000)}, // RFC 3339 section 5.8
		{"2016-06-30T23:59:60.5Z", utc(2016, 7, 1, 0, 0, 0, 500000000)},
		{"2026-08-03T00:00:00.000000001Z", utc(2026, 8, 3, 0, 0, 0, 1)},
		{"2026-08-03T00:00:00.1234567899999Z", utc(2026, 8, 3, 0, 0, 0, 123456789)}, // extra digits dropped
		{"2024-02-29T12:00:00Z", utc(2024, 2, 29, 12, 0, 0, 0)},
		{"2000-02-29T12:00:00Z", utc(2000, 2, 29, 12, 0, 0, 0)},
		{"2026-08-03T01:00:00+01:00", utc(2026, 8, 3, 0, 0, 0, 0)},
		{"2026-08-02T23:00:00-00:00", utc(2026, 8, 2, 23, 0, 0, 0)}, // -00:00: unknown local offset, UTC time
		{"2026-08-03T00:00:00+23:59", utc(2026, 8, 2, 0, 1, 0, 0)},
		{"0000-01-01T00:00:00Z", utc(0, 1, 1, 0, 0, 0, 0)},
		{"9999-12-31T23:59:59Z", utc(9999, 12, 31, 23, 59, 59, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDateTime(tt.in)
			require.NoError(t, err)
			assert.True(t, tt.want.Equal(got), "got %v want %v", got, tt.want)
			assert.Equal(t, time.UTC, got.Location())
			if std, err := time.Parse(time.RFC3339Nano, tt.in); err == nil {
				assert.True(t, std.Equal(got), "agrees with time.Parse where it parses")
			}
		})
	}
}

func TestParseDateTimeInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"1785715200",                 // Unix time
		"2026-08-03",                 // date only
		"2026-08-03T00:00Z",          // no seconds
		"2026-08-03 00:00:00Z",       // space for T
		"2026-08-03T00:00:00",        // no offset
		"2026-08-03T00:00:00+0100",   // offset without colon
		"2026-08-03T00:00:00+01",     // short offset
		"2026-08-03T00:00:00+24:00",  // offset hour
		"2026-08-03T00:00:00+01:60",  // offset minute
		"2026-08-03T00:00:00.Z",      // empty fraction
		"2026-08-03T00:00:00,5Z",     // comma fraction
		"2026-08-03T24:00:00Z",       // hour 24
		"2026-08-03T23:60:00Z",       // minute 60
		"2026-08-03T23:59:61Z",       // second 61
		"2026-08-03T12:00:60Z",       // leap second not at 23:59 UTC
		"2026-08-03T23:59:60Z",       // 23:59:60 but not the last day of a month
		"1990-12-31T23:59:60-08:00",  // 23:59:60 local, not UTC end of month
		"2026-13-01T00:00:00Z",       // month
		"2026-00-01T00:00:00Z",       // month 0
		"2026-02-29T00:00:00Z",       // not a leap year
		"1900-02-29T00:00:00Z",       // century, not leap
		"2026-04-31T00:00:00Z",       // April has 30
		"2026-08-00T00:00:00Z",       // day 0
		"2026-08-03T00:00:00ZZ",      // trailing
		"2026-08-03T00:00:00Z ",      // trailing space
		" 2026-08-03T00:00:00Z",      // leading space
		"+2026-08-03T00:00:00Z",      // sign
		"26-08-03T00:00:00Z",         // short year
		"2026-8-03T00:00:00Z",        // short month
		"2026-08-03X00:00:00Z",       // wrong separator
		"２026-08-03T00:00:00Z",       // non-ASCII digit
		"2026-08-03T00:00:00+01:00Z", // both
		"2026-08-03T00:00:00.5",      // fraction, no offset
		"2026-08-03T00:00:00-",       // dangling sign
	} {
		t.Run(in, func(t *testing.T) {
			_, err := ParseDateTime(in)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func TestFormatDateTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{utc(2026, 8, 3, 0, 0, 0, 0), "2026-08-03T00:00:00Z"},
		{utc(1985, 4, 12, 23, 20, 50, 520000000), "1985-04-12T23:20:50.52Z"},
		{utc(2026, 8, 3, 0, 0, 0, 1), "2026-08-03T00:00:00.000000001Z"},
		{utc(2026, 8, 3, 0, 0, 0, 100000000), "2026-08-03T00:00:00.1Z"},
		{time.Date(2026, 8, 3, 2, 0, 0, 0, time.FixedZone("CEST", 2*3600)), "2026-08-03T00:00:00Z"},
		{utc(7, 1, 2, 3, 4, 5, 0), "0007-01-02T03:04:05Z"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, FormatDateTime(tt.t))
	}
}

func TestDateTimeRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lo := utc(0, 1, 1, 0, 0, 0, 0).Unix()
	hi := utc(9999, 12, 31, 23, 59, 59, 0).Unix()
	for i := 0; i < 20000; i++ {
		ns := 0
		if r.IntN(2) == 0 {
			ns = r.IntN(1e9)
		}
		tm := time.Unix(lo+r.Int64N(hi-lo), int64(ns)).UTC()
		s := FormatDateTime(tm)
		got, err := ParseDateTime(s)
		require.NoError(t, err, s)
		require.True(t, tm.Equal(got), "%s: %v != %v", s, got, tm)
		require.Equal(t, s, FormatDateTime(got))
		std, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err, "stdlib reads what we write: %s", s)
		require.True(t, std.Equal(tm))
	}
}

func TestDaysFromCivilEveryDay(t *testing.T) {
	// Every day of years 0000 to 9999 against the standard library.
	d := utc(0, 1, 1, 0, 0, 0, 0)
	for d.Year() <= 9999 {
		y, m, day := d.Date()
		if got, want := daysFromCivil(y, int(m), day), d.Unix()/86400; got != want {
			require.Equal(t, want, got, "%v", d)
		}
		d = d.AddDate(0, 0, 1)
	}
}
