package futurerelease

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var maxDT = utc(2026, 8, 3, 0, 0, 0, 0)

func TestAdvertisementString(t *testing.T) {
	a := Advertisement{MaxInterval: 86400 * time.Second, MaxDateTime: maxDT}
	assert.Equal(t, "86400 2026-08-03T00:00:00Z", a.String())
	assert.Equal(t, "FUTURERELEASE 86400 2026-08-03T00:00:00Z", a.EHLOLine())

	assert.Equal(t, "1 2026-08-03T00:00:00Z", Advertisement{MaxInterval: 1500 * time.Millisecond, MaxDateTime: maxDT}.String())
	assert.Equal(t, "999999999 2026-08-03T00:00:00Z", Advertisement{MaxInterval: 2 * MaxInterval, MaxDateTime: maxDT}.String())
	assert.Equal(t, "0 2026-08-03T00:00:00Z", Advertisement{MaxInterval: -time.Hour, MaxDateTime: maxDT}.String())
	cest := time.FixedZone("CEST", 2*3600)
	assert.Equal(t, "60 2026-08-03T00:00:00Z", Advertisement{MaxInterval: time.Minute, MaxDateTime: maxDT.In(cest)}.String())
}

func TestParseAdvertisementValid(t *testing.T) {
	want := Advertisement{MaxInterval: 86400 * time.Second, MaxDateTime: maxDT}
	for _, in := range []string{
		"86400 2026-08-03T00:00:00Z",
		"FUTURERELEASE 86400 2026-08-03T00:00:00Z",
		"futurerelease 86400 2026-08-03T00:00:00Z",
		"  86400    2026-08-03T00:00:00Z  ",
		"86400\t2026-08-03T00:00:00Z",
		"86400 2026-08-03t00:00:00z",
		"86400 2026-08-03T02:00:00+02:00",
		"86400 2026-08-03T00:00:00Z\r\n",
		"FutureRelease\t 086400 \t2026-08-03T00:00:00Z",
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseAdvertisement(in)
			require.NoError(t, err)
			assert.Equal(t, want.MaxInterval, got.MaxInterval)
			assert.True(t, want.MaxDateTime.Equal(got.MaxDateTime))
			assert.Equal(t, "86400 2026-08-03T00:00:00Z", got.String(), "exact output")
		})
	}
}

func TestParseAdvertisementUnixInteger(t *testing.T) {
	// The shape some servers send: both fields integers.
	a, err := ParseAdvertisement("1209600 999999999")
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrUnixDateTime)
	assert.NotErrorIs(t, err, ErrMalformed)
	assert.Equal(t, 1209600*time.Second, a.MaxInterval)
	assert.True(t, time.Unix(999999999, 0).Equal(a.MaxDateTime))

	a, err = ParseAdvertisement("FUTURERELEASE 86400 1785715200")
	assert.ErrorIs(t, err, ErrUnixDateTime)
	assert.True(t, maxDT.Equal(a.MaxDateTime), "read as Unix seconds: %v", a.MaxDateTime)
}

func TestParseAdvertisementInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"FUTURERELEASE",
		"86400",
		"FUTURERELEASE 86400",
		"86400 2026-08-03T00:00:00Z extra",
		"abc 2026-08-03T00:00:00Z",
		"-1 2026-08-03T00:00:00Z",
		"1234567890 2026-08-03T00:00:00Z",
		"86400 2026-08-03",
		"86400 tomorrow",
		"86400 2026-08-03 00:00:00Z",
		"86400 12345678901234567890", // too long for an integer: plain malformed
	} {
		t.Run(in, func(t *testing.T) {
			a, err := ParseAdvertisement(in)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.Equal(t, Advertisement{}, a)
		})
	}
}

func TestAdvertisementRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 5000; i++ {
		a := Advertisement{
			MaxInterval: time.Duration(r.Int64N(1e9)) * time.Second,
			MaxDateTime: time.Unix(r.Int64N(253402300799), int64(r.IntN(1e9))).UTC(),
		}
		got, err := ParseAdvertisement(a.EHLOLine())
		require.NoError(t, err, a.EHLOLine())
		require.Equal(t, a.MaxInterval, got.MaxInterval)
		require.True(t, a.MaxDateTime.Equal(got.MaxDateTime))
		require.Equal(t, a.String(), got.String())
	}
}

func TestParseHoldFor(t *testing.T) {
	valid := map[string]time.Duration{
		"0": 0, "1": time.Second, "3600": time.Hour, "999999999": MaxInterval, "000000060": time.Minute,
	}
	for in, want := range valid {
		got, err := ParseHoldFor(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		assert.Equal(t, strings.TrimLeft(in, "0"), strings.TrimLeft(FormatHoldFor(got), "0"))
	}
	for _, in := range []string{"", "1234567890", "-1", "+1", "1.5", "1e3", " 1", "1 ", "0x10", "abc", "２"} {
		_, err := ParseHoldFor(in)
		var e *Error
		require.ErrorAs(t, err, &e, "%q", in)
		assert.Equal(t, Malformed, e.Reason)
		assert.Equal(t, HoldFor, e.Param)
	}
}

func TestParseHoldUntil(t *testing.T) {
	got, err := ParseHoldUntil("2026-08-03t00:00:00z")
	require.NoError(t, err)
	assert.True(t, maxDT.Equal(got))

	_, err = ParseHoldUntil("1785715200")
	assert.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "integer")

	_, err = ParseHoldUntil("2026-08-03")
	assert.ErrorIs(t, err, ErrMalformed)
	assert.NotContains(t, err.Error(), "integer")
}

func TestFormatHoldFor(t *testing.T) {
	assert.Equal(t, "3600", FormatHoldFor(time.Hour))
	assert.Equal(t, "1", FormatHoldFor(1999*time.Millisecond))
	assert.Equal(t, "0", FormatHoldFor(-time.Second))
	assert.Equal(t, "999999999", FormatHoldFor(1e9*time.Second))
	assert.Equal(t, MailParam{Name: "HOLDFOR", Value: "60"}, HoldForParam(time.Minute))
	assert.Equal(t, "HOLDUNTIL=2026-08-03T00:00:00Z", HoldUntilParam(maxDT).String())
	assert.Equal(t, "HOLDUNTIL=2026-08-03T00:00:01Z", HoldUntilParam(maxDT.Add(time.Nanosecond)).String(), "rounded up")
	assert.Equal(t, "HOLDUNTIL=2026-08-03T00:00:00Z", HoldUntilParam(maxDT.In(time.FixedZone("", 7200))).String())
	assert.Equal(t, "SMTPUTF8", MailParam{Name: "SMTPUTF8"}.String())
}

var now = utc(2026, 8, 2, 12, 0, 0, 250000000) // a MAIL command, not on a whole second

func TestValidate(t *testing.T) {
	day := Limits{MaxInterval: 24 * time.Hour}
	fixed := Limits{MaxInterval: 24 * time.Hour, MaxDateTime: utc(2026, 8, 2, 18, 0, 0, 0)}
	type want struct {
		present bool
		reason  Reason // when err
		err     bool
		name    string
		until   time.Time
	}
	p := func(kv ...string) []MailParam {
		var out []MailParam
		for i := 0; i < len(kv); i += 2 {
			out = append(out, MailParam{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name   string
		params []MailParam
		l      Limits
		want   want
	}{
		{"no params", nil, day, want{}},
		{"other params only", p("BODY", "8BITMIME", "SIZE", "100", "MTRK", "x"), day, want{}},
		{"holdfor", p("BODY", "8BITMIME", "HOLDFOR", "3600"), day, want{present: true, name: HoldFor, until: now.Add(time.Hour)}},
		{"holdfor lower case", p("holdfor", "60"), day, want{present: true, name: HoldFor, until: now.Add(time.Minute)}},
		{"holdfor at limit", p("HOLDFOR", "86400"), day, want{present: true, name: HoldFor, until: now.Add(24 * time.Hour)}},
		{"holdfor zero releases now", p("HOLDFOR", "0"), day, want{present: true, name: HoldFor, until: now}},
		{"holdfor beyond interval", p("HOLDFOR", "86401"), day, want{present: true, err: true, reason: BeyondInterval}},
		{"holdfor beyond fixed date", p("HOLDFOR", "36000"), fixed, want{present: true, err: true, reason: BeyondDateTime}},
		{"holdfor inside fixed date", p("HOLDFOR", "3600"), fixed, want{present: true, name: HoldFor, until: now.Add(time.Hour)}},
		{"holdfor with no server holds", p("HOLDFOR", "1"), Limits{}, want{present: true, err: true, reason: BeyondInterval}},
		{"holdfor zero with no server holds", p("HOLDFOR", "0"), Limits{}, want{present: true, name: HoldFor, until: now}},
		{"holdfor malformed", p("HOLDFOR", "1h"), day, want{present: true, err: true, reason: Malformed}},
		{"holdfor empty", p("HOLDFOR", ""), day, want{present: true, err: true, reason: Malformed}},
		{"holdfor ten digits", p("HOLDFOR", "1234567890"), day, want{present: true, err: true, reason: Malformed}},
		{"holduntil", p("HOLDUNTIL", "2026-08-02T18:00:00Z"), day, want{present: true, name: HoldUntil, until: utc(2026, 8, 2, 18, 0, 0, 0)}},
		{"holduntil lower case", p("HoldUntil", "2026-08-02t18:00:00z"), day, want{present: true, name: HoldUntil, until: utc(2026, 8, 2, 18, 0, 0, 0)}},
		{"holduntil offset", p("HOLDUNTIL", "2026-08-02T20:00:00+02:00"), day, want{present: true, name: HoldUntil, until: utc(2026, 8, 2, 18, 0, 0, 0)}},
		{"holduntil at fixed date", p("HOLDUNTIL", "2026-08-02T18:00:00Z"), fixed, want{present: true, name: HoldUntil, until: utc(2026, 8, 2, 18, 0, 0, 0)}},
		{"holduntil after fixed date", p("HOLDUNTIL", "2026-08-02T18:00:01Z"), fixed, want{present: true, err: true, reason: BeyondDateTime}},
		{"holduntil beyond interval", p("HOLDUNTIL", "2026-08-03T12:00:01Z"), day, want{present: true, err: true, reason: BeyondInterval}},
		{"holduntil in the past releases now", p("HOLDUNTIL", "2020-01-01T00:00:00Z"), day, want{present: true, name: HoldUntil, until: now}},
		{"holduntil a moment ago releases now", p("HOLDUNTIL", "2026-08-02T12:00:00Z"), day, want{present: true, name: HoldUntil, until: now}},
		{"holduntil integer", p("HOLDUNTIL", "1785715200"), day, want{present: true, err: true, reason: Malformed}},
		{"holduntil leap second", p("HOLDUNTIL", "2026-08-31T23:59:60Z"), Limits{MaxInterval: 30 * 24 * time.Hour}, want{present: true, name: HoldUntil, until: utc(2026, 9, 1, 0, 0, 0, 0)}},
		{"both", p("HOLDFOR", "60", "HOLDUNTIL", "2026-08-02T18:00:00Z"), day, want{present: true, err: true, reason: Conflict}},
		{"both reversed", p("HOLDUNTIL", "2026-08-02T18:00:00Z", "holdfor", "60"), day, want{present: true, err: true, reason: Conflict}},
		{"both, second malformed", p("HOLDFOR", "60", "HOLDUNTIL", "junk"), day, want{present: true, err: true, reason: Conflict}},
		{"holdfor twice", p("HOLDFOR", "60", "HOLDFOR", "60"), day, want{present: true, err: true, reason: Duplicate}},
		{"holduntil twice", p("HOLDUNTIL", "2026-08-02T18:00:00Z", "holduntil", "2026-08-02T18:00:00Z"), day, want{present: true, err: true, reason: Duplicate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, present, err := Validate(tt.params, tt.l, now)
			assert.Equal(t, tt.want.present, present)
			if tt.want.err {
				var e *Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, tt.want.reason, e.Reason, "%v", err)
				assert.Equal(t, Hold{}, h)
				code, enh, msg := e.SMTPReply()
				assert.Equal(t, 501, code)
				assert.Equal(t, [3]int{5, 5, 4}, enh)
				assert.NotContains(t, msg, "\n")
				return
			}
			require.NoError(t, err)
			if !tt.want.present {
				assert.Equal(t, Hold{}, h)
				return
			}
			assert.Equal(t, tt.want.name, h.Name)
			assert.True(t, tt.want.until.Equal(h.Until), "until %v want %v", h.Until, tt.want.until)
			assert.False(t, h.Until.Before(now), "never released before the MAIL command")
		})
	}
}

func TestValidateErrorsAreDistinct(t *testing.T) {
	l := Limits{MaxInterval: time.Hour, MaxDateTime: now.Add(30 * time.Minute)}
	cases := map[error][]MailParam{
		ErrConflict:       {{HoldFor, "1"}, {HoldUntil, "2026-08-02T12:10:00Z"}},
		ErrDuplicate:      {{HoldFor, "1"}, {HoldFor, "2"}},
		ErrMalformed:      {{HoldFor, "x"}},
		ErrBeyondInterval: {{HoldFor, "3601"}},
		ErrBeyondDateTime: {{HoldFor, "3000"}},
	}
	sentinels := []error{ErrConflict, ErrDuplicate, ErrMalformed, ErrBeyondInterval, ErrBeyondDateTime, ErrNotAuthenticated, ErrUnixDateTime}
	for want, params := range cases {
		_, _, err := Validate(params, l, now)
		for _, s := range sentinels {
			assert.Equal(t, s == want, errors.Is(err, s), "%v is %v", err, s)
		}
	}
}

func TestValidateHoldValue(t *testing.T) {
	h, _, err := Validate([]MailParam{{"holdfor", "0060"}}, Limits{MaxInterval: time.Hour}, now)
	require.NoError(t, err)
	assert.Equal(t, time.Minute, h.For)
	assert.Equal(t, "HOLDFOR=60", h.MailParam().String())

	h, _, err = Validate([]MailParam{{"HOLDUNTIL", "2026-08-02t14:00:00+02:00"}}, Limits{MaxInterval: time.Hour}, now)
	require.NoError(t, err)
	assert.True(t, utc(2026, 8, 2, 12, 0, 0, 0).Equal(h.Requested))
	assert.Equal(t, "HOLDUNTIL=2026-08-02T12:00:00Z", h.MailParam().String(), "requested value kept even though released now")
	assert.True(t, now.Equal(h.Until))
}

func TestNotAuthenticatedError(t *testing.T) {
	e := NotAuthenticatedError("holdfor")
	assert.ErrorIs(t, e, ErrNotAuthenticated)
	code, enh, msg := e.SMTPReply()
	assert.Equal(t, 530, code)
	assert.Equal(t, [3]int{5, 7, 0}, enh)
	assert.Equal(t, "Authentication required for HOLDFOR (future release)", msg)
}

func TestLimitsAdvertise(t *testing.T) {
	l := Limits{MaxInterval: 24*time.Hour + 500*time.Millisecond}
	a := l.Advertise(now)
	assert.Equal(t, "86400 2026-08-03T12:00:00Z", a.String(), "rounded down, never promising more")

	l = Limits{MaxInterval: 24 * time.Hour, MaxDateTime: utc(2026, 8, 2, 18, 0, 0, 0)}
	assert.Equal(t, "86400 2026-08-02T18:00:00Z", l.Advertise(now).String())
	assert.True(t, utc(2026, 8, 2, 18, 0, 0, 0).Equal(l.Latest(now)))

	// A client that stays within what was advertised is accepted, even a
	// little later.
	adv := Limits{MaxInterval: time.Hour}.Advertise(now)
	later := now.Add(5 * time.Second)
	_, _, err := Validate([]MailParam{HoldForParam(adv.MaxInterval)}, Limits{MaxInterval: time.Hour}, later)
	assert.NoError(t, err)
	_, _, err = Validate([]MailParam{HoldUntilParam(adv.MaxDateTime)}, Limits{MaxInterval: time.Hour}, later)
	assert.NoError(t, err)
	// And a client can pre-check against the advertisement.
	_, _, err = Validate([]MailParam{HoldForParam(2 * time.Hour)}, adv.Limits(), now)
	assert.ErrorIs(t, err, ErrBeyondInterval)
}

func TestArithmetic(t *testing.T) {
	release := utc(2026, 8, 2, 13, 0, 0, 0)
	tests := []struct {
		name      string
		at        time.Time
		remaining time.Duration
		held      bool
		offset    int64
	}{
		{"an hour before", utc(2026, 8, 2, 12, 0, 0, 0), time.Hour, true, 3600},
		{"fractional before", now, 59*time.Minute + 59750*time.Millisecond, true, 3600},
		{"a nanosecond before", release.Add(-1), 1, true, 1},
		{"at release", release, 0, false, 0},
		{"after release", release.Add(time.Hour), 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.remaining, Remaining(release, tt.at))
			assert.Equal(t, tt.held, Held(release, tt.at))
			assert.Equal(t, tt.offset, LogOffset(release, tt.at))
			h := Hold{Name: HoldUntil, Requested: release, Until: release}
			assert.Equal(t, tt.remaining, h.Remaining(tt.at))
			assert.Equal(t, tt.held, h.Held(tt.at))
			assert.Equal(t, tt.offset, h.LogOffset(tt.at))
		})
	}
	assert.True(t, now.Add(time.Hour).Equal(ReleaseTime(now, time.Hour)))
	assert.True(t, now.Equal(ReleaseTime(now, -time.Hour)))
}

func TestHoldForLogOffsetMatchesRequest(t *testing.T) {
	// log_futurerelease at MAIL time logs exactly the HOLDFOR asked for.
	for _, secs := range []string{"1", "60", "86400"} {
		h, _, err := Validate([]MailParam{{HoldFor, secs}}, Limits{MaxInterval: 48 * time.Hour}, now)
		require.NoError(t, err)
		assert.Equal(t, secs, FormatHoldFor(time.Duration(h.LogOffset(now))*time.Second))
	}
}

func TestErrorText(t *testing.T) {
	_, err := ParseDateTime("nope")
	require.Error(t, err)
	assert.Equal(t, "futurerelease: not an RFC 3339 date-time", err.Error())
	var e *Error
	require.ErrorAs(t, err, &e)
	code, enh, msg := e.SMTPReply()
	assert.Equal(t, 501, code)
	assert.Equal(t, [3]int{5, 5, 4}, enh)
	assert.Equal(t, "Invalid future release parameter: not an RFC 3339 date-time", msg)

	assert.Equal(t, HoldUntil, NotAuthenticatedError("HoldUntil").Param)
	assert.Equal(t, "X-HOLD", NotAuthenticatedError("x-hold").Param)
	assert.False(t, errors.Is(&Error{Reason: Reason(99)}, ErrMalformed))
	_, _, msg = (&Error{Reason: NotAuthenticated}).SMTPReply()
	assert.Equal(t, "Authentication required for future release", msg)
}

func TestParamsFromMap(t *testing.T) {
	m := map[string]string{"HOLDUNTIL": "2026-08-02T18:00:00Z", "BODY": "8BITMIME", "HOLDFOR": "60"}
	ps := ParamsFromMap(m)
	assert.Equal(t, []MailParam{{"BODY", "8BITMIME"}, {"HOLDFOR", "60"}, {"HOLDUNTIL", "2026-08-02T18:00:00Z"}}, ps)
	for i := 0; i < 20; i++ { // deterministic despite map order
		_, _, err := Validate(ParamsFromMap(m), Limits{MaxInterval: time.Hour}, now)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, Conflict, e.Reason)
		assert.Equal(t, HoldUntil, e.Param)
	}
	assert.Empty(t, ParamsFromMap(nil))
}
