package mtqp

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxReplyLines bounds a reply the client reads (a report of some
// thousand recipients fits).
const maxReplyLines = 200000

// Resolver looks up SRV records; *net.Resolver implements it. Tests
// inject one pointed at a DNS server on loopback.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

// Dialer connects to MTQP servers. The zero value uses net.DefaultResolver,
// a plain net.Dialer and no TLS.
type Dialer struct {
	// Resolver finds _mtqp._tcp SRV records for DialDomain.
	Resolver Resolver
	// DialContext opens TCP connections; nil means (&net.Dialer{}).DialContext.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig, when set, makes Dial and DialDomain issue STARTTLS right
	// after the greeting. An empty ServerName is filled with the host
	// dialled (for DialDomain: the domain asked for, not the SRV target).
	TLSConfig *tls.Config
}

// Dial connects to addr ("host:port"; a missing port means 1038) with the
// zero Dialer.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d Dialer
	return d.Dial(ctx, addr)
}

// DialDomain finds and connects to domain's MTQP server with the zero
// Dialer; see Dialer.DialDomain.
func DialDomain(ctx context.Context, domain string) (*Client, error) {
	var d Dialer
	return d.DialDomain(ctx, domain)
}

func (d *Dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	if d.DialContext != nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr)
}

// Dial connects to addr ("host:port"; a missing port means 1038), reads
// the greeting and, with TLSConfig set, starts TLS.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Client, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host, addr = addr, net.JoinHostPort(addr, strconv.Itoa(Port))
	}
	return d.dialAddr(ctx, addr, host)
}

func (d *Dialer) dialAddr(ctx context.Context, addr, tlsName string) (*Client, error) {
	nc, err := d.dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("mtqp: dial %s: %w", addr, err)
	}
	c, err := NewClient(ctx, nc, tlsName)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if d.TLSConfig != nil {
		if err := c.StartTLS(ctx, d.TLSConfig); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// DialDomain discovers domain's MTQP server through its _mtqp._tcp SRV
// records (RFC 3887 section 5; RFC 2782 ordering: priority, then weighted
// random) and connects to the first target that answers. With no SRV
// records it falls back to domain on port 1038. A single target "."
// means the domain offers no MTQP service.
func (d *Dialer) DialDomain(ctx context.Context, domain string) (*Client, error) {
	domain = strings.TrimSuffix(domain, ".")
	var res Resolver = net.DefaultResolver
	if d.Resolver != nil {
		res = d.Resolver
	}
	_, srvs, err := res.LookupSRV(ctx, SRVService, SRVProto, domain)
	var dnsErr *net.DNSError
	if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		return nil, fmt.Errorf("mtqp: SRV lookup for %s: %w", domain, err)
	}
	if len(srvs) == 0 {
		return d.dialAddr(ctx, net.JoinHostPort(domain, strconv.Itoa(Port)), domain)
	}
	if len(srvs) == 1 && (srvs[0].Target == "." || srvs[0].Target == "") {
		return nil, fmt.Errorf("mtqp: %s offers no MTQP service (SRV target \".\")", domain)
	}
	var errs []error
	for _, s := range orderSRV(srvs) {
		target := strings.TrimSuffix(s.Target, ".")
		c, err := d.dialAddr(ctx, net.JoinHostPort(target, strconv.Itoa(int(s.Port))), domain)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// orderSRV sorts by priority and, within a priority, by RFC 2782's
// weighted random selection.
func orderSRV(in []*net.SRV) []*net.SRV {
	srvs := append([]*net.SRV(nil), in...)
	sort.SliceStable(srvs, func(i, j int) bool { return srvs[i].Priority < srvs[j].Priority })
	out := make([]*net.SRV, 0, len(srvs))
	for i := 0; i < len(srvs); {
		j := i
		for j < len(srvs) && srvs[j].Priority == srvs[i].Priority {
			j++
		}
		group := srvs[i:j]
		for len(group) > 0 {
			total := 0
			for _, s := range group {
				total += int(s.Weight)
			}
			pick := 0
			if total > 0 {
				n, _ := rand.Int(rand.Reader, big.NewInt(int64(total)+1))
				sum := 0
				for k, s := range group {
					sum += int(s.Weight)
					if int64(sum) >= n.Int64() {
						pick = k
						break
					}
				}
			}
			out = append(out, group[pick])
			group = append(group[:pick:pick], group[pick+1:]...)
		}
		i = j
	}
	return out
}

// Client is a connection to an MTQP server. Its methods may be called
// from several goroutines; commands are sent one at a time.
type Client struct {
	mu       sync.Mutex
	nc       net.Conn
	rw       net.Conn
	r        *bufio.Reader
	host     string
	greeting Greeting
	tls      *tls.ConnectionState
	broken   error
}

// Result is the answer to TRACK or RECALL.
type Result struct {
	// Report is the parsed message/tracking-status body.
	Report *Report
	// Raw is the body exactly as received (CRLF line endings), without the
	// reply codes and the MIME header.
	Raw []byte
	// Host is the host the client was connected to.
	Host string
}

// NewClient runs the client side of MTQP over an open connection: it reads
// the greeting. host is the name used for TLS verification.
func NewClient(ctx context.Context, nc net.Conn, host string) (*Client, error) {
	c := &Client{nc: nc, rw: nc, r: bufio.NewReader(nc), host: host}
	var g Greeting
	err := c.withContext(ctx, func() error {
		rep, err := ReadReply(c.r, maxReplyLines)
		if err != nil {
			return fmt.Errorf("mtqp: reading greeting: %w", err)
		}
		g, err = ParseGreeting(rep)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.greeting = g
	return c, nil
}

// Greeting returns the server's latest greeting (after STARTTLS, the one
// sent under TLS).
func (c *Client) Greeting() Greeting {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.greeting
}

// Supports reports whether the server advertised the option.
func (c *Client) Supports(option string) bool { return c.Greeting().Has(option) }

// Host returns the host name given at dial time.
func (c *Client) Host() string { return c.host }

// TLSConnectionState returns the TLS state after StartTLS.
func (c *Client) TLSConnectionState() (tls.ConnectionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tls == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tls, true
}

// withContext runs f with the connection's deadline taken from ctx, and
// cancels the I/O if ctx ends first. A connection interrupted that way is
// unusable afterwards.
func (c *Client) withContext(ctx context.Context, f func() error) error {
	if c.broken != nil {
		return c.broken
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dl, hasDL := ctx.Deadline()
	_ = c.nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	err := f()
	stop()
	if err != nil {
		// The context's deadline or cancellation cut the I/O short. The
		// connection deadline can fire a moment before ctx reports it.
		var ne net.Error
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", cerr, err)
		} else if hasDL && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(dl) {
			err = fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
		}
	}
	if err != nil {
		var re *ReplyError
		if !errors.As(err, &re) {
			c.broken = err
		}
	}
	return err
}

// cmd sends one line and reads the reply.
func (c *Client) cmd(ctx context.Context, line string) (Reply, error) {
	var rep Reply
	err := c.withContext(ctx, func() error {
		if _, err := c.rw.Write([]byte(line + "\r\n")); err != nil {
			return fmt.Errorf("mtqp: write: %w", err)
		}
		var err error
		rep, err = ReadReply(c.r, maxReplyLines)
		if err != nil {
			return fmt.Errorf("mtqp: read reply: %w", err)
		}
		return nil
	})
	return rep, err
}

// StartTLS issues STARTTLS and runs the TLS handshake with cfg (nil means a
// default config; an empty ServerName is filled with the dialled host). TLS
// 1.2 is the minimum (RFC 8996). The server's greeting under TLS replaces
// the first one.
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tls != nil {
		return errors.New("mtqp: TLS already active")
	}
	if !c.greeting.Has(OptionStartTLS) {
		return errors.New("mtqp: server does not offer STARTTLS")
	}
	rep, err := c.cmd(ctx, CmdStartTLS)
	if err != nil {
		return err
	}
	if rep.Code != CodeReadyTLS {
		return &ReplyError{Code: rep.Code, Lines: rep.Lines}
	}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = c.host
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return c.withContext(ctx, func() error {
		tc := tls.Client(c.nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("mtqp: TLS handshake: %w", err)
		}
		st := tc.ConnectionState()
		c.rw, c.tls = tc, &st
		c.r = bufio.NewReader(tc)
		rep, err := ReadReply(c.r, maxReplyLines)
		if err != nil {
			return fmt.Errorf("mtqp: reading greeting under TLS: %w", err)
		}
		g, err := ParseGreeting(rep)
		if err != nil {
			return err
		}
		c.greeting = g
		return nil
	})
}

// Track asks for the status of the message with the envelope ID envid,
// proving the right to ask with secret (the tracking secret A). An unknown
// envelope ID or a wrong secret gives an error that errors.Is ErrNotFound.
func (c *Client) Track(ctx context.Context, envid string, secret []byte) (*Result, error) {
	return c.query(ctx, CmdTrack, envid, secret)
}

// Recall asks the server to withdraw the message (the non-standard
// vnd.msgtrack.recall option); the report's recipients carry their
// RecallStatus. It fails without sending anything when the server does
// not advertise the option.
func (c *Client) Recall(ctx context.Context, envid string, secret []byte) (*Result, error) {
	if !c.Supports(OptionRecall) {
		return nil, fmt.Errorf("mtqp: server does not offer %s", OptionRecall)
	}
	return c.query(ctx, CmdRecall, envid, secret)
}

func (c *Client) query(ctx context.Context, verb, envid string, secret []byte) (*Result, error) {
	if envid == "" || len(secret) == 0 {
		return nil, errors.New("mtqp: envelope ID and secret are required")
	}
	line := FormatTrack(verb, envid, secret)
	if len(line) > MaxLineLength {
		return nil, errors.New("mtqp: command line over 998 characters")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rep, err := c.cmd(ctx, line)
	if err != nil {
		return nil, err
	}
	if rep.Code != CodeOK {
		return nil, &ReplyError{Code: rep.Code, Lines: rep.Lines}
	}
	raw, err := splitReportReply(rep)
	if err != nil {
		return nil, err
	}
	r, err := ParseReport(raw)
	if err != nil {
		return nil, fmt.Errorf("mtqp: report from %s: %w", c.host, err)
	}
	return &Result{Report: r, Raw: raw, Host: c.host}, nil
}

// Comment sends COMMENT with free text (RFC 3887: the server ignores it;
// it shows in server logs). text must be one line.
func (c *Client) Comment(ctx context.Context, text string) error {
	if strings.ContainsAny(text, "\r\n") {
		return errors.New("mtqp: comment contains a line break")
	}
	line := CmdComment
	if text != "" {
		line += " " + text
	}
	if len(line) > MaxLineLength {
		return errors.New("mtqp: command line over 998 characters")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rep, err := c.cmd(ctx, line)
	if err != nil {
		return err
	}
	if rep.Code != CodeOK {
		return &ReplyError{Code: rep.Code, Lines: rep.Lines}
	}
	return nil
}

// Quit sends QUIT, reads the reply and closes the connection.
func (c *Client) Quit(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep, err := c.cmd(ctx, CmdQuit)
	c.nc.Close()
	if err != nil {
		return err
	}
	if rep.Code != CodeClosing {
		return &ReplyError{Code: rep.Code, Lines: rep.Lines}
	}
	return nil
}

// Close closes the connection without QUIT.
func (c *Client) Close() error { return c.nc.Close() }
