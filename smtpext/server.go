package smtpext

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxLineLength    = 2000 // go-smtp's own default
	DefaultReadTimeout      = 5 * time.Minute
	DefaultWriteTimeout     = 5 * time.Minute
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultMaxConnections   = 1024
	// MaxLineLengthLimit is the largest MaxLineLength the layer accepts: a
	// whole line must fit in one Read of go-smtp's 4096-byte buffer.
	MaxLineLengthLimit = 4000
)

// BareLFPolicy says what the layer does with a command line that ends in
// LF without CR (RFC 5321 section 2.3.8 requires CRLF).
type BareLFPolicy int

const (
	// BareLFAccept treats LF as the end of a command line, as go-smtp
	// does. This is safe against SMTP smuggling because inside DATA a
	// bare LF is never part of the end-of-data marker (see dotState).
	BareLFAccept BareLFPolicy = iota
	// BareLFReject answers a command line ending in a bare LF with
	// 500 5.5.2 and closes the connection. Message content is unaffected:
	// bare LFs inside DATA and BDAT reach the backend as they are.
	BareLFReject
)

// Config configures a Server. The zero value is usable: no extensions,
// no TLS, the defaults above.
type Config struct {
	// Extensions are the extra EHLO keywords and MAIL/RCPT parameters.
	Extensions []Extension
	// TLSConfig enables STARTTLS (RFC 3207) and ServeTLS. When nil,
	// NewServer takes the smtp.Server's TLSConfig.
	TLSConfig *tls.Config
	// AllowInsecureAuth advertises and accepts AUTH before TLS. When
	// false (and smtp.Server.AllowInsecureAuth was false too), AUTH is
	// neither advertised nor accepted on a plaintext connection: it gets
	// 538 5.7.11 (RFC 4954 section 6).
	AllowInsecureAuth bool
	// MaxLineLength is the command line limit in bytes, LF excluded, with
	// go-smtp's accounting (the first line of a connection may be one byte
	// longer, because go-smtp counts each line's LF towards the next).
	// Zero takes smtp.Server.MaxLineLength, or DefaultMaxLineLength when
	// that is zero too; NewServer sets the smtp.Server to the same value
	// so the limit also holds inside DATA (where go-smtp enforces it).
	// A longer command line gets go-smtp's "500 5.4.0 Too long line" and
	// the connection is closed.
	MaxLineLength int
	// BareLF selects the bare-LF policy for command lines.
	BareLF BareLFPolicy
	// ReadTimeout bounds every read from the socket, WriteTimeout every
	// write. Zero takes smtp.Server's value, or the default when that is
	// zero too; a negative value disables the timeout. NewServer clears
	// the smtp.Server's own timeouts: the layer applies these.
	ReadTimeout, WriteTimeout time.Duration
	// HandshakeTimeout bounds a TLS handshake (implicit TLS or STARTTLS).
	// Zero means DefaultHandshakeTimeout; negative disables it.
	HandshakeTimeout time.Duration
	// MaxConnections caps the open client sockets, counting those in a
	// TLS handshake. Further clients get "421 4.4.5 Too busy" and are
	// disconnected. Zero means DefaultMaxConnections; negative means no
	// cap.
	MaxConnections int
	// Logger receives connection-level events (handshake failures,
	// rejections). Nil discards them.
	Logger *slog.Logger
}

// ListenerConfig configures one listener of a Server.
type ListenerConfig struct {
	// Name identifies the listener to Conditions (see OnListeners) and to
	// sessions (Info.Listener).
	Name string
	// ImplicitTLS runs TLS from the first byte (RFC 8314 section 3.3);
	// STARTTLS is then neither offered nor accepted.
	ImplicitTLS bool
}

// Stats are counters a caller can read and publish.
type Stats struct {
	Accepted       uint64 // client sockets admitted (within MaxConnections)
	Rejected       uint64 // refused because of MaxConnections
	Active         int    // client sockets open now
	Handshakes     uint64 // successful TLS handshakes
	HandshakeFails uint64 // failed TLS handshakes
}

// Server serves an smtp.Server through the extension layer. Build it with
// NewServer; it is safe for concurrent use.
type Server struct {
	srv *smtp.Server
	cfg Config
	reg *registry
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	listeners map[*listener]struct{}
	socks     map[*socket]struct{}

	accepted, rejected, handshakes, hsFails atomic.Uint64
}

// ErrServerClosed is returned by Serve* after Close or Shutdown began.
var ErrServerClosed = errors.New("smtpext: server closed")

// NewServer prepares srv to be served through the layer. It takes over
// srv's TLS, AUTH gating, line-limit and timeout settings so that the
// combination cannot be wired up insecurely by accident:
//
//   - srv.TLSConfig moves to the layer (go-smtp must never do its own
//     STARTTLS behind the layer) and srv.TLSConfig is set to nil;
//   - srv.AllowInsecureAuth becomes true, because go-smtp cannot see the
//     layer's TLS; the layer gates AUTH itself (Config.AllowInsecureAuth);
//   - srv.MaxLineLength is set to Config.MaxLineLength;
//   - srv.ReadTimeout and srv.WriteTimeout move to the layer.
//
// srv must not be served or modified by anything else afterwards.
func NewServer(srv *smtp.Server, cfg Config) (*Server, error) {
	if srv == nil || srv.Backend == nil {
		return nil, errors.New("smtpext: smtp.Server with a Backend required")
	}
	reg, err := newRegistry(cfg.Extensions)
	if err != nil {
		return nil, err
	}
	if srv.EnableREQUIRETLS {
		// go-smtp accepts REQUIRETLS even in plaintext; RFC 8689 section
		// 4 ties it to TLS. The layer advertises it after TLS only and
		// answers it with 555 before.
		reg.mail["REQUIRETLS"] = paramEntry{
			ext:  &Extension{When: AfterTLS},
			spec: ParamSpec{Name: "REQUIRETLS", PassThrough: true},
		}
	}
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = srv.TLSConfig
	}
	if cfg.TLSConfig != nil {
		cfg.TLSConfig = cfg.TLSConfig.Clone()
		if cfg.TLSConfig.MinVersion < tls.VersionTLS12 {
			cfg.TLSConfig.MinVersion = tls.VersionTLS12 // RFC 8996
		}
	}
	cfg.AllowInsecureAuth = cfg.AllowInsecureAuth || srv.AllowInsecureAuth
	if cfg.MaxLineLength == 0 {
		cfg.MaxLineLength = srv.MaxLineLength
	}
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = DefaultMaxLineLength
	}
	if cfg.MaxLineLength > MaxLineLengthLimit {
		return nil, fmt.Errorf("smtpext: MaxLineLength %d over %d", cfg.MaxLineLength, MaxLineLengthLimit)
	}
	pick := func(v, fromSrv, def time.Duration) time.Duration {
		switch {
		case v < 0:
			return 0
		case v > 0:
			return v
		case fromSrv > 0:
			return fromSrv
		}
		return def
	}
	cfg.ReadTimeout = pick(cfg.ReadTimeout, srv.ReadTimeout, DefaultReadTimeout)
	cfg.WriteTimeout = pick(cfg.WriteTimeout, srv.WriteTimeout, DefaultWriteTimeout)
	cfg.HandshakeTimeout = pick(cfg.HandshakeTimeout, 0, DefaultHandshakeTimeout)
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}

	srv.TLSConfig = nil
	srv.AllowInsecureAuth = true
	srv.MaxLineLength = cfg.MaxLineLength
	srv.ReadTimeout, srv.WriteTimeout = 0, 0

	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		srv: srv, cfg: cfg, reg: reg, log: lg,
		ctx: ctx, cancel: cancel,
		listeners: map[*listener]struct{}{},
		socks:     map[*socket]struct{}{},
	}, nil
}

// Serve accepts plaintext connections on l (STARTTLS is offered when a
// TLS configuration is set) and serves them until Close or Shutdown; it
// then returns nil. It closes l.
func (s *Server) Serve(l net.Listener) error { return s.ServeListener(l, ListenerConfig{}) }

// ServeTLS is Serve with implicit TLS (RFC 8314).
func (s *Server) ServeTLS(l net.Listener) error {
	return s.ServeListener(l, ListenerConfig{ImplicitTLS: true})
}

// ServeListener serves l with per-listener settings. It blocks like Serve.
func (s *Server) ServeListener(l net.Listener, lc ListenerConfig) error {
	if lc.ImplicitTLS && s.cfg.TLSConfig == nil {
		return errors.New("smtpext: implicit TLS needs a TLS configuration")
	}
	wl := &listener{s: s, inner: l, cfg: lc, ch: make(chan *conn), errc: make(chan error, 1), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[wl] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go wl.acceptLoop()

	err := s.srv.Serve(wl)
	wl.Close()
	s.mu.Lock()
	delete(s.listeners, wl)
	closed := s.closed
	s.mu.Unlock()
	if closed || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close closes the listeners and every client connection at once,
// including connections in a TLS handshake or being handed to go-smtp
// after STARTTLS, and waits for the layer's goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ls := make([]*listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	s.cancel()
	for _, l := range ls {
		l.Close()
	}
	err := s.srv.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	s.mu.Lock()
	socks := make([]*socket, 0, len(s.socks))
	for k := range s.socks {
		socks = append(socks, k)
	}
	s.mu.Unlock()
	for _, k := range socks {
		k.close(nil)
	}
	s.wg.Wait()
	return err
}

// Shutdown stops accepting, lets go-smtp finish its sessions (see
// smtp.Server.Shutdown) and waits for them. TLS handshakes in progress
// are cancelled. If ctx ends first, Shutdown returns ctx.Err() and the
// remaining connections stay open until Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	ls := make([]*listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	// Handshakes cannot finish into a closed listener: cancel them.
	s.cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	active := len(s.socks)
	s.mu.Unlock()
	return Stats{
		Accepted: s.accepted.Load(), Rejected: s.rejected.Load(), Active: active,
		Handshakes: s.handshakes.Load(), HandshakeFails: s.hsFails.Load(),
	}
}

// admit registers a new client socket, or refuses it (cap or closed).
func (s *Server) admit(raw net.Conn) (*socket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	if s.cfg.MaxConnections > 0 && len(s.socks) >= s.cfg.MaxConnections {
		s.rejected.Add(1)
		return nil, false
	}
	k := &socket{s: s, raw: raw}
	s.socks[k] = struct{}{}
	s.accepted.Add(1)
	return k, true
}

// handshake runs a server TLS handshake on raw under HandshakeTimeout and
// the server's lifetime.
func (s *Server) handshake(raw net.Conn) (*tls.Conn, error) {
	tc := tls.Server(raw, s.cfg.TLSConfig)
	ctx := s.ctx
	if d := s.cfg.HandshakeTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		s.hsFails.Add(1)
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("smtpext: TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		}
		if ctx.Err() == context.DeadlineExceeded {
			return nil, &timeoutError{op: "TLS handshake", err: err}
		}
		return nil, fmt.Errorf("smtpext: TLS handshake: %w", err)
	}
	s.handshakes.Add(1)
	return tc, nil
}

// timeoutError is returned for the layer's own timeouts; like the errors
// of net, it reports Timeout().
type timeoutError struct {
	op  string
	err error
}

func (e *timeoutError) Error() string   { return "smtpext: " + e.op + " timed out: " + e.err.Error() }
func (e *timeoutError) Unwrap() error   { return e.err }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// socket is one accepted client socket; it holds a MaxConnections slot
// until closed, across the STARTTLS handoff between two go-smtp
// connections.
type socket struct {
	s    *Server
	raw  net.Conn
	once sync.Once
}

// close closes the socket (through c when it is a TLS layer over it) and
// releases its slot. It is idempotent.
func (k *socket) close(c io.Closer) error {
	var err error
	k.once.Do(func() {
		if c != nil {
			err = c.Close()
		}
		if e := k.raw.Close(); err == nil && c == nil {
			err = e
		}
		k.s.mu.Lock()
		delete(k.s.socks, k)
		k.s.mu.Unlock()
	})
	return err
}

// listener is the net.Listener go-smtp serves: it hands go-smtp the
// layer's connections, including those re-created after STARTTLS.
type listener struct {
	s     *Server
	inner net.Listener
	cfg   ListenerConfig
	ch    chan *conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

func (l *listener) Addr() net.Addr { return l.inner.Addr() }

// deliver hands c to go-smtp's accept loop; false once the listener is
// closed.
func (l *listener) deliver(c *conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *listener) acceptLoop() {
	defer l.s.wg.Done()
	var delay time.Duration
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.s.log.Warn("smtpext: accept", "err", err, "retry", delay)
				select {
				case <-time.After(delay):
				case <-l.done:
					return
				}
				continue
			}
			l.errc <- err
			return
		}
		delay = 0
		k, ok := l.s.admit(raw)
		if !ok {
			if l.s.log.Enabled(context.Background(), slog.LevelInfo) {
				l.s.log.Info("smtpext: connection refused (busy or closing)", "remote", raw.RemoteAddr().String())
			}
			_ = raw.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(raw, "421 4.4.5 Too busy. Try again later.\r\n")
			raw.Close()
			continue
		}
		if l.cfg.ImplicitTLS {
			l.s.wg.Add(1)
			go func() {
				defer l.s.wg.Done()
				tc, err := l.s.handshake(raw)
				if err != nil {
					k.close(nil)
					return
				}
				st := tc.ConnectionState()
				if !l.deliver(newConn(l, k, tc, &st, false)) {
					k.close(tc)
				}
			}()
			continue
		}
		if !l.deliver(newConn(l, k, raw, nil, false)) {
			k.close(nil)
			return
		}
	}
}
