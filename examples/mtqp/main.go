package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/msgtrack/msgtrack/mtqp"
)

// Exit statuses.
const (
	exitOK       = 0 // the query was answered
	exitFailed   = 1 // not found, connection, TLS, server refusal, timeout
	exitUsage    = 2 // bad command line or input; nothing was sent
	defaultLimit = 30 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: args without the program name, the report on
// stdout, a one-line reason on stderr when it fails. It returns the exit
// status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdin: os.Stdin}
	return c.run(ctx, args, stdout, stderr)
}

// cli holds what tests replace: the resolver for SRV lookups (DialDomain
// and referrals), the TCP dialer and standard input.
type cli struct {
	resolver    mtqp.Resolver
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	stdin       io.Reader
}

// options are one invocation's flags.
type options struct {
	command   string
	server    string
	timeout   time.Duration
	secret    secretFlags
	ca        string
	insecure  bool
	plaintext bool
	follow    bool
	allow     string
	maxHops   int
	json      bool
	raw       bool
}

func newFlagSet(command string, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("mtqp "+command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.server, "server", "", "MTQP server: host:port, an IP address, or a domain looked up through _mtqp._tcp SRV")
	fs.DurationVar(&o.timeout, "timeout", defaultLimit, "time limit for the whole query")
	fs.StringVar(&o.secret.envid, "envid", "", "envelope ID (ENVID) of the message")
	fs.StringVar(&o.secret.secret, "secret", "", "tracking secret A, base64")
	fs.StringVar(&o.secret.secretFile, "secret-file", "", "file holding the tracking secret A in base64 (- for stdin)")
	fs.StringVar(&o.secret.messageID, "message-id", "", "Message-ID field body, angle brackets included")
	fs.Func("date", "Date field body", func(s string) error { o.secret.date, o.secret.dateSet = s, true; return nil })
	fs.StringVar(&o.secret.messageFile, "message", "", "sent copy of the message (- for stdin); Message-ID and Date are read from it")
	fs.StringVar(&o.secret.general, "general-secret", "", "general recall secret, base64 of its octets")
	fs.StringVar(&o.secret.generalFile, "general-secret-file", "", "file holding the general recall secret's octets (- for stdin)")
	fs.StringVar(&o.ca, "ca", "", "PEM file of CA certificates to trust besides the system roots")
	fs.BoolVar(&o.insecure, "insecure", false, "do not verify the first server's certificate")
	fs.BoolVar(&o.plaintext, "plaintext", false, "skip STARTTLS (loopback servers only)")
	fs.BoolVar(&o.follow, "follow", false, "follow referrals (track only)")
	fs.StringVar(&o.allow, "allow", "", "hosts that may receive the secret when following referrals")
	fs.IntVar(&o.maxHops, "max-hops", mtqp.DefaultMaxHops, "deepest referral followed")
	fs.BoolVar(&o.json, "json", false, "print JSON")
	fs.BoolVar(&o.raw, "raw", false, "print the message/tracking-status body as received")
	return fs
}

func (c *cli) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "mtqp: missing command (track or recall); see 'mtqp -h'")
		return exitUsage
	}
	var o options
	switch args[0] {
	case "track", "recall":
		o.command = args[0]
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "mtqp: unknown command %q (track or recall); see 'mtqp -h'\n", args[0])
		return exitUsage
	}
	fs := newFlagSet(o.command, &o)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return exitOK
		}
		fmt.Fprintf(stderr, "mtqp %s: %s; see 'mtqp -h'\n", o.command, oneLine(err.Error()))
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mtqp %s: unexpected argument %q; see 'mtqp -h'\n", o.command, fs.Arg(0))
		return exitUsage
	}
	q, err := c.prepare(&o)
	if err != nil {
		fmt.Fprintf(stderr, "mtqp %s: %s\n", o.command, oneLine(err.Error()))
		return exitUsage
	}
	ans, err := c.query(ctx, &o, q)
	if err != nil {
		fmt.Fprintf(stderr, "mtqp %s: %s\n", o.command, oneLine(describe(err, &o)))
		return exitFailed
	}
	switch {
	case o.json:
		err = ans.writeJSON(stdout)
	case o.raw:
		err = ans.writeRaw(stdout)
	default:
		err = ans.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mtqp %s: writing the answer: %s\n", o.command, oneLine(err.Error()))
		return exitFailed
	}
	return exitOK
}

// prepared is a validated invocation.
type prepared struct {
	envid     string
	secret    []byte
	addr      string // host:port for Dial, or "" with domain set
	domain    string // for DialDomain
	tlsFirst  *tls.Config
	tlsVerify *tls.Config // referrals: always verifying
	allow     *allowList
}

// prepare checks the flags against each other and reads every input, so
// that nothing is sent for an invocation that cannot be carried out.
func (c *cli) prepare(o *options) (*prepared, error) {
	p := &prepared{}
	if o.server == "" {
		return nil, errors.New("-server is required")
	}
	if host, port, err := net.SplitHostPort(o.server); err == nil {
		if host == "" {
			return nil, fmt.Errorf("-server %q: no host", o.server)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("-server %q: not host:port, an IP address or a domain (bad port)", o.server)
		}
		if net.ParseIP(host) == nil && !validHostName(normHost(host)) {
			return nil, fmt.Errorf("-server %q: not host:port, an IP address or a domain (bad host)", o.server)
		}
		p.addr = o.server
	} else if ip := net.ParseIP(strings.Trim(o.server, "[]")); ip != nil {
		p.addr = net.JoinHostPort(ip.String(), strconv.Itoa(mtqp.Port))
	} else if d := normHost(o.server); validHostName(d) {
		p.domain = d
	} else {
		return nil, fmt.Errorf("-server %q: not host:port, an IP address or a domain", o.server)
	}
	if o.timeout <= 0 {
		return nil, errors.New("-timeout must be positive")
	}
	switch {
	case o.json && o.raw:
		return nil, errors.New("-json and -raw are exclusive")
	case o.insecure && o.plaintext:
		return nil, errors.New("-insecure and -plaintext are exclusive")
	case o.plaintext && o.ca != "":
		return nil, errors.New("-ca has no use with -plaintext")
	case o.follow && o.command != "track":
		return nil, errors.New("-follow works with track only: recall asks the one server given")
	case o.follow && o.raw:
		return nil, errors.New("-raw shows one body; use -json or the table with -follow")
	case o.follow && o.allow == "":
		return nil, errors.New("-follow needs -allow: name the hosts that may receive the secret")
	case !o.follow && o.allow != "":
		return nil, errors.New("-allow has no use without -follow")
	case o.maxHops < 1:
		return nil, errors.New("-max-hops must be at least 1")
	}
	if o.follow {
		a, err := parseAllow(o.allow)
		if err != nil {
			return nil, err
		}
		p.allow = a
	}
	op := &opener{stdin: c.stdin}
	envid, secret, err := o.secret.resolve(op)
	if err != nil {
		return nil, err
	}
	p.envid, p.secret = envid, secret
	if len(mtqp.FormatTrack(mtqp.CmdRecall, envid, secret)) > mtqp.MaxLineLength {
		return nil, fmt.Errorf("-envid: too long for an MTQP command line (%d characters at most, RFC 3887 section 2)", mtqp.MaxLineLength)
	}

	if !o.plaintext {
		roots, err := x509.SystemCertPool()
		if err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if o.ca != "" {
			pem, err := op.read("-ca", o.ca)
			if err != nil {
				return nil, err
			}
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-ca %s: no PEM certificate in it", o.ca)
			}
		}
		p.tlsVerify = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		p.tlsFirst = p.tlsVerify.Clone()
		p.tlsFirst.InsecureSkipVerify = o.insecure
	}
	return p, nil
}

// errPlaintextRemote refuses -plaintext towards anything but loopback.
var errPlaintextRemote = errors.New("-plaintext is allowed only for a server on a loopback address")

func (c *cli) dialer(plaintext bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	base := c.dialContext
	if base == nil {
		base = (&net.Dialer{}).DialContext
	}
	if !plaintext {
		return base
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := base(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if ta, ok := nc.RemoteAddr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			nc.Close()
			return nil, errPlaintextRemote
		}
		return nc, nil
	}
}

// phase errors say what step failed, for the one-line reason.
type phaseError struct {
	phase string
	err   error
}

func (e *phaseError) Error() string { return e.phase + ": " + e.err.Error() }
func (e *phaseError) Unwrap() error { return e.err }

func (c *cli) query(ctx context.Context, o *options, p *prepared) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	d := &mtqp.Dialer{Resolver: c.resolver, DialContext: c.dialer(o.plaintext)}
	var (
		cl  *mtqp.Client
		err error
	)
	if p.addr != "" {
		cl, err = d.Dial(ctx, p.addr)
	} else {
		cl, err = d.DialDomain(ctx, p.domain)
	}
	if err != nil {
		return nil, &phaseError{"connecting to " + o.server, err}
	}
	defer cl.Close()
	if !o.plaintext {
		if !cl.Supports(mtqp.OptionStartTLS) {
			return nil, &phaseError{"TLS", fmt.Errorf("%s does not offer STARTTLS; the secret is not sent in clear (-plaintext, for a loopback test server only)", cl.Host())}
		}
		if err := cl.StartTLS(ctx, p.tlsFirst); err != nil {
			return nil, &phaseError{"TLS with " + cl.Host(), err}
		}
	}
	ans := &answer{command: o.command, envid: p.envid, server: o.server}
	switch {
	case o.command == "recall":
		res, err := cl.Recall(ctx, p.envid, p.secret)
		if err != nil {
			return nil, err
		}
		ans.path = &mtqp.Path{Hops: []mtqp.Hop{{Host: cl.Host(), Result: res}}}
	case o.follow:
		ref := mtqp.Referrals{
			Allow:   p.allow.Allows,
			MaxHops: o.maxHops,
			Dialer:  &mtqp.Dialer{Resolver: c.resolver, DialContext: c.dialer(false), TLSConfig: p.tlsVerify},
		}
		path, err := cl.TrackPath(ctx, p.envid, p.secret, ref)
		if err != nil {
			return nil, err
		}
		ans.path = path
	default:
		res, err := cl.Track(ctx, p.envid, p.secret)
		if err != nil {
			return nil, err
		}
		ans.path = &mtqp.Path{Hops: []mtqp.Hop{{Host: cl.Host(), Result: res}}}
	}
	_ = cl.Quit(ctx)
	return ans, nil
}

// describe turns a failed query into its one-line reason.
func describe(err error, o *options) string {
	var re *mtqp.ReplyError
	switch {
	case errors.Is(err, mtqp.ErrNotFound):
		return "not found: the server knows no message with this envelope ID and secret (it does not say which is wrong)"
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %v: %v", o.timeout, err)
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.As(err, &re):
		return fmt.Sprintf("server refused: %d %s", re.Code, strings.Join(re.Lines, " "))
	}
	return err.Error()
}
