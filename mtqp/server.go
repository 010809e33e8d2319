package mtqp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("mtqp: server closed")

// Defaults for the zero Server fields.
const (
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultMaxConnDuration = 10 * time.Minute
	DefaultQueryTimeout    = 30 * time.Second
	DefaultMaxConnections  = 1000
	DefaultMaxErrors       = 20
	DefaultFailureBurst    = 10
	DefaultFailureEvery    = 6 * time.Second
	DefaultMaxClients      = 10000
)

// Server is an MTQP server (RFC 3887). Set the fields, then call Serve or
// ListenAndServe; do not change them afterwards. The zero value of every
// optional field is a safe default.
type Server struct {
	// Backend answers TRACK and RECALL. Required.
	Backend Backend
	// Addr is the address ListenAndServe listens on; empty means ":1038".
	Addr string
	// Domain is the host name in the greeting; empty means os.Hostname.
	Domain string
	// TLSConfig enables STARTTLS. The server enforces TLS 1.2 as the
	// minimum whatever it says (RFC 8996).
	TLSConfig *tls.Config
	// RequireTLS refuses TRACK and RECALL (530) before STARTTLS.
	RequireTLS bool
	// DisableRecall hides the vnd.msgtrack.recall option; RECALL then gets
	// 500 like any unknown command.
	DisableRecall bool

	// MaxConnections caps simultaneous connections; further ones are
	// greeted with 421 and closed. 0 means DefaultMaxConnections, <0 no cap.
	MaxConnections int
	// IdleTimeout is how long the server waits for the next command (and
	// for a reply to be taken); 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConnDuration is the longest a connection may last, however busy;
	// 0 means DefaultMaxConnDuration.
	MaxConnDuration time.Duration
	// QueryTimeout bounds one Backend call; 0 means DefaultQueryTimeout.
	QueryTimeout time.Duration
	// MaxErrors closes a connection (421) after this many error replies in
	// a row; 0 means DefaultMaxErrors.
	MaxErrors int

	// FailureRate and FailureBurst shape the per-client-address budget of
	// failed (not found) queries: a burst of FailureBurst, refilled at
	// FailureRate. When it is used up TRACK and RECALL get 450 without
	// reaching the Backend. Zero values mean one per DefaultFailureEvery
	// and DefaultFailureBurst; rate.Inf disables the limit.
	FailureRate  rate.Limit
	FailureBurst int
	// MaxClients bounds the addresses the limiter remembers; 0 means
	// DefaultMaxClients.
	MaxClients int

	// Logger receives one record per query (never the secret) and
	// connection events; nil discards them.
	Logger *slog.Logger

	initOnce sync.Once
	limiter  *failureLimiter
	m        metrics

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool
	wg        sync.WaitGroup
	baseCtx   context.Context
	cancel    context.CancelFunc
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.FailureRate != rate.Inf {
			lim, burst := s.FailureRate, s.FailureBurst
			if lim == 0 {
				lim = rate.Every(DefaultFailureEvery)
			}
			if burst <= 0 {
				burst = DefaultFailureBurst
			}
			max := s.MaxClients
			if max <= 0 {
				max = DefaultMaxClients
			}
			s.limiter = newFailureLimiter(lim, burst, max)
		}
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
	})
}

// Metrics returns a snapshot of this server's counters.
func (s *Server) Metrics() Metrics { return s.m.snapshot() }

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Server) domain() string {
	if s.Domain != "" {
		return s.Domain
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

func durOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// ListenAndServe listens on s.Addr (":1038" when empty) and serves.
func (s *Server) ListenAndServe() error {
	addr := s.Addr
	if addr == "" {
		addr = fmt.Sprintf(":%d", Port)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mtqp: listen: %w", err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown or Close, and always
// returns a non-nil error (ErrServerClosed after those). l is closed on
// return.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	if s.Backend == nil {
		l.Close()
		return errors.New("mtqp: Server.Backend is nil")
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	max := s.MaxConnections
	if max == 0 {
		max = DefaultMaxConnections
	}
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max1(backoff*2, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("mtqp: accept: %w", err)
		}
		backoff = 0
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		if max > 0 && s.m.open.Load() >= int64(max) {
			s.m.rejected.Add(1)
			s.mu.Unlock()
			go s.reject(nc)
			continue
		}
		c := &conn{srv: s, nc: nc, start: time.Now()}
		s.conns[c] = struct{}{}
		s.m.open.Add(1)
		s.m.accepted.Add(1)
		s.mu.Unlock()
		go c.serve(s.baseCtx)
	}
}

func max1(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// reject greets an over-limit connection with 421 and closes it.
func (s *Server) reject(nc net.Conn) {
	defer s.wg.Done()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = nc.Write(AppendReply(nil, CodeUnavailable, s.domain()+" Too many connections, try again later"))
	nc.Close()
}

// Shutdown stops accepting, lets every command already read finish and
// send its answer, closes idle connections with 421, and waits for all
// connections to end or ctx to be done (then it closes them, like Close,
// and returns ctx's error at once).
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.interruptIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		// Close cancels the Backend calls' contexts and closes every
		// connection; a Backend that ignores its context may still be
		// running when Shutdown returns.
		s.Close()
		return ctx.Err()
	}
}

// Close stops the server at once: listeners and connections are closed,
// in-flight Backend calls see their context cancelled.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	return nil
}

// conn is one client connection.
type conn struct {
	srv   *Server
	nc    net.Conn // the raw TCP connection (closing it ends everything)
	rw    net.Conn // what is read and written: nc, or the TLS conn over it
	r     *bufio.Reader
	tls   *tls.ConnectionState
	start time.Time

	mu   sync.Mutex
	idle bool // waiting for a command line

	// The command being answered, for metrics: send records it before
	// writing the reply, so a client that has the reply sees it counted.
	curVerb  string
	curStart time.Time
	observed bool

	buf []byte // reused for report replies
}

// beginIdle marks the connection as waiting for a command and arms the
// read deadline, unless the server is shutting down.
func (c *conn) beginIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv.closing.Load() {
		return false
	}
	_ = c.rw.SetDeadline(c.deadline())
	c.idle = true
	return true
}

func (c *conn) endIdle() {
	c.mu.Lock()
	c.idle = false
	c.mu.Unlock()
}

// interruptIfIdle wakes a connection blocked waiting for a command so it
// can say goodbye; a busy one notices the shutdown after its answer.
func (c *conn) interruptIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle {
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

// deadline is the next idle deadline, capped by the total one.
func (c *conn) deadline() time.Time {
	d := time.Now().Add(durOr(c.srv.IdleTimeout, DefaultIdleTimeout))
	if end := c.start.Add(durOr(c.srv.MaxConnDuration, DefaultMaxConnDuration)); end.Before(d) {
		d = end
	}
	return d
}

func (c *conn) reply(code int, lines ...string) error {
	_ = c.rw.SetWriteDeadline(c.deadline())
	_, err := c.rw.Write(AppendReply(nil, code, lines...))
	return err
}

func (c *conn) greeting() Greeting {
	g := Greeting{Domain: c.srv.domain(), Text: "MTQP server ready"}
	if c.srv.TLSConfig != nil && c.tls == nil {
		g.Options = append(g.Options, OptionStartTLS)
	}
	if !c.srv.DisableRecall {
		g.Options = append(g.Options, OptionRecall)
	}
	return g
}

func (c *conn) serve(ctx context.Context) {
	s := c.srv
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.m.open.Add(-1)
		s.wg.Done()
	}()
	c.rw = c.nc
	c.r = bufio.NewReaderSize(c.nc, 4096)
	log := s.logger().With("remote", c.nc.RemoteAddr().String())
	if c.reply(CodeGreeting, c.greeting().Lines()...) != nil {
		return
	}
	maxErr := s.MaxErrors
	if maxErr <= 0 {
		maxErr = DefaultMaxErrors
	}
	errorsInRow := 0
	for {
		if !c.beginIdle() {
			s.m.shutdownClosed.Add(1)
			_ = c.reply(CodeUnavailable, s.domain()+" Server shutting down")
			return
		}
		line, err := ReadLine(c.r, MaxLineLength)
		c.endIdle()
		t0 := time.Now()
		if err != nil {
			if errors.Is(err, ErrLineTooLong) {
				s.m.lineTooLong.Add(1)
				s.m.observe("UNKNOWN", time.Since(t0), true)
				if c.reply(CodeUnknownCommand, textTooLong) != nil {
					return
				}
				errorsInRow++
				if errorsInRow >= maxErr {
					_ = c.reply(CodeUnavailable, "Too many errors, closing")
					return
				}
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if s.closing.Load() {
					s.m.shutdownClosed.Add(1)
					_ = c.reply(CodeUnavailable, s.domain()+" Server shutting down")
				} else {
					s.m.timeouts.Add(1)
					log.Debug("mtqp: connection timed out")
					_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
					_, _ = c.rw.Write(AppendReply(nil, CodeUnavailable, s.domain()+" Timeout, closing connection"))
				}
			}
			return
		}
		cmd, perr := ParseCommand(line)
		if perr != nil {
			s.m.badLines.Add(1)
			s.m.observe("UNKNOWN", time.Since(t0), true)
			if c.reply(CodeUnknownCommand, textUnknown) != nil {
				return
			}
			errorsInRow++
			if errorsInRow >= maxErr {
				_ = c.reply(CodeUnavailable, "Too many errors, closing")
				return
			}
			continue
		}
		c.curVerb, c.curStart, c.observed = cmd.Verb, t0, false
		code, quit := c.dispatch(ctx, log, cmd)
		failed := code >= 400
		if !c.observed {
			s.m.observe(cmd.Verb, time.Since(t0), failed)
		}
		if quit {
			return
		}
		if failed {
			errorsInRow++
			if errorsInRow >= maxErr {
				_ = c.reply(CodeUnavailable, "Too many errors, closing")
				return
			}
		} else {
			errorsInRow = 0
		}
	}
}

// dispatch runs one command and returns the reply code sent and whether
// the connection is to end.
func (c *conn) dispatch(ctx context.Context, log *slog.Logger, cmd Command) (int, bool) {
	s := c.srv
	switch cmd.Verb {
	case CmdQuit:
		if len(cmd.Args) != 0 {
			return c.send(CodeSyntax, "QUIT takes no parameters")
		}
		c.send(CodeClosing, s.domain()+" Closing connection")
		return CodeClosing, true
	case CmdComment:
		// RFC 3887: COMMENT's text is ignored (logged).
		log.Debug("mtqp: comment", "len", len(cmd.Rest))
		return c.send(CodeOK, "OK")
	case CmdStartTLS:
		return c.startTLS(ctx, log, cmd)
	case CmdTrack:
		return c.query(ctx, log, cmd)
	case CmdRecall:
		if s.DisableRecall {
			return c.send(CodeUnknownCommand, textUnknown)
		}
		return c.query(ctx, log, cmd)
	}
	return c.send(CodeUnknownCommand, textUnknown)
}

// sendBytes writes a reply already in wire form.
func (c *conn) sendBytes(code int, wire []byte) (int, bool) {
	c.markObserved(code)
	_ = c.rw.SetWriteDeadline(c.deadline())
	if _, err := c.rw.Write(wire); err != nil {
		return code, true
	}
	return code, false
}

func (c *conn) markObserved(code int) {
	if !c.observed && c.curVerb != "" {
		c.observed = true
		c.srv.m.observe(c.curVerb, time.Since(c.curStart), code >= 400)
	}
}

func (c *conn) send(code int, lines ...string) (int, bool) {
	c.markObserved(code)
	if err := c.reply(code, lines...); err != nil {
		return code, true
	}
	return code, false
}

func (c *conn) startTLS(ctx context.Context, log *slog.Logger, cmd Command) (int, bool) {
	s := c.srv
	switch {
	case len(cmd.Args) != 0:
		return c.send(CodeSyntax, "STARTTLS takes no parameters")
	case c.tls != nil:
		return c.send(CodeBadSequence, "TLS already active")
	case s.TLSConfig == nil:
		return c.send(CodeTLSUnavailable, "TLS not available")
	}
	// Anything the client pipelined behind STARTTLS is plaintext that an
	// attacker could have injected: drop it (the CVE-2011-0411 class).
	if c.r.Buffered() > 0 {
		s.m.plainDropped.Add(1)
		log.Warn("mtqp: discarding plaintext pipelined after STARTTLS", "bytes", c.r.Buffered())
	}
	if err := c.reply(CodeReadyTLS, "Ready to start TLS"); err != nil {
		return CodeReadyTLS, true
	}
	cfg := s.TLSConfig.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12 // RFC 8996
	}
	tc := tls.Server(c.nc, cfg)
	_ = c.nc.SetDeadline(c.deadline())
	hctx, cancel := context.WithDeadline(ctx, c.deadline())
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		s.m.tlsFailures.Add(1)
		log.Info("mtqp: TLS handshake failed", "err", err)
		return CodeReadyTLS, true
	}
	st := tc.ConnectionState()
	c.rw, c.tls = tc, &st
	c.r = bufio.NewReaderSize(tc, 4096) // the old reader and its plaintext are dropped
	if err := c.reply(CodeGreeting, c.greeting().Lines()...); err != nil {
		return CodeGreeting, true
	}
	return CodeReadyTLS, false
}

func (c *conn) query(ctx context.Context, log *slog.Logger, cmd Command) (int, bool) {
	s := c.srv
	t0 := time.Now()
	args, err := ParseTrackArgs(cmd.Args)
	if err != nil {
		return c.send(CodeSyntax, "Syntax: "+cmd.Verb+" envid secret")
	}
	logq := func(code int, outcome string) {
		log.LogAttrs(ctx, slog.LevelInfo, "mtqp query",
			slog.String("cmd", cmd.Verb), slog.String("envid", args.EnvID),
			slog.Bool("tls", c.tls != nil), slog.Int("code", code),
			slog.String("outcome", outcome), slog.Duration("duration", time.Since(t0)))
	}
	if s.RequireTLS && c.tls == nil {
		logq(CodeNeedTLS, "tls required")
		return c.send(CodeNeedTLS, textNeedTLS)
	}
	key := hostOf(c.nc.RemoteAddr())
	if !s.limiter.allowed(key, time.Now()) {
		s.m.rateLimited.Add(1)
		logq(CodeRateLimited, "rate limited")
		return c.send(CodeRateLimited, textRateLimited)
	}
	q := Query{Command: cmd.Verb, EnvID: args.EnvID, Secret: args.Secret, RemoteAddr: c.nc.RemoteAddr(), TLS: c.tls}
	qctx, cancel := context.WithTimeout(ctx, durOr(s.QueryTimeout, DefaultQueryTimeout))
	var rep *Report
	if cmd.Verb == CmdRecall {
		rep, err = s.Backend.Recall(qctx, q)
	} else {
		rep, err = s.Backend.Track(qctx, q)
	}
	cancel()
	clear(args.Secret) // the secret lives no longer than the query
	if err == nil && rep == nil {
		err = ErrNotFound
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			s.limiter.fail(key, time.Now())
			s.m.notFound.Add(1)
			logq(CodeNotFound, "not found")
			return c.send(CodeNotFound, textNotFound)
		}
		var rp Replier
		if errors.As(err, &rp) {
			code, msg := rp.MTQPReply()
			if code < 200 || code > 599 {
				code = CodeLocalError
			}
			logq(code, err.Error())
			return c.send(code, sanitizeText(msg))
		}
		logq(CodeLocalError, err.Error())
		return c.send(CodeLocalError, textLocalError)
	}
	buf := c.buf[:0]
	buf, err = rep.AppendFormat(buf)
	if err != nil {
		logq(CodeLocalError, "bad report: "+err.Error())
		return c.send(CodeLocalError, textLocalError)
	}
	n := len(buf)
	buf = appendReportReply(buf, buf[:n], "End of report")
	if cap(buf) <= 64<<10 {
		c.buf = buf // keep a modest buffer for the next answer
	}
	logq(CodeOK, "ok")
	return c.sendBytes(CodeOK, buf[n:])
}

// sanitizeText keeps a Backend's message to one printable line.
func sanitizeText(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// hostOf is the rate-limit key: the IP without the port.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
