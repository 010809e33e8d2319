package gosmtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

const (
	testUser = "alice"
	testPass = "wonderland"
)

// received is one message as the wrapped backend got it.
type received struct {
	From     string
	MailOpts smtp.MailOptions
	Rcpts    []string
	Body     string
	Tracking *Tracking // nil when SetTracking was not called
	User     string
}

// recBackend is the wrapped backend: it records what it receives, accepts
// AUTH PLAIN for testUser and can be told to refuse messages.
type recBackend struct {
	mu   sync.Mutex
	msgs []received
	// rejectData refuses every message at Data with this error.
	rejectData error
	// lmtpReject refuses these recipients at LMTPData.
	lmtpReject map[string]error
	rollbacks  int
}

func (b *recBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &recSession{b: b}, nil
}

func (b *recBackend) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

type recSession struct {
	b     *recBackend
	from  string
	opts  smtp.MailOptions
	rcpts []string
	tr    *Tracking
	user  string
}

func (s *recSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *recSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != testUser && username != "bob" || password != testPass || identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}
func (s *recSession) Reset()        { s.from, s.rcpts, s.tr = "", nil, nil }
func (s *recSession) Logout() error { return nil }
func (s *recSession) Mail(from string, opts *smtp.MailOptions) error {
	s.from = from
	if opts != nil {
		s.opts = *opts
	}
	return nil
}
func (s *recSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *recSession) SetTracking(t *Tracking) { s.tr = t }

func (s *recSession) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.b.rejectData != nil {
		return s.b.rejectData
	}
	s.store(body)
	return nil
}

func (s *recSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, rc := range s.rcpts {
		status.SetStatus(rc, s.b.lmtpReject[rc])
	}
	s.store(body)
	return nil
}

func (s *recSession) Rollback(*Tracking, []string, error) {
	s.b.mu.Lock()
	s.b.rollbacks++
	s.b.mu.Unlock()
}

func (s *recSession) store(body []byte) {
	var tr *Tracking
	if s.tr != nil {
		c := *s.tr
		tr = &c
	}
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, received{From: s.from, MailOpts: s.opts, Rcpts: append([]string(nil), s.rcpts...),
		Body: string(body), Tracking: tr, User: s.user})
	s.b.mu.Unlock()
}

// harness is a go-smtp server behind smtpext and the middleware, with a
// tracking engine on a real store.
type harness struct {
	addr    string
	mw      *Middleware
	eng     *tracking.Engine
	be      *recBackend
	caFile  string
	srv     *smtpext.Server
	tlsConf *tls.Config
}

type harnessConfig struct {
	ch    channelopts.Channel
	opts  Options
	store trackstore.Store
	lmtp  bool
	be    *recBackend
}

func newHarness(t testing.TB, hc harnessConfig) *harness {
	t.Helper()
	if hc.store == nil {
		hc.store = memstore.New(memstore.Options{})
	}
	h := &harness{be: hc.be}
	if h.be == nil {
		h.be = &recBackend{}
	}
	h.eng = tracking.New(hc.store, tracking.Options{ReportingMTA: "mx.test", Retries: -1})
	if hc.opts.Engine == nil {
		hc.opts.Engine = h.eng
	} else {
		h.eng = hc.opts.Engine
	}
	mw, err := New(h.be, hc.ch, hc.opts)
	require.NoError(t, err)
	h.mw = mw

	cert, certPEM, _ := testenv.SelfSignedCert(t, "127.0.0.1", "localhost")
	h.caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(h.caFile, certPEM, 0o600))
	h.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}

	srv := smtp.NewServer(nil)
	srv.Domain = "mx.test"
	srv.LMTP = hc.lmtp
	srv.EnableSMTPUTF8 = true
	h.srv, err = mw.NewServer(srv, smtpext.Config{TLSConfig: h.tlsConf})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { _ = h.srv.Serve(l); close(done) }()
	t.Cleanup(func() {
		_ = h.srv.Close()
		<-done
	})
	return h
}

func (h *harness) port() int {
	_, p, _ := net.SplitHostPort(h.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// pyScript drives the server with Python's smtplib: optional STARTTLS
// (verifying the test certificate) and AUTH PLAIN, then each transaction
// with its MAIL and RCPT options. A refused transaction is reported and
// the next one is tried on the same connection.
const pyScript = `
import json, smtplib, ssl, sys
cfg = json.load(sys.stdin)
out = {"transactions": []}
s = smtplib.SMTP(cfg["host"], cfg["port"], local_hostname="client.test", timeout=20)
s.ehlo()
out["ehlo_plain"] = sorted(s.esmtp_features.keys())
if cfg.get("starttls"):
    ctx = ssl.create_default_context(cafile=cfg["cafile"])
    s.starttls(context=ctx)
    s.ehlo()
out["ehlo"] = {k: v for k, v in s.esmtp_features.items()}
if cfg.get("user"):
    s.login(cfg["user"], cfg["password"])
for tx in cfg["transactions"]:
    res = {}
    try:
        refused = s.sendmail(tx["from"], tx["to"], tx["msg"].encode(), mail_options=tx.get("mail_options", []), rcpt_options=tx.get("rcpt_options", []))
        res["ok"] = True
        res["refused"] = {k: v[0] for k, v in refused.items()}
    except smtplib.SMTPSenderRefused as e:
        res["code"] = e.smtp_code
        res["msg"] = e.smtp_error.decode()
        res["stage"] = "mail"
    except smtplib.SMTPDataError as e:
        res["code"] = e.smtp_code
        res["msg"] = e.smtp_error.decode()
        res["stage"] = "data"
    except smtplib.SMTPRecipientsRefused as e:
        res["code"] = list(e.recipients.values())[0][0]
        res["stage"] = "rcpt"
    out["transactions"].append(res)
s.quit()
print(json.dumps(out))
`

type pyTx struct {
	From        string   `json:"from"`
	To          []string `json:"to"`
	Msg         string   `json:"msg"`
	MailOptions []string `json:"mail_options,omitempty"`
	RcptOptions []string `json:"rcpt_options,omitempty"`
}

type pyConfig struct {
	Host         string `json:"host"`
	Port         int    `json:"port"`
	StartTLS     bool   `json:"starttls"`
	CAFile       string `json:"cafile"`
	User         string `json:"user,omitempty"`
	Password     string `json:"password,omitempty"`
	Transactions []pyTx `json:"transactions"`
}

type pyResult struct {
	EHLOPlain    []string          `json:"ehlo_plain"`
	EHLO         map[string]string `json:"ehlo"`
	Transactions []struct {
		OK      bool           `json:"ok"`
		Refused map[string]int `json:"refused"`
		Code    int            `json:"code"`
		Msg     string         `json:"msg"`
		Stage   string         `json:"stage"`
	} `json:"transactions"`
}

func runPython(t testing.TB, h *harness, cfg pyConfig) pyResult {
	t.Helper()
	py := testenv.Python(t)
	cfg.Host, cfg.Port, cfg.CAFile = "127.0.0.1", h.port(), h.caFile
	in, err := json.Marshal(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", pyScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "python: %s", stderr.String())
	var res pyResult
	require.NoError(t, json.Unmarshal(out, &res), string(out))
	require.Len(t, res.Transactions, len(cfg.Transactions))
	return res
}

// runSwaks runs swaks against the harness and returns its transcript.
func runSwaks(t testing.TB, h *harness, args ...string) (string, error) {
	t.Helper()
	sw := testenv.Swaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--server", "127.0.0.1", "--port", strconv.Itoa(h.port()), "--helo", "client.test",
		"--tls-verify", "--tls-ca-path", h.caFile, "--timeout", "20"}
	cmd := exec.CommandContext(ctx, sw, append(base, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), err
	}
	require.NoError(t, err, string(out))
	return string(out), nil
}

func testMessage(msgID, date string) string {
	var b bytes.Buffer
	if msgID != "" {
		b.WriteString("Message-ID: " + msgID + "\r\n")
	}
	if date != "" {
		b.WriteString("Date: " + date + "\r\n")
	}
	b.WriteString("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: test\r\n\r\nHello.\r\n.dot line\r\nMAIL FROM:<x@y>\r\n")
	return b.String()
}

// rawClient is a scripted raw-socket SMTP/LMTP client, for what smtplib
// cannot do (LMTP per-recipient replies, pipelining).
type rawClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawClient{t: t, c: c, br: bufio.NewReader(c)}
	rc.reply() // greeting
	return rc
}

// send writes s as it is (several pipelined commands at once if wanted).
func (rc *rawClient) send(s string) {
	rc.t.Helper()
	_, err := io.WriteString(rc.c, s)
	require.NoError(rc.t, err)
}

// reply reads one (possibly multi-line) reply and returns its lines.
func (rc *rawClient) reply() []string {
	rc.t.Helper()
	var lines []string
	for {
		ln, err := rc.br.ReadString('\n')
		require.NoError(rc.t, err, "after %q", lines)
		ln = strings.TrimRight(ln, "\r\n")
		lines = append(lines, ln)
		if len(ln) < 4 || ln[3] != '-' {
			return lines
		}
	}
}

// code reads one reply and returns its code.
func (rc *rawClient) code() int {
	rc.t.Helper()
	lines := rc.reply()
	n, _ := strconv.Atoi(lines[len(lines)-1][:3])
	return n
}
