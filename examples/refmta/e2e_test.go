package main

// End-to-end tests: refmta runs as a subprocess with its command-line
// flags (the test binary re-executes itself as refmta, so the child runs
// exactly main's code, race detector included), Python's smtplib submits
// mail, and the mtqp client tracks and recalls it. Nothing here waits for a
// fixed time: state is polled until it appears, with a generous deadline.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
)

const childEnv = "REFMTA_E2E_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stderr))
	}
	code := m.Run()
	if cliPath != "" {
		_ = os.RemoveAll(filepath.Dir(cliPath))
	}
	os.Exit(code)
}

// instance is one refmta process.
type instance struct {
	t                    *testing.T
	name                 string
	dir                  string
	mx, submission, mtqp string
	args                 []string
	cmd                  *exec.Cmd
	log                  *os.File
	done                 chan error
	mu                   sync.Mutex
}

type instanceConfig struct {
	hostname     string
	localDomains string
	users        string // users file content
	aliases      string // aliases file content, "" for none
	extra        []string
}

func startInstance(t *testing.T, cfg instanceConfig) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, name: cfg.hostname, dir: dir,
		mx:         fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		submission: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		mtqp:       fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
	}
	usersFile := filepath.Join(dir, "users")
	require.NoError(t, os.WriteFile(usersFile, []byte(cfg.users), 0o600))
	in.args = []string{
		"-mx", in.mx, "-submission", in.submission, "-mtqp", in.mtqp,
		"-hostname", cfg.hostname, "-spool", filepath.Join(dir, "spool"),
		"-maildir", filepath.Join(dir, "maildir"), "-local-domains", cfg.localDomains,
		"-users", usersFile, "-recall-poll", "200ms", "-retry", "1s",
	}
	if cfg.aliases != "" {
		af := filepath.Join(dir, "aliases")
		require.NoError(t, os.WriteFile(af, []byte(cfg.aliases), 0o600))
		in.args = append(in.args, "-aliases", af)
	}
	in.args = append(in.args, cfg.extra...)
	in.start()
	t.Cleanup(func() {
		if err := in.stop(); err != nil {
			t.Errorf("%s: exit after SIGTERM: %v", in.name, err)
		}
		assert.NotContains(t, in.logText(), "WARNING: DATA RACE")
		if t.Failed() {
			b, _ := os.ReadFile(in.log.Name())
			t.Logf("%s log:\n%s", in.name, b)
		}
	})
	return in
}

func (in *instance) start() {
	t := in.t
	t.Helper()
	if in.log == nil {
		f, err := os.Create(filepath.Join(in.dir, "refmta.log"))
		require.NoError(t, err)
		in.log = f
	}
	cmd := exec.Command(os.Args[0], in.args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdout, cmd.Stderr = in.log, in.log
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	in.mu.Lock()
	in.cmd, in.done = cmd, done
	in.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{in.mx, in.submission, in.mtqp} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-done:
				t.Fatalf("%s exited early: %v", in.name, err)
			default:
			}
			require.True(t, time.Now().Before(deadline), "%s did not start listening on %s", in.name, addr)
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// kill9 kills the process without warning.
func (in *instance) kill9() {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.cmd = nil
	in.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop sends SIGTERM and waits; it reports the exit error.
func (in *instance) stop() error {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.cmd = nil
	in.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-time.After(45 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("%s did not stop on SIGTERM", in.name)
	}
}

func (in *instance) logText() string {
	b, _ := os.ReadFile(in.log.Name())
	return string(b)
}

// maildirFiles lists user's new/ messages.
func (in *instance) maildirFiles(user string) []string {
	entries, _ := os.ReadDir(filepath.Join(in.dir, "maildir", user, "new"))
	var out []string
	for _, e := range entries {
		out = append(out, filepath.Join(in.dir, "maildir", user, "new", e.Name()))
	}
	return out
}

func readAll(t *testing.T, paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		b.Write(data)
	}
	return b.String()
}

// submission ---------------------------------------------------------------

const smtplibScript = `
import json, smtplib, ssl, sys
a = json.load(sys.stdin)
host, port = a["addr"].rsplit(":", 1)
out = {}
try:
    s = smtplib.SMTP(host, int(port), timeout=30)
    s.ehlo("client.example.test")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.ehlo("client.example.test")
    out["ehlo"] = s.ehlo_resp.decode()
    s.login(a["user"], a["password"])
    refused = s.sendmail(a["from"], a["rcpts"], a["msg"].encode(), mail_options=a["mail_options"], rcpt_options=a["rcpt_options"])
    out["refused"] = {k: v[0] for k, v in refused.items()}
    s.quit()
    out["ok"] = True
except smtplib.SMTPResponseException as e:
    out["code"] = e.smtp_code
    out["error"] = e.smtp_error.decode(errors="replace")
except smtplib.SMTPRecipientsRefused as e:
    out["code"] = list(e.recipients.values())[0][0]
    out["error"] = "recipients refused"
json.dump(out, sys.stdout)
`

type submitReq struct {
	Addr        string   `json:"addr"`
	User        string   `json:"user"`
	Password    string   `json:"password"`
	From        string   `json:"from"`
	Rcpts       []string `json:"rcpts"`
	Msg         string   `json:"msg"`
	MailOptions []string `json:"mail_options"`
	RcptOptions []string `json:"rcpt_options"`
}

type submitRes struct {
	OK    bool   `json:"ok"`
	Code  int    `json:"code"`
	Error string `json:"error"`
	EHLO  string `json:"ehlo"`
}

// tracked message as the sender knows it.
type sent struct {
	envid  string
	secret mtrk.Secret
}

var pyOnce sync.Once
var pyPath string

func submit(t *testing.T, in *instance, from string, rcpts []string, envid string, hold int, extraMail, rcptOpts []string) sent {
	t.Helper()
	res, s := trySubmit(t, in, mail{from: from, rcpts: rcpts, envid: envid, hold: hold, tracked: true, extraMail: extraMail, rcptOpts: rcptOpts})
	require.True(t, res.OK, "submission failed: %+v", res)
	return s
}

// mail is one submission.
type mail struct {
	from      string
	rcpts     []string
	envid     string // "" sends no ENVID
	hold      int    // HOLDFOR seconds, 0 for none
	tracked   bool   // send MTRK= with a fresh secret
	extraMail []string
	rcptOpts  []string
	header    string // extra header fields, CRLF-terminated
}

func trySubmit(t *testing.T, in *instance, m mail) (submitRes, sent) {
	t.Helper()
	pyOnce.Do(func() { pyPath = testenv.Python(t) })
	if pyPath == "" {
		pyPath = testenv.Python(t)
	}
	var opts []string
	var s sent
	s.envid = m.envid
	if m.envid != "" {
		opts = append(opts, "ENVID="+m.envid)
	}
	if m.tracked {
		secret, err := mtrk.NewSecret()
		require.NoError(t, err)
		s.secret = secret
		opts = append(opts, "MTRK="+secret.Certifier().String()+":86400")
	}
	if m.hold > 0 {
		opts = append(opts, fmt.Sprintf("HOLDFOR=%d", m.hold))
	}
	opts = append(opts, m.extraMail...)
	header := m.header
	if !strings.Contains(strings.ToLower(header), "message-id:") {
		header += fmt.Sprintf("Message-ID: <%s@example.test>\r\n", m.envid)
	}
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\n%s\r\nBody of %s.\r\n",
		m.from, strings.Join(m.rcpts, ", "), m.envid, header, m.envid)
	req := submitReq{Addr: in.submission, User: "alice", Password: "alice-pw", From: m.from, Rcpts: m.rcpts,
		Msg: msg, MailOptions: opts, RcptOptions: m.rcptOpts}
	if req.MailOptions == nil {
		req.MailOptions = []string{}
	}
	if req.RcptOptions == nil {
		req.RcptOptions = []string{}
	}
	b, err := json.Marshal(req)
	require.NoError(t, err)
	cmd := exec.Command(pyPath, "-c", smtplibScript)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "python: %s", stderr.String())
	var res submitRes
	require.NoError(t, json.Unmarshal(out, &res), string(out))
	return res, s
}

// MTQP ---------------------------------------------------------------------

func mtqpClient(t *testing.T, addr string) *mtqp.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mtqp.Dial(ctx, addr)
	require.NoError(t, err)
	require.NoError(t, c.StartTLS(ctx, &tls.Config{InsecureSkipVerify: true})) //nolint:gosec // refmta's self-signed certificate
	t.Cleanup(func() { c.Close() })
	return c
}

func track(t *testing.T, addr string, s sent) *mtqp.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mtqpClient(t, addr)
	r, err := c.Track(ctx, s.envid, s.secret)
	require.NoError(t, err)
	return r.Report
}

func recall(t *testing.T, addr string, s sent) *mtqp.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mtqpClient(t, addr)
	r, err := c.Recall(ctx, s.envid, s.secret)
	require.NoError(t, err)
	return r.Report
}

func ext(fields []mtqp.Field, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

func rcptOf(t *testing.T, r *mtqp.Report, addr string) *mtqp.Recipient {
	t.Helper()
	for i := range r.Recipients {
		if strings.EqualFold(r.Recipients[i].FinalRecipient.Value, addr) {
			return &r.Recipients[i]
		}
	}
	t.Fatalf("recipient %s not in report %+v", addr, r.Recipients)
	return nil
}

// eventually polls cond until it holds (a deadline guards a hung test; it
// is not a measurement).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func single(t *testing.T, extra ...string) *instance {
	return startInstance(t, instanceConfig{
		hostname: "mta.example.test", localDomains: "example.test",
		users: "alice:alice-pw\nbob:bob-pw\n", extra: extra,
	})
}

// tests --------------------------------------------------------------------

func TestE2EHoldThenDeliver(t *testing.T) {
	in := single(t)
	s := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "e2e-deliver", 2, nil, nil)

	r := track(t, in.mtqp, s)
	assert.Equal(t, "e2e-deliver", r.EnvelopeID)
	bob := rcptOf(t, r, "bob@example.test")
	if bob.Action != mtqp.ActionDelivered { // the 2 s hold may already be over on a slow machine
		assert.Equal(t, mtqp.ActionDelayed, bob.Action)
		assert.Equal(t, "held", ext(bob.Extensions, "X-Tracking-State"))
		assert.NotEmpty(t, ext(r.Extensions, "X-Hold-Until"))
	}
	eventually(t, "delivered", func() bool {
		return rcptOf(t, track(t, in.mtqp, s), "bob@example.test").Action == mtqp.ActionDelivered
	})
	files := in.maildirFiles("bob")
	require.Len(t, files, 1)
	body := readAll(t, files)
	assert.Contains(t, body, "Subject: e2e-deliver")
	assert.Contains(t, body, "with ESMTPSA")
	assert.NoError(t, in.stop(), "SIGTERM must end refmta with status 0")
	assert.Contains(t, in.logText(), "refmta stopped")
}

func TestE2EHoldThenRecall(t *testing.T) {
	in := single(t)
	s := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "e2e-recall", 3600, nil, nil)
	r := recall(t, in.mtqp, s)
	assert.Equal(t, mtqp.RecallRecalled, rcptOf(t, r, "bob@example.test").RecallStatus())

	// Asked again: the same answer (the spool remembers).
	r = recall(t, in.mtqp, s)
	assert.Equal(t, mtqp.RecallRecalled, rcptOf(t, r, "bob@example.test").RecallStatus())
	assert.Equal(t, "recalled", ext(rcptOf(t, track(t, in.mtqp, s), "bob@example.test").Extensions, "X-Tracking-State"))

	// A message released right after proves the queue runs; the
	// recalled one must never show up next to it.
	s2 := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "e2e-after", 1, nil, nil)
	eventually(t, "second message delivered", func() bool {
		return rcptOf(t, track(t, in.mtqp, s2), "bob@example.test").Action == mtqp.ActionDelivered
	})
	body := readAll(t, in.maildirFiles("bob"))
	assert.Contains(t, body, "Subject: e2e-after")
	assert.NotContains(t, body, "e2e-recall")
	require.Len(t, in.maildirFiles("bob"), 1)
}

func TestE2ERecallAfterDelivery(t *testing.T) {
	in := single(t)
	s := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "e2e-late", 1, nil, nil)
	eventually(t, "delivered", func() bool {
		return rcptOf(t, track(t, in.mtqp, s), "bob@example.test").Action == mtqp.ActionDelivered
	})
	r := recall(t, in.mtqp, s)
	bob := rcptOf(t, r, "bob@example.test")
	assert.Equal(t, mtqp.RecallTooLate, bob.RecallStatus())
	assert.Equal(t, mtqp.ActionDelivered, bob.Action)
	assert.Len(t, in.maildirFiles("bob"), 1)
}

func TestE2EPermanentFailureDSN(t *testing.T) {
	// No -relay: mail for other domains fails permanently (5.4.4), and
	// the sender (a local mailbox) gets an RFC 3464 DSN.
	in := single(t)
	s := submit(t, in, "alice@example.test", []string{"carol@elsewhere.test"}, "e2e-dsn", 1,
		[]string{"RET=HDRS"}, []string{"NOTIFY=FAILURE", "ORCPT=rfc822;carol@elsewhere.test"})
	eventually(t, "failed", func() bool {
		return rcptOf(t, track(t, in.mtqp, s), "carol@elsewhere.test").Action == mtqp.ActionFailed
	})
	eventually(t, "DSN in alice's Maildir", func() bool { return len(in.maildirFiles("alice")) == 1 })
	dsnText := readAll(t, in.maildirFiles("alice"))
	assert.Contains(t, dsnText, "multipart/report")
	assert.Contains(t, dsnText, "report-type=delivery-status")
	assert.Contains(t, dsnText, "Original-Envelope-Id: e2e-dsn")
	assert.Contains(t, dsnText, "Action: failed")
	assert.Contains(t, dsnText, "Status: 5.4.4")
	assert.Contains(t, dsnText, "Original-Recipient: rfc822;carol@elsewhere.test")
	assert.Contains(t, dsnText, "text/rfc822-headers", "RET=HDRS returns the header only")
	assert.NotContains(t, dsnText, "Body of e2e-dsn")
}

func TestE2EMXRelayDenied(t *testing.T) {
	// The MX listener relays only to local domains.
	in := single(t)
	c, err := net.Dial("tcp", in.mx)
	require.NoError(t, err)
	defer c.Close()
	buf := make([]byte, 4096)
	read := func() string {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := c.Read(buf)
		return string(buf[:n])
	}
	send := func(s string) string {
		_, err := c.Write([]byte(s + "\r\n"))
		require.NoError(t, err)
		return read()
	}
	assert.True(t, strings.HasPrefix(read(), "220"))
	ehlo := send("EHLO peer.example.net")
	assert.Contains(t, ehlo, "MTRK")
	assert.NotContains(t, ehlo, "FUTURERELEASE", "no FUTURERELEASE on MX")
	assert.True(t, strings.HasPrefix(send("MAIL FROM:<x@example.net>"), "250"))
	assert.True(t, strings.HasPrefix(send("RCPT TO:<victim@elsewhere.test>"), "554"))
	assert.True(t, strings.HasPrefix(send("RCPT TO:<nobody@example.test>"), "550"))
	assert.True(t, strings.HasPrefix(send("RCPT TO:<bob@example.test>"), "250"))
}

func TestE2EKill9DuringHold(t *testing.T) {
	// The record must survive the restart too, so the store is a real
	// memcached; the spool survives by itself.
	mc := testenv.StartMemcached(t)
	in := single(t, "-store", "memcache://"+mc.Addr)
	held := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "e2e-kill-held", 3600, nil, nil)
	soon := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "e2e-kill-soon", 3, nil, nil)
	in.kill9()

	in.start()
	r := track(t, in.mtqp, held)
	assert.Equal(t, "held", ext(rcptOf(t, r, "bob@example.test").Extensions, "X-Tracking-State"))
	eventually(t, "the short hold is released after the restart", func() bool {
		return rcptOf(t, track(t, in.mtqp, soon), "bob@example.test").Action == mtqp.ActionDelivered
	})
	r = recall(t, in.mtqp, held)
	assert.Equal(t, mtqp.RecallRecalled, rcptOf(t, r, "bob@example.test").RecallStatus())
	body := readAll(t, in.maildirFiles("bob"))
	assert.Contains(t, body, "e2e-kill-soon")
	assert.NotContains(t, body, "e2e-kill-held")
}

func TestE2ETwoInstancesSharedMemcached(t *testing.T) {
	mc := testenv.StartMemcached(t)
	store := "memcache://" + mc.Addr
	b := startInstance(t, instanceConfig{
		hostname: "mtb.b.test", localDomains: "b.test", users: "bob:bob-pw\n",
		extra: []string{"-store", store, "-mx-internal"},
	})
	a := startInstance(t, instanceConfig{
		hostname: "mta.a.test", localDomains: "a.test", users: "alice:alice-pw\n",
		extra: []string{"-store", store, "-relay", b.mx},
	})

	// One message goes A -> B and is delivered at B.
	s := submit(t, a, "alice@a.test", []string{"bob@b.test"}, "e2e-two-hops", 1, nil, nil)
	eventually(t, "delivered at B", func() bool {
		return rcptOf(t, track(t, a.mtqp, s), "bob@b.test").Action == mtqp.ActionDelivered
	})
	require.Len(t, b.maildirFiles("bob"), 1)
	body := readAll(t, b.maildirFiles("bob"))
	assert.Contains(t, body, "by mtb.b.test")
	assert.Contains(t, body, "by mta.a.test")

	// The one record shows both hops (privileged lookup on the shared store).
	st, err := memcachestore.New(memcachestore.Options{Servers: []string{mc.Addr}})
	require.NoError(t, err)
	defer st.Close()
	rec, err := tracking.New(st, tracking.Options{ReportingMTA: "inspector"}).Lookup(context.Background(), s.secret.Certifier())
	require.NoError(t, err)
	require.Len(t, rec.Hops, 2)
	assert.Equal(t, "mta.a.test", rec.Hops[0].ReportingMTA)
	assert.Equal(t, "mtb.b.test", rec.Hops[1].ReportingMTA)
	assert.True(t, rec.Hops[1].Internal)
	require.Len(t, rec.Recipients, 1)
	assert.Equal(t, "mtb.b.test", rec.Recipients[0].OwnerMTA)
	// B answers for the same record.
	assert.Equal(t, mtqp.ActionDelivered, rcptOf(t, track(t, b.mtqp, s), "bob@b.test").Action)

	// A recall made at B reaches a message still held at A.
	h := submit(t, a, "alice@a.test", []string{"bob@b.test"}, "e2e-two-recall", 3600, nil, nil)
	first := rcptOf(t, recall(t, b.mtqp, h), "bob@b.test").RecallStatus()
	assert.Contains(t, []mtqp.RecallStatus{mtqp.RecallPending, mtqp.RecallRecalled}, first)
	eventually(t, "A confirms the recall made at B", func() bool {
		return rcptOf(t, recall(t, b.mtqp, h), "bob@b.test").RecallStatus() == mtqp.RecallRecalled
	})
	assert.Contains(t, a.logText(), "recipient recalled")
	assert.Len(t, b.maildirFiles("bob"), 1, "the recalled message never reaches B")

	// A message queued at B (its Maildir fails temporarily: a plain file
	// stands where bob's folder should be) is recalled through A.
	bobDir := filepath.Join(b.dir, "maildir", "bob")
	require.NoError(t, os.Rename(bobDir, bobDir+".away"))
	require.NoError(t, os.WriteFile(bobDir, []byte("not a folder"), 0o600))
	q := submit(t, a, "alice@a.test", []string{"bob@b.test"}, "e2e-queued-at-b", 1, nil, nil)
	eventually(t, "deferred at B", func() bool {
		rc := rcptOf(t, track(t, a.mtqp, q), "bob@b.test")
		return rc.Action == mtqp.ActionDelayed && ext(rc.Extensions, "X-Diagnostic") != ""
	})
	eventually(t, "B confirms the recall made at A", func() bool {
		return rcptOf(t, recall(t, a.mtqp, q), "bob@b.test").RecallStatus() == mtqp.RecallRecalled
	})
	require.NoError(t, os.Remove(bobDir))
	require.NoError(t, os.Rename(bobDir+".away", bobDir))
	assert.Contains(t, b.logText(), "recipient recalled")
	assert.NotContains(t, readAll(t, b.maildirFiles("bob")), "e2e-queued-at-b")
}
