package smtpext

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readReply reads one (possibly multi-line) reply.
func readReply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		ln, err := r.ReadString('\n')
		require.NoError(t, err, b.String())
		b.WriteString(ln)
		if len(ln) < 4 || ln[3] != '-' {
			return b.String()
		}
	}
}

// dialEHLO connects in plaintext, reads the greeting, says EHLO and
// returns the connection (closed when the test ends), its reader and the
// EHLO reply.
func dialEHLO(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	r := bufio.NewReader(c)
	assert.True(t, strings.HasPrefix(readReply(t, r), "220 "))
	_, err = io.WriteString(c, "EHLO x\r\n")
	require.NoError(t, err)
	return c, r, readReply(t, r)
}

func TestStartTLSDiscardsPipelinedPlaintext(t *testing.T) {
	ts := startServer(t, serverOpts{tls: true, cfg: Config{Extensions: testExtensions()}})
	c, r, ehlo := dialEHLO(t, ts.addr)
	var err error
	assert.Contains(t, ehlo, "STARTTLS")
	assert.NotContains(t, ehlo, "AUTH")
	// The injection: commands pipelined in plaintext behind STARTTLS.
	_, err = io.WriteString(c, "STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\n")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(readReply(t, r), "220 2.0.0"))
	require.Zero(t, r.Buffered())
	tc := tls.Client(c, &tls.Config{RootCAs: ts.roots, ServerName: "localhost"})
	require.NoError(t, tc.Handshake())
	tr := bufio.NewReader(tc)
	// No second greeting: the first thing after the handshake is the
	// reply to our EHLO.
	_, err = io.WriteString(tc, "EHLO x\r\nRCPT TO:<b@example.org>\r\nMAIL FROM:<a@example.org> XTL=1\r\nSTARTTLS\r\nQUIT\r\n")
	require.NoError(t, err)
	ehlo = readReply(t, tr)
	assert.True(t, strings.HasPrefix(ehlo, "250-Hello x"), ehlo)
	assert.Contains(t, ehlo, "AUTH PLAIN")
	assert.Contains(t, ehlo, "XTLS")
	assert.NotContains(t, ehlo, "STARTTLS")
	assert.Contains(t, readReply(t, tr), "502 5.5.1 Missing MAIL FROM", "the injected MAIL must have been discarded")
	assert.Contains(t, readReply(t, tr), "250 2.0.0")
	assert.Contains(t, readReply(t, tr), "502 5.5.1 Already running in TLS")
	assert.Contains(t, readReply(t, tr), "221 ")
	assert.Equal(t, uint64(1), ts.srv.Stats().Handshakes)
}

func TestStartTLSHandshakeFailure(t *testing.T) {
	ts := startServer(t, serverOpts{tls: true})
	c, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = io.WriteString(c, "EHLO x\r\nSTARTTLS\r\n")
	require.NoError(t, err)
	r := bufio.NewReader(c)
	readReply(t, r)
	readReply(t, r)
	require.Contains(t, readReply(t, r), "220 2.0.0")
	_, _ = io.WriteString(c, "this is not a ClientHello\r\n\r\n\r\n\r\n")
	_, err = io.ReadAll(r)
	if err != nil {
		require.True(t, isReset(err), err)
	}
	waitFor(t, func() bool { return ts.srv.Stats().Active == 0 })
	assert.Equal(t, uint64(1), ts.srv.Stats().HandshakeFails)
	// The server still works.
	out := rawSession(t, ts.addr, "EHLO y\r\nQUIT\r\n")
	assert.Equal(t, []string{"220", "250", "221 2.0.0"}, replyCodes(out))
}

// waitFor polls cond until it holds (or fails after a generous limit, to
// catch a condition that never comes; it asserts nothing about speed).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition never became true")
}

func TestClientRelay(t *testing.T) {
	ts := startServer(t, serverOpts{tls: true, cfg: Config{Extensions: testExtensions()}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, ts.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Hello(ctx, "relay.example"))
	ok, args := c.Extension("XTEST")
	assert.True(t, ok)
	assert.Equal(t, "1 2", args)
	ok, _ = c.Extension("XTLS")
	assert.False(t, ok)
	require.Error(t, c.Auth(ctx, sasl.NewPlainClient("", "user", "secret")), "no AUTH before TLS")
	require.NoError(t, c.StartTLS(ctx, &tls.Config{RootCAs: ts.roots}))
	_, isTLS := c.TLSConnectionState()
	assert.True(t, isTLS)
	ok, _ = c.Extension("XTLS")
	assert.True(t, ok, "extensions re-read after STARTTLS")
	require.NoError(t, c.Auth(ctx, sasl.NewPlainClient("", "user", "secret")))

	err = c.Mail(ctx, "a@example.org", MailParam{Name: "XT", Value: "1", Keyword: "NOPE"})
	require.ErrorIs(t, err, ErrNotAdvertised)
	require.NoError(t, c.Mail(ctx, "a@example.org",
		MailParam{Name: "XT", Value: "77", Keyword: "XTEST"},
		MailParam{Name: "XTL", Keyword: "XTLS"},
		MailParam{Name: "ZZ", Value: "1", Keyword: "NOPE", IfSupported: true}))
	r, err := c.Rcpt(ctx, "b@example.org", MailParam{Name: "XR", Value: "3", Keyword: "XTEST"})
	require.NoError(t, err)
	assert.Equal(t, 250, r.Code)
	assert.Equal(t, [3]int{2, 0, 0}, r.Enhanced)
	_, err = c.Rcpt(ctx, "c@example.org", MailParam{Name: "XR", Value: "bad"})
	var re *ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 501, re.Code)
	code, enh, _ := re.SMTPReply()
	assert.Equal(t, 501, code)
	assert.Equal(t, [3]int{5, 5, 4}, enh)
	w, err := c.Data(ctx)
	require.NoError(t, err)
	_, err = io.WriteString(w, "Subject: relay\n\n.dot\n..two\n.\nend")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, c.Reset(ctx))
	require.NoError(t, c.Noop(ctx))
	require.NoError(t, c.Quit(ctx))

	msgs := ts.be.messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, "Subject: relay\r\n\r\n.dot\r\n..two\r\n.\r\nend\r\n", m.Body)
	assert.Equal(t, "user", m.User)
	xt, _ := m.Tx.MailParams.Get("XT")
	assert.Equal(t, uint64(77), xt.Value)
	_, hasXTL := m.Tx.MailParams.Get("XTL")
	assert.True(t, hasXTL)
	require.Len(t, m.Tx.Rcpts, 1)
}

func TestClientAgainstPlainGoSMTP(t *testing.T) {
	// The client works against a go-smtp server without the layer: it
	// must not send parameters that server does not advertise.
	be := &recBackend{}
	s := smtp.NewServer(be)
	s.Domain = "plain.test"
	s.AllowInsecureAuth = true
	s.EnableDSN = true
	s.ErrorLog = discardLogger{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go s.Serve(l)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, l.Addr().String())
	require.NoError(t, err)
	require.NoError(t, c.Mail(ctx, "a@example.org",
		MailParam{Name: "MTRK", Value: "Q2Vy:60", Keyword: "MTRK", IfSupported: true},
		MailParam{Name: "ENVID", Value: XText("id+1"), Keyword: "DSN"}))
	_, err = c.Rcpt(ctx, "b@example.org")
	require.NoError(t, err)
	w, err := c.Data(ctx)
	require.NoError(t, err)
	_, _ = io.WriteString(w, "hi\r\n")
	require.NoError(t, w.Close())
	require.NoError(t, c.Quit(ctx))
	msgs := be.messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "id+1", msgs[0].MailOpts.EnvelopeID)
}

func TestClientContextTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c) // never greets
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, l.Addr().String())
	require.Error(t, err)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "%v", err)
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, serverOpts{implicit: true, cfg: Config{ReadTimeout: 300 * time.Millisecond, HandshakeTimeout: 300 * time.Millisecond}})
	c, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	out, _ := io.ReadAll(c)
	assert.Contains(t, string(out), "421 4.4.2 Idle timeout")

	// A client that never sends its ClientHello is dropped too.
	c2, err := net.Dial("tcp", ts.tlsAddr)
	require.NoError(t, err)
	defer c2.Close()
	require.NoError(t, c2.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = io.ReadAll(c2)
	if err != nil {
		require.True(t, isReset(err), err)
	}
	waitFor(t, func() bool { return ts.srv.Stats().HandshakeFails == 1 })

	// The layer's handshake timeout error reports Timeout().
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, err = ts.srv.handshake(a)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "%v", err)
}

func TestConnectionCap(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{MaxConnections: 2}})
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ts.addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
		assert.Contains(t, readReply(t, bufio.NewReader(c)), "220 ")
		conns = append(conns, c)
	}
	out := rawSession(t, ts.addr, "EHLO x\r\n")
	assert.Equal(t, "421 4.4.5 Too busy. Try again later.\r\n", out)
	conns[0].Close()
	waitFor(t, func() bool { return ts.srv.Stats().Active == 1 })
	out = rawSession(t, ts.addr, "QUIT\r\n")
	assert.Equal(t, []string{"220", "221 2.0.0"}, replyCodes(out))
	st := ts.srv.Stats()
	assert.Equal(t, uint64(1), st.Rejected)
	assert.Equal(t, uint64(3), st.Accepted, "admitted sockets; the refused one is counted in Rejected")
}

func TestShutdownWaitsForSessions(t *testing.T) {
	ts := startServer(t, serverOpts{})
	c, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	r := bufio.NewReader(c)
	readReply(t, r)
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(context.Background()) }()
	// The session still works during Shutdown...
	_, err = io.WriteString(c, "NOOP\r\n")
	require.NoError(t, err)
	assert.Contains(t, readReply(t, r), "250 ")
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a session open", err)
	default:
	}
	// ...and Shutdown returns once it ends.
	_, err = io.WriteString(c, "QUIT\r\n")
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.NoError(t, <-ts.done)
	_, err = net.Dial("tcp", ts.addr)
	require.Error(t, err, "listener closed")
}

// TestNoLeaks runs sessions of every kind, including ones stuck in a TLS
// handshake when the server closes, and checks that every goroutine and
// socket is gone afterwards.
func TestNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ts := startServer(t, serverOpts{implicit: true, cfg: Config{Extensions: testExtensions()}})
		rawSession(t, ts.addr, "EHLO x\r\nMAIL FROM:<a@example.org> XT=1\r\nRCPT TO:<b@example.org>\r\nBDAT 3\r\nabcQUIT\r\n")
		ctx := context.Background()
		c, err := Dial(ctx, ts.addr)
		require.NoError(t, err)
		require.NoError(t, c.StartTLS(ctx, &tls.Config{RootCAs: ts.roots}))
		require.NoError(t, c.Quit(ctx))
		// Mid-handshake and mid-session connections left open at Close.
		stuck1, err := net.Dial("tcp", ts.tlsAddr)
		require.NoError(t, err)
		defer stuck1.Close()
		stuck2, err := net.Dial("tcp", ts.addr)
		require.NoError(t, err)
		defer stuck2.Close()
		_, _ = io.WriteString(stuck2, "EHLO x\r\nSTARTTLS\r\n")
		stuck3, err := net.Dial("tcp", ts.addr)
		require.NoError(t, err)
		defer stuck3.Close()
		_, _ = io.WriteString(stuck3, "EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\npartial body")
		waitFor(t, func() bool { return ts.srv.Stats().Accepted == 5 })
		require.NoError(t, ts.srv.Close())
		require.NoError(t, <-ts.done)
		require.NoError(t, <-ts.done)
		assert.Equal(t, 0, ts.srv.Stats().Active)
		for _, c := range []net.Conn{stuck1, stuck2, stuck3} {
			require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
			_, err := io.ReadAll(c)
			if err != nil {
				require.True(t, isReset(err), err)
			}
		}
	}()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

// TestRequireTLSAfterTLS: go-smtp cannot see the layer's TLS, so the layer
// re-offers REQUIRETLS itself once the connection is encrypted (RFC 8689
// section 4), after STARTTLS and on an implicit-TLS listener, and the MAIL
// parameter then reaches go-smtp (MailOptions.RequireTLS). Before TLS it is
// neither offered nor accepted (TestRequireTLSOnlyAfterTLS).
func TestRequireTLSAfterTLS(t *testing.T) {
	ts := startServer(t, serverOpts{tls: true, implicit: true, tune: func(s *smtp.Server) { s.EnableREQUIRETLS = true }})
	clientTLS := &tls.Config{RootCAs: ts.roots, ServerName: "localhost"}
	run := func(t *testing.T, c net.Conn, r *bufio.Reader, w io.Writer) {
		_, err := io.WriteString(w, "EHLO x\r\n")
		require.NoError(t, err)
		ehlo := readReply(t, r)
		assert.Regexp(t, `(?m)^250[- ]REQUIRETLS\r$`, ehlo)
		assert.NotContains(t, ehlo, "STARTTLS")
		_, err = io.WriteString(w, "MAIL FROM:<a@b.c> REQUIRETLS\r\nRCPT TO:<d@e.f>\r\nDATA\r\n")
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(readReply(t, r), "250 "), "MAIL with REQUIRETLS after TLS")
		assert.True(t, strings.HasPrefix(readReply(t, r), "250 "))
		assert.True(t, strings.HasPrefix(readReply(t, r), "354 "))
		_, err = io.WriteString(w, "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(readReply(t, r), "250 "))
		assert.True(t, strings.HasPrefix(readReply(t, r), "221 "))
	}

	t.Run("STARTTLS", func(t *testing.T) {
		c, r, ehlo := dialEHLO(t, ts.addr)
		var err error
		assert.NotContains(t, ehlo, "REQUIRETLS", "not offered before TLS")
		_, err = io.WriteString(c, "STARTTLS\r\n")
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(readReply(t, r), "220 "))
		tc := tls.Client(c, clientTLS)
		require.NoError(t, tc.Handshake())
		run(t, tc, bufio.NewReader(tc), tc)
	})
	t.Run("implicit", func(t *testing.T) {
		tc, err := tls.Dial("tcp", ts.tlsAddr, clientTLS)
		require.NoError(t, err)
		defer tc.Close()
		require.NoError(t, tc.SetDeadline(time.Now().Add(20*time.Second)))
		r := bufio.NewReader(tc)
		assert.True(t, strings.HasPrefix(readReply(t, r), "220 "))
		run(t, tc, r, tc)
	})

	msgs := ts.be.messages()
	require.Len(t, msgs, 2)
	for _, m := range msgs {
		assert.True(t, m.TLS)
		assert.True(t, m.MailOpts.RequireTLS, "go-smtp must have received REQUIRETLS")
		assert.Equal(t, "a@b.c", m.From)
		// REQUIRETLS is PassThrough: go-smtp sees it, and it is in the
		// layer's view of the transaction too.
		_, ok := m.Tx.MailParams.Get("REQUIRETLS")
		assert.True(t, ok)
	}
}
