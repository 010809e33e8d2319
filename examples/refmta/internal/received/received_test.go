package received

import (
	"bufio"
	"fmt"
	"net/mail"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var when = time.Date(2026, 8, 1, 12, 30, 0, 0, time.FixedZone("", 2*3600))

func TestField(t *testing.T) {
	for _, tc := range []struct {
		name string
		info Info
		want string
	}{
		{"esmtpsa one rcpt", Info{Helo: "client.example.org", RemoteIP: netip.MustParseAddr("192.0.2.7"), RemoteHost: "c.example.org",
			By: "mx.example.net", ESMTP: true, TLS: true, Auth: true, ID: "abc123", Rcpts: []string{"bob@example.net"}, Time: when},
			"Received: from client.example.org (c.example.org [192.0.2.7])\r\n\tby mx.example.net with ESMTPSA id abc123 for <bob@example.net>;\r\n\tSat, 01 Aug 2026 12:30:00 +0200\r\n"},
		{"helo, two rcpts, ipv6", Info{Helo: "[IPv6:2001:db8::1]", RemoteIP: netip.MustParseAddr("2001:db8::1"), By: "mx", ID: "q", Rcpts: []string{"a@x", "b@x"}, Time: when},
			"Received: from [IPv6:2001:db8::1] ([IPv6:2001:db8::1]) by mx with SMTP id q;\r\n\tSat, 01 Aug 2026 12:30:00 +0200\r\n"},
		{"bad helo goes to a comment", Info{Helo: "evil)\r\nX-Injected: yes(", RemoteIP: netip.MustParseAddr("::ffff:198.51.100.1"), By: "mx", ESMTP: true, Time: when},
			"Received: from unknown (helo=evil???X-Injected: yes? [198.51.100.1]) by mx\r\n\twith ESMTP; Sat, 01 Aug 2026 12:30:00 +0200\r\n"},
		{"tls detail", Info{Helo: "h", By: "mx", ESMTP: true, TLS: true, TLSDetail: "TLS1.3 TLS_AES_128_GCM_SHA256", Time: when},
			"Received: from h by mx with ESMTPS (TLS1.3 TLS_AES_128_GCM_SHA256);\r\n\tSat, 01 Aug 2026 12:30:00 +0200\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Field(tc.info)
			assert.Equal(t, tc.want, got)
			for _, l := range strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n") {
				assert.LessOrEqual(t, len(l), 78, l)
			}
			// It parses as a header field and counts as one.
			msg, err := mail.ReadMessage(strings.NewReader(got + "Subject: x\r\n\r\nbody"))
			require.NoError(t, err)
			assert.Len(t, msg.Header["Received"], 1)
			assert.Equal(t, "x", msg.Header.Get("Subject"))
			assert.Equal(t, 1, CountBytes([]byte(got+"\r\n")))
		})
	}
}

func TestProtocol(t *testing.T) {
	for _, tc := range []struct {
		i    Info
		want string
	}{{Info{}, "SMTP"}, {Info{ESMTP: true}, "ESMTP"}, {Info{ESMTP: true, TLS: true}, "ESMTPS"},
		{Info{ESMTP: true, Auth: true}, "ESMTPA"}, {Info{ESMTP: true, TLS: true, Auth: true}, "ESMTPSA"}} {
		assert.Equal(t, tc.want, tc.i.Protocol())
	}
}

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		want int
	}{
		{"none", "Subject: x\r\n\r\nReceived: in body\r\n", 0},
		{"folded and mixed case", "Received: from a\r\n\tby b; date\r\nRECEIVED: x\r\nreceived : obs\r\nReceived-SPF: pass\r\nX-Received: no\r\n\r\nReceived: body\r\n", 3},
		{"bare LF", "Received: a\nReceived: b\n\nReceived: c\n", 2},
		{"no body, EOF", "Received: a\r\nReceived: b", 2},
		{"empty", "", 0},
		{"long line does not confuse", "X-Long: " + strings.Repeat("y", 10000) + "Received: no\r\nReceived: yes\r\n\r\n", 1},
		{"continuation that looks like one", "Subject: a\r\n Received: no\r\n\r\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Count(strings.NewReader(tc.msg))
			require.NoError(t, err)
			assert.Equal(t, tc.want, n)
		})
	}
}

func TestCheck(t *testing.T) {
	assert.NoError(t, Check(99, 0))
	err := Check(100, 0)
	var le *LoopError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 100, le.Limit)
	code, enh, _ := le.SMTPReply()
	assert.Equal(t, 554, code)
	assert.Equal(t, [3]int{5, 4, 6}, enh)
	assert.Error(t, Check(3, 3))
	assert.NoError(t, Check(2, 3))
}

func TestValidDomain(t *testing.T) {
	for s, ok := range map[string]bool{"a": true, "mx.example.org": true, "a-b.c": true, "": false, "-a": false, "a-": false,
		"a..b": false, "a_b": false, strings.Repeat("a", 64): false, "a.b.": false} {
		assert.Equal(t, ok, ValidDomain(s), s)
	}
}

// naiveCount is an independent reference: unfold nothing, just look at
// line starts until the first empty line.
func naiveCount(msg string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(msg))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSuffix(sc.Text(), "\r")
		if strings.Trim(l, "\r") == "" {
			break
		}
		if len(l) >= 9 && strings.EqualFold(l[:8], "received") && strings.HasPrefix(strings.TrimLeft(l[8:], " \t"), ":") {
			n++
		}
	}
	return n
}

func FuzzCount(f *testing.F) {
	f.Add("Received: a\r\nReceived: b\r\n\r\nReceived: c")
	f.Add("received :x\n\n")
	f.Add("Subject: x\r\n\tReceived: y\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		n, err := Count(strings.NewReader(msg))
		require.NoError(t, err)
		require.Equal(t, naiveCount(msg), n, "%q", msg)
		// Prepending one of our fields adds exactly one.
		f := Field(Info{Helo: msg, By: "mx", Time: when})
		if !strings.HasPrefix(msg, "\r") && !strings.HasPrefix(msg, "\n") && !strings.HasPrefix(msg, " ") && !strings.HasPrefix(msg, "\t") {
			require.Equal(t, n+1, CountBytes([]byte(f+msg)))
		}
	})
}

func BenchmarkField(b *testing.B) {
	i := Info{Helo: "client.example.org", RemoteIP: netip.MustParseAddr("192.0.2.7"), By: "mx.example.net", ESMTP: true, TLS: true, ID: "abc", Rcpts: []string{"a@b"}, Time: when}
	b.ReportAllocs()
	for b.Loop() {
		_ = Field(i)
	}
}

func BenchmarkCount(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&sb, "Received: from h%d by mx; %s\r\n", i, when.Format(time.RFC1123Z))
	}
	sb.WriteString("Subject: x\r\n\r\n" + strings.Repeat("body\r\n", 1000))
	msg := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		if CountBytes(msg) != 20 {
			b.Fatal("wrong")
		}
	}
}
