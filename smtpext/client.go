package smtpext

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
)

// MailParam is a MAIL FROM or RCPT TO parameter the Client sends.
type MailParam struct {
	// Name is the esmtp-keyword, e.g. "MTRK".
	Name string
	// Value is the esmtp-value, already encoded (xtext where the
	// extension says so; see XText); "" sends the bare keyword.
	Value string
	// Keyword is the EHLO keyword the server must have advertised for the
	// parameter to be sent, e.g. "MTRK" for MTRK= or "DSN" for ENVID=.
	// Empty sends it unconditionally.
	Keyword string
	// IfSupported drops the parameter silently when Keyword was not
	// advertised; otherwise the command fails with ErrNotAdvertised
	// before anything is sent.
	IfSupported bool
}

// ErrNotAdvertised is returned (wrapped) when a MailParam needs an EHLO
// keyword the server did not advertise.
var ErrNotAdvertised = errors.New("smtpext: extension not advertised by the server")

// Client is a small SMTP client for relaying with extension parameters
// (RFC 5321 section 3). It is not safe for concurrent use.
//
// Every method taking a context applies the context's deadline to the
// socket and aborts the I/O when the context is cancelled; a Client whose
// operation failed on I/O should be closed.
type Client struct {
	conn      net.Conn
	text      *textproto.Conn
	host      string
	localName string
	ext       map[string]string
	didHello  bool
	tls       *tls.ConnectionState
	// AllowInsecureAuth lets Auth run without TLS (for loopback tests).
	AllowInsecureAuth bool
}

// Dial connects to addr ("host:port") and reads the greeting.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtpext: dial %s: %w", addr, err)
	}
	host, _, _ := net.SplitHostPort(addr)
	c, err := NewClient(ctx, conn, host)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// DialTLS connects to addr with implicit TLS (RFC 8314) and reads the
// greeting.
func DialTLS(ctx context.Context, addr string, cfg *tls.Config) (*Client, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtpext: dial %s: %w", addr, err)
	}
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(raw, tlsClientConfig(cfg, host))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("smtpext: TLS handshake with %s: %w", addr, err)
	}
	c, err := NewClient(ctx, tc, host)
	if err != nil {
		tc.Close()
		return nil, err
	}
	st := tc.ConnectionState()
	c.tls = &st
	return c, nil
}

// NewClient reads the server's 220 greeting on conn; host is the server
// name used to verify its certificate in StartTLS.
func NewClient(ctx context.Context, conn net.Conn, host string) (*Client, error) {
	c := &Client{conn: conn, text: textproto.NewConn(conn), host: host, localName: "localhost"}
	if tc, ok := conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	err := c.do(ctx, func() error {
		_, err := c.expect(220)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func tlsClientConfig(cfg *tls.Config, host string) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12 // RFC 8996
	}
	return cfg
}

// do runs f under ctx: the context's deadline bounds the socket, and
// cancelling the context interrupts blocked I/O.
func (c *Client) do(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dl, _ := ctx.Deadline()
	if err := c.conn.SetDeadline(dl); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	err := f()
	if !stop() && ctx.Err() != nil {
		return fmt.Errorf("smtpext: %w (%w)", ctx.Err(), err)
	}
	return err
}

// Reply is a server reply.
type Reply struct {
	Code     int
	Enhanced [3]int // zero when absent
	// Message is the text, lines joined with "\n", enhanced code removed
	// from the first line.
	Message string
}

func (r *Reply) err() error {
	return &ReplyError{Code: r.Code, Enhanced: r.Enhanced, Message: r.Message}
}

func (c *Client) readReply() (*Reply, error) {
	code, msg, err := c.text.ReadResponse(0)
	if err != nil {
		return nil, fmt.Errorf("smtpext: reading reply: %w", err)
	}
	r := &Reply{Code: code, Message: msg}
	if cls := code / 100; cls == 2 || cls == 4 || cls == 5 {
		first, rest, _ := strings.Cut(msg, " ")
		if p := strings.Split(first, "."); len(p) == 3 && p[0] == strconv.Itoa(cls) {
			a, e1 := strconv.Atoi(p[1])
			b, e2 := strconv.Atoi(p[2])
			if e1 == nil && e2 == nil {
				r.Enhanced = [3]int{cls, a, b}
				r.Message = rest
			}
		}
	}
	return r, nil
}

// expect reads a reply and turns any code but want into *ReplyError.
func (c *Client) expect(want int) (*Reply, error) {
	r, err := c.readReply()
	if err != nil {
		return nil, err
	}
	if r.Code != want {
		return r, r.err()
	}
	return r, nil
}

func (c *Client) cmd(want int, line string) (*Reply, error) {
	if strings.ContainsAny(line, "\r\n") {
		return nil, errors.New("smtpext: CR or LF in command")
	}
	if err := c.text.PrintfLine("%s", line); err != nil {
		return nil, fmt.Errorf("smtpext: writing command: %w", err)
	}
	return c.expect(want)
}

// Hello sends EHLO (falling back to HELO on a 5yz reply) and records the
// server's extensions. It is called automatically by the first command
// that needs it, with localName "localhost".
func (c *Client) Hello(ctx context.Context, localName string) error {
	if strings.ContainsAny(localName, " \r\n") || localName == "" {
		return errors.New("smtpext: invalid local name")
	}
	c.localName = localName
	return c.do(ctx, c.hello)
}

func (c *Client) hello() error {
	r, err := c.cmd(250, "EHLO "+c.localName)
	if err != nil {
		var re *ReplyError
		if !errors.As(err, &re) || re.Code/100 != 5 {
			return err
		}
		if _, err := c.cmd(250, "HELO "+c.localName); err != nil {
			return err
		}
		c.ext = map[string]string{}
		c.didHello = true
		return nil
	}
	c.ext = map[string]string{}
	lines := strings.Split(r.Message, "\n")
	for _, ln := range lines[1:] {
		k, v, _ := strings.Cut(ln, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	c.didHello = true
	return nil
}

func (c *Client) ensureHello() error {
	if c.didHello {
		return nil
	}
	return c.hello()
}

// Extension reports whether the server advertised the EHLO keyword, and
// its parameters.
func (c *Client) Extension(name string) (bool, string) {
	v, ok := c.ext[strings.ToUpper(name)]
	return ok, v
}

// TLSConnectionState returns the TLS state once TLS is up.
func (c *Client) TLSConnectionState() (tls.ConnectionState, bool) {
	if c.tls == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tls, true
}

// StartTLS negotiates TLS (RFC 3207). It fails if the server did not
// advertise STARTTLS, if the server sent anything after its 220 before
// the handshake (response injection), or if the certificate does not
// verify against cfg (ServerName defaults to the dialled host). Then it
// forgets the extensions and sends EHLO again (RFC 3207 section 4.2).
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config) error {
	return c.do(ctx, func() error {
		if c.tls != nil {
			return errors.New("smtpext: TLS already active")
		}
		if err := c.ensureHello(); err != nil {
			return err
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("%w: STARTTLS", ErrNotAdvertised)
		}
		if _, err := c.cmd(220, "STARTTLS"); err != nil {
			return err
		}
		if c.text.R.Buffered() > 0 {
			return errors.New("smtpext: server sent data before the TLS handshake")
		}
		tc := tls.Client(c.conn, tlsClientConfig(cfg, c.host))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("smtpext: TLS handshake: %w", err)
		}
		st := tc.ConnectionState()
		c.conn, c.text, c.tls = tc, textproto.NewConn(tc), &st
		c.ext, c.didHello = nil, false
		return c.hello()
	})
}

// Auth authenticates with a SASL mechanism (RFC 4954), e.g.
// sasl.NewPlainClient. It refuses to run without TLS unless
// AllowInsecureAuth is set.
func (c *Client) Auth(ctx context.Context, a sasl.Client) error {
	return c.do(ctx, func() error {
		if c.tls == nil && !c.AllowInsecureAuth {
			return errors.New("smtpext: refusing AUTH without TLS")
		}
		if err := c.ensureHello(); err != nil {
			return err
		}
		mech, ir, err := a.Start()
		if err != nil {
			return fmt.Errorf("smtpext: SASL start: %w", err)
		}
		line := "AUTH " + mech
		if ir != nil {
			enc := base64.StdEncoding.EncodeToString(ir)
			if enc == "" {
				enc = "="
			}
			line += " " + enc
		}
		if err := c.text.PrintfLine("%s", line); err != nil {
			return err
		}
		for {
			r, err := c.readReply()
			if err != nil {
				return err
			}
			switch r.Code {
			case 235:
				return nil
			case 334:
				ch, err := base64.StdEncoding.DecodeString(r.Message)
				if err != nil {
					_ = c.text.PrintfLine("*")
					_, _ = c.readReply()
					return fmt.Errorf("smtpext: bad SASL challenge: %w", err)
				}
				resp, err := a.Next(ch)
				if err != nil {
					_ = c.text.PrintfLine("*")
					_, _ = c.readReply()
					return fmt.Errorf("smtpext: SASL: %w", err)
				}
				if err := c.text.PrintfLine("%s", base64.StdEncoding.EncodeToString(resp)); err != nil {
					return err
				}
			default:
				return r.err()
			}
		}
	})
}

// isESMTPValue reports whether v is an esmtp-value (RFC 5321 section
// 4.1.2: %d33-60 / %d62-126, so no "=", space or control character).
func isESMTPValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 33 || c > 126 || c == '=' {
			return false
		}
	}
	return v != ""
}

func (c *Client) params(ps []MailParam) (string, error) {
	var b strings.Builder
	for _, p := range ps {
		if p.Keyword != "" {
			if ok, _ := c.Extension(p.Keyword); !ok {
				if p.IfSupported {
					continue
				}
				return "", fmt.Errorf("%w: %s (for %s=)", ErrNotAdvertised, p.Keyword, p.Name)
			}
		}
		if !isKeyword(p.Name) {
			return "", fmt.Errorf("smtpext: invalid parameter name %q", p.Name)
		}
		b.WriteByte(' ')
		b.WriteString(p.Name)
		if p.Value != "" {
			if !isESMTPValue(p.Value) {
				return "", fmt.Errorf("smtpext: invalid value for %s", p.Name)
			}
			b.WriteByte('=')
			b.WriteString(p.Value)
		}
	}
	return b.String(), nil
}

func validAddr(a string) error {
	if strings.ContainsAny(a, "<> \t\r\n") {
		return fmt.Errorf("smtpext: invalid address %q", a)
	}
	return nil
}

// Mail sends MAIL FROM:<from> with the parameters (RFC 5321 section
// 4.1.1.2). A parameter whose Keyword the server did not advertise is
// dropped (IfSupported) or makes Mail fail with ErrNotAdvertised before
// anything is sent. A negative reply is a *ReplyError.
func (c *Client) Mail(ctx context.Context, from string, params ...MailParam) error {
	return c.do(ctx, func() error {
		if err := validAddr(from); err != nil {
			return err
		}
		if err := c.ensureHello(); err != nil {
			return err
		}
		ps, err := c.params(params)
		if err != nil {
			return err
		}
		_, err = c.cmd(250, "MAIL FROM:<"+from+">"+ps)
		return err
	})
}

// Rcpt sends RCPT TO:<to> with the parameters and returns the server's
// reply for this recipient; a negative one is also returned as a
// *ReplyError, and the transaction goes on with the other recipients.
func (c *Client) Rcpt(ctx context.Context, to string, params ...MailParam) (*Reply, error) {
	var r *Reply
	err := c.do(ctx, func() error {
		if err := validAddr(to); err != nil || to == "" {
			return fmt.Errorf("smtpext: invalid recipient %q", to)
		}
		ps, err := c.params(params)
		if err != nil {
			return err
		}
		r, err = c.cmd(250, "RCPT TO:<"+to+">"+ps)
		if r != nil && r.Code == 251 {
			err = nil // user not local; will forward
		}
		return err
	})
	return r, err
}

// Data sends DATA and returns a writer for the message: it dot-stuffs
// (RFC 5321 section 4.5.2) and turns bare LF into CRLF. Close sends the
// end-of-data marker and returns the server's verdict (a *ReplyError when
// negative). ctx bounds the whole transfer up to Close.
func (c *Client) Data(ctx context.Context) (io.WriteCloser, error) {
	err := c.do(ctx, func() error {
		_, err := c.cmd(354, "DATA")
		return err
	})
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	if err := c.conn.SetDeadline(dl); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	return &dataWriter{c: c, ctx: ctx, stop: stop, w: c.text.DotWriter()}, nil
}

type dataWriter struct {
	c      *Client
	ctx    context.Context
	stop   func() bool
	w      io.WriteCloser
	closed bool
}

func (d *dataWriter) Write(p []byte) (int, error) {
	if d.closed {
		return 0, errors.New("smtpext: write after Close")
	}
	return d.w.Write(p)
}

func (d *dataWriter) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	defer d.stop()
	if err := d.w.Close(); err != nil {
		return fmt.Errorf("smtpext: ending DATA: %w", err)
	}
	_, err := d.c.expect(250)
	if err != nil && d.ctx.Err() != nil {
		return fmt.Errorf("smtpext: %w (%w)", d.ctx.Err(), err)
	}
	return err
}

// Reset sends RSET.
func (c *Client) Reset(ctx context.Context) error {
	return c.do(ctx, func() error {
		_, err := c.cmd(250, "RSET")
		return err
	})
}

// Noop sends NOOP.
func (c *Client) Noop(ctx context.Context) error {
	return c.do(ctx, func() error {
		_, err := c.cmd(250, "NOOP")
		return err
	})
}

// Quit sends QUIT and closes the connection.
func (c *Client) Quit(ctx context.Context) error {
	err := c.do(ctx, func() error {
		_, err := c.cmd(221, "QUIT")
		return err
	})
	if cerr := c.conn.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the connection without QUIT.
func (c *Client) Close() error { return c.conn.Close() }

// XText encodes s as xtext (RFC 3461 section 4), as ENVID and ORCPT
// values require.
func XText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= '!' && ch <= '~' && ch != '+' && ch != '=' {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "+%02X", ch)
		}
	}
	return b.String()
}
