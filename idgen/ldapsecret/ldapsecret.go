// Package ldapsecret is an idgen.SecretSource that reads users' general
// recall secrets from an LDAP directory (RFC 4511), from the attribute the
// reference product names with its ldap_attr_auth_recall_secret option.
//
// It lives apart from package idgen so that importing idgen does not pull
// in go-ldap.
//
// One lookup is a subtree search (RFC 4511 section 4.5) under Config.BaseDN
// with Config.Filter, in which every "%s" is replaced by the user name
// escaped as an assertion value (RFC 4515 section 3: "*", "(", ")", "\",
// NUL and non-ASCII octets become \XX), asking for the one attribute and
// at most two entries. The outcomes:
//
//   - no entry: idgen.ErrUnknownUser;
//   - two or more entries (or the server's sizeLimitExceeded):
//     idgen.ErrAmbiguous;
//   - one entry without the attribute, or with an empty value:
//     idgen.ErrNoSecret;
//   - one entry with several values: idgen.ErrAmbiguous;
//   - one entry with one non-empty value: the value's octets (the
//     Generator then refuses it when it is shorter than 16 bytes);
//   - server unreachable, connection lost, timeout: an error wrapping
//     ErrUnavailable;
//   - the service account's bind refused: an error wrapping ErrBind;
//   - any other LDAP result (for example noSuchObject for a wrong base
//     DN): an error wrapping the *ldap.Error.
//
// The first four outcomes (user-level facts) are cached for
// Config.NegativeTTL, secrets for Config.CacheTTL; failures of the source
// are never cached. Every failure makes idgen use the MD4 path, so none
// stops mail.
//
// Connections are reused across lookups (up to Config.MaxConns, each bound
// once as Config.BindDN); a connection that fails is closed, and a lookup
// that failed on a reused connection is retried once on a new one, so the
// source recovers by itself when the server comes back. Use ldaps:// or
// Config.StartTLS (RFC 4513 section 3) whenever a bind password or secrets
// cross a network: they are sent in the clear otherwise.
package ldapsecret

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/msgtrack/msgtrack/idgen"
)

// Defaults for zero Config fields.
const (
	DefaultFilter         = "(uid=%s)"
	DefaultDialTimeout    = 2 * time.Second
	DefaultRequestTimeout = 2 * time.Second
	DefaultCacheTTL       = time.Minute
	DefaultNegativeTTL    = 10 * time.Second
	DefaultCacheSize      = 1024
	DefaultMaxConns       = 2
)

var (
	// ErrUnavailable wraps dial, TLS, network and timeout failures.
	ErrUnavailable = errors.New("ldapsecret: directory unavailable")
	// ErrBind means the directory refused the service account's bind.
	ErrBind = errors.New("ldapsecret: bind refused")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("ldapsecret: source closed")
)

// Config describes the directory and the lookup.
type Config struct {
	// URL is ldap://host[:port] (default port 389) or ldaps://host[:port]
	// (default 636).
	URL string
	// StartTLS upgrades an ldap:// connection with the StartTLS operation
	// before binding. It is an error with ldaps://.
	StartTLS bool
	// TLSConfig verifies the server for ldaps:// and StartTLS. Nil means
	// the system roots; ServerName defaults to the URL's host.
	TLSConfig *tls.Config
	// BindDN and BindPassword are the service account; an empty BindDN
	// searches anonymously.
	BindDN, BindPassword string
	// BaseDN is where the search starts (subtree scope). Required.
	BaseDN string
	// Filter is the search filter with "%s" where the escaped user name
	// goes, e.g. "(&(objectClass=inetOrgPerson)(uid=%s))". Default
	// DefaultFilter.
	Filter string
	// Attribute is the attribute holding the general recall secret: the
	// product's ldap_attr_auth_recall_secret, which has no default.
	// Required.
	Attribute string
	// DialTimeout bounds connecting, TLS and bind; RequestTimeout bounds
	// one search. Both are also bounded by the caller's context.
	DialTimeout, RequestTimeout time.Duration
	// CacheTTL is how long a secret is cached, NegativeTTL how long
	// "unknown user", "no secret" and "ambiguous" are. Zero means the
	// default; negative disables that part of the cache.
	CacheTTL, NegativeTTL time.Duration
	// CacheSize bounds the number of cached users (least recently used
	// go first). Zero means DefaultCacheSize; negative disables caching.
	CacheSize int
	// MaxConns bounds the connections open at once; lookups beyond it
	// wait. Zero means DefaultMaxConns.
	MaxConns int
	// Logger receives connection failures at debug level. Nil discards.
	Logger *slog.Logger
}

// Stats counts lookups; read them with Source.Stats.
type Stats struct {
	// Lookups is the number of RecallSecret calls, CacheHits those
	// answered from the cache, Searches those sent to the directory.
	Lookups, CacheHits, Searches uint64
	// Dials counts new connections, Failures lookups that returned an
	// error of the source itself (unavailable, bind, LDAP result).
	Dials, Failures uint64
}

// Source is an idgen.SecretSource on LDAP. It is safe for concurrent use.
type Source struct {
	cfg       Config
	scheme    string // "ldap" or "ldaps"
	addr      string // host:port
	tlsConfig *tls.Config
	log       *slog.Logger
	cache     *cache
	now       func() time.Time // the cache's clock; tests replace it

	sem    chan struct{}
	mu     sync.Mutex
	idle   []*conn
	closed bool

	lookups, hits, searches, dials, failures atomic.Uint64
}

var _ idgen.SecretSource = (*Source)(nil)

// New checks cfg and returns a Source. It does not connect: the first
// lookup does, so a directory that is down at start-up delays nothing.
func New(cfg Config) (*Source, error) {
	if cfg.Attribute == "" {
		return nil, errors.New("ldapsecret: Config.Attribute (ldap_attr_auth_recall_secret) is required")
	}
	if cfg.BaseDN == "" {
		return nil, errors.New("ldapsecret: Config.BaseDN is required")
	}
	if cfg.Filter == "" {
		cfg.Filter = DefaultFilter
	}
	if !strings.Contains(cfg.Filter, "%s") {
		return nil, fmt.Errorf("ldapsecret: filter %q has no %%s for the user name", cfg.Filter)
	}
	if _, err := ldap.CompileFilter(strings.ReplaceAll(cfg.Filter, "%s", "x")); err != nil {
		return nil, fmt.Errorf("ldapsecret: filter %q: %w", cfg.Filter, err)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ldapsecret: URL: %w", err)
	}
	s := &Source{cfg: cfg, scheme: strings.ToLower(u.Scheme)}
	port := u.Port()
	switch s.scheme {
	case "ldap":
		if port == "" {
			port = "389"
		}
	case "ldaps":
		if cfg.StartTLS {
			return nil, errors.New("ldapsecret: StartTLS with an ldaps:// URL")
		}
		if port == "" {
			port = "636"
		}
	default:
		return nil, fmt.Errorf("ldapsecret: URL %q: scheme must be ldap or ldaps", cfg.URL)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("ldapsecret: URL %q has no host", cfg.URL)
	}
	s.addr = net.JoinHostPort(u.Hostname(), port)
	if s.scheme == "ldaps" || cfg.StartTLS {
		if cfg.TLSConfig != nil {
			s.tlsConfig = cfg.TLSConfig.Clone()
		} else {
			s.tlsConfig = &tls.Config{}
		}
		if s.tlsConfig.ServerName == "" {
			s.tlsConfig.ServerName = u.Hostname()
		}
		if s.tlsConfig.MinVersion == 0 {
			s.tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	if s.cfg.DialTimeout <= 0 {
		s.cfg.DialTimeout = DefaultDialTimeout
	}
	if s.cfg.RequestTimeout <= 0 {
		s.cfg.RequestTimeout = DefaultRequestTimeout
	}
	if s.cfg.CacheTTL == 0 {
		s.cfg.CacheTTL = DefaultCacheTTL
	}
	if s.cfg.NegativeTTL == 0 {
		s.cfg.NegativeTTL = DefaultNegativeTTL
	}
	if s.cfg.CacheSize == 0 {
		s.cfg.CacheSize = DefaultCacheSize
	}
	if s.cfg.MaxConns <= 0 {
		s.cfg.MaxConns = DefaultMaxConns
	}
	if s.cfg.CacheSize > 0 && (s.cfg.CacheTTL > 0 || s.cfg.NegativeTTL > 0) {
		s.cache = newCache(s.cfg.CacheSize)
	}
	s.now = time.Now
	s.sem = make(chan struct{}, s.cfg.MaxConns)
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// RecallSecret implements idgen.SecretSource; see the package
// documentation for the outcomes. The returned slice is the caller's.
func (s *Source) RecallSecret(ctx context.Context, user string) ([]byte, error) {
	s.lookups.Add(1)
	if user == "" {
		return nil, fmt.Errorf("%w: empty user name", idgen.ErrUnknownUser)
	}
	if s.cache != nil {
		if v, err, ok := s.cache.get(user, s.now()); ok {
			s.hits.Add(1)
			return v, err
		}
	}
	v, err := s.lookup(ctx, user)
	if err != nil && !isUserOutcome(err) {
		s.failures.Add(1)
		return nil, err
	}
	if s.cache != nil {
		ttl := s.cfg.CacheTTL
		if err != nil {
			ttl = s.cfg.NegativeTTL
		}
		if ttl > 0 {
			s.cache.put(user, v, err, s.now().Add(ttl))
		}
	}
	return v, err
}

func isUserOutcome(err error) bool {
	return errors.Is(err, idgen.ErrUnknownUser) || errors.Is(err, idgen.ErrNoSecret) || errors.Is(err, idgen.ErrAmbiguous)
}

// lookup runs the search on a pooled connection, once more on a fresh one
// when a reused connection turns out to be broken.
func (s *Source) lookup(ctx context.Context, user string) ([]byte, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for a connection: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-s.sem }()

	for attempt := 0; ; attempt++ {
		c, reused, err := s.get(ctx)
		if err != nil {
			return nil, err
		}
		v, err := s.search(ctx, c, user)
		if c.broken {
			c.close()
			if reused && attempt == 0 && ctx.Err() == nil {
				s.log.DebugContext(ctx, "ldapsecret: reused connection failed, retrying on a new one", "err", err)
				continue
			}
		} else {
			s.put(c)
		}
		return v, err
	}
}

func (s *Source) filter(user string) string {
	return strings.ReplaceAll(s.cfg.Filter, "%s", ldap.EscapeFilter(user))
}

func (s *Source) search(ctx context.Context, c *conn, user string) ([]byte, error) {
	s.searches.Add(1)
	req := ldap.NewSearchRequest(s.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, int(s.cfg.RequestTimeout.Seconds()+0.5), false, s.filter(user), []string{s.cfg.Attribute}, nil)
	var res *ldap.SearchResult
	err := c.do(ctx, s.cfg.RequestTimeout, func() error {
		var err error
		res, err = c.l.Search(req)
		return err
	})
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("%w: more than one entry matches %q", idgen.ErrAmbiguous, user)
	}
	if err != nil {
		return nil, s.classify(c, "search", err)
	}
	switch len(res.Entries) {
	case 0:
		return nil, fmt.Errorf("%w: %q", idgen.ErrUnknownUser, user)
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d entries match %q", idgen.ErrAmbiguous, len(res.Entries), user)
	}
	e := res.Entries[0]
	vals := e.GetEqualFoldRawAttributeValues(s.cfg.Attribute)
	switch {
	case len(vals) == 0:
		return nil, fmt.Errorf("%w: %s has no %s", idgen.ErrNoSecret, e.DN, s.cfg.Attribute)
	case len(vals) > 1:
		return nil, fmt.Errorf("%w: %s has %d values of %s", idgen.ErrAmbiguous, e.DN, len(vals), s.cfg.Attribute)
	case len(vals[0]) == 0:
		return nil, fmt.Errorf("%w: %s has an empty %s", idgen.ErrNoSecret, e.DN, s.cfg.Attribute)
	}
	return append([]byte(nil), vals[0]...), nil
}

// classify wraps err and marks c broken unless the server answered with
// an LDAP result (the connection is then still good).
func (s *Source) classify(c *conn, op string, err error) error {
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork && !c.broken {
		return fmt.Errorf("ldapsecret: %s: %w", op, err)
	}
	c.broken = true
	return fmt.Errorf("%w: %s on %s: %w", ErrUnavailable, op, s.addr, err)
}

// get returns an idle connection or dials one.
func (s *Source) get(ctx context.Context) (*conn, bool, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false, ErrClosed
	}
	for n := len(s.idle); n > 0; n = len(s.idle) {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		if !c.l.IsClosing() {
			s.mu.Unlock()
			return c, true, nil
		}
		c.close() // the server closed it while idle
	}
	s.mu.Unlock()
	c, err := s.dial(ctx)
	return c, false, err
}

func (s *Source) put(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || c.l.IsClosing() {
		c.close()
		return
	}
	s.idle = append(s.idle, c)
}

// dial connects, upgrades to TLS and binds, all within DialTimeout and ctx.
func (s *Source) dial(ctx context.Context) (*conn, error) {
	s.dials.Add(1)
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	nc := raw
	if s.scheme == "ldaps" {
		tc := tls.Client(raw, s.tlsConfig)
		hctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("%w: TLS with %s: %w", ErrUnavailable, s.addr, err)
		}
		nc = tc
	}
	l := ldap.NewConn(nc, s.scheme == "ldaps")
	l.Start()
	l.SetTimeout(s.cfg.DialTimeout)
	c := &conn{l: l, raw: raw}
	err = c.do(ctx, s.cfg.DialTimeout, func() error {
		if s.cfg.StartTLS {
			if err := l.StartTLS(s.tlsConfig); err != nil {
				return fmt.Errorf("StartTLS: %w", err)
			}
		}
		if s.cfg.BindDN == "" {
			return nil
		}
		return l.Bind(s.cfg.BindDN, s.cfg.BindPassword)
	})
	switch {
	case err == nil:
		l.SetTimeout(s.cfg.RequestTimeout)
		return c, nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		c.close()
		return nil, fmt.Errorf("%w: as %q: %w", ErrBind, s.cfg.BindDN, err)
	default:
		werr := s.classify(c, "connect", err)
		c.close()
		return nil, werr
	}
}

// Close closes idle connections; connections in use close when their
// lookup ends. Lookups after Close fail with ErrClosed.
func (s *Source) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	return nil
}

// Stats returns the counts since New.
func (s *Source) Stats() Stats {
	return Stats{
		Lookups: s.lookups.Load(), CacheHits: s.hits.Load(), Searches: s.searches.Load(),
		Dials: s.dials.Load(), Failures: s.failures.Load(),
	}
}

// conn is one LDAP connection and the TCP socket under it.
type conn struct {
	l      *ldap.Conn
	raw    net.Conn
	broken bool
}

// do runs op with a deadline on the socket: the earlier of timeout and
// ctx's deadline, and immediately when ctx is cancelled. go-ldap has no
// context support; a socket deadline makes its reader fail, which ends
// the operation. A connection whose deadline fired is broken.
func (c *conn) do(ctx context.Context, timeout time.Duration, op func() error) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.raw.SetDeadline(deadline); err != nil {
		c.broken = true
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.raw.SetDeadline(time.Now()) })
	err := op()
	fired := !stop()
	if fired || !time.Now().Before(deadline) {
		// The deadline may have hit the reader: the connection is done
		// for, but a result that arrived in time stands.
		c.broken = true
		if err != nil {
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return err
	}
	if serr := c.raw.SetDeadline(time.Time{}); serr != nil || c.l.IsClosing() {
		c.broken = true
	}
	return err
}

func (c *conn) close() { _ = c.l.Close() }
