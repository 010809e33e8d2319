package channelopts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMTADefaults(t *testing.T) {
	var m MTA
	assert.Equal(t, ModeOff, m.TrackingMode)
	assert.Equal(t, 5, m.Retries())
	assert.Equal(t, Centiseconds(10), m.RetryDelayCentiseconds())
	assert.Equal(t, 100*time.Millisecond, m.RetryDelay())
	assert.Equal(t, 11211, m.Port())
	assert.Empty(t, m.MemcacheServers())
	require.NoError(t, m.Validate())

	// Zero is a real setting for the pointer options.
	m = MTA{TrackingRetries: new(0), TrackingRetryDelay: new(Centiseconds(0))}
	assert.Equal(t, 0, m.Retries())
	assert.Equal(t, time.Duration(0), m.RetryDelay())
	require.NoError(t, m.Validate())
}

func TestParseMTA(t *testing.T) {
	in := `! Messaging Server option file
# hash comments too
; and semicolons
TRACKING_MODE=1
Tracking_Retries = 3
tracking_retry_delay=25
TRACKING_DEBUG=2
LOG_TRACKING=3
LOG_FUTURERELEASE=1
LDAP_ATTR_AUTH_RECALL_SECRET=msgRecallSecret
MEMCACHE_HOST=mc1.example.com, mc2.example.com:11311 \
! a comment inside a continuation
  [2001:db8::1]:11411	10.0.0.7

MEMCACHE_PORT=11222
DEQUEUE_DEBUG=1
alias_magic = 1=2
`
	m, err := ParseMTA(strings.NewReader(in), "option.dat")
	require.NoError(t, err)
	assert.Equal(t, ModeMemcached, m.TrackingMode)
	assert.Equal(t, 3, m.Retries())
	assert.Equal(t, 250*time.Millisecond, m.RetryDelay())
	assert.Equal(t, 2, m.TrackingDebug)
	assert.True(t, m.LogTracking.Has(LogTransaction|LogActionProbe))
	assert.True(t, m.LogFutureRelease.Has(LogTransaction))
	assert.False(t, m.LogFutureRelease.Has(LogActionProbe))
	assert.Equal(t, "msgRecallSecret", m.LDAPAttrAuthRecallSecret)
	assert.Equal(t, []string{"mc1.example.com", "mc2.example.com:11311", "[2001:db8::1]:11411", "10.0.0.7"}, m.MemcacheHost)
	assert.Equal(t, 11222, m.Port())
	assert.Equal(t, []string{"mc1.example.com:11222", "mc2.example.com:11311", "[2001:db8::1]:11411", "10.0.0.7:11222"}, m.MemcacheServers())
	assert.Equal(t, []Option{{"DEQUEUE_DEBUG", "1"}, {"alias_magic", "1=2"}}, m.Other)

	out, err := m.Format()
	require.NoError(t, err)
	back, err := ParseMTA(strings.NewReader(string(out)), "formatted")
	require.NoError(t, err)
	assert.Equal(t, m, back)
	assert.Contains(t, string(out), "TRACKING_RETRIES=3\n")
}

func TestParseMTALastWins(t *testing.T) {
	m, err := ParseMTA(strings.NewReader("tracking_mode=1\nmemcache_host=a\ntracking_mode=2\n"), "f")
	require.NoError(t, err)
	assert.Equal(t, ModeInMemory, m.TrackingMode)
}

func TestParseMTAErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		keyword  string
		sentinel error
	}{
		{"no equals", "TRACKING_MODE 1\n", 1, "TRACKING_MODE", ErrSyntax},
		{"empty name", "\n = 3\n", 2, "", ErrSyntax},
		{"unknown mode", "! c\nTRACKING_MODE=3\n", 2, OptTrackingMode, ErrUnknownMode},
		{"negative mode", "TRACKING_MODE=-1\n", 1, OptTrackingMode, ErrUnknownMode},
		{"not a number", "tracking_retries=five\n", 1, "tracking_retries", ErrSyntax},
		{"hex", "tracking_retries=0x5\n", 1, "tracking_retries", ErrSyntax},
		{"negative retries", "x=1\ntracking_retries=-1\n", 2, OptTrackingRetries, ErrRange},
		{"too many retries", "tracking_retries=101\n", 1, OptTrackingRetries, ErrRange},
		{"huge", "tracking_retries=99999999999999999999999\n", 1, "tracking_retries", ErrRange},
		{"negative delay", "tracking_retry_delay=-10\n", 1, OptTrackingRetryDelay, ErrRange},
		{"negative debug", "tracking_debug=-2\n", 1, OptTrackingDebug, ErrRange},
		{"log bits", "log_tracking=4\n", 1, OptLogTracking, ErrRange},
		{"fr bits", "log_futurerelease=-1\n", 1, OptLogFutureRelease, ErrRange},
		{"port zero", "memcache_port=0\n", 1, "memcache_port", ErrRange},
		{"port high", "memcache_port=65536\n", 1, OptMemcachePort, ErrRange},
		{"server port", "memcache_host=a:99999\n", 1, OptMemcacheHost, ErrRange},
		{"server junk", "memcache_host=[::1]x\n", 1, OptMemcacheHost, ErrSyntax},
		{"server bracket", "memcache_host=[::1\n", 1, OptMemcacheHost, ErrSyntax},
		{"server chars", "memcache_host=a=b\n", 1, OptMemcacheHost, ErrSyntax},
		{"memcached without host", "tracking_mode=1\n", 1, OptMemcacheHost, ErrSyntax},
		{"bad attribute", "ldap_attr_auth_recall_secret=1abc\n", 1, OptLDAPAttrAuthRecallSecret, ErrSyntax},
		{"attribute filter injection", "ldap_attr_auth_recall_secret=a)(b\n", 1, OptLDAPAttrAuthRecallSecret, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMTA(strings.NewReader(tt.in), "option.dat")
			require.Error(t, err)
			assert.Nil(t, m)
			assert.ErrorIs(t, err, tt.sentinel)
			var pe *Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "option.dat", pe.File)
			assert.Equal(t, tt.line, pe.Line)
			assert.Equal(t, tt.keyword, pe.Keyword)
			assert.Contains(t, err.Error(), "option.dat:")
		})
	}
}

func TestParseMTAReportsAll(t *testing.T) {
	_, err := ParseMTA(strings.NewReader("tracking_mode=7\nlog_tracking=9\nnonsense\n"), "o")
	require.Error(t, err)
	var n int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *Error
		require.True(t, errors.As(e, &pe))
		n++
	}
	assert.Equal(t, 3, n)
}

func TestParseMTALongLine(t *testing.T) {
	_, err := ParseMTA(strings.NewReader("X="+strings.Repeat("a", maxLineBytes+1)), "o")
	assert.ErrorIs(t, err, ErrSyntax)
}

func TestMTAValidateGo(t *testing.T) {
	m := MTA{TrackingMode: ModeMemcached, MemcacheHost: []string{"localhost"}, MemcachePort: 70000,
		Other: []Option{{Name: "tracking_mode", Value: "1"}, {Name: "x", Value: " y"}, {Name: "a b", Value: "c"}}}
	err := m.Validate()
	require.Error(t, err)
	for _, kw := range []string{"memcache_port", "tracking_mode", "x", "a b"} {
		assert.Contains(t, err.Error(), kw+":")
	}
	_, err = m.Format()
	assert.ErrorIs(t, err, ErrRange)
}

func TestMemcacheServerForms(t *testing.T) {
	m := MTA{MemcacheHost: splitHosts("a, b:1 ,[::1] ::1 fe80::1%eth0\t[fe80::2]:7,,c")}
	require.NoError(t, m.Validate())
	assert.Equal(t, []string{"a:11211", "b:1", "[::1]:11211", "[::1]:11211", "[fe80::1%eth0]:11211", "[fe80::2]:7", "c:11211"}, m.MemcacheServers())
	assert.Nil(t, splitHosts(" , "))
	assert.Empty(t, MTA{MemcacheHost: []string{"bad host"}}.MemcacheServers())
}

func TestLogFlagsString(t *testing.T) {
	assert.Equal(t, "none", LogFlags(0).String())
	assert.Equal(t, "transaction", LogTransaction.String())
	assert.Equal(t, "transaction|probe", (LogTransaction | LogActionProbe).String())
	assert.Equal(t, "probe|0x4", LogFlags(6).String())
	assert.Equal(t, "in-memory", ModeInMemory.String())
	assert.Equal(t, "TrackingMode(5)", TrackingMode(5).String())
}

func TestErrorString(t *testing.T) {
	e := &Error{File: "imta.cnf", Line: 7, Channel: "tcp_local", Keyword: "trackingtimeoutmin", Err: ErrRange}
	assert.Equal(t, "imta.cnf:7: channel tcp_local: trackingtimeoutmin: value out of range", e.Error())
	assert.Equal(t, "trackingserver: contradictory keywords", (&Error{Keyword: "trackingserver", Err: ErrContradiction}).Error())
	assert.ErrorIs(t, e, ErrRange)
}

func BenchmarkParseMTA(b *testing.B) {
	in := "! options\nTRACKING_MODE=1\nTRACKING_RETRIES=5\nTRACKING_RETRY_DELAY=10\nLOG_TRACKING=3\n" +
		"LDAP_ATTR_AUTH_RECALL_SECRET=recallSecret\nMEMCACHE_HOST=mc1,mc2:11212\nMEMCACHE_PORT=11211\n" +
		strings.Repeat("SOME_OTHER_OPTION=12345\n", 40)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMTA(strings.NewReader(in), "option.dat"); err != nil {
			b.Fatal(err)
		}
	}
}
