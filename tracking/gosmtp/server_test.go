package gosmtp

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/futurerelease"
	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
)

var submissionFR = futurerelease.Limits{MaxInterval: 7 * 24 * time.Hour}

func submissionHarness(t *testing.T, ch channelopts.Channel, mod func(*Options)) *harness {
	opts := Options{Submission: true, FutureRelease: submissionFR, Hostname: "mx.test",
		MTA: channelopts.MTA{LogTracking: 1, LogFutureRelease: 1}}
	if mod != nil {
		mod(&opts)
	}
	return newHarness(t, harnessConfig{ch: ch, opts: opts})
}

func newCert(t *testing.T) (mtrk.Secret, mtrk.Certifier) {
	s, c, err := idgen.Random()
	require.NoError(t, err)
	return s, c
}

// TestPythonTrackedHeldSubmission: smtplib with STARTTLS, AUTH PLAIN,
// ENVID, MTRK= and HOLDFOR=. The backend gets the message intact with its
// tracking and hold; the store holds the record, findable with the secret.
func TestPythonTrackedHeldSubmission(t *testing.T) {
	h := submissionHarness(t, channelopts.Channel{TrackingServer: true}, nil)
	secret, cert := newCert(t)
	msg := testMessage("<m1@client.test>", "Sat, 1 Aug 2026 12:34:56 +0200")
	before := time.Now()
	res := runPython(t, h, pyConfig{StartTLS: true, User: testUser, Password: testPass, Transactions: []pyTx{{
		From: "alice@example.test", To: []string{"bob@example.test", "carol@example.test"}, Msg: msg,
		MailOptions: []string{"ENVID=env-1", "MTRK=" + cert.String() + ":100000", "HOLDFOR=3600"},
	}}})

	assert.Contains(t, res.EHLOPlain, "mtrk")
	assert.NotContains(t, res.EHLOPlain, "futurerelease", "FUTURERELEASE only after TLS")
	assert.NotContains(t, res.EHLOPlain, "auth", "AUTH only after TLS")
	assert.Contains(t, res.EHLO, "mtrk")
	adv, err := futurerelease.ParseAdvertisement(res.EHLO["futurerelease"])
	require.NoError(t, err, res.EHLO["futurerelease"])
	assert.Equal(t, submissionFR.MaxInterval, adv.MaxInterval)
	assert.WithinDuration(t, before.Add(submissionFR.MaxInterval), adv.MaxDateTime, 5*time.Second)
	require.True(t, res.Transactions[0].OK, "%+v", res.Transactions[0])

	msgs := h.be.messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, "alice@example.test", m.From)
	assert.Equal(t, []string{"bob@example.test", "carol@example.test"}, m.Rcpts)
	assert.Equal(t, "env-1", m.MailOpts.EnvelopeID)
	assert.Equal(t, msg, m.Body, "the body reaches the backend unchanged")
	require.NotNil(t, m.Tracking)
	tr := m.Tracking
	assert.Equal(t, FromClient, tr.Source)
	assert.True(t, cert.Equal(tr.Certifier))
	assert.Equal(t, 100000*time.Second, tr.Timeout)
	assert.Equal(t, "env-1", tr.EnvelopeID)
	assert.False(t, tr.EnvelopeIDGenerated)
	require.True(t, tr.HasHold)
	assert.Equal(t, futurerelease.HoldFor, tr.Hold.Name)
	assert.Equal(t, time.Hour, tr.Hold.For)
	assert.Equal(t, testUser, tr.User)
	assert.Equal(t, " <m1@client.test>", tr.MessageID)

	rec, err := h.eng.Track(context.Background(), "env-1", secret)
	require.NoError(t, err)
	assert.Equal(t, "alice@example.test", rec.Sender)
	assert.WithinDuration(t, tr.Hold.Until, rec.HoldUntil, time.Second)
	assert.Equal(t, 100000*time.Second, rec.Timeout)
	require.Len(t, rec.Recipients, 2)
	assert.Equal(t, "bob@example.test", rec.Recipients[0].FinalRecipient)
	assert.Equal(t, tracking.StateQueued, rec.Recipients[0].Action)
	assert.Equal(t, tr.QueueID, rec.Recipients[0].QueueID)
	st := h.mw.Stats()
	assert.Equal(t, uint64(1), st.Recorded)
	assert.Equal(t, uint64(1), st.Holds)
	assert.Equal(t, uint64(1), st.FromClient)
}

// TestPythonTimeoutClamped: the channel's trackingtimeoutmin/max apply
// silently; MTRK= without a timeout gets trackingtimeoutdefault; MTRK
// without ENVID gets an envelope ID derived from the Message-ID.
func TestPythonTimeoutClamped(t *testing.T) {
	ch := channelopts.Channel{TrackingServer: true, TrackingTimeoutDefault: 2 * 86400 * time.Second,
		TrackingTimeoutMin: 86400 * time.Second, TrackingTimeoutMax: 5 * 86400 * time.Second}
	h := newHarness(t, harnessConfig{ch: ch})
	type tc struct {
		param string
		want  time.Duration
		envid string
	}
	cases := []tc{
		{":10", 86400 * time.Second, "e-low"},
		{":999999999", 5 * 86400 * time.Second, "e-high"},
		{"", 2 * 86400 * time.Second, "e-default"},
		{":200000", 200000 * time.Second, ""},
	}
	var txs []pyTx
	var secrets []mtrk.Secret
	for i, c := range cases {
		s, cert := newCert(t)
		secrets = append(secrets, s)
		opts := []string{"MTRK=" + cert.String() + c.param}
		if c.envid != "" {
			opts = append(opts, "ENVID="+c.envid)
		}
		txs = append(txs, pyTx{From: "a@example.test", To: []string{"b@example.test"},
			Msg: testMessage("<clamp"+string(rune('a'+i))+"@client.test>", ""), MailOptions: opts})
	}
	res := runPython(t, h, pyConfig{Transactions: txs})
	msgs := h.be.messages()
	require.Len(t, msgs, len(cases))
	for i, c := range cases {
		require.True(t, res.Transactions[i].OK)
		assert.Equal(t, c.want, msgs[i].Tracking.Timeout, "case %d", i)
		envid := c.envid
		if envid == "" {
			envid = "clamp" + string(rune('a'+i)) + "@client.test"
			assert.True(t, msgs[i].Tracking.EnvelopeIDGenerated)
		}
		assert.Equal(t, envid, msgs[i].Tracking.EnvelopeID)
		rec, err := h.eng.Track(context.Background(), envid, secrets[i])
		require.NoError(t, err, "case %d", i)
		assert.Equal(t, c.want, rec.Timeout)
	}
}

// TestPythonBadParameters: every malformed form gets its reply, the
// session goes on (the next, valid transaction on the same connection is
// accepted), and nothing is recorded or delivered for the refused ones.
func TestPythonBadParameters(t *testing.T) {
	_, good := newCert(t)
	short := mtrk.Certifier(make([]byte, 8)).String()
	now := time.Now().UTC()
	cases := []struct {
		name string
		opts []string
		code int
	}{
		{"MTRK empty", []string{"MTRK="}, 501},
		{"MTRK bare", []string{"MTRK"}, 501},
		{"MTRK colon only", []string{"MTRK=:"}, 501},
		{"MTRK timeout only", []string{"MTRK=:998"}, 501},
		{"MTRK empty timeout", []string{"MTRK=" + good.String() + ":"}, 501},
		{"MTRK alpha timeout", []string{"MTRK=" + good.String() + ":abc"}, 501},
		{"MTRK ten digits", []string{"MTRK=" + good.String() + ":1234567890"}, 501},
		{"MTRK bad alphabet", []string{"MTRK=my-certifier"}, 501},
		{"MTRK too short", []string{"MTRK=" + short}, 501},
		{"MTRK negative", []string{"MTRK=" + good.String() + ":-5"}, 501},
		{"MTRK twice", []string{"MTRK=" + good.String(), "MTRK=" + good.String()}, 501},
		{"HOLDFOR empty", []string{"HOLDFOR="}, 501},
		{"HOLDFOR alpha", []string{"HOLDFOR=soon"}, 501},
		{"HOLDFOR ten digits", []string{"HOLDFOR=1234567890"}, 501},
		{"HOLDFOR negative", []string{"HOLDFOR=-1"}, 501},
		{"HOLDFOR bare", []string{"HOLDFOR"}, 501},
		{"HOLDUNTIL integer", []string{"HOLDUNTIL=1785000000"}, 501},
		{"HOLDUNTIL no seconds", []string{"HOLDUNTIL=2026-08-03T00:00Z"}, 501},
		{"HOLDUNTIL space", []string{"HOLDUNTIL=2026-08-03"}, 501},
		{"HOLDUNTIL bad day", []string{"HOLDUNTIL=2026-02-30T00:00:00Z"}, 501},
		{"HOLDUNTIL no offset", []string{"HOLDUNTIL=2026-08-03T00:00:00"}, 501},
		{"both hold params", []string{"HOLDFOR=60", "HOLDUNTIL=" + futurerelease.FormatDateTime(now.Add(time.Hour))}, 501},
		{"HOLDFOR twice", []string{"HOLDFOR=60", "HOLDFOR=60"}, 501},
		{"HOLDFOR beyond interval", []string{"HOLDFOR=" + futurerelease.FormatHoldFor(submissionFR.MaxInterval+time.Hour)}, 501},
		{"HOLDUNTIL beyond date", []string{"HOLDUNTIL=" + futurerelease.FormatDateTime(now.Add(submissionFR.MaxInterval+time.Hour))}, 501},
	}
	h := submissionHarness(t, channelopts.Channel{TrackingServer: true}, nil)
	var txs []pyTx
	for _, c := range cases {
		txs = append(txs, pyTx{From: "a@example.test", To: []string{"b@example.test"}, Msg: testMessage("<bad@x>", ""),
			MailOptions: append([]string{"ENVID=bad"}, c.opts...)})
	}
	txs = append(txs, pyTx{From: "ok@example.test", To: []string{"b@example.test"}, Msg: testMessage("<ok@x>", ""),
		MailOptions: []string{"ENVID=ok", "MTRK=" + good.String()}})
	res := runPython(t, h, pyConfig{StartTLS: true, User: testUser, Password: testPass, Transactions: txs})
	for i, c := range cases {
		r := res.Transactions[i]
		assert.False(t, r.OK, c.name)
		assert.Equal(t, "mail", r.Stage, c.name)
		assert.Equal(t, c.code, r.Code, "%s: %s", c.name, r.Msg)
	}
	assert.True(t, res.Transactions[len(cases)].OK, "the session continues after refusals")
	msgs := h.be.messages()
	require.Len(t, msgs, 1, "only the valid message reached the backend")
	assert.Equal(t, "ok@example.test", msgs[0].From)
	st := h.mw.Stats()
	assert.Equal(t, uint64(1), st.Recorded)
	assert.Equal(t, uint64(0), st.Holds)
	_, err := h.eng.Lookup(context.Background(), good)
	require.NoError(t, err, "the valid message is recorded")
}

// TestPythonNotOffered: MTRK on a channel without trackingserver and hold
// parameters where FUTURERELEASE is not offered get 555 (RFC 5321 section
// 4.1.1.11); a hold without AUTH gets 530 5.7.0. Nothing is recorded.
func TestPythonNotOffered(t *testing.T) {
	_, cert := newCert(t)
	hold := []string{"HOLDFOR=60"}
	mt := []string{"MTRK=" + cert.String()}
	tx := func(opts []string) pyTx {
		return pyTx{From: "a@example.test", To: []string{"b@example.test"}, Msg: testMessage("<n@x>", ""),
			MailOptions: append([]string{"ENVID=e"}, opts...)}
	}
	okTx := tx(nil)

	t.Run("no trackingserver", func(t *testing.T) {
		h := submissionHarness(t, channelopts.Channel{}, nil)
		res := runPython(t, h, pyConfig{StartTLS: true, User: testUser, Password: testPass, Transactions: []pyTx{tx(mt), okTx}})
		assert.NotContains(t, res.EHLO, "mtrk")
		assert.Equal(t, 555, res.Transactions[0].Code, res.Transactions[0].Msg)
		assert.True(t, res.Transactions[1].OK)
		assert.Len(t, h.be.messages(), 1)
		assert.Nil(t, h.be.messages()[0].Tracking.Certifier)
		assert.Equal(t, uint64(0), h.mw.Stats().Recorded)
	})
	t.Run("hold before TLS", func(t *testing.T) {
		h := submissionHarness(t, channelopts.Channel{TrackingServer: true}, nil)
		res := runPython(t, h, pyConfig{Transactions: []pyTx{tx(hold), okTx}})
		assert.Equal(t, 555, res.Transactions[0].Code, res.Transactions[0].Msg)
		assert.True(t, res.Transactions[1].OK)
	})
	t.Run("hold on a non-submission channel", func(t *testing.T) {
		h := submissionHarness(t, channelopts.Channel{TrackingServer: true}, func(o *Options) { o.Submission = false })
		res := runPython(t, h, pyConfig{StartTLS: true, User: testUser, Password: testPass, Transactions: []pyTx{tx(hold), okTx}})
		assert.NotContains(t, res.EHLO, "futurerelease")
		assert.Equal(t, 555, res.Transactions[0].Code, res.Transactions[0].Msg)
		assert.True(t, res.Transactions[1].OK)
	})
	t.Run("hold without AUTH", func(t *testing.T) {
		h := submissionHarness(t, channelopts.Channel{TrackingServer: true}, nil)
		res := runPython(t, h, pyConfig{StartTLS: true, Transactions: []pyTx{
			tx(append(hold, mt...)), tx([]string{"HOLDUNTIL=" + futurerelease.FormatDateTime(time.Now().Add(time.Hour))}), okTx}})
		assert.Contains(t, res.EHLO, "futurerelease")
		assert.Equal(t, 530, res.Transactions[0].Code, res.Transactions[0].Msg)
		assert.Contains(t, res.Transactions[0].Msg, "5.7.0")
		assert.Equal(t, 530, res.Transactions[1].Code)
		assert.True(t, res.Transactions[2].OK)
		require.Len(t, h.be.messages(), 1)
		_, err := h.eng.Lookup(context.Background(), cert)
		assert.ErrorIs(t, err, tracking.ErrNotFound)
	})
}

// TestPythonRejectedMessageLeavesNoRecord: the wrapped backend refuses the
// message at Data: the client gets its reply and nothing is recorded.
func TestPythonRejectedMessageLeavesNoRecord(t *testing.T) {
	be := &recBackend{rejectData: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}}
	h := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true, TrackingGenerate: 86400 * time.Second}, be: be})
	_, cert := newCert(t)
	res := runPython(t, h, pyConfig{Transactions: []pyTx{
		{From: "a@example.test", To: []string{"b@example.test"}, Msg: testMessage("<r@x>", ""), MailOptions: []string{"ENVID=r", "MTRK=" + cert.String()}},
		{From: "a@example.test", To: []string{"b@example.test"}, Msg: testMessage("<r2@x>", "")},
	}})
	for _, r := range res.Transactions {
		assert.Equal(t, 554, r.Code)
		assert.Equal(t, "data", r.Stage)
	}
	_, err := h.eng.Lookup(context.Background(), cert)
	assert.ErrorIs(t, err, tracking.ErrNotFound)
	st := h.mw.Stats()
	assert.Equal(t, uint64(0), st.Recorded)
	assert.Equal(t, uint64(2), st.Rejected)
	assert.Equal(t, uint64(0), h.eng.Stats().Writes, "nothing written to the store")
}

func TestRequireEnvelopeID(t *testing.T) {
	h := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true}, opts: Options{RequireEnvelopeID: true}})
	_, cert := newCert(t)
	res := runPython(t, h, pyConfig{Transactions: []pyTx{
		{From: "a@example.test", To: []string{"b@example.test"}, Msg: testMessage("<q@x>", ""), MailOptions: []string{"MTRK=" + cert.String()}},
		{From: "a@example.test", To: []string{"b@example.test"}, Msg: testMessage("<q@x>", ""), MailOptions: []string{"MTRK=" + cert.String(), "ENVID=q"}},
	}})
	assert.Equal(t, 501, res.Transactions[0].Code)
	assert.True(t, res.Transactions[1].OK)
	require.Len(t, h.be.messages(), 1)
	assert.Equal(t, "q", h.be.messages()[0].Tracking.EnvelopeID)
}
