package mtqp

import (
	"bufio"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in   string
		verb string
		args []string
		rest string
	}{
		{"TRACK a b", "TRACK", []string{"a", "b"}, "a b"},
		{"track\ta \t  b  ", "TRACK", []string{"a", "b"}, "a \t  b  "},
		{"  QuIt", "QUIT", nil, ""},
		{"COMMENT hello  world", "COMMENT", []string{"hello", "world"}, "hello  world"},
		{"vnd.x", "VND.X", nil, ""},
	}
	for _, tc := range tests {
		c, err := ParseCommand(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.verb, c.Verb, tc.in)
		if tc.args == nil {
			assert.Empty(t, c.Args, tc.in)
		} else {
			assert.Equal(t, tc.args, c.Args, tc.in)
		}
		assert.Equal(t, tc.rest, c.Rest, tc.in)
	}
	for _, bad := range []string{"", "   ", "\t", "TRACK \x00", "caf\xc3\xa9", "A\x7f", "A\rB"} {
		_, err := ParseCommand(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestReadLine(t *testing.T) {
	ok := strings.Repeat("a", MaxLineLength)
	in := ok + "\r\n" + ok + "a\r\nnext\nlast\r\n" + strings.Repeat("b", 5000) + "\nend\r\ntrunc"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	l, err := ReadLine(r, MaxLineLength)
	require.NoError(t, err)
	assert.Equal(t, ok, l)
	_, err = ReadLine(r, MaxLineLength)
	assert.ErrorIs(t, err, ErrLineTooLong, "999 characters")
	for _, want := range []string{"next", "last"} {
		l, err = ReadLine(r, MaxLineLength)
		require.NoError(t, err)
		assert.Equal(t, want, l)
	}
	_, err = ReadLine(r, MaxLineLength)
	assert.ErrorIs(t, err, ErrLineTooLong)
	l, err = ReadLine(r, MaxLineLength)
	require.NoError(t, err)
	assert.Equal(t, "end", l, "reader resynchronised after an over-long line")
	_, err = ReadLine(r, MaxLineLength)
	assert.Error(t, err, "unterminated last line")
}

func TestTrackArgs(t *testing.T) {
	a, err := ParseTrackArgs([]string{"env+2Bid+3D", "c2VjcmV0"})
	require.NoError(t, err)
	assert.Equal(t, TrackArgs{EnvID: "env+id=", Secret: []byte("secret")}, a)
	a, err = ParseTrackArgs([]string{"e", "c2VjcmV0MQ=="})
	require.NoError(t, err, "padding accepted")
	assert.Equal(t, []byte("secret1"), a.Secret)
	for _, bad := range [][]string{nil, {"e"}, {"e", "s", "x"}, {"e=", "c2VjcmV0"}, {"e+2", "c2VjcmV0"}, {"e+ZZ", "c2VjcmV0"}, {"e", "not base64!"}, {"e", "="}} {
		_, err := ParseTrackArgs(bad)
		assert.Error(t, err, "%q", bad)
	}
	assert.Equal(t, "TRACK a+20b+2B+3D c2VjcmV0", FormatTrack(CmdTrack, "a b+=", []byte("secret")))
}

func TestXtextRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "a b", "+=+", "\x00\xff~!"} {
		d, err := DecodeXtext(EncodeXtext(s))
		require.NoError(t, err)
		assert.Equal(t, s, d)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	wire := AppendReply(nil, 250, "first", "", "last one")
	assert.Equal(t, "250-first\r\n250-\r\n250 last one\r\n", string(wire))
	rep, err := ReadReply(bufio.NewReader(strings.NewReader(string(wire))), 10)
	require.NoError(t, err)
	assert.Equal(t, Reply{Code: 250, Lines: []string{"first", "", "last one"}}, rep)

	rep, err = ReadReply(bufio.NewReader(strings.NewReader("221\r\n")), 10)
	require.NoError(t, err)
	assert.Equal(t, 221, rep.Code)

	for _, bad := range []string{"25 x\r\n", "250-a\r\n550 b\r\n", "650 x\r\n", "250xa\r\n", "250-a\r\n250-b\r\n250-c\r\n"} {
		_, err := ReadReply(bufio.NewReader(strings.NewReader(bad)), 2)
		assert.Error(t, err, "%q", bad)
	}
}

func TestGreeting(t *testing.T) {
	g := Greeting{Domain: "mtqp.example", Text: "MTQP server ready", Options: []string{OptionStartTLS, OptionRecall}}
	wire := AppendReply(nil, CodeGreeting, g.Lines()...)
	assert.Equal(t, "250-mtqp.example MTQP server ready\r\n250-STARTTLS\r\n250 vnd.msgtrack.recall\r\n", string(wire))
	rep, err := ReadReply(bufio.NewReader(strings.NewReader(string(wire))), 10)
	require.NoError(t, err)
	g2, err := ParseGreeting(rep)
	require.NoError(t, err)
	assert.Equal(t, g, g2)
	assert.True(t, g2.Has("starttls"))
	assert.True(t, g2.Has("VND.MSGTRACK.RECALL"))
	assert.False(t, g2.Has("vnd.other"))
	_, err = ParseGreeting(Reply{Code: 421, Lines: []string{"busy"}})
	var re *ReplyError
	assert.ErrorAs(t, err, &re)
}

func TestReportReplyFraming(t *testing.T) {
	body := []byte(canonicalSample)
	lines := reportLines(body, "End of report")
	assert.Equal(t, reportHeader, lines[0])
	assert.Equal(t, "", lines[1])
	assert.Equal(t, string(AppendReply(nil, CodeOK, lines...)), string(appendReportReply(nil, body, "End of report")))
	raw, err := splitReportReply(Reply{Code: 250, Lines: lines})
	require.NoError(t, err)
	assert.Equal(t, canonicalSample, string(raw))
	_, err = splitReportReply(Reply{Code: 250, Lines: []string{"Content-Type: text/plain", "", "x", "end"}})
	assert.Error(t, err)
}
