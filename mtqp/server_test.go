package mtqp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

func newTestServer(t testing.TB, mod func(s *Server)) (*Server, *mapBackend, string) {
	b := newMapBackend()
	b.add("env-1", testSecret, sampleReport("env-1", "mta1.test"))
	s := &Server{Backend: b, Domain: "mta1.test"}
	if mod != nil {
		mod(s)
	}
	return s, b, startServer(t, s)
}

// raw is a line-level client for wire tests.
type raw struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *raw {
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &raw{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// reply reads one reply and returns its exact bytes too.
func (c *raw) reply() (Reply, string) {
	c.t.Helper()
	var buf bytes.Buffer
	for {
		l, err := c.r.ReadString('\n')
		require.NoError(c.t, err)
		buf.WriteString(l)
		if len(l) < 4 || l[3] != '-' {
			break
		}
	}
	rep, err := ReadReply(bufio.NewReader(bytes.NewReader(buf.Bytes())), 1000)
	require.NoError(c.t, err)
	return rep, buf.String()
}

func (c *raw) send(s string) {
	c.t.Helper()
	_, err := c.nc.Write([]byte(s))
	require.NoError(c.t, err)
}

func (c *raw) do(line string) (Reply, string) {
	c.send(line + "\r\n")
	return c.reply()
}

func TestClientServerPlain(t *testing.T) {
	_, b, addr := newTestServer(t, nil)
	ctx := ctxT(t)
	c, err := Dial(ctx, addr)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "mta1.test", c.Greeting().Domain)
	assert.True(t, c.Supports(OptionRecall))
	assert.False(t, c.Supports(OptionStartTLS), "no TLS config, no STARTTLS advertised")

	res, err := c.Track(ctx, "env-1", testSecret)
	require.NoError(t, err)
	want, _ := sampleReport("env-1", "mta1.test").Format()
	assert.Equal(t, string(want), string(res.Raw))
	assert.Equal(t, "alice@example.com", res.Report.Recipients[0].FinalRecipient.Value)

	_, err = c.Track(ctx, "env-1", []byte("wrong secret"))
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = c.Track(ctx, "env-2", testSecret)
	assert.ErrorIs(t, err, ErrNotFound)

	rec, err := c.Recall(ctx, "env-1", testSecret)
	require.NoError(t, err)
	for _, rc := range rec.Report.Recipients {
		assert.Equal(t, RecallRecalled, rc.RecallStatus())
	}
	require.NoError(t, c.Comment(ctx, "hello from the test"))
	require.NoError(t, c.Quit(ctx))
	qs := b.queries()
	require.Len(t, qs, 4)
	assert.Equal(t, CmdRecall, qs[3].Command)
}

// An unknown envelope ID and a wrong secret must give byte-identical
// replies.
func TestNotFoundIdentical(t *testing.T) {
	_, _, addr := newTestServer(t, nil)
	c := dialRaw(t, addr)
	c.reply()
	_, unknown := c.do(FormatTrack(CmdTrack, "env-unknown", testSecret))
	_, wrong := c.do(FormatTrack(CmdTrack, "env-1", []byte("wrong-secret-wrong-s")))
	_, unknownRecall := c.do(FormatTrack(CmdRecall, "env-unknown", testSecret))
	_, wrongRecall := c.do(FormatTrack(CmdRecall, "env-1", []byte("wrong-secret-wrong-s")))
	assert.Equal(t, "550 "+textNotFound+"\r\n", unknown)
	assert.Equal(t, unknown, wrong)
	assert.Equal(t, unknown, unknownRecall)
	assert.Equal(t, unknown, wrongRecall)
}

func TestWireErrors(t *testing.T) {
	s, _, addr := newTestServer(t, func(s *Server) { s.DisableRecall = true })
	c := dialRaw(t, addr)
	g, _ := c.reply()
	assert.Equal(t, []string{"mta1.test MTQP server ready"}, g.Lines, "nothing advertised")
	tests := []struct {
		line string
		code int
	}{
		{"NOOP", CodeUnknownCommand},
		{"", CodeUnknownCommand},
		{"\x00\x01\x02garbage\xff", CodeUnknownCommand},
		{strings.Repeat("X", MaxLineLength+1), CodeUnknownCommand},
		{"TRACK", CodeSyntax},
		{"TRACK env-1", CodeSyntax},
		{"TRACK env-1 c2VjcmV0 extra", CodeSyntax},
		{"TRACK env-1 !!!", CodeSyntax},
		{"RECALL env-1 c2VjcmV0", CodeUnknownCommand},
		{"STARTTLS", CodeTLSUnavailable},
		{"STARTTLS now", CodeSyntax},
		{"QUIT now", CodeSyntax},
		{"COMMENT", CodeOK},
		{"comment\tany text at all", CodeOK},
	}
	for _, tc := range tests {
		rep, _ := c.do(tc.line)
		assert.Equal(t, tc.code, rep.Code, "%q", truncate(tc.line, 30))
	}
	// Still in step: a well-formed TRACK works on the same connection.
	rep, _ := c.do(FormatTrack(CmdTrack, "env-1", testSecret))
	assert.Equal(t, CodeOK, rep.Code)
	rep, _ = c.do("quit")
	assert.Equal(t, CodeClosing, rep.Code)
	m := s.Metrics()
	assert.Equal(t, uint64(1), m.LineTooLong)
	assert.Equal(t, uint64(2), m.BadLines)
	assert.Equal(t, uint64(4), m.Commands["UNKNOWN"].Count)
	assert.Equal(t, uint64(1), m.Commands[CmdTrack].Count-m.Commands[CmdTrack].Failures)
}

func TestMaxErrorsCloses(t *testing.T) {
	_, _, addr := newTestServer(t, func(s *Server) { s.MaxErrors = 3 })
	c := dialRaw(t, addr)
	c.reply()
	c.send("a\r\nb\r\nc\r\nd\r\n")
	for i := 0; i < 3; i++ {
		rep, _ := c.reply()
		assert.Equal(t, CodeUnknownCommand, rep.Code)
	}
	rep, _ := c.reply()
	assert.Equal(t, CodeUnavailable, rep.Code)
	_, err := c.r.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
}

// Random bytes on live connections never crash or wedge the server: a
// well-formed TRACK still gets its report afterwards.
func TestRandomBytesThenTrack(t *testing.T) {
	s, _, addr := newTestServer(t, func(s *Server) { s.IdleTimeout = 2 * time.Second })
	rng := rand.New(rand.NewSource(42))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		junk := make([]byte, 1+rng.Intn(20000))
		rng.Read(junk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			go io.Copy(io.Discard, nc)
			_, _ = nc.Write(junk)
		}()
	}
	wg.Wait()
	ctx := ctxT(t)
	c, err := Dial(ctx, addr)
	require.NoError(t, err)
	defer c.Close()
	res, err := c.Track(ctx, "env-1", testSecret)
	require.NoError(t, err)
	assert.Equal(t, "env-1", res.Report.EnvelopeID)

	// And on the same connection, after a little garbage without LFs
	// in the way of the next command.
	rc := dialRaw(t, addr)
	rc.reply()
	rc.send("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n")
	rep, _ := rc.reply()
	assert.Equal(t, CodeUnknownCommand, rep.Code)
	rep, _ = rc.do(FormatTrack(CmdTrack, "env-1", testSecret))
	assert.Equal(t, CodeOK, rep.Code)
	assert.Greater(t, s.Metrics().BadLines+s.Metrics().LineTooLong, uint64(0))
}

func TestClientServerTLS(t *testing.T) {
	srvTLS, cliTLS := testTLS(t, "mta1.test", "127.0.0.1")
	s, b, addr := newTestServer(t, func(s *Server) { s.TLSConfig = srvTLS; s.RequireTLS = true })
	ctx := ctxT(t)

	c, err := Dial(ctx, addr)
	require.NoError(t, err)
	defer c.Close()
	require.True(t, c.Supports(OptionStartTLS))
	_, err = c.Track(ctx, "env-1", testSecret)
	var re *ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, CodeNeedTLS, re.Code, "RequireTLS refuses TRACK before STARTTLS")
	_, err = c.Recall(ctx, "env-1", testSecret)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, CodeNeedTLS, re.Code, "and RECALL")
	assert.Empty(t, b.queries(), "the backend never saw the plaintext queries")

	cfg := cliTLS.Clone()
	cfg.ServerName = "mta1.test"
	require.NoError(t, c.StartTLS(ctx, cfg))
	st, ok := c.TLSConnectionState()
	require.True(t, ok)
	assert.GreaterOrEqual(t, st.Version, uint16(tls.VersionTLS12))
	assert.False(t, c.Supports(OptionStartTLS), "greeting under TLS no longer offers STARTTLS")
	res, err := c.Track(ctx, "env-1", testSecret)
	require.NoError(t, err)
	assert.Equal(t, "env-1", res.Report.EnvelopeID)
	qs := b.queries()
	require.Len(t, qs, 1)
	require.NoError(t, c.Quit(ctx))

	// The Dialer does STARTTLS itself.
	d := Dialer{TLSConfig: cfg}
	c2, err := d.Dial(ctx, addr)
	require.NoError(t, err)
	_, err = c2.Track(ctx, "env-1", testSecret)
	require.NoError(t, err)
	c2.Close()

	// TLS 1.1 is refused (RFC 8996): the server's handshake fails.
	rc := dialRaw(t, addr)
	rc.reply()
	rep, _ := rc.do("STARTTLS")
	require.Equal(t, CodeReadyTLS, rep.Code)
	old := cfg.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	assert.Error(t, tls.Client(rc.nc, old).Handshake())
	assert.Eventually(t, func() bool { return s.Metrics().TLSFailures >= 1 }, 5*time.Second, 10*time.Millisecond)

	// A client that does not trust the certificate fails the handshake.
	c4, err := Dial(ctx, addr)
	require.NoError(t, err)
	defer c4.Close()
	assert.Error(t, c4.StartTLS(ctx, &tls.Config{ServerName: "mta1.test"}))
}

// Commands pipelined behind STARTTLS are plaintext and must be dropped,
// never executed (the CVE-2011-0411 class).
func TestStartTLSDiscardsPipelined(t *testing.T) {
	srvTLS, cliTLS := testTLS(t, "mta1.test")
	s, b, addr := newTestServer(t, func(s *Server) { s.TLSConfig = srvTLS })
	c := dialRaw(t, addr)
	c.reply()
	c.send("STARTTLS\r\n" + FormatTrack(CmdTrack, "env-1", testSecret) + "\r\nCOMMENT injected\r\n")
	rep, _ := c.reply()
	require.Equal(t, CodeReadyTLS, rep.Code)
	require.Zero(t, c.r.Buffered())
	cfg := cliTLS.Clone()
	cfg.ServerName = "mta1.test"
	tc := tls.Client(c.nc, cfg)
	require.NoError(t, tc.Handshake())
	tr := bufio.NewReader(tc)
	g, err := ReadReply(tr, 10)
	require.NoError(t, err)
	assert.Equal(t, CodeGreeting, g.Code, "first thing under TLS is the greeting, not an answer to injected commands")
	// Out of sequence: STARTTLS again.
	_, err = tc.Write([]byte("STARTTLS\r\n"))
	require.NoError(t, err)
	again, err := ReadReply(tr, 10)
	require.NoError(t, err)
	assert.Equal(t, CodeBadSequence, again.Code)
	_, err = tc.Write([]byte("QUIT\r\n"))
	require.NoError(t, err)
	q, err := ReadReply(tr, 10)
	require.NoError(t, err)
	assert.Equal(t, CodeClosing, q.Code)
	assert.Empty(t, b.queries(), "the injected TRACK never ran")
	assert.Equal(t, uint64(1), s.Metrics().PlaintextDiscarded)
	assert.Zero(t, s.Metrics().Commands[CmdComment].Count)
}

func TestRateLimitFailures(t *testing.T) {
	s, b, addr := newTestServer(t, func(s *Server) {
		s.FailureBurst = 3
		s.FailureRate = rate.Every(time.Hour)
	})
	ctx := ctxT(t)
	c, err := Dial(ctx, addr)
	require.NoError(t, err)
	defer c.Close()
	// Successes cost nothing.
	for i := 0; i < 5; i++ {
		_, err := c.Track(ctx, "env-1", testSecret)
		require.NoError(t, err)
	}
	for i := 0; i < 3; i++ {
		_, err := c.Track(ctx, "env-1", []byte("guess"))
		require.ErrorIs(t, err, ErrNotFound)
	}
	n := len(b.queries())
	_, err = c.Track(ctx, "env-1", testSecret)
	var re *ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, CodeRateLimited, re.Code, "even the right secret is refused once the budget is spent")
	assert.True(t, re.Temporary())
	code, msg := re.MTQPReply()
	assert.Equal(t, CodeRateLimited, code)
	assert.Equal(t, textRateLimited, msg)
	assert.Equal(t, n, len(b.queries()), "a refused query never reaches the backend")
	// A new connection from the same address is limited too.
	c2, err := Dial(ctx, addr)
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.Track(ctx, "env-1", testSecret)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, CodeRateLimited, re.Code)
	m := s.Metrics()
	assert.Equal(t, uint64(2), m.RateLimited)
	assert.Equal(t, uint64(3), m.NotFound)
}

func TestFailureLimiterBounded(t *testing.T) {
	f := newFailureLimiter(rate.Every(time.Hour), 2, 3)
	now := time.Now()
	for i, a := range []string{"a", "b", "c", "d", "e"} {
		f.fail(a, now.Add(time.Duration(i)*time.Second))
		assert.LessOrEqual(t, f.size(), 3)
	}
	assert.True(t, f.allowed("a", now), "the oldest entry was evicted")
	f.fail("e", now.Add(10*time.Second))
	assert.False(t, f.allowed("e", now.Add(10*time.Second)))
	// Entries whose bucket refilled are dropped first.
	g := newFailureLimiter(rate.Every(time.Second), 1, 2)
	g.fail("x", now)
	g.fail("y", now.Add(10*time.Second))
	g.fail("z", now.Add(10*time.Second)) // x has refilled by now: it goes, y stays
	assert.False(t, g.allowed("y", now.Add(10*time.Second)))
	assert.Equal(t, 2, g.size())
}

func TestIdleTimeoutCloses(t *testing.T) {
	s, _, addr := newTestServer(t, func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	c := dialRaw(t, addr)
	c.reply()
	rep, _ := c.reply() // nothing sent: the server gives up
	assert.Equal(t, CodeUnavailable, rep.Code)
	_, err := c.r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "connection closed after the idle deadline")
	assert.Equal(t, uint64(1), s.Metrics().Timeouts)
}

func TestMaxConnDurationCloses(t *testing.T) {
	_, _, addr := newTestServer(t, func(s *Server) {
		s.IdleTimeout = time.Minute
		s.MaxConnDuration = 300 * time.Millisecond
	})
	c := dialRaw(t, addr)
	c.reply()
	// Keep the connection busy; the total deadline still ends it.
	closed := false
	for i := 0; i < 10000 && !closed; i++ {
		if _, err := c.nc.Write([]byte("COMMENT busy\r\n")); err != nil {
			closed = true
			break
		}
		rep, err := ReadReply(c.r, 10)
		if err != nil || rep.Code == CodeUnavailable {
			closed = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	assert.True(t, closed, "a busy connection is closed at MaxConnDuration")
}

func TestMaxConnections(t *testing.T) {
	s, _, addr := newTestServer(t, func(s *Server) { s.MaxConnections = 2 })
	ctx := ctxT(t)
	var cs []*Client
	for i := 0; i < 2; i++ {
		c, err := Dial(ctx, addr)
		require.NoError(t, err)
		cs = append(cs, c)
	}
	_, err := Dial(ctx, addr)
	var re *ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, CodeUnavailable, re.Code)
	assert.Equal(t, int64(1), s.Metrics().ConnectionsRejected)
	// Freeing a slot lets the next one in.
	require.NoError(t, cs[0].Quit(ctx))
	assert.Eventually(t, func() bool { return s.Metrics().ConnectionsOpen == 1 }, 5*time.Second, 5*time.Millisecond)
	c, err := Dial(ctx, addr)
	require.NoError(t, err)
	_, err = c.Track(ctx, "env-1", testSecret)
	require.NoError(t, err)
	c.Close()
	cs[1].Close()
}

func TestShutdownFinishesInFlight(t *testing.T) {
	s, b, addr := newTestServer(t, nil)
	b.block, b.entered = make(chan struct{}), make(chan struct{}, 1)
	ctx := ctxT(t)
	busy, err := Dial(ctx, addr)
	require.NoError(t, err)
	defer busy.Close()
	idle := dialRaw(t, addr)
	idle.reply()

	type result struct {
		res *Result
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, err := busy.Track(ctx, "env-1", testSecret)
		got <- result{r, err}
	}()
	<-b.entered // the TRACK is inside the backend
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()

	// The idle connection is told goodbye while the TRACK is still held.
	rep, _ := idle.reply()
	assert.Equal(t, CodeUnavailable, rep.Code)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a query in flight", err)
	default:
	}
	close(b.block)
	r := <-got
	require.NoError(t, r.err, "the in-flight TRACK got its full answer")
	assert.Equal(t, "env-1", r.res.Report.EnvelopeID)
	require.NoError(t, <-shut)
	_, err = net.Dial("tcp", addr)
	assert.Error(t, err, "listener closed")
	assert.GreaterOrEqual(t, s.Metrics().ShutdownClosed, uint64(2))
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	s, b, addr := newTestServer(t, nil)
	b.block, b.entered = make(chan struct{}), make(chan struct{}, 1)
	defer close(b.block)
	c, err := Dial(ctxT(t), addr)
	require.NoError(t, err)
	defer c.Close()
	go c.Track(context.Background(), "env-1", testSecret)
	<-b.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	// The backend call is still blocked; the forced close returns anyway
	// and the connection is closed under the client.
	assert.ErrorIs(t, <-done, context.Canceled)
	_, err = net.Dial("tcp", addr)
	assert.Error(t, err, "listener closed")
}

func TestConcurrentClients(t *testing.T) {
	s, _, addr := newTestServer(t, nil)
	ctx := ctxT(t)
	const clients, each = 24, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := Dial(ctx, addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; j < each; j++ {
				res, err := c.Track(ctx, "env-1", testSecret)
				if err != nil {
					errs <- err
					return
				}
				if len(res.Report.Recipients) != 2 {
					errs <- errors.New("short report")
					return
				}
			}
			errs <- c.Quit(ctx)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(clients*each), s.Metrics().Commands[CmdTrack].Count)
	assert.Equal(t, int64(clients), s.Metrics().ConnectionsAccepted)
}

// TestConcurrentClientsTLS is TestConcurrentClients over TLS: many
// clients at once each do STARTTLS (half by hand, half through a Dialer)
// and then a run of TRACKs on a server that requires TLS, so handshakes
// overlap with each other and with queries on other connections.
func TestConcurrentClientsTLS(t *testing.T) {
	srvTLS, cliTLS := testTLS(t, "mta1.test", "127.0.0.1")
	s, b, addr := newTestServer(t, func(s *Server) { s.TLSConfig = srvTLS; s.RequireTLS = true })
	ctx := ctxT(t)
	cfg := cliTLS.Clone()
	cfg.ServerName = "mta1.test"
	const clients, each = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var c *Client
			var err error
			if i%2 == 0 {
				c, err = Dial(ctx, addr)
				if err == nil {
					err = c.StartTLS(ctx, cfg.Clone())
				}
			} else {
				d := Dialer{TLSConfig: cfg.Clone()}
				c, err = d.Dial(ctx, addr)
			}
			if c != nil {
				defer c.Close()
			}
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			st, ok := c.TLSConnectionState()
			if !ok || !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
				errs <- fmt.Errorf("client %d: no TLS 1.2+ connection state", i)
				return
			}
			for j := 0; j < each; j++ {
				res, err := c.Track(ctx, "env-1", testSecret)
				if err != nil {
					errs <- fmt.Errorf("client %d TRACK %d: %w", i, j, err)
					return
				}
				if res.Report.EnvelopeID != "env-1" || len(res.Report.Recipients) != 2 {
					errs <- fmt.Errorf("client %d: wrong report %+v", i, res.Report)
					return
				}
			}
			errs <- c.Quit(ctx)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	m := s.Metrics()
	assert.Equal(t, uint64(clients*each), m.Commands[CmdTrack].Count)
	assert.Equal(t, uint64(clients), m.Commands[CmdStartTLS].Count)
	assert.Equal(t, int64(clients), m.ConnectionsAccepted)
	assert.Zero(t, m.TLSFailures)
	assert.Len(t, b.queries(), clients*each, "every query reached the backend, none before TLS")
}

func TestMetricsPerServer(t *testing.T) {
	s1, _, a1 := newTestServer(t, nil)
	s2, _, a2 := newTestServer(t, nil)
	ctx := ctxT(t)
	c1, err := Dial(ctx, a1)
	require.NoError(t, err)
	defer c1.Close()
	for i := 0; i < 3; i++ {
		_, err = c1.Track(ctx, "env-1", testSecret)
		require.NoError(t, err)
	}
	c2, err := Dial(ctx, a2)
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.Track(ctx, "nope", testSecret)
	require.Error(t, err)
	m1, m2 := s1.Metrics(), s2.Metrics()
	assert.Equal(t, uint64(3), m1.Commands[CmdTrack].Count)
	assert.Zero(t, m1.Commands[CmdTrack].Failures)
	assert.Equal(t, uint64(1), m2.Commands[CmdTrack].Count)
	assert.Equal(t, uint64(1), m2.Commands[CmdTrack].Failures)
	assert.Positive(t, m1.Commands[CmdTrack].Total)
	assert.GreaterOrEqual(t, m1.Commands[CmdTrack].Max, m1.Commands[CmdTrack].Mean())
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestQueryLogNeverHasSecret(t *testing.T) {
	var logs syncBuf
	_, _, addr := newTestServer(t, func(s *Server) {
		s.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := ctxT(t)
	c, err := Dial(ctx, addr)
	require.NoError(t, err)
	_, err = c.Track(ctx, "env-1", testSecret)
	require.NoError(t, err)
	_, err = c.Track(ctx, "env-1", []byte("wrong-secret-value"))
	require.Error(t, err)
	require.NoError(t, c.Quit(ctx))
	out := logs.String()
	assert.Equal(t, 2, strings.Count(out, "mtqp query"))
	assert.Contains(t, out, "envid=env-1")
	assert.Contains(t, out, "outcome=\"not found\"")
	for _, secret := range [][]byte{testSecret, []byte("wrong-secret-value")} {
		assert.NotContains(t, out, string(secret))
		assert.NotContains(t, out, FormatTrack("", "", secret)[2:])
	}
}

// replyErr is a backend error carrying its own reply.
type replyErr struct{}

func (replyErr) Error() string                                      { return "busy" }
func (replyErr) MTQPReply() (int, string)                           { return 452, "Engine busy\r\nInjected: x" }
func (b errBackend) Track(context.Context, Query) (*Report, error)  { return nil, b.err }
func (b errBackend) Recall(context.Context, Query) (*Report, error) { return &Report{}, nil }

type errBackend struct{ err error }

func TestBackendErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		text string
	}{
		{replyErr{}, 452, "Engine busy??Injected: x"},
		{errors.New("disk on fire"), CodeLocalError, textLocalError},
		{ErrNotFound, CodeNotFound, textNotFound},
	} {
		s := &Server{Backend: errBackend{tc.err}, Domain: "x"}
		addr := startServer(t, s)
		c := dialRaw(t, addr)
		c.reply()
		rep, _ := c.do(FormatTrack(CmdTrack, "e", testSecret))
		assert.Equal(t, tc.code, rep.Code)
		assert.Equal(t, []string{tc.text}, rep.Lines)
		// An invalid report from the engine is a local error, not a crash.
		rep, _ = c.do(FormatTrack(CmdRecall, "e", testSecret))
		assert.Equal(t, CodeLocalError, rep.Code)
	}
}

func TestClientContextDeadline(t *testing.T) {
	s, b, addr := newTestServer(t, nil)
	_ = s
	b.block, b.entered = make(chan struct{}), make(chan struct{}, 1)
	defer close(b.block)
	c, err := Dial(ctxT(t), addr)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Track(ctx, "env-1", testSecret)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	// The connection is unusable afterwards and says so.
	_, err = c.Track(ctxT(t), "env-1", testSecret)
	assert.Error(t, err)
}

func TestListenAndServe(t *testing.T) {
	b := newMapBackend()
	b.add("env-1", testSecret, sampleReport("env-1", "h"))
	addr := "127.0.0.1:" + itoa(testenv.FreePort(t))
	s := &Server{Backend: b, Addr: addr, Domain: "h", DisableRecall: true}
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe() }()
	ctx := ctxT(t)
	var c *Client
	require.Eventually(t, func() bool {
		var err error
		c, err = Dial(ctx, addr)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	_, err := c.Track(ctx, "env-1", testSecret)
	require.NoError(t, err)
	// RECALL is not offered: the client refuses without sending it.
	_, err = c.Recall(ctx, "env-1", testSecret)
	assert.ErrorContains(t, err, OptionRecall)
	assert.Len(t, b.queries(), 1)
	c.Close()
	require.NoError(t, s.Shutdown(ctx))
	assert.ErrorIs(t, <-done, ErrServerClosed)
	assert.ErrorIs(t, s.Serve(loopbackListener(t)), ErrServerClosed, "a shut-down server does not serve again")
}

func loopbackListener(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l
}

// A client that asks for TLS and then says nothing is dropped at the idle
// deadline, not held forever in the handshake.
func TestStartTLSHandshakeDeadline(t *testing.T) {
	srvTLS, _ := testTLS(t, "mta1.test")
	s, _, addr := newTestServer(t, func(s *Server) { s.TLSConfig = srvTLS; s.IdleTimeout = 100 * time.Millisecond })
	c := dialRaw(t, addr)
	c.reply()
	rep, _ := c.do("STARTTLS")
	require.Equal(t, CodeReadyTLS, rep.Code)
	_, err := c.r.ReadByte()
	assert.Error(t, err, "connection closed during the silent handshake")
	assert.Eventually(t, func() bool { return s.Metrics().TLSFailures == 1 }, 5*time.Second, 5*time.Millisecond)
}
