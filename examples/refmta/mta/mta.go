// Package mta assembles the msgtrack packages into the reference MTA that
// examples/refmta runs and examples/demo starts in-process.
//
// One MTA has three listeners and one queue:
//
//   - an MX listener (RFC 5321) on the channel "tcp_local": MTRK (RFC 3885)
//     per the channel's options, no FUTURERELEASE, no AUTH, relaying only to
//     the local domains;
//   - a submission listener (RFC 6409) on the channel "tcp_submit":
//     STARTTLS (RFC 3207), AUTH PLAIN (RFC 4954, RFC 4616) from the users
//     file, MTRK, FUTURERELEASE (RFC 4865) after TLS, relaying for
//     authenticated users only;
//   - an MTQP listener (RFC 3887) answering TRACK and the non-standard
//     RECALL from the tracking engine;
//   - the durable spool and its scheduler: a message is spooled (write,
//     fsync, rename) before the 250 reply to DATA, released at its
//     FUTURERELEASE time, delivered to Maildir for the local domains and to
//     the relay host (channel "tcp_relay", MTRK= passed on when the peer
//     offers it) for the others, retried with backoff, and failed with an
//     RFC 3464 DSN when a permanent error or the queue lifetime ends it.
//
// # Tracking
//
// The go-smtp middleware (tracking/gosmtp) parses MTRK, HOLDFOR and
// HOLDUNTIL and writes the tracking record after the session has spooled
// the message. Aliases are expanded when the message is spooled, under the
// source channel's alias policy (package aliasing: mailing lists never
// carry the certifier), and the expansion is recorded right after the
// record is written (tracking.Engine.Expanded) and before any delivery
// attempt. Before each attempt the scheduler claims the recipients in the
// spool and the MTA claims them in the record (Engine.BeginDelivery); a
// recipient a recall claimed first is withdrawn from the spool and
// confirmed (Engine.Recalled). A recall made through this MTA's MTQP
// listener removes recipients through the spool (the engine's
// tracking.Queue is Spool.Recall), and a poller asks the engine, for every
// tracked message still queued, whether a recall made at another MTA of
// the deployment is waiting for this queue (Engine.PendingRecall). The
// spool is the authority: a recalled recipient stays recalled whatever
// happens to the store.
//
// # Precedence
//
// Config holds the final values: the command line (examples/refmta) puts
// the product's option file (channelopts.ParseMTA) and channel table
// (channelopts.ParseChannels) into Config.Options and Config.Channels and
// lets explicit flags win over them (for example -store over tracking_mode
// and memcache_host).
package mta

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/aliases"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/maildir"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/scheduler"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/spool"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/users"
	"github.com/msgtrack/msgtrack/futurerelease"
	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/idgen/ldapsecret"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/gosmtp"
	"github.com/msgtrack/msgtrack/tracking/mtqpbackend"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// The channel names the MTA looks up in Config.Channels. A channel missing
// from the table gets the defaults of DefaultChannel.
const (
	// ChannelMX is the source channel of the MX listener.
	ChannelMX = "tcp_local"
	// ChannelSubmission is the source channel of the submission listener.
	ChannelSubmission = "tcp_submit"
	// ChannelRelay is the destination channel towards Config.Relay.
	ChannelRelay = "tcp_relay"
)

// Defaults for zero Config fields.
const (
	DefaultMXAddr         = "127.0.0.1:2525"
	DefaultSubmissionAddr = "127.0.0.1:5587"
	DefaultMTQPAddr       = "127.0.0.1:11038"
	DefaultMaxHold        = 7 * 24 * time.Hour
	DefaultMaxMessage     = 32 << 20
	DefaultPollInterval   = 2 * time.Second
	DefaultRetain         = time.Hour
)

// DefaultChannel returns the channel options used for name when the
// channel table does not define it:
//
//	tcp_local   trackingserver                      (MTRK offered on MX, internal)
//	tcp_submit  trackingserver trackinggenerate 259200
//	tcp_relay   trackingclient                      (MTRK passed on, internal)
func DefaultChannel(name string) channelopts.Channel {
	ch := channelopts.Channel{Name: name}
	switch name {
	case ChannelMX:
		ch.TrackingServer = true
	case ChannelSubmission:
		ch.TrackingServer = true
		ch.TrackingGenerate = 259200 * time.Second
	case ChannelRelay:
		ch.TrackingClient = true
	}
	return ch
}

// LDAPConfig is the directory holding users' general recall secrets (the
// SHA-1 trackinggenerate path). An empty URL disables it.
type LDAPConfig struct {
	URL          string
	BindDN       string
	BindPassword string
	BaseDN       string
	// Filter defaults to ldapsecret.DefaultFilter.
	Filter string
	// Attribute is ldap_attr_auth_recall_secret; the option file's value
	// is used when empty.
	Attribute string
	StartTLS  bool
	// TLSConfig verifies the directory; nil means the system roots.
	TLSConfig *tls.Config
}

// Config configures an MTA. Only SpoolDir and MaildirRoot are required.
type Config struct {
	// MXAddr, SubmissionAddr and MTQPAddr are the listen addresses; "-"
	// disables a listener; empty means the default. Port 0 picks a free
	// port (see MTA.Addrs).
	MXAddr, SubmissionAddr, MTQPAddr string
	// Hostname names this MTA: EHLO greeting, Received, Reporting-MTA and
	// the owner of its recipients in shared records (it must differ
	// between MTAs sharing a store). Default os.Hostname.
	Hostname string
	// Store is "memory" or "memcache://host:port[,host:port...]". Empty
	// means the option file's choice: memcached when tracking_mode is 1
	// (memcache_host, memcache_port), otherwise memory.
	Store string
	// SpoolDir and MaildirRoot are the queue and mailbox directories.
	SpoolDir, MaildirRoot string
	// LocalDomains are delivered to Maildir; the first one qualifies bare
	// alias targets.
	LocalDomains []string
	// UsersFile has "name:password" lines (AUTH PLAIN, and the local
	// mailboxes). Without one nobody can authenticate and every valid
	// local part of a local domain is a mailbox.
	UsersFile string
	// AliasesFile defines aliases and lists (package aliases format).
	AliasesFile string
	// InternalMX marks the MX listener as receiving mail from other MTAs
	// of the same deployment (sharing the store): an arrival with MTRK
	// then joins the existing record as a further hop
	// (tracking.Accept.Internal). Leave it off on an MX that faces the
	// Internet: there an arrival always starts a record of its own.
	// Submission is never internal.
	InternalMX bool
	// Relay is host:port for mail to other domains; empty fails such mail
	// permanently (5.4.4, no route).
	Relay string
	// MaxHold is the FUTURERELEASE interval limit; 0 means DefaultMaxHold.
	MaxHold time.Duration
	// Options are the MTA options (option.dat).
	Options channelopts.MTA
	// Channels is the channel table; see the Channel* names.
	Channels []channelopts.Channel
	// TLSCert and TLSKey are PEM files; empty makes a self-signed
	// certificate at start.
	TLSCert, TLSKey string
	// LDAP enables the SHA-1 trackinggenerate path.
	LDAP LDAPConfig
	// MaxLifetime is the queue lifetime (default 5 days);
	// InitialBackoff the first retry delay (default 30 minutes).
	MaxLifetime, InitialBackoff time.Duration
	// PollInterval is how often queued tracked messages are checked for
	// recalls made elsewhere; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// Retain keeps finished messages in the spool so that a repeated
	// recall still gets the spool's answer; 0 means DefaultRetain.
	Retain time.Duration
	// MaxConnections caps the open connections of each listener (SMTP
	// and MTQP); 0 means the packages' defaults (1024), negative no cap.
	MaxConnections int
	// SessionRate and SessionBurst limit new SMTP sessions per client IP
	// address (token bucket); 0 means DefaultSessionRate and
	// DefaultSessionBurst, a negative rate no limit. A client over its
	// budget gets 421 4.7.0 to EHLO.
	SessionRate  float64
	SessionBurst int
	// Logger receives every log line; nil means slog.Default().
	Logger *slog.Logger
}

// Addrs are the addresses an MTA listens on ("" for a disabled listener).
type Addrs struct {
	MX, Submission, MTQP string
}

// MTA is a running reference MTA.
type MTA struct {
	cfg      Config
	log      *slog.Logger
	hostname string
	local    map[string]bool

	store   trackstore.Store
	closers []io.Closer
	engine  *tracking.Engine
	spool   *spool.Spool
	sched   *scheduler.Scheduler
	maildir *maildir.Maildir
	users   *users.File
	aliases *aliases.File
	logCfg  tracking.LogConfig
	tlsConf *tls.Config

	chMX, chSub, chRelay channelopts.Channel
	relay                *gosmtp.Relay

	mxSrv, subSrv *smtpext.Server
	mxMW, subMW   *gosmtp.Middleware
	mtqpSrv       *mtqp.Server
	listeners     []net.Listener
	addrs         Addrs

	limit *limiter

	gatesMu sync.Mutex
	gates   map[string]chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens the spool and the store, builds every component and binds the
// listeners, but serves nothing until Start.
func New(ctx context.Context, cfg Config) (_ *MTA, err error) {
	m := &MTA{cfg: cfg, log: cfg.Logger, gates: map[string]chan struct{}{}, local: map[string]bool{}}
	if m.log == nil {
		m.log = slog.Default()
	}
	defer func() {
		if err != nil {
			m.closeAll()
		}
	}()
	m.hostname = cfg.Hostname
	if m.hostname == "" {
		m.hostname, _ = os.Hostname()
		if m.hostname == "" {
			m.hostname = "localhost"
		}
	}
	for _, d := range cfg.LocalDomains {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			m.local[d] = true
		}
	}
	if cfg.SpoolDir == "" || cfg.MaildirRoot == "" {
		return nil, errors.New("mta: the spool and maildir directories are required")
	}
	if err := cfg.Options.Validate(); err != nil {
		return nil, fmt.Errorf("mta: options: %w", err)
	}
	m.limit = newLimiter(cfg.SessionRate, cfg.SessionBurst)
	m.logCfg = tracking.LogConfig{
		Tracking:      tracking.LogFlags(cfg.Options.LogTracking),
		FutureRelease: tracking.LogFlags(cfg.Options.LogFutureRelease),
	}
	m.chMX, m.chSub, m.chRelay = m.channel(ChannelMX), m.channel(ChannelSubmission), m.channel(ChannelRelay)

	if m.tlsConf, err = loadTLS(cfg.TLSCert, cfg.TLSKey, m.hostname); err != nil {
		return nil, err
	}
	if cfg.UsersFile != "" {
		if m.users, err = users.Load(ctx, cfg.UsersFile); err != nil {
			return nil, fmt.Errorf("mta: users: %w", err)
		}
	}
	if cfg.AliasesFile != "" {
		if m.aliases, err = aliases.Load(ctx, cfg.AliasesFile); err != nil {
			return nil, fmt.Errorf("mta: aliases: %w", err)
		}
	}
	if m.store, err = m.openStore(); err != nil {
		return nil, err
	}
	if m.spool, err = spool.Open(ctx, cfg.SpoolDir, spool.Options{Logger: m.log}); err != nil {
		return nil, fmt.Errorf("mta: spool: %w", err)
	}
	m.closers = append(m.closers, m.spool)
	for _, d := range m.spool.Damaged() {
		m.log.Warn("spool: damaged message moved aside", "id", d.ID, "path", d.Path, "err", d.Err)
	}
	if m.maildir, err = maildir.New(cfg.MaildirRoot, maildir.Options{Hostname: m.hostname}); err != nil {
		return nil, fmt.Errorf("mta: maildir: %w", err)
	}
	m.engine = tracking.New(m.store, tracking.Options{
		Retries:      cfg.Options.Retries(),
		RetryDelay:   cfg.Options.RetryDelay(),
		Logger:       m.log,
		DebugLevel:   cfg.Options.TrackingDebug,
		ReportingMTA: m.hostname,
		Queue:        spoolQueue{m},
	})
	m.relay = &gosmtp.Relay{Engine: m.engine, Channel: m.chRelay, Logger: m.log}

	gen, err := m.generator()
	if err != nil {
		return nil, err
	}
	retain := cfg.Retain
	if retain == 0 {
		retain = DefaultRetain
	}
	if m.sched, err = scheduler.New(scheduler.Options{
		Spool: m.spool, Deliver: m.deliver, OnResult: m.onResult,
		MaxLifetime: cfg.MaxLifetime, InitialBackoff: cfg.InitialBackoff,
		Retain: retain, Logger: m.log,
	}); err != nil {
		return nil, fmt.Errorf("mta: scheduler: %w", err)
	}

	maxHold := cfg.MaxHold
	if maxHold == 0 {
		maxHold = DefaultMaxHold
	}
	mwOpts := func(ch channelopts.Channel, submission bool) gosmtp.Options {
		o := gosmtp.Options{
			Engine: m.engine, Generator: gen, MTA: cfg.Options, Submission: submission,
			Internal: !submission && m.cfg.InternalMX,
			Hostname: m.hostname, Logger: m.log,
			QueueID: func() string { return newID() + "@" + m.hostname },
		}
		if submission {
			o.FutureRelease = futurerelease.Limits{MaxInterval: maxHold}
			o.AddMessageID = true
		}
		return o
	}
	if m.mxMW, err = gosmtp.New(&backend{m: m}, m.chMX, mwOpts(m.chMX, false)); err != nil {
		return nil, fmt.Errorf("mta: MX middleware: %w", err)
	}
	if m.subMW, err = gosmtp.New(&backend{m: m, submission: true}, m.chSub, mwOpts(m.chSub, true)); err != nil {
		return nil, fmt.Errorf("mta: submission middleware: %w", err)
	}
	newSMTP := func(mw *gosmtp.Middleware) (*smtpext.Server, error) {
		srv := smtp.NewServer(nil)
		srv.Domain = m.hostname
		srv.MaxMessageBytes = DefaultMaxMessage
		srv.MaxRecipients = 1000
		return mw.NewServer(srv, smtpext.Config{TLSConfig: m.tlsConf, Logger: m.log, MaxConnections: cfg.MaxConnections})
	}
	if m.mxSrv, err = newSMTP(m.mxMW); err != nil {
		return nil, fmt.Errorf("mta: MX server: %w", err)
	}
	if m.subSrv, err = newSMTP(m.subMW); err != nil {
		return nil, fmt.Errorf("mta: submission server: %w", err)
	}
	m.mtqpSrv = &mtqp.Server{
		Backend:        mtqpbackend.New(m.engine, mtqpbackend.Options{ReportingMTA: m.hostname}),
		Domain:         m.hostname,
		TLSConfig:      m.tlsConf,
		Logger:         m.log,
		MaxConnections: cfg.MaxConnections,
	}

	listen := func(addr, def string) (net.Listener, string, error) {
		if addr == "-" {
			return nil, "", nil
		}
		if addr == "" {
			addr = def
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, "", fmt.Errorf("mta: listen %s: %w", addr, err)
		}
		m.listeners = append(m.listeners, l)
		return l, l.Addr().String(), nil
	}
	var lMX, lSub, lMTQP net.Listener
	if lMX, m.addrs.MX, err = listen(cfg.MXAddr, DefaultMXAddr); err != nil {
		return nil, err
	}
	if lSub, m.addrs.Submission, err = listen(cfg.SubmissionAddr, DefaultSubmissionAddr); err != nil {
		return nil, err
	}
	if lMTQP, m.addrs.MTQP, err = listen(cfg.MTQPAddr, DefaultMTQPAddr); err != nil {
		return nil, err
	}
	m.listeners = []net.Listener{lMX, lSub, lMTQP}
	return m, nil
}

// channel returns the named channel from the table, or its default.
func (m *MTA) channel(name string) channelopts.Channel {
	for _, ch := range m.cfg.Channels {
		if strings.EqualFold(ch.Name, name) {
			return ch
		}
	}
	return DefaultChannel(name)
}

// openStore opens the tracking store named by Config.Store or the options.
func (m *MTA) openStore() (trackstore.Store, error) {
	spec := m.cfg.Store
	if spec == "" {
		spec = "memory"
		if m.cfg.Options.TrackingMode == channelopts.ModeMemcached {
			spec = "memcache://" + strings.Join(m.cfg.Options.MemcacheServers(), ",")
		}
	}
	servers, err := ParseStore(spec)
	if err != nil {
		return nil, err
	}
	if servers == nil {
		return memstore.New(memstore.Options{}), nil
	}
	st, err := memcachestore.New(memcachestore.Options{Servers: servers})
	if err != nil {
		return nil, fmt.Errorf("mta: memcached store: %w", err)
	}
	m.closers = append(m.closers, st)
	return st, nil
}

// ParseStore reads a -store value: "memory" gives nil servers,
// "memcache://host:port[,host:port...]" the memcached servers (at least
// one; each must be host:port, the port is not defaulted here).
func ParseStore(spec string) ([]string, error) {
	if spec == "memory" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(spec, "memcache://")
	if !ok {
		return nil, fmt.Errorf("mta: unknown store %q (want memory or memcache://host:port[,host:port])", spec)
	}
	servers := []string{}
	for _, s := range strings.Split(rest, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("mta: store %q: %q is not host:port", spec, s)
		}
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("mta: store %q names no memcached server", spec)
	}
	return servers, nil
}

// generator returns the trackinggenerate identifier generator, with the
// LDAP recall-secret source when configured.
func (m *MTA) generator() (*idgen.Generator, error) {
	l := m.cfg.LDAP
	if l.URL == "" {
		return idgen.New(idgen.Options{Logger: m.log}), nil
	}
	attr := l.Attribute
	if attr == "" {
		attr = m.cfg.Options.LDAPAttrAuthRecallSecret
	}
	src, err := ldapsecret.New(ldapsecret.Config{
		URL: l.URL, StartTLS: l.StartTLS, TLSConfig: l.TLSConfig,
		BindDN: l.BindDN, BindPassword: l.BindPassword,
		BaseDN: l.BaseDN, Filter: l.Filter, Attribute: attr, Logger: m.log,
	})
	if err != nil {
		return nil, fmt.Errorf("mta: LDAP recall secrets: %w", err)
	}
	m.closers = append(m.closers, src)
	return idgen.New(idgen.Options{Source: src, Logger: m.log}), nil
}

// Reload re-reads the users and aliases files (on SIGHUP). A file that
// fails to parse keeps its previous contents; the errors are returned.
func (m *MTA) Reload(ctx context.Context) error {
	var errs []error
	if m.users != nil {
		if err := m.users.Reload(ctx); err != nil {
			errs = append(errs, fmt.Errorf("users: %w", err))
		}
	}
	if m.aliases != nil {
		if err := m.aliases.Reload(ctx); err != nil {
			errs = append(errs, fmt.Errorf("aliases: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Addrs returns the bound listen addresses.
func (m *MTA) Addrs() Addrs { return m.addrs }

// Hostname returns the MTA's name.
func (m *MTA) Hostname() string { return m.hostname }

// Engine returns the tracking engine (for administrators' tools and tests).
func (m *MTA) Engine() *tracking.Engine { return m.engine }

// Start serves the listeners, resumes the queue and starts the recall
// poller. ctx bounds the MTA's background work; cancel it only after
// Shutdown.
func (m *MTA) Start(ctx context.Context) {
	m.ctx, m.cancel = context.WithCancel(ctx)
	m.sched.Start(m.ctx)
	serve := func(name string, f func() error) {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := f(); err != nil && !errors.Is(err, smtpext.ErrServerClosed) && !errors.Is(err, mtqp.ErrServerClosed) {
				m.log.Error("listener stopped", "listener", name, "err", err)
			}
		}()
	}
	if l := m.listeners[0]; l != nil {
		serve("mx", func() error { return m.mxSrv.ServeListener(l, smtpext.ListenerConfig{Name: "mx"}) })
	}
	if l := m.listeners[1]; l != nil {
		serve("submission", func() error { return m.subSrv.ServeListener(l, smtpext.ListenerConfig{Name: "submission"}) })
	}
	if l := m.listeners[2]; l != nil {
		serve("mtqp", func() error { return m.mtqpSrv.Serve(l) })
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.pollRecalls(m.ctx)
	}()
	m.log.Info("refmta started", "hostname", m.hostname, "mx", m.addrs.MX,
		"submission", m.addrs.Submission, "mtqp", m.addrs.MTQP, "spool", m.cfg.SpoolDir,
		"maildir", m.cfg.MaildirRoot, "relay", m.cfg.Relay, "queued", m.spool.Len())
}

// Shutdown stops accepting connections, lets sessions and deliveries in
// flight finish (until ctx ends), and closes the spool and the store.
func (m *MTA) Shutdown(ctx context.Context) error {
	var errs []error
	if m.mxSrv != nil {
		if err := m.mxSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("MX: %w", err))
			_ = m.mxSrv.Close()
		}
	}
	if m.subSrv != nil {
		if err := m.subSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("submission: %w", err))
			_ = m.subSrv.Close()
		}
	}
	if m.mtqpSrv != nil {
		if err := m.mtqpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("MTQP: %w", err))
			_ = m.mtqpSrv.Close()
		}
	}
	if err := m.sched.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("scheduler: %w", err))
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	m.closeAll()
	m.log.Info("refmta stopped", "hostname", m.hostname)
	return errors.Join(errs...)
}

func (m *MTA) closeAll() {
	for _, l := range m.listeners {
		if l != nil {
			_ = l.Close()
		}
	}
	for i := len(m.closers) - 1; i >= 0; i-- {
		_ = m.closers[i].Close()
	}
	m.closers = nil
}

// isLocal reports whether addr's domain is a local domain.
func (m *MTA) isLocal(addr string) bool {
	_, dom := splitAddr(addr)
	return m.local[strings.ToLower(dom)]
}

// mailbox reports whether the local part names a local mailbox.
func (m *MTA) mailbox(localPart string) bool {
	if maildir.ValidUser(localPart) != nil {
		return false
	}
	if m.users == nil {
		return true
	}
	return m.users.Has(localPart)
}

func splitAddr(addr string) (local, domain string) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}
