package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	arrival = time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)
	now     = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
)

const original = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: lunch\r\nMessage-ID: <m1@example.org>\r\n\r\nSee you at noon.\r\n"

type part struct {
	header textproto.MIMEHeader
	body   []byte
}

type parsed struct {
	header mail.Header
	parts  []part
	// groups of the delivery-status part: [0] per-message, then per-recipient.
	groups []textproto.MIMEHeader
}

func parse(t testing.TB, msg []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/report", mt)
	require.Equal(t, "delivery-status", params["report-type"])
	mr := multipart.NewReader(m.Body, params["boundary"])
	p := parsed{header: m.Header}
	for {
		pt, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(pt)
		require.NoError(t, err)
		p.parts = append(p.parts, part{pt.Header, b})
	}
	require.GreaterOrEqual(t, len(p.parts), 2)
	require.Equal(t, "text/plain; charset=utf-8", p.parts[0].header.Get("Content-Type"))
	require.Equal(t, "message/delivery-status", p.parts[1].header.Get("Content-Type"))
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(p.parts[1].body)))
	for {
		h, err := r.ReadMIMEHeader()
		if len(h) > 0 {
			p.groups = append(p.groups, h)
		}
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	return p
}

func baseReport() Report {
	return Report{
		ReportingMTA: "mx.example.net", Sender: "alice@example.org", EnvID: "QQ314159+2Bx", Ret: "FULL",
		Arrival: arrival, Date: now,
		Recipients: []Recipient{{
			Addr: "bob@example.net", ORcpt: "rfc822;Bob+2Btag@example.net", Notify: "FAILURE,DELAY",
			Action: Failed, Diagnostic: "550 5.1.1 no such user", RemoteMTA: "mx.other.example", LastAttempt: now,
		}},
	}
}

func TestFailedFull(t *testing.T) {
	d, err := Build(baseReport(), strings.NewReader(original))
	require.NoError(t, err)
	assert.Equal(t, "", d.From, "null reverse-path")
	assert.Equal(t, "alice@example.org", d.To)
	assert.Equal(t, []string{"bob@example.net"}, d.Reported)
	assert.NotContains(t, strings.ReplaceAll(string(d.Message), "\r\n", ""), "\n", "bare LF")

	p := parse(t, d.Message)
	to, err := p.header.AddressList("To")
	require.NoError(t, err)
	assert.Equal(t, "alice@example.org", to[0].Address)
	from, err := p.header.AddressList("From")
	require.NoError(t, err)
	assert.Equal(t, "MAILER-DAEMON@mx.example.net", from[0].Address)
	assert.Equal(t, "auto-replied", p.header.Get("Auto-Submitted"))
	date, err := p.header.Date()
	require.NoError(t, err)
	assert.True(t, date.Equal(now))
	assert.NotEmpty(t, p.header.Get("Message-ID"))

	require.Len(t, p.groups, 2)
	msg, rc := p.groups[0], p.groups[1]
	assert.Equal(t, "QQ314159+x", msg.Get("Original-Envelope-Id"))
	assert.Equal(t, "dns; mx.example.net", msg.Get("Reporting-MTA"))
	ad, err := mail.ParseDate(msg.Get("Arrival-Date"))
	require.NoError(t, err)
	assert.True(t, ad.Equal(arrival))

	assert.Equal(t, "rfc822;Bob+tag@example.net", rc.Get("Original-Recipient"))
	assert.Equal(t, "rfc822; bob@example.net", rc.Get("Final-Recipient"))
	assert.Equal(t, "failed", rc.Get("Action"))
	assert.Equal(t, "5.1.1", rc.Get("Status"))
	assert.Equal(t, "dns; mx.other.example", rc.Get("Remote-MTA"))
	assert.Equal(t, "smtp; 550 5.1.1 no such user", rc.Get("Diagnostic-Code"))
	assert.NotEmpty(t, rc.Get("Last-Attempt-Date"))
	assert.Empty(t, rc.Get("Will-Retry-Until"))

	require.Len(t, p.parts, 3)
	assert.Equal(t, "message/rfc822", p.parts[2].header.Get("Content-Type"))
	returned, err := mail.ReadMessage(bytes.NewReader(p.parts[2].body))
	require.NoError(t, err)
	assert.Equal(t, "lunch", returned.Header.Get("Subject"))
	body, _ := io.ReadAll(returned.Body)
	assert.Equal(t, "See you at noon.\r\n", strings.TrimSuffix(string(body), "\r\n")+"\r\n")
	assert.Contains(t, string(p.parts[0].body), "<bob@example.net>: delivery failed: 550 5.1.1 no such user")
}

func TestRetHeaders(t *testing.T) {
	r := baseReport()
	r.Ret = "hdrs"
	d, err := Build(r, strings.NewReader(original))
	require.NoError(t, err)
	p := parse(t, d.Message)
	require.Len(t, p.parts, 3)
	assert.Equal(t, "text/rfc822-headers", p.parts[2].header.Get("Content-Type"))
	assert.Contains(t, string(p.parts[2].body), "Subject: lunch\r\n")
	assert.NotContains(t, string(p.parts[2].body), "noon")
}

func TestOversizeFullReturnsHeaders(t *testing.T) {
	r := baseReport()
	r.Ret = ""
	r.MaxFull = 40
	d, err := Build(r, strings.NewReader(original))
	require.NoError(t, err)
	p := parse(t, d.Message)
	assert.Equal(t, "text/rfc822-headers", p.parts[2].header.Get("Content-Type"))
	assert.NotContains(t, string(p.parts[2].body), "noon")
	assert.Contains(t, string(p.parts[0].body), "only its header is returned")
}

func TestExpired(t *testing.T) {
	r := baseReport()
	r.Recipients[0].Diagnostic = "expired: 451 4.4.7 try later"
	r.Recipients[0].Status = "4.4.7"
	r.Recipients[0].RemoteMTA = ""
	d, err := Build(r, nil)
	require.NoError(t, err)
	p := parse(t, d.Message)
	assert.Len(t, p.parts, 2, "no returned content without an original")
	rc := p.groups[1]
	assert.Equal(t, "failed", rc.Get("Action"))
	assert.Equal(t, "4.4.7", rc.Get("Status"))
	assert.Empty(t, rc.Get("Remote-MTA"))
}

func TestNotifyAndNullSender(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Report)
		wantErr error
		want    []string
	}{
		{"null sender", func(r *Report) { r.Sender = "" }, ErrNullSender, nil},
		{"null sender in brackets", func(r *Report) { r.Sender = "<>" }, ErrNullSender, nil},
		{"NEVER", func(r *Report) { r.Recipients[0].Notify = "NEVER" }, ErrNotRequested, nil},
		{"SUCCESS only, failed", func(r *Report) { r.Recipients[0].Notify = "SUCCESS" }, ErrNotRequested, nil},
		{"default is failure", func(r *Report) { r.Recipients[0].Notify = "" }, nil, []string{"bob@example.net"}},
		{"default is not delay", func(r *Report) { r.Recipients[0].Notify = ""; r.Recipients[0].Action = Delayed }, ErrNotRequested, nil},
		{"SUCCESS, delivered", func(r *Report) { r.Recipients[0].Notify = "SUCCESS"; r.Recipients[0].Action = Delivered }, nil, []string{"bob@example.net"}},
		{"mixed recipients", func(r *Report) {
			r.Recipients = append(r.Recipients,
				Recipient{Addr: "c@x", Notify: "NEVER", Action: Failed},
				Recipient{Addr: "d@x", Notify: "failure", Action: Failed, Diagnostic: "550 nope"},
				Recipient{Addr: "e@x", Notify: "FAILURE", Action: Delivered})
		}, nil, []string{"bob@example.net", "d@x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := baseReport()
			tc.mutate(&r)
			d, err := Build(r, strings.NewReader(original))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, d.Reported)
			p := parse(t, d.Message)
			require.Len(t, p.groups, 1+len(tc.want))
			for i, w := range tc.want {
				assert.Equal(t, "rfc822; "+w, p.groups[1+i].Get("Final-Recipient"))
			}
		})
	}
}

func TestDelayedFields(t *testing.T) {
	r := baseReport()
	r.Recipients[0].Action = Delayed
	r.Recipients[0].Diagnostic = "451 busy"
	r.Recipients[0].WillRetryUntil = now.Add(48 * time.Hour)
	d, err := Build(r, nil)
	require.NoError(t, err)
	rc := parse(t, d.Message).groups[1]
	assert.Equal(t, "4.0.0", rc.Get("Status"))
	assert.NotEmpty(t, rc.Get("Will-Retry-Until"))
}

func TestInjectionKeptOut(t *testing.T) {
	r := baseReport()
	r.EnvID = "x+0D+0AX-Evil:+20yes"
	r.Recipients[0].ORcpt = "rfc822;a+0Ab@x"
	r.Recipients[0].Diagnostic = "550 bad\r\nX-Evil: yes"
	d, err := Build(r, nil)
	require.NoError(t, err)
	p := parse(t, d.Message)
	assert.Equal(t, "x+0D+0AX-Evil:+20yes", p.groups[0].Get("Original-Envelope-Id"), "unsafe decoded value kept as xtext")
	assert.Equal(t, "rfc822;a+0Ab@x", p.groups[1].Get("Original-Recipient"))
	for _, g := range p.groups {
		assert.Empty(t, g.Get("X-Evil"))
	}
}

func TestStatusDerivation(t *testing.T) {
	for _, tc := range []struct {
		rc   Recipient
		want string
	}{
		{Recipient{Action: Failed, Status: "5.7.1"}, "5.7.1"},
		{Recipient{Action: Failed, Status: "bogus", Diagnostic: "550 5.2.2 full"}, "5.2.2"},
		{Recipient{Action: Failed, Diagnostic: "550 mailbox unavailable"}, "5.0.0"},
		{Recipient{Action: Failed, Diagnostic: "451 timeout"}, "4.0.0"},
		{Recipient{Action: Delivered}, "2.0.0"},
		{Recipient{Action: Failed, Status: "6.1.1"}, "5.0.0"},
		{Recipient{Action: Failed, Status: "5.1234.1"}, "5.0.0"},
	} {
		assert.Equal(t, tc.want, status(tc.rc), "%+v", tc.rc)
	}
}

func TestParseNotify(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Notify
		err  bool
	}{
		{"", Notify{}, false},
		{"NEVER", Notify{Given: true, Never: true}, false},
		{"success,Failure,DELAY", Notify{Given: true, Success: true, Failure: true, Delay: true}, false},
		{"NEVER,SUCCESS", Notify{}, true},
		{"SOMETIMES", Notify{}, true},
		{"FAILURE,", Notify{}, true},
	} {
		got, err := ParseNotify(tc.in)
		if tc.err {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestDecodeXtext(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"abc", "abc", false}, {"a+2Bb", "a+b", false}, {"+3D", "=", false}, {"a+2bb", "a+b", false},
		{"a+2", "", true}, {"a+", "", true}, {"a+ZZ", "", true}, {"a b", "", true}, {"a=b", "", true}, {"+-1", "", true}, {"é", "", true},
	} {
		got, err := DecodeXtext(tc.in)
		if tc.err {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func FuzzDecodeXtext(f *testing.F) {
	for _, s := range []string{"abc", "a+2Bb", "+", "+0D+0A", "a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := DecodeXtext(s)
		if err != nil {
			return
		}
		require.LessOrEqual(t, len(d), len(s))
		if !strings.Contains(s, "+") {
			require.Equal(t, s, d)
		}
	})
}

func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{"", "NEVER", "SUCCESS,FAILURE", "DELAY,never", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNotify(s)
		if err != nil {
			return
		}
		require.False(t, n.Never && (n.Success || n.Failure || n.Delay))
		if n.Never {
			for _, a := range []Action{Failed, Delayed, Delivered, Relayed, Expanded} {
				require.False(t, n.Wants(a))
			}
		}
	})
}

// FuzzBuild: whatever the untrusted inputs (ENVID, ORCPT, diagnostics,
// original message), the DSN parses, has one group per reported
// recipient, and no injected field.
func FuzzBuild(f *testing.F) {
	f.Add("ENV+2B1", "rfc822;a+2Bb@x", "550 5.1.1 no", original)
	f.Add("+0D+0AX-Evil:+20y", "x", "550\r\nX-Evil: y", "X-Evil: y\r\n\r\n--dsn-\r\n")
	f.Fuzz(func(t *testing.T, envid, orcpt, diag, orig string) {
		r := baseReport()
		r.EnvID, r.Recipients[0].ORcpt, r.Recipients[0].Diagnostic = envid, orcpt, diag
		d, err := Build(r, strings.NewReader(orig))
		require.NoError(t, err)
		p := parse(t, d.Message)
		require.Len(t, p.groups, 2)
		for _, g := range p.groups {
			require.Empty(t, g.Get("X-Evil"))
		}
		require.Equal(t, "failed", p.groups[1].Get("Action"))
	})
}

func BenchmarkBuild(b *testing.B) {
	r := baseReport()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(r, strings.NewReader(original)); err != nil {
			b.Fatal(err)
		}
	}
}
