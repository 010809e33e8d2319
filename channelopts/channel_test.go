package channelopts

import (
	"strings"
	"testing"
	"time"

	"github.com/msgtrack/msgtrack/aliasing"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChannelDefaults(t *testing.T) {
	c := Channel{TrackingServer: true}
	require.NoError(t, c.Validate())
	assert.Equal(t, Internal, c.Disposition)
	assert.Equal(t, aliasing.Multiple, c.AliasPolicy)
	assert.Equal(t, mtrk.DefaultLimits, c.TrackingLimits())
	assert.Equal(t, 72*time.Hour, c.Timeout(0, false), "no timeout given: trackingtimeoutdefault")
	assert.Equal(t, 24*time.Hour, c.Timeout(time.Hour, true), "raised to the minimum")
	assert.Equal(t, 14*24*time.Hour, c.Timeout(30*24*time.Hour, true), "lowered to the maximum")
	assert.Equal(t, 48*time.Hour, c.Timeout(48*time.Hour, true))
	_, ok := c.Generate()
	assert.False(t, ok)

	c = Channel{TrackingTimeoutMin: time.Hour, TrackingTimeoutMax: 2 * time.Hour, TrackingGenerate: 10 * time.Hour}
	assert.Equal(t, mtrk.Limits{Default: 72 * time.Hour, Min: time.Hour, Max: 2 * time.Hour}, c.TrackingLimits())
	assert.Equal(t, 2*time.Hour, c.Timeout(0, false), "the default is clamped too")
	g, ok := c.Generate()
	assert.True(t, ok)
	assert.Equal(t, 10*time.Hour, g)
}

const sampleTable = `! BEGIN CHANNEL DEFINITIONS
l
local-host

; submission: offers MTRK, generates IDs
tcp_auth smtp mx single_sys maxjobs 7 notices 1 2 3 TrackingServer trackinggenerate 172800 \
  trackingsingle trackingtimeoutmin 3600
tcp_auth-daemon
! second host name
submit.example.com

tcp_local smtp mx trackingclient trackingrelayed notrackingserver trackingstrict
tcp-daemon

tcp_intranet smtp trackingserver trackingclient trackingtimeoutdefault 86400 trackingtimeoutmax 172800 trackingfirst
tcp_intranet-daemon

ims-ms trackingdelivered
ims-ms-daemon
`

func TestParseChannels(t *testing.T) {
	chs, err := ParseChannels(strings.NewReader(sampleTable), "imta.cnf")
	require.NoError(t, err)
	require.Len(t, chs, 5)
	assert.Equal(t, Channel{Name: "l", Hosts: []string{"local-host"}}, chs[0])
	assert.Equal(t, Channel{
		Name:               "tcp_auth",
		Hosts:              []string{"tcp_auth-daemon", "submit.example.com"},
		TrackingServer:     true,
		AliasPolicy:        aliasing.Single,
		TrackingGenerate:   48 * time.Hour,
		TrackingTimeoutMin: time.Hour,
		Other: []Keyword{{Name: "smtp"}, {Name: "mx"}, {Name: "single_sys"},
			{Name: "maxjobs", Args: []string{"7"}}, {Name: "notices", Args: []string{"1", "2", "3"}}},
	}, chs[1])
	assert.Equal(t, Channel{Name: "tcp_local", Hosts: []string{"tcp-daemon"}, TrackingClient: true,
		Disposition: Relayed, AliasPolicy: aliasing.Strict,
		Other: []Keyword{{Name: "smtp"}, {Name: "mx"}}}, chs[2])
	assert.Equal(t, aliasing.First, chs[3].AliasPolicy)
	assert.Equal(t, mtrk.Limits{Default: 24 * time.Hour, Min: 24 * time.Hour, Max: 48 * time.Hour}, chs[3].TrackingLimits())
	assert.Equal(t, Delivered, chs[4].Disposition)
}

func TestParseChannelsSynonym(t *testing.T) {
	chs, err := ParseChannels(strings.NewReader("ims-ms trackingrelay TRACKINGRELAYED\nims-ms-daemon\n"), "f")
	require.NoError(t, err, "trackingrelay (the chapter's prose spelling) is trackingrelayed")
	assert.Equal(t, Relayed, chs[0].Disposition)
	_, err = ParseChannels(strings.NewReader("ims-ms trackingrelay trackingdelivered\n"), "f")
	assert.ErrorIs(t, err, ErrContradiction)
}

func TestParseIMTAConfig(t *testing.T) {
	in := "! rewrite rules\n$* $A$E$F$U%$H$V$H@tcp_local-daemon\nexample.com $U%$D@tcp_intranet-daemon\n\n" +
		"tcp_intranet smtp trackingserver\ntcp_intranet-daemon\n"
	chs, err := ParseIMTAConfig(strings.NewReader(in), "imta.cnf")
	require.NoError(t, err)
	require.Len(t, chs, 1)
	assert.Equal(t, "tcp_intranet", chs[0].Name)
	assert.True(t, chs[0].TrackingServer)

	// The same input read as a bare channel table treats the rules as a
	// channel block.
	chs, err = ParseChannels(strings.NewReader(in), "imta.cnf")
	require.NoError(t, err)
	assert.Len(t, chs, 2)
}

func TestParseChannelsErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		channel  string
		keyword  string
		sentinel error
	}{
		{"server twice", "c trackingserver notrackingserver\n", 1, "c", "notrackingserver", ErrContradiction},
		{"client twice", "\n\nc TRACKINGCLIENT notrackingclient\n", 3, "c", "notrackingclient", ErrContradiction},
		{"two dispositions", "c trackinginternal trackingdelivered\n", 1, "c", "trackingdelivered", ErrContradiction},
		{"two policies", "c trackingsingle trackingfirst\nh\n", 1, "c", "trackingfirst", ErrContradiction},
		{"two mins", "c trackingtimeoutmin 100 trackingtimeoutmin 200\n", 1, "c", "trackingtimeoutmin", ErrContradiction},
		{"min above max", "c trackingtimeoutmin 7200 trackingtimeoutmax 3600\n", 1, "c", KwTrackingTimeoutMin, ErrRange},
		{"min above default max", "c trackingtimeoutmin 2000000\n", 1, "c", KwTrackingTimeoutMin, ErrRange},
		{"negative", "c trackingtimeoutmax -5\n", 1, "c", "trackingtimeoutmax", ErrRange},
		{"zero", "c trackinggenerate 0\n", 1, "c", "trackinggenerate", ErrRange},
		{"ten digits", "c trackingtimeoutdefault 1000000000\n", 1, "c", "trackingtimeoutdefault", ErrRange},
		{"generate without integer", "c trackinggenerate trackingserver\n", 1, "c", "trackinggenerate", ErrMissingArgument},
		{"generate at end", "c trackinggenerate\nhost\n", 1, "c", "trackinggenerate", ErrMissingArgument},
		{"generate word", "c trackinggenerate soon\n", 1, "c", "trackinggenerate", ErrMissingArgument},
		{"number after known keyword", "c trackingserver 5\n", 1, "c", "5", ErrSyntax},
		{"number after name", "c 5\n", 1, "c", "5", ErrSyntax},
		{"include", "c smtp\n</etc/imta/more.cnf\n", 2, "", "", ErrInclude},
		{"duplicate channel", "c smtp\n\nc mx\n", 3, "c", "", ErrContradiction},
		{"continued", "c smtp \\\n! comment\n trackingserver \\\n notrackingserver\n", 1, "c", "notrackingserver", ErrContradiction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chs, err := ParseChannels(strings.NewReader(tt.in), "imta.cnf")
			require.Error(t, err)
			assert.Nil(t, chs)
			assert.ErrorIs(t, err, tt.sentinel)
			var pe *Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "imta.cnf", pe.File)
			assert.Equal(t, tt.line, pe.Line)
			assert.Equal(t, tt.channel, pe.Channel)
			assert.Equal(t, tt.keyword, pe.Keyword)
		})
	}
}

func TestParseChannelsDefaultsBlocks(t *testing.T) {
	chs, err := ParseChannels(strings.NewReader("defaults notices 1\n\nc smtp\n\ndefaults\n"), "f")
	require.NoError(t, err, "defaults may appear more than once")
	assert.Len(t, chs, 3)
}

func TestChannelValidateGo(t *testing.T) {
	tests := []struct {
		name string
		c    Channel
		kw   string
	}{
		{"negative", Channel{TrackingTimeoutMin: -time.Second}, KwTrackingTimeoutMin},
		{"fraction", Channel{TrackingGenerate: 1500 * time.Millisecond}, KwTrackingGenerate},
		{"too long", Channel{TrackingTimeoutMax: MaxTimeout + time.Second}, KwTrackingTimeoutMax},
		{"min above max", Channel{TrackingTimeoutMax: time.Hour}, KwTrackingTimeoutMin},
		{"disposition", Channel{Disposition: 3}, ""},
		{"policy", Channel{AliasPolicy: 9}, ""},
		{"name", Channel{Name: "a b"}, ""},
		{"comment name", Channel{Name: "!x"}, ""},
		{"host", Channel{Name: "a", Hosts: []string{" h"}}, ""},
		{"known keyword in Other", Channel{Other: []Keyword{{Name: "TrackingServer"}}}, "TrackingServer"},
		{"numeric keyword", Channel{Other: []Keyword{{Name: "12"}}}, "12"},
		{"bad argument", Channel{Other: []Keyword{{Name: "maxjobs", Args: []string{"x"}}}}, "maxjobs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			require.Error(t, err)
			var pe *Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.kw, pe.Keyword)
			assert.Zero(t, pe.Line)
		})
	}
	_, err := Channel{TrackingServer: true}.Format()
	assert.ErrorIs(t, err, ErrSyntax, "formatting needs a name")
	assert.Equal(t, "trackingrelayed", Relayed.String())
	assert.Equal(t, "Disposition(7)", Disposition(7).String())
}

func TestFormatChannelsRoundTrip(t *testing.T) {
	chs, err := ParseChannels(strings.NewReader(sampleTable), "imta.cnf")
	require.NoError(t, err)
	out, err := FormatChannels(chs)
	require.NoError(t, err)
	back, err := ParseChannels(strings.NewReader(string(out)), "formatted")
	require.NoError(t, err)
	assert.Equal(t, chs, back)
	assert.Contains(t, string(out), "tcp_auth smtp mx single_sys maxjobs 7 notices 1 2 3 trackingserver trackingsingle trackinggenerate 172800 trackingtimeoutmin 3600\ntcp_auth-daemon\nsubmit.example.com\n\n")

	c := Channel{Name: "tcp_x", TrackingClient: true, Disposition: Delivered, TrackingTimeoutMax: 30 * 24 * time.Hour}
	b, err := c.Format()
	require.NoError(t, err)
	assert.Equal(t, "tcp_x trackingclient trackingdelivered trackingtimeoutmax 2592000\n", string(b))
}

func BenchmarkParseChannels(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 50; i++ {
		sb.WriteString("! channel\ntcp_c")
		sb.WriteString(strings.Repeat("x", i%5))
		sb.WriteString(string(rune('a' + i%26)))
		sb.WriteString(strings.Repeat("y", i/26))
		sb.WriteString(" smtp mx single_sys maxjobs 7 pool SMTP_POOL maytlsserver trackingserver trackingclient \\\n")
		sb.WriteString("  trackinggenerate 259200 trackingtimeoutmin 86400 trackingsingle\ntcp-daemon\n\n")
	}
	in := sb.String()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseChannels(strings.NewReader(in), "imta.cnf"); err != nil {
			b.Fatal(err)
		}
	}
}
