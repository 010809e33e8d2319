package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/gosmtp"
	"github.com/msgtrack/msgtrack/tracking/mtqpbackend"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
	"golang.org/x/time/rate"
)

// logs is a slog.Handler that keeps every record, for assertions.
type logs struct {
	mu   *sync.Mutex
	recs *[]slog.Record
	pre  []slog.Attr
}

func newLogs() *logs { return &logs{mu: &sync.Mutex{}, recs: &[]slog.Record{}} }

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(l.pre...)
	l.mu.Lock()
	*l.recs = append(*l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *logs) WithAttrs(as []slog.Attr) slog.Handler {
	return &logs{mu: l.mu, recs: l.recs, pre: append(append([]slog.Attr(nil), l.pre...), as...)}
}
func (l *logs) WithGroup(string) slog.Handler { return l }

// warnings returns the text of the warn records whose message contains sub,
// with their attributes.
func (l *logs) warnings(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range *l.recs {
		if r.Level != slog.LevelWarn || !strings.Contains(r.Message, sub) {
			continue
		}
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// inbox is the wrapped backend: it keeps every message it accepted, with
// the tracking information the middleware handed it.
type inbox struct {
	mu   sync.Mutex
	msgs map[string]*gosmtp.Tracking // by Message-ID field body
	n    atomic.Int64
}

func newInbox() *inbox { return &inbox{msgs: map[string]*gosmtp.Tracking{}} }

func (b *inbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &inboxSession{b: b}, nil }

func (b *inbox) get(msgID string) (*gosmtp.Tracking, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.msgs[msgID]
	return t, ok
}

func (b *inbox) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.msgs)
}

type inboxSession struct {
	b *inbox
	t *gosmtp.Tracking
}

func (s *inboxSession) Reset()                               {}
func (s *inboxSession) Logout() error                        { return nil }
func (s *inboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *inboxSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *inboxSession) SetTracking(t *gosmtp.Tracking)       { s.t = t }
func (s *inboxSession) AuthMechanisms() []string             { return []string{sasl.Plain} }
func (s *inboxSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if pass != "pw-"+user {
			return errors.New("bad password")
		}
		return nil
	}), nil
}

func (s *inboxSession) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	id := ""
	for _, ln := range strings.Split(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(ln, "Message-ID: "); ok {
			id = v
			break
		}
	}
	cp := *s.t
	s.b.mu.Lock()
	s.b.msgs[id] = &cp
	s.b.mu.Unlock()
	s.b.n.Add(1)
	return nil
}

// stack is go-smtp behind smtpext and the tracking middleware, with the
// engine on a store, as an MTA would run it.
type stack struct {
	addr  string
	mw    *gosmtp.Middleware
	eng   *tracking.Engine
	inbox *inbox
	logs  *logs
}

type stackOptions struct {
	store        trackstore.Store
	channel      channelopts.Channel
	generator    *idgen.Generator
	storeTimeout time.Duration
	maxRcpts     int
	engine       tracking.Options
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	lg := newLogs()
	logger := slog.New(lg)
	o.engine.Logger = logger
	if o.engine.ReportingMTA == "" {
		o.engine.ReportingMTA = "mx.faults.test"
	}
	if o.engine.RetryDelay == 0 {
		o.engine.RetryDelay = 5 * time.Millisecond
	}
	eng := tracking.New(o.store, o.engine)
	if !o.channel.TrackingServer && o.channel.TrackingGenerate == 0 {
		o.channel.TrackingServer = true
	}
	in := newInbox()
	mw, err := gosmtp.New(in, o.channel, gosmtp.Options{Engine: eng, Generator: o.generator, Hostname: "mx.faults.test",
		StoreTimeout: o.storeTimeout, Logger: logger})
	require.NoError(t, err)
	srv := smtp.NewServer(nil)
	srv.Domain = "mx.faults.test"
	srv.MaxRecipients = o.maxRcpts
	if srv.MaxRecipients == 0 {
		srv.MaxRecipients = 100
	}
	srv.MaxMessageBytes = 1 << 20
	ext, err := mw.NewServer(srv, smtpext.Config{AllowInsecureAuth: true, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { _ = ext.Serve(l); close(done) }()
	t.Cleanup(func() { ext.Close(); <-done })
	return &stack{addr: l.Addr().String(), mw: mw, eng: eng, inbox: in, logs: lg}
}

// message is one message a test sends.
type message struct {
	msgID  string
	envID  string
	secret mtrk.Secret // nil: no MTRK=
	user   string      // non-empty: AUTH PLAIN first
	rcpts  []string
}

func newTrackedMessage(t *testing.T, i int) message {
	secret, err := mtrk.NewSecret()
	require.NoError(t, err)
	return message{msgID: fmt.Sprintf("<m%d.%d@client.faults.test>", i, time.Now().UnixNano()), envID: fmt.Sprintf("env-%d", i),
		secret: secret, rcpts: []string{"bob@example.org"}}
}

// send delivers m over a new connection and returns the server's verdict
// at the end of DATA (nil is 250).
func send(ctx context.Context, addr string, m message) error {
	c, err := smtpext.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.AllowInsecureAuth = true
	if err := c.Hello(ctx, "client.faults.test"); err != nil {
		return err
	}
	if m.user != "" {
		if err := c.Auth(ctx, sasl.NewPlainClient("", m.user, "pw-"+m.user)); err != nil {
			return err
		}
	}
	var params []smtpext.MailParam
	if m.envID != "" {
		params = append(params, smtpext.MailParam{Name: "ENVID", Value: smtpext.XText(m.envID), Keyword: "DSN"})
	}
	if m.secret != nil {
		params = append(params, smtpext.MailParam{Name: "MTRK", Value: m.secret.Certifier().String(), Keyword: "MTRK"})
	}
	if err := c.Mail(ctx, "alice@example.test", params...); err != nil {
		return err
	}
	for _, r := range m.rcpts {
		if _, err := c.Rcpt(ctx, r); err != nil {
			return err
		}
	}
	w, err := c.Data(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Message-ID: %s\r\nDate: Sat, 1 Aug 2026 12:34:56 +0200\r\nSubject: faults\r\n\r\nbody\r\n", m.msgID)
	if err := w.Close(); err != nil {
		return err
	}
	_ = c.Quit(ctx)
	return nil
}

func memcacheStore(t *testing.T, addr string, timeout time.Duration) *memcachestore.Store {
	t.Helper()
	st, err := memcachestore.New(memcachestore.Options{Servers: []string{addr}, Timeout: timeout})
	require.NoError(t, err)
	return st
}

// startMTQP serves eng over MTQP on 127.0.0.1.
func startMTQP(t *testing.T, s *mtqp.Server, eng *tracking.Engine) string {
	t.Helper()
	s.Backend = mtqpbackend.New(eng, mtqpbackend.Options{ReportingMTA: "mx.faults.test"})
	if s.Domain == "" {
		s.Domain = "mx.faults.test"
	}
	if s.FailureRate == 0 {
		s.FailureRate = rate.Inf
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { _ = s.Serve(l); close(done) }()
	t.Cleanup(func() { s.Close(); <-done })
	return l.Addr().String()
}

// delayProxy is a loopback TCP proxy in front of a server that holds every
// reply from the server for Delay before passing it on.
type delayProxy struct {
	Addr  string
	delay atomic.Int64
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startDelayProxy(t *testing.T, upstream string) *delayProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &delayProxy{Addr: l.Addr().String(), l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(u, c); u.Close() }()
			go func() {
				defer p.wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 {
						time.Sleep(time.Duration(p.delay.Load()))
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *delayProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }
