package smtpext

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/stretchr/testify/require"
)

// message is what the recording backend received for one message.
type message struct {
	From     string
	MailOpts smtp.MailOptions
	Rcpts    []string
	Body     string
	DataErr  error
	// Layer view at Data time (nil Info: not served through smtpext).
	Tx       Transaction
	HasInfo  bool
	TLS      bool
	Remote   string
	Listener string
	// CommandParams seen inside Mail and each Rcpt.
	MailCmd Params
	RcptCmd []Params
	User    string
}

type recBackend struct {
	mu       sync.Mutex
	msgs     []message
	sessions int
	logouts  int
	// rejectRcpt makes Rcpt fail for these addresses.
	rejectRcpt map[string]bool
}

func (b *recBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.mu.Lock()
	b.sessions++
	b.mu.Unlock()
	return &recSession{b: b, c: c, info: FromConn(c)}, nil
}

func (b *recBackend) messages() []message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]message(nil), b.msgs...)
}

type recSession struct {
	b    *recBackend
	c    *smtp.Conn
	info *Info
	cur  message
	user string
}

func (s *recSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *recSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "user" || password != "secret" {
			return errors.New("invalid credentials")
		}
		s.user = username
		return nil
	}), nil
}

func (s *recSession) Mail(from string, opts *smtp.MailOptions) error {
	// go-smtp keeps the recipients across a second MAIL; so does this
	// record, so that it can be compared with the layer's Transaction.
	s.cur.From, s.cur.MailOpts = from, smtp.MailOptions{}
	if opts != nil {
		s.cur.MailOpts = *opts
	}
	if s.info != nil {
		s.cur.MailCmd = s.info.CommandParams()
	}
	return nil
}

func (s *recSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.b.rejectRcpt[to] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.cur.Rcpts = append(s.cur.Rcpts, to)
	if s.info != nil {
		s.cur.RcptCmd = append(s.cur.RcptCmd, s.info.CommandParams())
	}
	return nil
}

func (s *recSession) Data(r io.Reader) error {
	m := s.cur
	if s.info != nil {
		m.HasInfo = true
		m.Tx = s.info.Transaction()
		_, m.TLS = s.info.TLS()
		m.Remote = s.info.RemoteAddr().String()
		m.Listener = s.info.Listener()
	}
	m.User = s.user
	body, err := io.ReadAll(r)
	m.Body, m.DataErr = string(body), err
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, m)
	s.b.mu.Unlock()
	return err
}

func (s *recSession) Reset() { s.cur = message{} }

func (s *recSession) Logout() error {
	s.b.mu.Lock()
	s.b.logouts++
	s.b.mu.Unlock()
	return nil
}

// digitsErr is a parser error carrying its own reply.
type digitsErr struct{ name string }

func (e digitsErr) Error() string { return e.name + " must be digits" }
func (e digitsErr) SMTPReply() (int, [3]int, string) {
	return 501, [3]int{5, 5, 4}, "Malformed " + e.name + " value"
}

func digits(name string) func(ConnInfo, string, bool) (any, error) {
	return func(_ ConnInfo, v string, has bool) (any, error) {
		n, err := strconv.ParseUint(v, 10, 32)
		if !has || err != nil {
			return nil, digitsErr{name}
		}
		return n, nil
	}
}

// testExtensions: XTEST (always) with MAIL XT=<digits> and RCPT
// XR=<digits>; XTLS (after TLS) with MAIL XTL.
func testExtensions() []Extension {
	return []Extension{
		{Keyword: "XTEST", KeywordArgs: func(ConnInfo) []string { return []string{"1", "2"} },
			Mail: []ParamSpec{{Name: "XT", Parse: digits("XT")}},
			Rcpt: []ParamSpec{{Name: "XR", Parse: digits("XR")}}},
		{Keyword: "XTLS", When: AfterTLS, Mail: []ParamSpec{{Name: "XTL"}}},
	}
}

type testServer struct {
	addr    string
	srv     *Server
	smtp    *smtp.Server
	be      *recBackend
	roots   *x509.CertPool
	tlsAddr string
	done    chan error
}

type serverOpts struct {
	cfg      Config
	tls      bool
	implicit bool
	tune     func(*smtp.Server)
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	be := &recBackend{}
	s := smtp.NewServer(be)
	s.Domain = "mx.test"
	s.ErrorLog = discardLogger{}
	s.MaxMessageBytes = 4 << 20
	if o.tune != nil {
		o.tune(s)
	}
	ts := &testServer{be: be, smtp: s, done: make(chan error, 2)}
	if o.tls || o.implicit {
		cert, certPEM, _ := testenv.SelfSignedCert(t, "localhost", "127.0.0.1")
		o.cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		ts.roots = x509.NewCertPool()
		ts.roots.AppendCertsFromPEM(certPEM)
	}
	srv, err := NewServer(s, o.cfg)
	require.NoError(t, err)
	ts.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts.addr = l.Addr().String()
	go func() { ts.done <- srv.ServeListener(l, ListenerConfig{Name: "plain"}) }()
	if o.implicit {
		l2, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ts.tlsAddr = l2.Addr().String()
		go func() { ts.done <- srv.ServeListener(l2, ListenerConfig{Name: "smtps", ImplicitTLS: true}) }()
	}
	t.Cleanup(func() { srv.Close() })
	return ts
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// rawSession writes input in one go (pipelined) and returns everything
// the server sent until it closed the connection.
func rawSession(t testing.TB, addr, input string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	go func() { _, _ = io.WriteString(c, input) }()
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		require.NoError(t, err)
	}
	return string(out)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// replyCodes splits a reply stream into one "code enhanced" string per
// final reply line ("250 2.0.0"), ignoring texts.
func replyCodes(out string) []string {
	var codes []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		ln := sc.Text()
		if len(ln) < 4 || ln[3] == '-' {
			continue
		}
		f := strings.Fields(ln)
		code := f[0]
		if len(f) > 1 && strings.Count(f[1], ".") == 2 {
			code += " " + f[1]
		}
		codes = append(codes, code)
	}
	return codes
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
