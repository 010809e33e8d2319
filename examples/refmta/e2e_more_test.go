package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// waitMarker submits a message to bob that is due after everything
// submitted before it and waits for its delivery: by then the scheduler
// has handled every earlier-due message.
func waitMarker(t *testing.T, in *instance, hold int) {
	t.Helper()
	m := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "marker", hold, nil, nil)
	eventually(t, "marker delivered", func() bool {
		return rcptOf(t, track(t, in.mtqp, m), "bob@example.test").Action == mtqp.ActionDelivered
	})
}

func has(t *testing.T, in *instance, user, envid string) bool {
	return strings.Contains(readAll(t, in.maildirFiles(user)), "Subject: "+envid+"\r\n")
}

// TestE2EAliasPolicies: a recall of a message to an alias withdraws
// exactly the expansion members that carry the certifier under the
// submission channel's alias policy; a mailing list never passes it on.
func TestE2EAliasPolicies(t *testing.T) {
	aliasesFile := "team: bob, carol\nlist devs: bob, carol\n"
	cases := []struct {
		policy        string
		rcpt          string
		recalled      []string // recall status recalled
		delivered     []string // still delivered
		notRecallable bool     // the parent reports not-recallable/too-late
	}{
		{policy: "trackingmultiple", rcpt: "team@example.test", recalled: []string{"bob", "carol"}},
		{policy: "trackingsingle", rcpt: "team@example.test", delivered: []string{"bob", "carol"}, notRecallable: true},
		{policy: "trackingfirst", rcpt: "team@example.test", recalled: []string{"bob"}, delivered: []string{"carol"}},
		{policy: "trackingmultiple", rcpt: "devs@example.test", delivered: []string{"bob", "carol"}, notRecallable: true},
	}
	for _, tc := range cases {
		t.Run(tc.policy+"/"+strings.Split(tc.rcpt, "@")[0], func(t *testing.T) {
			t.Parallel()
			channels := writeFile(t, "channels", "tcp_submit trackingserver "+tc.policy+"\n")
			in := startInstance(t, instanceConfig{
				hostname: "mta.example.test", localDomains: "example.test",
				users: "alice:alice-pw\nbob:bob-pw\ncarol:carol-pw\n", aliases: aliasesFile,
				extra: []string{"-channels", channels},
			})
			envid := "alias-" + tc.policy
			s := submit(t, in, "alice@example.test", []string{tc.rcpt}, envid, 6, nil, nil)

			r := track(t, in.mtqp, s)
			parent := rcptOf(t, r, tc.rcpt)
			assert.Equal(t, mtqp.ActionExpanded, parent.Action)

			r = recall(t, in.mtqp, s)
			for _, u := range tc.recalled {
				assert.Equal(t, mtqp.RecallRecalled, rcptOf(t, r, u+"@example.test").RecallStatus(), u)
			}
			for _, rc := range r.Recipients {
				if rc.RecallStatus() == mtqp.RecallRecalled {
					assert.Contains(t, tc.recalled, strings.Split(rc.FinalRecipient.Value, "@")[0])
				}
			}
			if tc.notRecallable {
				assert.NotEqual(t, mtqp.RecallRecalled, rcptOf(t, r, tc.rcpt).RecallStatus())
			}

			waitMarker(t, in, 8)
			for _, u := range tc.delivered {
				assert.True(t, has(t, in, u, envid), "%s should have the message", u)
			}
			for _, u := range tc.recalled {
				assert.False(t, has(t, in, u, envid), "%s must not have the recalled message", u)
			}
		})
	}
}

// TestE2ERecallRacingRelease recalls messages right at their release
// moment. Whatever wins, the answer must match what happened: recalled
// means never delivered, anything else means delivered.
func TestE2ERecallRacingRelease(t *testing.T) {
	in := single(t)
	var (
		msgs []sent
		at   []time.Time
	)
	for i := range 6 {
		msgs = append(msgs, submit(t, in, "alice@example.test", []string{"bob@example.test"}, fmt.Sprintf("race-%d", i), 1, nil, nil))
		at = append(at, time.Now())
	}
	outcome := map[string]mtqp.RecallStatus{}
	for i, s := range msgs {
		// Aim the recalls around the release instant (one second after
		// submission), some before it and some after: the spread is
		// what makes the race, nothing is asserted about timing.
		time.Sleep(time.Until(at[i].Add(700*time.Millisecond + time.Duration(i)*100*time.Millisecond)))
		// Keep asking until the recall has a final answer.
		for {
			st := rcptOf(t, recall(t, in.mtqp, s), "bob@example.test").RecallStatus()
			if st == mtqp.RecallRecalled || st == mtqp.RecallTooLate {
				outcome[s.envid] = st
				break
			}
			require.Equal(t, mtqp.RecallInProgress, st)
		}
	}
	waitMarker(t, in, 2)
	for _, s := range msgs {
		delivered := has(t, in, "bob", s.envid)
		action := rcptOf(t, track(t, in.mtqp, s), "bob@example.test").Action
		if outcome[s.envid] == mtqp.RecallRecalled {
			assert.False(t, delivered, "%s was reported recalled but delivered", s.envid)
			assert.Equal(t, mtqp.ActionFailed, action)
		} else {
			assert.True(t, delivered, "%s was reported too late but is not in the Maildir", s.envid)
			assert.Equal(t, mtqp.ActionDelivered, action)
		}
	}
	t.Logf("outcomes: %v", outcome)
}

// TestE2EMemcachedDown: mail keeps flowing while the store is down, and a
// recall made before the outage still holds, even though memcached comes
// back empty.
func TestE2EMemcachedDown(t *testing.T) {
	mc := testenv.StartMemcached(t)
	in := single(t, "-store", "memcache://"+mc.Addr)
	recalled := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "down-recalled", 3, nil, nil)
	require.Equal(t, mtqp.RecallRecalled, rcptOf(t, recall(t, in.mtqp, recalled), "bob@example.test").RecallStatus())

	mc.Stop()
	during := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "down-during", 1, nil, nil)
	eventually(t, "mail delivered during the outage", func() bool { return has(t, in, "bob", during.envid) })
	mc.Start()

	waitMarker(t, in, 5)
	assert.False(t, has(t, in, "bob", recalled.envid), "a recall made before the outage must hold")
	assert.Contains(t, in.logText(), "tracking")
}

// TestE2EOptionsFile: log_tracking and log_futurerelease put the mt and fr
// fields in the transaction log lines; the option file's tracking_mode 1
// is overridden by an explicit -store (flags win).
func TestE2EOptionsFile(t *testing.T) {
	opts := writeFile(t, "option.dat", "! reference MTA options\nLOG_TRACKING=1\nLOG_FUTURERELEASE=1\nTRACKING_MODE=1\nMEMCACHE_HOST=127.0.0.1:1\n")
	in := single(t, "-options", opts, "-store", "memory")
	s := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "opt-log", 30, nil, nil)
	require.Equal(t, mtqp.RecallRecalled, rcptOf(t, recall(t, in.mtqp, s), "bob@example.test").RecallStatus())
	log := in.logText()
	cert := s.secret.Certifier().String()
	assert.Regexp(t, `msg="message spooled".* mt=`+regexp.QuoteMeta(cert)+`:86400 fr=(2\d|30)\b`, log,
		"the tracking field and the release offset in seconds at acceptance")
	assert.Regexp(t, `msg="recipient recalled".* rcpt=bob@example.test .*mt=`+regexp.QuoteMeta(cert)+`:86400`, log,
		"per-recipient lines carry the tracking field")
}

// TestE2ETrackingGenerateLDAP: a message submitted without MTRK by a user
// whose general recall secret is in LDAP gets the SHA-1 identifier, so
// the sender can recompute the secret from the Message-ID and Date and
// track (and recall) it.
func TestE2ETrackingGenerateLDAP(t *testing.T) {
	general := []byte("0123456789abcdef0123456789abcdef")
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: "dn: uid=alice," + testenv.SlapdPeople +
		"\nobjectClass: inetOrgPerson\nobjectClass: " + testenv.RecallSecretClass +
		"\nuid: alice\ncn: Alice\nsn: A\n" + testenv.RecallSecretAttr + ":: " + base64.StdEncoding.EncodeToString(general) + "\n\n"})
	pw := writeFile(t, "ldap-pw", sl.BindPassword+"\n")
	in := single(t, "-ldap-url", sl.URL, "-ldap-bind-dn", sl.BindDN, "-ldap-bind-password-file", pw,
		"-ldap-base", testenv.SlapdPeople, "-ldap-attr", testenv.RecallSecretAttr)

	msgID, date := "<ldap-1@example.test>", "Fri, 4 Dec 2026 10:00:00 +0000"
	res, _ := trySubmit(t, in, mail{from: "alice@example.test", rcpts: []string{"bob@example.test"}, hold: 3600,
		header: "Message-ID: " + msgID + "\r\nDate: " + date + "\r\n"})
	require.True(t, res.OK, "%+v", res)

	secret, err := idgen.ComputeSecret(msgID, date, general)
	require.NoError(t, err)
	envid, err := idgen.DeriveEnvelopeID(msgID)
	require.NoError(t, err)
	s := sent{envid: envid, secret: secret}
	r := track(t, in.mtqp, s)
	assert.Equal(t, "held", ext(rcptOf(t, r, "bob@example.test").Extensions, "X-Tracking-State"))
	assert.Equal(t, mtqp.RecallRecalled, rcptOf(t, recall(t, in.mtqp, s), "bob@example.test").RecallStatus())
}

// TestE2EExpiredDSN: a relay that never answers defers the recipient until
// the queue lifetime ends; the sender then gets a "failed" DSN with the
// 4.4.7 status (RFC 3464 section 2.3.4, RFC 3463 X.4.7).
func TestE2EExpiredDSN(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens here
	in := single(t, "-relay", dead, "-max-lifetime", "3s", "-retry", "1s")
	s := submit(t, in, "alice@example.test", []string{"carol@elsewhere.test"}, "expire-1", 0, nil, []string{"NOTIFY=FAILURE,DELAY"})
	eventually(t, "expiry DSN in alice's Maildir", func() bool { return len(in.maildirFiles("alice")) == 1 })
	text := readAll(t, in.maildirFiles("alice"))
	assert.Contains(t, text, "Original-Envelope-Id: expire-1")
	assert.Contains(t, text, "Action: failed")
	assert.Contains(t, text, "Status: 4.4.7")
	assert.Contains(t, text, "Body of expire-1", "no RET: the whole message is returned")
	assert.Equal(t, mtqp.ActionFailed, rcptOf(t, track(t, in.mtqp, s), "carol@elsewhere.test").Action)
}

// TestE2ELoopDetection: a message that already carries 100 Received
// fields is refused (RFC 5321 section 6.3) with 554 5.4.6.
func TestE2ELoopDetection(t *testing.T) {
	in := single(t)
	hdr := strings.Repeat("Received: from a.example by b.example; Fri, 4 Dec 2026 10:00:00 +0000\r\n", 100)
	res, _ := trySubmit(t, in, mail{from: "alice@example.test", rcpts: []string{"bob@example.test"}, envid: "loop-1", tracked: true, header: hdr})
	assert.False(t, res.OK)
	assert.Equal(t, 554, res.Code, "%+v", res)
	assert.Contains(t, res.Error, "5.4.6")
	assert.Empty(t, in.maildirFiles("bob"))
}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// mtqpCommand builds the examples/mtqp command once.
func mtqpCommand(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "refmta-e2e-mtqp-")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "mtqp")
		out, err := exec.Command("go", "build", "-o", cliPath, "../mtqp").CombinedOutput()
		if err != nil {
			cliErr = fmt.Errorf("go build ../mtqp: %v\n%s", err, out)
		}
	})
	require.NoError(t, cliErr)
	return cliPath
}

// TestE2EMTQPCommand drives refmta with the examples/mtqp command: track
// and recall answer with exit status 0 and the report in JSON.
func TestE2EMTQPCommand(t *testing.T) {
	cli := mtqpCommand(t)
	in := single(t)
	s := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "cli-1", 3600, nil, nil)
	for _, verb := range []string{"track", "recall"} {
		out, err := exec.Command(cli, verb, "-server", in.mtqp, "-insecure", "-envid", s.envid,
			"-secret", s.secret.String(), "-json").Output()
		require.NoError(t, err, "%s: %s", verb, out)
		assert.Contains(t, string(out), "bob@example.test", verb)
		if verb == "recall" {
			assert.Contains(t, string(out), `"recalled"`)
		}
	}
	// A wrong secret: answered, but not found, and a non-zero status.
	other, err := mtrk.NewSecret()
	require.NoError(t, err)
	err = exec.Command(cli, "track", "-server", in.mtqp, "-insecure", "-envid", s.envid, "-secret", other.String()).Run()
	assert.Error(t, err)
}

// TestE2EReloadUsers: SIGHUP re-reads the users file; a user added
// afterwards (with a bcrypt password) can authenticate.
func TestE2EReloadUsers(t *testing.T) {
	in := startInstance(t, instanceConfig{hostname: "mta.example.test", localDomains: "example.test", users: "bob:bob-pw\n"})
	res, _ := trySubmit(t, in, mail{from: "alice@example.test", rcpts: []string{"bob@example.test"}, envid: "reload-1", tracked: true})
	assert.Equal(t, 535, res.Code, "alice is not a user yet: %+v", res)

	// alice's password is stored as a bcrypt hash this time.
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(in.dir, "users"), []byte("alice:"+string(hash)+"\nbob:bob-pw\n"), 0o600))
	in.mu.Lock()
	require.NoError(t, in.cmd.Process.Signal(syscall.SIGHUP))
	in.mu.Unlock()
	eventually(t, "reload logged", func() bool { return strings.Contains(in.logText(), "users and aliases reloaded") })
	res, _ = trySubmit(t, in, mail{from: "alice@example.test", rcpts: []string{"bob@example.test"}, envid: "reload-2", tracked: true})
	assert.True(t, res.OK, "%+v", res)
}

// TestE2EOptionsSelectMemcached: without -store, the option file's
// tracking_mode 1 and memcache_host choose the store.
func TestE2EOptionsSelectMemcached(t *testing.T) {
	mc := testenv.StartMemcached(t)
	host, port, err := net.SplitHostPort(mc.Addr)
	require.NoError(t, err)
	opts := writeFile(t, "option.dat", "TRACKING_MODE=1\nMEMCACHE_HOST="+host+"\nMEMCACHE_PORT="+port+"\n")
	in := single(t, "-options", opts)
	s := submit(t, in, "alice@example.test", []string{"bob@example.test"}, "opt-mc", 3600, nil, nil)

	st, err := memcachestore.New(memcachestore.Options{Servers: []string{mc.Addr}})
	require.NoError(t, err)
	defer st.Close()
	rec, err := tracking.New(st, tracking.Options{ReportingMTA: "inspector"}).Lookup(context.Background(), s.secret.Certifier())
	require.NoError(t, err, "the record is in the memcached the option file names")
	assert.Equal(t, "opt-mc", rec.OriginalEnvelopeID)
}

// TestE2ETLSCertificateFlags: -tls-cert and -tls-key replace the
// self-signed certificate on every listener; a client that trusts only
// that certificate verifies MTQP and submission.
func TestE2ETLSCertificateFlags(t *testing.T) {
	cert, certPEM, keyPEM := testenv.SelfSignedCert(t, "127.0.0.1")
	certFile, keyFile := writeFile(t, "cert.pem", string(certPEM)), writeFile(t, "key.pem", string(keyPEM))
	in := single(t, "-tls-cert", certFile, "-tls-key", keyFile)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := mtqp.Dial(ctx, in.mtqp)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.StartTLS(ctx, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))

	sc, err := smtpext.Dial(ctx, in.submission)
	require.NoError(t, err)
	defer sc.Close()
	require.NoError(t, sc.StartTLS(ctx, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))
	st, ok := sc.TLSConnectionState()
	require.True(t, ok)
	assert.True(t, st.PeerCertificates[0].Equal(cert.Leaf))

	// Without the certificate in the pool verification fails: the
	// listener does not serve some other certificate.
	sc2, err := smtpext.Dial(ctx, in.submission)
	require.NoError(t, err)
	defer sc2.Close()
	assert.Error(t, sc2.StartTLS(ctx, &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}))
}

// TestE2ERelayDispositions: the tcp_relay channel's options decide what
// A's record says once B (a separate deployment: its own store) accepted
// the message: transferred (MTRK passed on, trackingrelayed), relayed
// (notrackingclient: no MTRK, RFC 3886's 2.1.9) or delivered
// (trackingdelivered). Either way the recipient has left A: too late to
// recall there.
func TestE2ERelayDispositions(t *testing.T) {
	for _, tc := range []struct {
		channel string
		action  mtqp.Action
		status  string
	}{
		{"tcp_relay trackingclient trackingrelayed", mtqp.ActionTransferred, "2.0.0"},
		{"tcp_relay notrackingclient trackingrelayed", mtqp.ActionRelayed, "2.1.9"},
		{"tcp_relay trackingclient trackingdelivered", mtqp.ActionDelivered, "2.0.0"},
	} {
		t.Run(strings.Join(strings.Fields(tc.channel)[1:], "+"), func(t *testing.T) {
			t.Parallel()
			b := startInstance(t, instanceConfig{hostname: "mx.b.test", localDomains: "b.test", users: "bob:bob-pw\n"})
			a := startInstance(t, instanceConfig{
				hostname: "mta.a.test", localDomains: "a.test", users: "alice:alice-pw\n",
				extra: []string{"-relay", b.mx, "-channels", writeFile(t, "channels", tc.channel+"\n")},
			})
			s := submit(t, a, "alice@a.test", []string{"bob@b.test"}, "disp-1", 0, nil, nil)
			var rc *mtqp.Recipient
			eventually(t, "A records the hand-over", func() bool {
				rc = rcptOf(t, track(t, a.mtqp, s), "bob@b.test")
				return rc.Action != mtqp.ActionDelayed
			})
			assert.Equal(t, tc.action, rc.Action)
			assert.Equal(t, tc.status, rc.Status.String())
			assert.Equal(t, "127.0.0.1", rc.RemoteMTA.Value)
			assert.Equal(t, mtqp.RecallTooLate, rcptOf(t, recall(t, a.mtqp, s), "bob@b.test").RecallStatus())
			eventually(t, "delivered at B", func() bool { return has(t, b, "bob", "disp-1") })
			// B tracks the message itself only when MTRK reached it.
			_, err := func() (*mtqp.Result, error) {
				c := mtqpClient(t, b.mtqp)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return c.Track(ctx, s.envid, s.secret)
			}()
			if tc.action == mtqp.ActionRelayed {
				assert.ErrorIs(t, err, mtqp.ErrNotFound)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}
