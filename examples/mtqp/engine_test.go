package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/mtqpbackend"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// These tests run the command against the real tracking engine, served by
// tracking/mtqpbackend over an mtqp.Server, on trackstore/memstore: the
// whole path a refmta query takes.

// queue is the MTA-side of a recall: it removes any recipient not marked
// as being sent.
type queue struct {
	mu      sync.Mutex
	sending map[string]bool
	removed map[string]bool
}

func (q *queue) Remove(_ context.Context, _ string, rcpts []string) ([]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, r := range rcpts {
		if !q.sending[r] {
			q.removed[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}

type mta struct {
	name   string
	engine *tracking.Engine
	queue  *queue
	server *server
}

func startMTA(t *testing.T, name string, certHosts ...string) *mta {
	t.Helper()
	q := &queue{sending: map[string]bool{}, removed: map[string]bool{}}
	eng := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: name, Queue: q})
	be := mtqpbackend.New(eng, mtqpbackend.Options{ReportingMTA: name})
	return &mta{name: name, engine: eng, queue: q,
		server: startServer(t, be, serverOpts{domain: name, tls: true, requireTLS: true, certHosts: certHosts})}
}

func (m *mta) accept(t *testing.T, envid string, cert mtrk.Certifier, hold time.Time, rcpts ...string) tracking.Ref {
	t.Helper()
	ref := tracking.Ref{Certifier: cert, QueueID: "q-" + envid + "@" + m.name}
	var rs []tracking.AcceptedRecipient
	for _, r := range rcpts {
		rs = append(rs, tracking.AcceptedRecipient{Address: r})
	}
	require.NoError(t, m.engine.Accepted(context.Background(), tracking.Accept{
		Ref: ref, EventID: "acc-" + envid, EnvelopeID: envid, Sender: "alice@example.test",
		Recipients: rs, Timeout: 24 * time.Hour, HoldUntil: hold,
	}))
	return ref
}

// The SHA-1 path test vector of package idgen.
const (
	vecMessageID = "<20260801123456.A1B2C3@mail.example.com>"
	vecDate      = "Sat, 1 Aug 2026 12:34:56 +0200"
	vecGeneral   = "0123456789abcdef0123456789abcdef"
)

func TestRecomputedSecretFindsTheEngineRecord(t *testing.T) {
	m := startMTA(t, "mx1.example.test", "127.0.0.1")
	// The record is made the way a submission server on the SHA-1 path
	// makes it: certifier of ComputeSecret over the same inputs, envelope ID
	// derived from the Message-ID.
	a, err := idgen.ComputeSecret(vecMessageID, vecDate, []byte(vecGeneral))
	require.NoError(t, err)
	require.Equal(t, "4duffuQGNTzSaHqQRNq55Y74lro", a.String(), "idgen's published vector")
	envid, err := idgen.DeriveEnvelopeID(vecMessageID)
	require.NoError(t, err)
	ref := m.accept(t, envid, a.Certifier(), time.Now().Add(time.Hour), "bob@example.test", "carol@example.test")
	require.NoError(t, m.engine.Delivered(context.Background(), ref, "d1", tracking.Outcome{
		Recipient: "bob@example.test", RemoteMTA: "mail.example.test", Diagnostic: "250 2.0.0 ok"}))

	gfile := writeFile(t, "general", []byte(vecGeneral+"\n"))
	srv := []string{"-server", m.server.addr, "-ca", m.server.caFile}
	// A sent copy on disk: LF line endings, both fields folded.
	msg := writeFile(t, "sent.eml", []byte("From: alice@example.test\nMessage-ID:\n "+vecMessageID+" \nDate: Sat, 1 Aug 2026\n\t12:34:56 +0200\nSubject: hi\n\nbody\n"))

	for name, args := range map[string][]string{
		"fields and general secret file": {"-message-id", vecMessageID, "-date", vecDate, "-general-secret-file", gfile},
		"general secret in base64":       {"-message-id", vecMessageID, "-date", vecDate, "-general-secret", base64.StdEncoding.EncodeToString([]byte(vecGeneral))},
		"unpadded base64, explicit envid": {"-envid", envid, "-message-id", vecMessageID, "-date", vecDate,
			"-general-secret", base64.RawStdEncoding.EncodeToString([]byte(vecGeneral))},
		"sent copy":            {"-message", msg, "-general-secret-file", gfile},
		"the recomputed value": {"-envid", envid, "-secret", a.String()},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, nil, append(append([]string{"track"}, srv...), args...)...)
			require.Equal(t, exitOK, r.code, r.stderr)
			lines := tableLines(t, r.stdout)
			require.Len(t, lines, 2)
			assert.Equal(t, []string{"bob@example.test", "delivered", "2.0.0", "mail.example.test", "-", "250 2.0.0 ok"}, lines["bob@example.test"])
			assert.Equal(t, "delayed (held)", lines["carol@example.test"][1])
			assert.Equal(t, envid, headerValue(r.stdout, "Envelope-Id"))
			assert.Contains(t, r.stdout, "X-Hold-Until:")
		})
	}

	// Any other input gives another secret: not found.
	for name, args := range map[string][]string{
		"other date":           {"-message-id", vecMessageID, "-date", "Sat, 1 Aug 2026 12:34:57 +0200", "-general-secret-file", gfile},
		"no date":              {"-message-id", vecMessageID, "-general-secret-file", gfile},
		"other general secret": {"-message-id", vecMessageID, "-date", vecDate, "-general-secret", base64.StdEncoding.EncodeToString([]byte(strings.ToUpper(vecGeneral)))},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, nil, append(append([]string{"track"}, srv...), args...)...)
			assert.Equal(t, exitFailed, r.code)
			requireOneLine(t, r)
			assert.Contains(t, r.stderr, "not found")
		})
	}
}

func TestRecallThroughTheEngine(t *testing.T) {
	m := startMTA(t, "mx1.example.test", "127.0.0.1")
	ctx := context.Background()
	secret := newSecret(t)
	ref := m.accept(t, "env-r", secret.Certifier(), time.Now().Add(time.Hour), "a@example.test", "b@example.test", "c@example.test")
	require.NoError(t, m.engine.Delivered(ctx, ref, "d-a", tracking.Outcome{Recipient: "a@example.test"}))
	m.queue.sending["c@example.test"] = true
	claims, err := m.engine.BeginDelivery(ctx, ref, []string{"c@example.test"})
	require.NoError(t, err)
	require.Equal(t, tracking.ClaimProceed, claims[0])
	args := []string{"-server", m.server.addr, "-ca", m.server.caFile, "-envid", "env-r", "-secret", secret.String()}

	r := runCLI(t, nil, append([]string{"recall"}, args...)...)
	require.Equal(t, exitOK, r.code, r.stderr)
	lines := tableLines(t, r.stdout)
	require.Len(t, lines, 3)
	assert.Equal(t, "too-late", lines["a@example.test"][4])
	assert.Equal(t, "recalled", lines["b@example.test"][4])
	assert.Equal(t, "in-progress", lines["c@example.test"][4])
	assert.True(t, m.queue.removed["b@example.test"])
	assert.False(t, m.queue.removed["a@example.test"] || m.queue.removed["c@example.test"])

	// Again, as JSON: the recall is idempotent and the statuses are there.
	r = runCLI(t, nil, append([]string{"recall", "-json"}, args...)...)
	require.Equal(t, exitOK, r.code, r.stderr)
	var out jsonOutput
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	assert.Equal(t, "recall", out.Command)
	got := map[string]string{}
	for _, rc := range out.Recipients {
		got[rc.FinalRecipient] = rc.RecallStatus
	}
	assert.Equal(t, map[string]string{"a@example.test": "too-late", "b@example.test": "recalled", "c@example.test": "in-progress"}, got)

	// track shows the recalled recipient as failed, with the engine's state.
	r = runCLI(t, nil, append([]string{"track"}, args...)...)
	require.Equal(t, exitOK, r.code, r.stderr)
	lines = tableLines(t, r.stdout)
	assert.Equal(t, "failed (recalled)", lines["b@example.test"][1])
	assert.Equal(t, "-", lines["b@example.test"][4], "track carries no recall status")
}

// TestFollowReferrals chains two MTAs with separate stores: mx1 transferred
// bob to mx2, which delivered him.
func TestFollowReferrals(t *testing.T) {
	ctx := context.Background()
	mx1 := startMTA(t, "mx1.example.test", "127.0.0.1")
	mx2 := startMTA(t, "mx2.example.test", "mx2.example.test")
	secret := newSecret(t)
	ref1 := mx1.accept(t, "env-f", secret.Certifier(), time.Time{}, "bob@example.test", "carol@example.test")
	require.NoError(t, mx1.engine.Transferred(ctx, ref1, "t1", false, tracking.Outcome{Recipient: "bob@example.test", RemoteMTA: "mx2.example.test"}))
	ref2 := mx2.accept(t, "env-f", secret.Certifier(), time.Time{}, "bob@example.test")
	require.NoError(t, mx2.engine.Delivered(ctx, ref2, "d1", tracking.Outcome{Recipient: "bob@example.test", RemoteMTA: "imap.example.test", Diagnostic: "250 delivered"}))

	res := startDNS(t, &srvZone{records: map[string][]*net.SRV{"_mtqp._tcp.mx2.example.test.": srvTo(t, mx2.server.addr)}})
	both := writeFile(t, "both.pem", append(append([]byte{}, mx1.server.caPEM...), mx2.server.caPEM...))
	c := &cli{resolver: res}
	base := []string{"track", "-server", mx1.server.addr, "-envid", "env-f", "-secret", secret.String()}
	mx2Queries := func() uint64 { return mx2.server.srv.Metrics().Commands[mtqp.CmdTrack].Count }

	t.Run("followed", func(t *testing.T) {
		r := runCLI(t, c, append(base, "-ca", both, "-follow", "-allow", "*.example.test", "-json")...)
		require.Equal(t, exitOK, r.code, r.stderr)
		var out jsonOutput
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
		require.Len(t, out.Hops, 2)
		assert.Equal(t, jsonHop{Host: "mx2.example.test", Referrer: "127.0.0.1", Depth: 1, Answered: true,
			ReportingMTA: "mx2.example.test", ArrivalDate: out.Hops[1].ArrivalDate}, out.Hops[1])
		got := map[string]string{}
		for _, rc := range out.Recipients {
			got[rc.FinalRecipient] = rc.Host + " " + rc.Action
		}
		assert.Equal(t, map[string]string{"bob@example.test": "mx2.example.test delivered", "carol@example.test": "127.0.0.1 delayed"}, got)

		// The table has a SERVER column and both servers' headers.
		r = runCLI(t, c, append(base, "-ca", both, "-follow", "-allow", "mx2.example.test")...)
		require.Equal(t, exitOK, r.code, r.stderr)
		lines := tableLines(t, r.stdout)
		assert.Equal(t, []string{"bob@example.test", "delivered", "2.0.0", "imap.example.test", "-", "250 delivered"}, lines["bob@example.test"])
		assert.Contains(t, r.stdout, "Referred-By:")
		assert.Contains(t, r.stdout, "SERVER")
	})

	t.Run("policy refuses", func(t *testing.T) {
		before := mx2Queries()
		r := runCLI(t, c, append(base, "-ca", both, "-follow", "-allow", "other.example.test,*.mx2.example.test")...)
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "no answer")
		assert.Contains(t, r.stdout, "policy refuses mx2.example.test")
		lines := tableLines(t, r.stdout)
		assert.Equal(t, "transferred", lines["bob@example.test"][1])
		assert.Equal(t, before, mx2Queries(), "the secret did not go to mx2")
	})

	t.Run("referral needs verified TLS even with -insecure", func(t *testing.T) {
		before := mx2Queries()
		// mx1 accepted without verification, mx2's CA unknown: mx2 is not asked.
		r := runCLI(t, c, append(base, "-insecure", "-follow", "-allow", "mx2.example.test", "-json")...)
		require.Equal(t, exitOK, r.code, r.stderr)
		var out jsonOutput
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
		require.Len(t, out.Hops, 2)
		assert.False(t, out.Hops[1].Answered)
		assert.Contains(t, out.Hops[1].Error, "certificate")
		assert.Equal(t, before, mx2Queries(), "the secret did not go to an unverified mx2")

		// With mx2's CA trusted, -insecure for mx1 still lets mx2 be asked.
		r = runCLI(t, c, append(base, "-insecure", "-ca", mx2.server.caFile, "-follow", "-allow", "mx2.example.test", "-json")...)
		require.Equal(t, exitOK, r.code, r.stderr)
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
		assert.True(t, out.Hops[1].Answered, out.Hops[1].Error)
	})

	t.Run("hop limit", func(t *testing.T) {
		r := runCLI(t, c, append(base, "-ca", both, "-follow", "-allow", "mx2.example.test", "-max-hops", "1", "-json")...)
		require.Equal(t, exitOK, r.code, r.stderr)
		var out jsonOutput
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
		assert.True(t, out.Hops[1].Answered, "depth 1 is within -max-hops 1")
	})

	t.Run("without -follow the transfer is shown", func(t *testing.T) {
		r := runCLI(t, c, append(base, "-ca", both)...)
		require.Equal(t, exitOK, r.code, r.stderr)
		lines := tableLines(t, r.stdout)
		assert.Equal(t, []string{"bob@example.test", "transferred", "2.0.0", "mx2.example.test", "-", "-"}, lines["bob@example.test"])
	})
}

// headerValue returns the value of the first "Name:" line of the table's
// per-message part.
func headerValue(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
