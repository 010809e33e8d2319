package smtpext

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trackingLikeExtensions registers keywords and parameters shaped like
// MTRK (RFC 3885) and FUTURERELEASE (RFC 4865) plus ENVID pass-through,
// with simple parsers of the test's own (smtpext imports no other
// msgtrack package).
func trackingLikeExtensions() []Extension {
	seconds := func(_ ConnInfo, v string, has bool) (any, error) {
		n, err := strconv.Atoi(v)
		if !has || err != nil || n <= 0 || len(v) > 9 {
			return nil, &ReplyError{Code: 501, Enhanced: [3]int{5, 5, 4}, Message: "Malformed hold value"}
		}
		return time.Duration(n) * time.Second, nil
	}
	return []Extension{
		{Keyword: "MTRK", Mail: []ParamSpec{{Name: "MTRK", Parse: func(_ ConnInfo, v string, has bool) (any, error) {
			cert, timeout, _ := strings.Cut(v, ":")
			if !has || cert == "" {
				return nil, errors.New("Malformed MTRK parameter")
			}
			return cert + "|" + timeout, nil
		}}}},
		{Keyword: "FUTURERELEASE", When: AfterTLS,
			KeywordArgs: func(ConnInfo) []string { return []string{"86400", "2030-01-01T00:00:00Z"} },
			Mail:        []ParamSpec{{Name: "HOLDFOR", Parse: seconds}, {Name: "HOLDUNTIL"}}},
		{Mail: []ParamSpec{{Name: "ENVID", PassThrough: true}}},
	}
}

func pythonServer(t *testing.T) *testServer {
	return startServer(t, serverOpts{tls: true, cfg: Config{Extensions: trackingLikeExtensions()},
		tune: func(s *smtp.Server) { s.EnableDSN = true }})
}

func writeCA(t *testing.T, ts *testServer) string {
	t.Helper()
	der := ts.srv.cfg.TLSConfig.Certificates[0].Certificate[0]
	p := filepath.Join(t.TempDir(), "ca.pem")
	pemText := "-----BEGIN CERTIFICATE-----\n"
	enc := base64Std(der)
	for len(enc) > 64 {
		pemText += enc[:64] + "\n"
		enc = enc[64:]
	}
	pemText += enc + "\n-----END CERTIFICATE-----\n"
	require.NoError(t, os.WriteFile(p, []byte(pemText), 0o600))
	return p
}

const pythonScript = `
import json, smtplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {}
s = smtplib.SMTP(host, port, timeout=20)
s.ehlo("py.example")
out["before"] = sorted(s.esmtp_features.keys())
r = lambda x: [x[0], x[1].decode()]
out["auth_plain_before"] = r(s.docmd("AUTH", "PLAIN AHVzZXIAc2VjcmV0"))
out["hold_before"] = r(s.docmd("MAIL", "FROM:<a@example.org> HOLDFOR=60"))
ctx = ssl.create_default_context(cafile=ca)
s.starttls(context=ctx)
s.ehlo("py.example")
out["after"] = sorted(s.esmtp_features.keys())
out["futurerelease"] = s.esmtp_features.get("futurerelease", "")
s.login("user", "secret")
body = ("From: a@example.org\r\nSubject: py\r\n\r\n.leading dot\r\n..two dots\r\n"
        "MAIL FROM:<evil@example.org> MTRK=x\r\n.\r\nQUIT\r\nlast line\r\n")
s.sendmail("a@example.org", ["b@example.org", "c@example.org"], body,
           mail_options=["ENVID=env+2B1", "MTRK=Q2VydGlmaWVy:3600", "HOLDFOR=120"])
try:
    s.sendmail("a@example.org", ["b@example.org"], "x\r\n", mail_options=["MTRK="])
except smtplib.SMTPSenderRefused as e:
    out["bad_mtrk"] = [e.smtp_code, e.smtp_error.decode()]
s.sendmail("d@example.org", ["e@example.org"], "second\r\n", mail_options=["HOLDUNTIL=2029-01-01T00:00:00Z"])
s.quit()
print(json.dumps(out))
`

func TestPythonSmtplib(t *testing.T) {
	py := testenv.Python(t)
	ts := pythonServer(t)
	ca := writeCA(t, ts)
	host, port, _ := strings.Cut(ts.addr, ":")
	cmd := exec.Command(py, "-c", pythonScript, host, port, ca)
	outb, err := cmd.CombinedOutput()
	require.NoError(t, err, string(outb))
	var out struct {
		Before, After   []string
		AuthPlainBefore []any  `json:"auth_plain_before"`
		HoldBefore      []any  `json:"hold_before"`
		FutureRelease   string `json:"futurerelease"`
		BadMTRK         []any  `json:"bad_mtrk"`
	}
	require.NoError(t, json.Unmarshal(outb, &out), string(outb))
	assert.Contains(t, out.Before, "starttls")
	assert.Contains(t, out.Before, "mtrk")
	assert.NotContains(t, out.Before, "auth", "AUTH must not be offered before TLS")
	assert.NotContains(t, out.Before, "futurerelease")
	assert.EqualValues(t, 538, out.AuthPlainBefore[0])
	assert.EqualValues(t, 555, out.HoldBefore[0])
	assert.Contains(t, out.After, "auth")
	assert.Contains(t, out.After, "futurerelease")
	assert.NotContains(t, out.After, "starttls")
	assert.Equal(t, "86400 2030-01-01T00:00:00Z", out.FutureRelease)
	assert.EqualValues(t, 501, out.BadMTRK[0])

	msgs := ts.be.messages()
	require.Len(t, msgs, 2)
	m := msgs[0]
	assert.True(t, m.TLS)
	assert.Equal(t, "user", m.User)
	assert.Equal(t, []string{"b@example.org", "c@example.org"}, m.Rcpts)
	assert.Equal(t, "From: a@example.org\r\nSubject: py\r\n\r\n.leading dot\r\n..two dots\r\nMAIL FROM:<evil@example.org> MTRK=x\r\n.\r\nQUIT\r\nlast line\r\n", m.Body)
	assert.Equal(t, "env+1", m.MailOpts.EnvelopeID, "ENVID passed through to go-smtp")
	mt, ok := m.Tx.MailParams.Get("MTRK")
	require.True(t, ok)
	assert.Equal(t, "Q2VydGlmaWVy|3600", mt.Value)
	hf, ok := m.Tx.MailParams.Get("HOLDFOR")
	require.True(t, ok)
	assert.Equal(t, 120*time.Second, hf.Value)
	env, ok := m.Tx.MailParams.Get("ENVID")
	require.True(t, ok)
	assert.Equal(t, "env+2B1", env.Raw)
	hu, ok := msgs[1].Tx.MailParams.Get("HOLDUNTIL")
	require.True(t, ok)
	assert.Equal(t, "2029-01-01T00:00:00Z", hu.Raw)
	assert.Equal(t, "second\r\n", msgs[1].Body)
}

func TestSwaks(t *testing.T) {
	sw := testenv.Swaks(t)
	ts := startServer(t, serverOpts{implicit: true, cfg: Config{Extensions: testExtensions()}})
	body := "Subject: swaks\n\n.starts with a dot\nDATA\n.\nRSET\nend\n"
	cases := []struct {
		name string
		args []string
		tls  bool
	}{
		{"pipeline", []string{"--server", ts.addr, "--pipeline"}, false},
		{"starttls+auth+pipeline", []string{"--server", ts.addr, "--tls", "--pipeline", "--auth", "PLAIN", "--auth-user", "user", "--auth-password", "secret"}, true},
		{"tls-on-connect+auth", []string{"--server", ts.tlsAddr, "--tls-on-connect", "--auth", "PLAIN", "--auth-user", "user", "--auth-password", "secret"}, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			to := fmt.Sprintf("rcpt%d@example.org", i)
			args := append([]string{"--from", "a@example.org", "--to", to, "--body", body, "--timeout", "20"}, tc.args...)
			out, err := exec.Command(sw, args...).CombinedOutput()
			require.NoError(t, err, string(out))
			var got *message
			for _, m := range ts.be.messages() {
				if len(m.Rcpts) == 1 && m.Rcpts[0] == to {
					got = &m
				}
			}
			require.NotNil(t, got, string(out))
			assert.Equal(t, tc.tls, got.TLS)
			if tc.tls {
				assert.Equal(t, "user", got.User)
			}
			assert.Contains(t, got.Body, "\r\n\r\n.starts with a dot\r\nDATA\r\n.\r\nRSET\r\nend\r\n")
		})
	}
	// swaks refuses to AUTH when it is not offered: before TLS it is not.
	out, err := exec.Command(sw, "--server", ts.addr, "--from", "a@example.org", "--to", "x@example.org",
		"--auth", "PLAIN", "--auth-user", "user", "--auth-password", "secret", "--timeout", "20").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "Host did not advertise authentication")
}
