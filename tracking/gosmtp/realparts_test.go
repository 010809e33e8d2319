package gosmtp

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/idgen/ldapsecret"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// TestSwaksPipelinedTLSAuth: swaks with --pipeline, --tls and --auth.
// swaks has no option for MAIL parameters, so they ride in --from: it
// writes MAIL FROM:<from>, which puts its closing ">" at the end of the
// last parameter; ENVID goes last because ">" is a valid xtext character.
func TestSwaksPipelinedTLSAuth(t *testing.T) {
	h := submissionHarness(t, channelopts.Channel{TrackingServer: true}, nil)
	secret, cert := newCert(t)
	from := "alice@example.test> MTRK=" + cert.String() + ":172800 HOLDFOR=600 ENVID=sw-1"
	out, err := runSwaks(t, h, "--pipeline", "--tls", "--auth", "PLAIN", "--auth-user", testUser, "--auth-password", testPass,
		"--from", from, "--to", "bob@example.test,carol@example.test",
		"--header", "Message-ID: <swaks-1@client.test>", "--body", "Pipelined body.\n.\n..")
	require.NoError(t, err, out)
	assert.Contains(t, out, "PIPELINING")
	assert.Contains(t, out, "MTRK")

	msgs := h.be.messages()
	require.Len(t, msgs, 1, out)
	m := msgs[0]
	assert.Equal(t, []string{"bob@example.test", "carol@example.test"}, m.Rcpts)
	assert.Equal(t, "sw-1>", m.MailOpts.EnvelopeID)
	assert.Contains(t, m.Body, "Message-ID: <swaks-1@client.test>")
	require.NotNil(t, m.Tracking)
	assert.True(t, cert.Equal(m.Tracking.Certifier))
	assert.Equal(t, 172800*time.Second, m.Tracking.Timeout)
	assert.Equal(t, 10*time.Minute, m.Tracking.Hold.For)

	rec, err := h.eng.Track(context.Background(), "sw-1>", secret)
	require.NoError(t, err)
	require.Len(t, rec.Recipients, 2)
	assert.False(t, rec.HoldUntil.IsZero())
}

// TestSwaksNoAuthHold: swaks over TLS without AUTH asking for a hold
// gets 530 and nothing is delivered or recorded.
func TestSwaksNoAuthHold(t *testing.T) {
	h := submissionHarness(t, channelopts.Channel{TrackingServer: true}, nil)
	_, cert := newCert(t)
	out, err := runSwaks(t, h, "--pipeline", "--tls", "--from", "alice@example.test> MTRK="+cert.String()+" HOLDFOR=60 ENVID=x",
		"--to", "bob@example.test")
	require.Error(t, err)
	assert.Contains(t, out, "530 5.7.0")
	assert.Empty(t, h.be.messages())
	assert.Equal(t, uint64(0), h.mw.Stats().Recorded)
}

// TestLMTPPerRecipient: in LMTP mode only the recipients the wrapped
// session accepts are recorded, and each gets its own reply.
func TestLMTPPerRecipient(t *testing.T) {
	be := &recBackend{lmtpReject: map[string]error{
		"carol@example.test": &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}}
	h := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true}, lmtp: true, be: be})
	secret, cert := newCert(t)
	rc := dialRaw(t, h.addr)
	rc.send("LHLO client.test\r\n")
	assert.Contains(t, strings.Join(rc.reply(), "\n"), "MTRK")
	// Pipelined envelope with the extension parameter.
	rc.send("MAIL FROM:<a@example.test> ENVID=lm-1 MTRK=" + cert.String() + "\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n")
	assert.Equal(t, 250, rc.code())
	assert.Equal(t, 250, rc.code())
	assert.Equal(t, 250, rc.code())
	assert.Equal(t, 354, rc.code())
	rc.send(testMessage("<lm@x>", "") + ".\r\n")
	assert.Equal(t, 250, rc.code(), "bob")
	assert.Equal(t, 550, rc.code(), "carol")

	rec, err := h.eng.Track(context.Background(), "lm-1", secret)
	require.NoError(t, err)
	require.Len(t, rec.Recipients, 1)
	assert.Equal(t, "bob@example.test", rec.Recipients[0].FinalRecipient)

	// All recipients refused: no record.
	_, cert2 := newCert(t)
	rc.send("MAIL FROM:<a@example.test> ENVID=lm-2 MTRK=" + cert2.String() + "\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n")
	assert.Equal(t, 250, rc.code())
	assert.Equal(t, 250, rc.code())
	assert.Equal(t, 354, rc.code())
	rc.send(testMessage("<lm2@x>", "") + ".\r\n")
	assert.Equal(t, 550, rc.code())
	_, err = h.eng.Lookup(context.Background(), cert2)
	assert.ErrorIs(t, err, tracking.ErrNotFound)
}

// TestBDATPipelined: a BDAT message with the MTRK parameter pipelined.
func TestBDATPipelined(t *testing.T) {
	h := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true}})
	secret, cert := newCert(t)
	rc := dialRaw(t, h.addr)
	rc.send("EHLO client.test\r\n")
	rc.reply()
	body := testMessage("<bdat@x>", "")
	rc.send("MAIL FROM:<a@example.test> ENVID=bd-1 MTRK=" + cert.String() + ":90000\r\nRCPT TO:<bob@example.test>\r\n" +
		"BDAT " + strconv.Itoa(len(body)) + " LAST\r\n" + body)
	assert.Equal(t, 250, rc.code())
	assert.Equal(t, 250, rc.code())
	assert.Equal(t, 250, rc.code())
	msgs := h.be.messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, body, msgs[0].Body)
	rec, err := h.eng.Track(context.Background(), "bd-1", secret)
	require.NoError(t, err)
	assert.Equal(t, 90000*time.Second, rec.Timeout)
}

var aliceGeneral = []byte("0123456789abcdef0123456789abcdef")

func slapdGenerator(t *testing.T) *idgen.Generator {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: "dn: uid=alice," + testenv.SlapdPeople +
		"\nobjectClass: inetOrgPerson\nobjectClass: " + testenv.RecallSecretClass +
		"\nuid: alice\ncn: Alice\nsn: A\n" + testenv.RecallSecretAttr + ":: " + base64.StdEncoding.EncodeToString(aliceGeneral) +
		"\n\ndn: uid=bob," + testenv.SlapdPeople + "\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\nsn: B\n\n"})
	src, err := ldapsecret.New(ldapsecret.Config{URL: sl.URL, BindDN: sl.BindDN, BindPassword: sl.BindPassword,
		BaseDN: testenv.SlapdPeople, Attribute: testenv.RecallSecretAttr})
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return idgen.New(idgen.Options{Source: src})
}

func stores(t *testing.T) map[string]func(t *testing.T) trackstore.Store {
	return map[string]func(t *testing.T) trackstore.Store{
		"memstore": func(*testing.T) trackstore.Store { return memstore.New(memstore.Options{}) },
		"memcached": func(t *testing.T) trackstore.Store {
			mc := testenv.StartMemcached(t)
			st, err := memcachestore.New(memcachestore.Options{Servers: []string{mc.Addr}})
			require.NoError(t, err)
			return st
		},
	}
}

// TestTrackingGenerate: trackinggenerate with a real slapd. alice has a
// general recall secret: SHA-1 path, and the secret is recomputable with
// idgen.ComputeSecret from the delivered message's Message-ID and Date;
// bob has none and an unauthenticated sender has no user: MD4 path. Run on
// memstore and on a real memcached.
func TestTrackingGenerate(t *testing.T) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			gen := slapdGenerator(t)
			ch := channelopts.Channel{TrackingGenerate: 5 * 86400 * time.Second}
			h := newHarness(t, harnessConfig{ch: ch, store: mk(t), opts: Options{Generator: gen, AddMessageID: true, Hostname: "mx.test"}})
			date := "Sat, 1 Aug 2026\r\n 12:34:56 +0200"
			msgA := testMessage("<gen-a@client.test>", date)
			msgNoID := testMessage("", "Sun, 2 Aug 2026 08:00:00 +0000")
			tx := func(msg string) pyTx {
				return pyTx{From: "alice@example.test", To: []string{"bob@example.test"}, Msg: msg}
			}

			res := runPython(t, h, pyConfig{StartTLS: true, User: testUser, Password: testPass, Transactions: []pyTx{tx(msgA), tx(msgNoID)}})
			res2 := runPython(t, h, pyConfig{StartTLS: true, User: "bob", Password: testPass, Transactions: []pyTx{tx(msgA)}})
			res3 := runPython(t, h, pyConfig{Transactions: []pyTx{tx(msgA)}})
			for _, r := range [][]bool{{res.Transactions[0].OK, res.Transactions[1].OK}, {res2.Transactions[0].OK, res3.Transactions[0].OK}} {
				assert.Equal(t, []bool{true, true}, r)
			}
			msgs := h.be.messages()
			require.Len(t, msgs, 4)

			// alice, with Message-ID and folded Date: SHA-1.
			tr := msgs[0].Tracking
			assert.Equal(t, Generated, tr.Source)
			require.Equal(t, idgen.PathSHA1, tr.Path, tr.Reason.String())
			mid, dt := headerOf(t, msgs[0].Body, "Message-ID"), headerOf(t, msgs[0].Body, "Date")
			a, err := idgen.ComputeSecret(mid, dt, aliceGeneral)
			require.NoError(t, err)
			assert.True(t, a.Certifier().Equal(tr.Certifier), "recomputable from the delivered message")
			assert.Equal(t, "gen-a@client.test", tr.EnvelopeID)
			assert.Equal(t, 5*86400*time.Second, tr.Timeout)
			rec, err := h.eng.Track(context.Background(), tr.EnvelopeID, a)
			require.NoError(t, err)
			assert.Equal(t, 5*86400*time.Second, rec.Timeout)

			// alice, no Message-ID: the middleware adds one, SHA-1 over it.
			tr = msgs[1].Tracking
			assert.True(t, tr.MessageIDAdded)
			require.Equal(t, idgen.PathSHA1, tr.Path)
			mid = headerOf(t, msgs[1].Body, "Message-ID")
			assert.True(t, strings.HasPrefix(msgs[1].Body, "Message-ID:"), "the added field comes first")
			a, err = idgen.ComputeSecret(mid, headerOf(t, msgs[1].Body, "Date"), aliceGeneral)
			require.NoError(t, err)
			assert.True(t, a.Certifier().Equal(tr.Certifier))
			_, err = h.eng.Track(context.Background(), tr.EnvelopeID, a)
			require.NoError(t, err)

			// bob (no secret in LDAP) and an anonymous sender: MD4.
			for i, reason := range map[int]idgen.Reason{2: idgen.ReasonNoSecret, 3: idgen.ReasonUnauthenticated} {
				tr := msgs[i].Tracking
				assert.Equal(t, idgen.PathMD4, tr.Path, "msg %d", i)
				assert.Equal(t, reason, tr.Reason, "msg %d", i)
				assert.Len(t, []byte(tr.Certifier), mtrk.MD4CertifierSize)
				assert.True(t, idgen.MD4Identifier(tr.QueueID).Equal(tr.Certifier))
				assert.Nil(t, tr.Secret)
				rec, err := h.eng.Lookup(context.Background(), tr.Certifier)
				require.NoError(t, err)
				assert.Equal(t, "bob@example.test", rec.Recipients[0].FinalRecipient)
			}
			st := h.mw.Stats()
			assert.Equal(t, uint64(4), st.Generated)
			assert.Equal(t, uint64(2), st.GeneratedSHA1)
			assert.Equal(t, uint64(4), st.Recorded)
		})
	}
}

func headerOf(t *testing.T, msg, name string) string {
	h := &headerReader{r: strings.NewReader(msg)}
	h.readHeader(1 << 20)
	switch name {
	case "Message-ID":
		require.True(t, h.hasMessageID)
		return h.messageID
	default:
		return h.date
	}
}

// TestStoreDown: with memcached stopped, the default (fail-open) accepts
// the message and counts the failure; FailClosed answers 451 4.3.0 and
// rolls the message back.
func TestStoreDown(t *testing.T) {
	for _, closed := range []bool{false, true} {
		name := "fail-open"
		if closed {
			name = "fail-closed"
		}
		t.Run(name, func(t *testing.T) {
			mc := testenv.StartMemcached(t)
			st, err := memcachestore.New(memcachestore.Options{Servers: []string{mc.Addr}, Timeout: 500 * time.Millisecond})
			require.NoError(t, err)
			h := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true}, store: st, opts: Options{FailClosed: closed}})
			mc.Stop()
			_, cert := newCert(t)
			res := runPython(t, h, pyConfig{Transactions: []pyTx{{From: "a@example.test", To: []string{"b@example.test"},
				Msg: testMessage("<down@x>", ""), MailOptions: []string{"ENVID=down", "MTRK=" + cert.String()}}}})
			s := h.mw.Stats()
			assert.Equal(t, uint64(1), s.StoreFailures)
			if closed {
				assert.Equal(t, 451, res.Transactions[0].Code)
				assert.Contains(t, res.Transactions[0].Msg, "4.3.0")
				assert.Equal(t, uint64(1), s.FailedClosed)
				assert.Equal(t, uint64(0), s.Messages)
				assert.Equal(t, 1, h.be.rollbacks)
			} else {
				assert.True(t, res.Transactions[0].OK)
				assert.Equal(t, uint64(1), s.Messages)
				assert.Equal(t, 0, h.be.rollbacks)
			}
		})
	}
}
