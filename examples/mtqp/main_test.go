package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
)

func TestTrackTableOverVerifiedTLS(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{tls: true, requireTLS: true})

	r := runCLI(t, nil, "track", "-server", s.addr, "-ca", s.caFile, "-envid", "env-1", "-secret", secret.String())
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr)
	out := r.stdout
	assert.Contains(t, out, "Envelope-Id:")
	assert.Contains(t, out, "env-1")
	assert.Contains(t, out, "dns; mx1.example.test")
	assert.Contains(t, out, "X-Hold-Until:")
	lines := tableLines(t, out)
	require.Len(t, lines, 3)
	assert.Equal(t, []string{"bob@example.test", "delivered", "2.0.0", "mail.example.test", "-", "250 2.0.0 queued as 42"}, lines["bob@example.test"])
	assert.Equal(t, []string{"carol@example.test", "failed", "5.1.1", "-", "-", "smtp; 550 5.1.1 no such user"}, lines["carol@example.test"])
	assert.Equal(t, []string{"dave@example.test", "delayed (held)", "4.0.0", "-", "-", "-"}, lines["dave@example.test"])
	assert.Equal(t, int64(1), be.queries.Load())
}

// tableLines splits the recipient table into cells (columns are separated
// by two or more spaces), keyed by recipient.
func tableLines(t *testing.T, out string) map[string][]string {
	t.Helper()
	i := strings.LastIndex(out, "\n\n")
	require.GreaterOrEqual(t, i, 0, "a blank line before the table:\n%s", out)
	table := out[i+2:]
	rows := strings.Split(strings.TrimRight(table, "\n"), "\n")
	require.NotEmpty(t, rows)
	header := splitCells(rows[0])
	require.Contains(t, header, "RECIPIENT")
	col := 0
	for i, h := range header {
		if h == "RECIPIENT" {
			col = i
		}
	}
	m := map[string][]string{}
	for _, row := range rows[1:] {
		cells := splitCells(row)
		require.Len(t, cells, len(header), "row %q", row)
		m[cells[col]] = cells[col:]
	}
	return m
}

func splitCells(row string) []string {
	var cells []string
	for _, c := range strings.Split(strings.TrimSpace(row), "  ") {
		if c = strings.TrimSpace(c); c != "" {
			cells = append(cells, c)
		}
	}
	return cells
}

// TestSecretIsNeverPrinted: neither a table, JSON, raw output nor a
// failure's reason shows the secret.
func TestSecretIsNeverPrinted(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{tls: true})
	wrong := newSecret(t)
	for _, args := range [][]string{
		{"track", "-secret", secret.String()},
		{"track", "-json", "-secret", secret.String()},
		{"recall", "-raw", "-secret", secret.String()},
		{"track", "-secret", wrong.String()},
		{"track", "-secret", secret.String(), "-timeout", "-1s"},
	} {
		r := runCLI(t, nil, append(args, "-server", s.addr, "-ca", s.caFile, "-envid", "env-1")...)
		for _, sec := range []mtrk.Secret{secret, wrong} {
			assert.NotContains(t, r.stdout+r.stderr, sec.String(), "%v", args)
			assert.NotContains(t, r.stdout+r.stderr, mtrkPadded(sec), "%v", args)
		}
	}
}

func TestCertificateVerification(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{tls: true, requireTLS: true})
	other := startServer(t, newMapBackend(), serverOpts{tls: true}) // a CA that did not sign s's certificate
	base := []string{"track", "-server", s.addr, "-envid", "env-1", "-secret", secret.String()}

	// Not trusted: the system roots do not know the self-signed certificate.
	r := runCLI(t, nil, base...)
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "TLS")
	assert.Contains(t, r.stderr, "certificate")

	r = runCLI(t, nil, append(base, "-ca", other.caFile)...)
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Equal(t, int64(0), be.queries.Load(), "the secret was not sent to an unverified server")

	// -insecure encrypts without verifying.
	r = runCLI(t, nil, append(base, "-insecure")...)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "bob@example.test")
	assert.Equal(t, int64(1), be.queries.Load())

	// The certificate is checked against the host given: one for another
	// name fails even with its CA trusted.
	named := startServer(t, be, serverOpts{tls: true, certHosts: []string{"mx9.example.test"}})
	r = runCLI(t, nil, "track", "-server", named.addr, "-ca", named.caFile, "-envid", "env-1", "-secret", secret.String())
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "127.0.0.1")
}

func TestNotFoundIsOneLineExit1(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{tls: true})
	for name, args := range map[string][]string{
		"wrong secret":     {"-envid", "env-1", "-secret", newSecret(t).String()},
		"unknown envelope": {"-envid", "env-2", "-secret", secret.String()},
	} {
		t.Run(name, func(t *testing.T) {
			for _, cmd := range []string{"track", "recall"} {
				r := runCLI(t, nil, append([]string{cmd, "-server", s.addr, "-ca", s.caFile}, args...)...)
				assert.Equal(t, exitFailed, r.code)
				requireOneLine(t, r)
				assert.Contains(t, r.stderr, "not found")
			}
		})
	}
}

func TestUsageErrorsSendNothing(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{tls: true})
	gfile := writeFile(t, "g", []byte("0123456789abcdef0123456789abcdef\n"))
	srv := []string{"-server", s.addr, "-ca", s.caFile}
	good := append(append([]string{}, srv...), "-envid", "env-1", "-secret", secret.String())
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "missing command"},
		{"unknown command", []string{"status"}, "unknown command"},
		{"unknown flag", append([]string{"track", "-bogus"}, good...), "bogus"},
		{"positional argument", append(append([]string{"track"}, good...), "extra"), "unexpected argument"},
		{"no server", []string{"track", "-envid", "e", "-secret", secret.String()}, "-server is required"},
		{"bad server", []string{"track", "-server", "bad_name!", "-envid", "e", "-secret", secret.String()}, "-server"},
		{"no secret", append([]string{"track", "-envid", "e"}, srv...), "no secret"},
		{"no envid", append([]string{"track", "-secret", secret.String()}, srv...), "-envid is required"},
		{"bad secret", append([]string{"track", "-envid", "e", "-secret", "not base64!"}, srv...), "secret"},
		{"short secret", append([]string{"track", "-envid", "e", "-secret", "AAAA"}, srv...), "secret"},
		{"two secret sources", append([]string{"track", "-envid", "e", "-secret", secret.String(), "-message-id", "<a@b>"}, srv...), "not both"},
		{"secret and secret file", append([]string{"track", "-envid", "e", "-secret", secret.String(), "-secret-file", gfile}, srv...), "exclusive"},
		{"missing secret file", append([]string{"track", "-envid", "e", "-secret-file", "/nonexistent/a"}, srv...), "-secret-file"},
		{"message id without general secret", append([]string{"track", "-message-id", "<a@b>"}, srv...), "-general-secret"},
		{"general secret without message id", append([]string{"track", "-general-secret-file", gfile}, srv...), "-message-id"},
		{"weak general secret", append([]string{"track", "-message-id", "<a@b>", "-general-secret", "c2hvcnQ"}, srv...), "recomputing"},
		{"general secret not base64", append([]string{"track", "-message-id", "<a@b>", "-general-secret", "%%%"}, srv...), "base64"},
		{"message and message id", append([]string{"track", "-message", gfile, "-message-id", "<a@b>", "-general-secret-file", gfile}, srv...), "-message"},
		{"message without Message-ID", append([]string{"track", "-message", gfile, "-general-secret-file", gfile}, srv...), "-message"},
		{"json and raw", append([]string{"track", "-json", "-raw"}, good...), "exclusive"},
		{"insecure and plaintext", append([]string{"track", "-insecure", "-plaintext"}, good...), "exclusive"},
		{"follow with recall", append([]string{"recall", "-follow", "-allow", "a.example"}, good...), "track only"},
		{"follow without allow", append([]string{"track", "-follow"}, good...), "-allow"},
		{"allow without follow", append([]string{"track", "-allow", "a.example"}, good...), "-follow"},
		{"allow star", append([]string{"track", "-follow", "-allow", "*"}, good...), "*"},
		{"follow and raw", append([]string{"track", "-follow", "-allow", "a.example", "-raw"}, good...), "-raw"},
		{"bad timeout", append([]string{"track", "-timeout", "0s"}, good...), "-timeout"},
		{"bad max hops", append([]string{"track", "-follow", "-allow", "a.example", "-max-hops", "0"}, good...), "-max-hops"},
		{"bad ca", []string{"track", "-ca", gfile, "-envid", "e", "-secret", secret.String(), "-server", s.addr}, "PEM"},
		{"envid too long", append([]string{"track", "-envid", strings.Repeat("e", 990), "-secret", secret.String()}, srv...), "too long"},
		{"stdin twice", append([]string{"track", "-message", "-", "-general-secret-file", "-"}, srv...), "standard input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, &cli{stdin: strings.NewReader("Message-ID: <a@b>\r\n\r\n")}, tc.args...)
			assert.Equal(t, exitUsage, r.code, r.stderr)
			requireOneLine(t, r)
			assert.Contains(t, r.stderr, tc.want)
		})
	}
	assert.Equal(t, uint64(0), s.srv.Metrics().Commands[mtqp.CmdTrack].Count+s.srv.Metrics().Commands[mtqp.CmdRecall].Count)
	assert.Equal(t, int64(0), s.srv.Metrics().ConnectionsAccepted, "no usage error opens a connection")

	// The good invocation works, so the cases above fail for their reason.
	r := runCLI(t, nil, append([]string{"track"}, good...)...)
	assert.Equal(t, exitOK, r.code, r.stderr)
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"track", "-h"}, {"recall", "-help"}} {
		r := runCLI(t, nil, args...)
		require.Equal(t, exitOK, r.code)
		assert.Empty(t, r.stderr)
		assert.Equal(t, usageText, r.stdout)
	}
	var o options
	n := 0
	newFlagSet("track", &o).VisitAll(func(f *flag.Flag) {
		n++
		assert.Contains(t, usageText, "  -"+f.Name+" ", "usage documents -%s", f.Name)
		assert.Contains(t, packageDoc(t), "-"+f.Name, "package doc mentions -%s", f.Name)
	})
	assert.Greater(t, n, 15)
	assert.Contains(t, usageText, "Examples:\n  mtqp track -server")
}

func packageDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	return string(b)
}

func TestJSONSchema(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{tls: true})
	r := runCLI(t, nil, "track", "-server", s.addr, "-ca", s.caFile, "-envid", "env-1", "-secret", secret.String(), "-json")
	require.Equal(t, exitOK, r.code, r.stderr)

	// Strict decoding into the documented shape: no unknown members.
	var out jsonOutput
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out))
	assert.False(t, dec.More(), "one JSON value")
	assert.Equal(t, 1, out.Schema)
	assert.Equal(t, "track", out.Command)
	assert.Equal(t, "env-1", out.EnvelopeID)
	assert.Equal(t, s.addr, out.Server)
	require.Len(t, out.Hops, 1)
	assert.Equal(t, jsonHop{Host: "127.0.0.1", Depth: 0, Answered: true, ReportingMTA: "mx1.example.test",
		ArrivalDate: "2026-08-01T12:34:56+02:00",
		Extensions:  []jsonField{{"X-Hold-Until", "Sat, 1 Aug 2026 14:00:00 +0200"}}}, out.Hops[0])
	require.Len(t, out.Recipients, 3)
	assert.Equal(t, jsonRecipient{Host: "127.0.0.1", FinalRecipient: "bob@example.test", Action: "delivered", Status: "2.0.0",
		RemoteMTA: "mail.example.test", LastAttemptDate: "2026-08-01T12:35:56+02:00", Diagnostic: "250 2.0.0 queued as 42",
		Extensions: []jsonField{{"X-Diagnostic", "250 2.0.0 queued as 42"}}}, out.Recipients[0])
	assert.Equal(t, "list@example.test", out.Recipients[1].OriginalRecipient)
	assert.Equal(t, "smtp; 550 5.1.1 no such user", out.Recipients[1].Diagnostic)
	assert.Equal(t, "held", out.Recipients[2].TrackingState)
	assert.Equal(t, "2026-08-04T12:34:56+02:00", out.Recipients[2].WillRetryUntil)

	// The documented always-present members are there under their names.
	var generic map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &generic))
	for _, k := range []string{"schema", "command", "envelope_id", "server", "hops", "recipients"} {
		assert.Contains(t, generic, k)
	}
	rc := generic["recipients"].([]any)[2].(map[string]any)
	for _, k := range []string{"host", "final_recipient", "action", "status", "tracking_state"} {
		assert.Contains(t, rc, k)
	}
	assert.NotContains(t, rc, "remote_mta", "empty members are left out")
}

func TestRawIsTheServersBody(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	rep := sampleReport("env-1")
	be.add("env-1", secret, rep, nil)
	s := startServer(t, be, serverOpts{tls: true})
	want, err := rep.Format()
	require.NoError(t, err)

	// What the library's own client receives from the server...
	ctx := context.Background()
	c, err := mtqp.Dial(ctx, s.addr)
	require.NoError(t, err)
	require.NoError(t, c.StartTLS(ctx, insecureTLS()))
	res, err := c.Track(ctx, "env-1", secret)
	require.NoError(t, err)
	_ = c.Quit(ctx)
	require.Equal(t, string(want), string(res.Raw))

	// ...is exactly what -raw prints, byte for byte.
	for _, cmd := range []string{"track", "recall"} {
		r := runCLI(t, nil, cmd, "-server", s.addr, "-ca", s.caFile, "-envid", "env-1", "-secret", secret.String(), "-raw")
		require.Equal(t, exitOK, r.code, r.stderr)
		if cmd == "track" {
			assert.Equal(t, string(res.Raw), r.stdout)
		}
		parsed, err := mtqp.ParseReport([]byte(r.stdout))
		require.NoError(t, err)
		assert.Equal(t, "env-1", parsed.EnvelopeID)
	}
}

func TestPlaintextOnlyWhenAskedAndOnlyToLoopback(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{}) // no TLS at all
	args := []string{"track", "-server", s.addr, "-envid", "env-1", "-secret", secret.String()}

	r := runCLI(t, nil, args...)
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "does not offer STARTTLS")
	assert.Equal(t, int64(0), be.queries.Load(), "no query without TLS")

	r = runCLI(t, nil, append(args, "-plaintext")...)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "bob@example.test")

	// A connection whose remote end is not loopback is refused before the
	// greeting is even read. The dialer below reaches the same loopback
	// server but reports a remote address elsewhere, as a name pointing off
	// this machine would.
	before := be.queries.Load()
	remote := &cli{dialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, s.addr)
		if err != nil {
			return nil, err
		}
		return elsewhereConn{nc}, nil
	}}
	r = runCLI(t, remote, append(args, "-plaintext")...)
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "loopback")
	assert.Equal(t, before, be.queries.Load())
}

type elsewhereConn struct{ net.Conn }

func (elsewhereConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 1038}
}

func TestServerRefusalsAreExit1(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)

	// RequireTLS answers 530 to a plaintext query.
	s := startServer(t, be, serverOpts{tls: true, requireTLS: true})
	r := runCLI(t, nil, "track", "-server", s.addr, "-plaintext", "-envid", "env-1", "-secret", secret.String())
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "server refused: 530")

	// A server without the recall extension: recall fails, track works.
	noRecall := &mtqp.Server{Backend: be, Domain: "mx1.example.test", DisableRecall: true}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = noRecall.Serve(l) }()
	t.Cleanup(func() { _ = noRecall.Close() })
	r = runCLI(t, nil, "recall", "-server", l.Addr().String(), "-plaintext", "-envid", "env-1", "-secret", secret.String())
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, mtqp.OptionRecall)

	// Nothing listening.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := dead.Addr().String()
	require.NoError(t, dead.Close())
	r = runCLI(t, nil, "track", "-server", addr, "-envid", "env-1", "-secret", secret.String())
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "connecting to "+addr)
}

func TestTimeout(t *testing.T) {
	// A server that accepts and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	r := runCLI(t, nil, "track", "-server", l.Addr().String(), "-timeout", "300ms", "-envid", "e", "-secret", newSecret(t).String())
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "timed out after 300ms")
}

func TestDomainThroughSRV(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	// The certificate names the domain asked for, not the SRV target.
	s := startServer(t, be, serverOpts{tls: true, certHosts: []string{"example.test"}})
	res := startDNS(t, &srvZone{records: map[string][]*net.SRV{"_mtqp._tcp.example.test.": srvTo(t, s.addr)}})
	c := &cli{resolver: res}

	r := runCLI(t, c, "track", "-server", "example.test", "-ca", s.caFile, "-envid", "env-1", "-secret", secret.String(), "-json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var out jsonOutput
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	assert.Equal(t, "example.test", out.Hops[0].Host)
	assert.Len(t, out.Recipients, 3)

	// A domain without SRV records falls back to domain:1038, which does
	// not answer here: a connection failure, exit 1.
	r = runCLI(t, c, "track", "-server", "nosrv.example.test", "-timeout", "5s", "-envid", "env-1", "-secret", secret.String())
	assert.Equal(t, exitFailed, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "nosrv.example.test")
}

func TestSecretFromFileAndStdin(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{tls: true})
	padded := mtrkPadded(secret)
	file := writeFile(t, "a", []byte("  "+padded+"\n"))

	r := runCLI(t, nil, "track", "-server", s.addr, "-ca", s.caFile, "-envid", "env-1", "-secret-file", file)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "bob@example.test")

	r = runCLI(t, &cli{stdin: strings.NewReader(secret.String() + "\r\n")}, "track", "-server", s.addr, "-ca", s.caFile, "-envid", "env-1", "-secret-file", "-")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "bob@example.test")
}

func mtrkPadded(s mtrk.Secret) string {
	str := s.String()
	for len(str)%4 != 0 {
		str += "="
	}
	return str
}

func TestTableNeutralisesControlCharacters(t *testing.T) {
	// The library's report writer refuses control characters, but another
	// server's report is not bound by it: the table must not pass escape
	// sequences or bidirectional overrides to the terminal.
	rep := sampleReport("env-\x1b]0;x\x07")
	rep.Recipients[0].Extensions = []mtqp.Field{{Name: "X-Diagnostic", Value: "250 ok \x1b[2J\u202egnp.exe\tend"}}
	a := &answer{command: "track", envid: "env", server: "s", path: &mtqp.Path{Hops: []mtqp.Hop{{Host: "h", Result: &mtqp.Result{Report: rep}}}}}
	var b bytes.Buffer
	require.NoError(t, a.writeTable(&b))
	out := b.String()
	assert.NotContains(t, out, "\x1b")
	assert.NotContains(t, out, "\x07")
	assert.NotContains(t, out, "\u202e")
	assert.Contains(t, out, "250 ok ?[2J?gnp.exe end")
	assert.Contains(t, out, "env-?]0;x?")
}

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }

func TestRunHonoursCancellation(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"track", "-server", l.Addr().String(), "-envid", "e", "-secret", newSecret(t).String()}, &out, &errb)
	assert.Equal(t, exitFailed, code)
	assert.Equal(t, "mtqp track: interrupted\n", errb.String())
}

func TestServerArgument(t *testing.T) {
	secret := newSecret(t).String()
	for _, tc := range []struct{ in, addr, domain, err string }{
		{in: "mx.example.com:1038", addr: "mx.example.com:1038"},
		{in: "127.0.0.1:11038", addr: "127.0.0.1:11038"},
		{in: "[::1]:11038", addr: "[::1]:11038"},
		{in: "127.0.0.1", addr: "127.0.0.1:1038"},
		{in: "::1", addr: "[::1]:1038"},
		{in: "[2001:db8::1]", addr: "[2001:db8::1]:1038"},
		{in: "Example.COM.", domain: "example.com"},
		{in: "example.com", domain: "example.com"},
		{in: ":1038", err: "no host"},
		{in: "exa mple.com", err: "not host:port"},
		{in: "mtqp://example.com", err: "not host:port"},
		{in: "example.com:0", err: "bad port"},
		{in: "example.com:imap", err: "bad port"},
		{in: "bad_host:1038", err: "bad host"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			o := &options{command: "track", server: tc.in, timeout: time.Second, maxHops: 1,
				secret: secretFlags{envid: "e", secret: secret}}
			p, err := (&cli{}).prepare(o)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.addr, p.addr)
			assert.Equal(t, tc.domain, p.domain)
		})
	}
}
