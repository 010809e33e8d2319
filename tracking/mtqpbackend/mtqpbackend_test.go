package mtqpbackend_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/mtqpbackend"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// spoolQueue is the queue side of a recall in these tests: it removes a
// recipient unless it has been marked as already sending.
type spoolQueue struct {
	mu      sync.Mutex
	sending map[string]bool
	removed map[string]bool
}

func (q *spoolQueue) Remove(_ context.Context, _ string, rcpts []string) ([]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, r := range rcpts {
		if q.sending[r] {
			continue
		}
		q.removed[r] = true
		out = append(out, r)
	}
	return out, nil
}

type fixture struct {
	engine *tracking.Engine
	queue  *spoolQueue
	addr   string
	srv    *mtqp.Server
	tlsCli *tls.Config
}

func newFixture(t *testing.T, store trackstore.Store) *fixture {
	t.Helper()
	q := &spoolQueue{sending: map[string]bool{}, removed: map[string]bool{}}
	eng := tracking.New(store, tracking.Options{ReportingMTA: "mx1.example.test", Queue: q})
	cert, _, _ := testenv.SelfSignedCert(t, "127.0.0.1", "localhost")
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	srv := &mtqp.Server{
		Backend:    mtqpbackend.New(eng, mtqpbackend.Options{ReportingMTA: "mx1.example.test"}),
		Domain:     "mx1.example.test",
		TLSConfig:  &tls.Config{Certificates: []tls.Certificate{cert}},
		RequireTLS: true,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &fixture{engine: eng, queue: q, addr: l.Addr().String(), srv: srv,
		tlsCli: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
}

func (f *fixture) dial(t *testing.T) *mtqp.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mtqp.Dial(ctx, f.addr)
	require.NoError(t, err)
	require.NoError(t, c.StartTLS(ctx, f.tlsCli))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func accept(t *testing.T, eng *tracking.Engine, envid string, hold time.Time, rcpts ...string) (mtrk.Secret, tracking.Ref) {
	t.Helper()
	secret, err := mtrk.NewSecret()
	require.NoError(t, err)
	ref := tracking.Ref{Certifier: secret.Certifier(), QueueID: "q-" + envid}
	var rs []tracking.AcceptedRecipient
	for _, r := range rcpts {
		rs = append(rs, tracking.AcceptedRecipient{Address: r})
	}
	require.NoError(t, eng.Accepted(context.Background(), tracking.Accept{
		Ref: ref, EventID: "acc-" + envid, EnvelopeID: envid, Sender: "alice@example.test",
		Recipients: rs, Timeout: 24 * time.Hour, HoldUntil: hold,
	}))
	return secret, ref
}

func byRecipient(rep *mtqp.Report) map[string]mtqp.Recipient {
	m := map[string]mtqp.Recipient{}
	for _, r := range rep.Recipients {
		m[r.FinalRecipient.Value] = r
	}
	return m
}

func ext(r mtqp.Recipient, name string) string {
	for _, f := range r.Extensions {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func stores(t *testing.T) map[string]func(t *testing.T) trackstore.Store {
	return map[string]func(t *testing.T) trackstore.Store{
		"memstore": func(t *testing.T) trackstore.Store { return memstore.New(memstore.Options{}) },
		"memcached": func(t *testing.T) trackstore.Store {
			m := testenv.StartMemcached(t)
			s, err := memcachestore.New(memcachestore.Options{Servers: []string{m.Addr}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
}

func TestTrackReportsEachRecipientsProgressOverTLS(t *testing.T) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, mk(t))
			ctx := context.Background()
			hold := time.Now().Add(time.Hour).Truncate(time.Second)
			secret, ref := accept(t, f.engine, "env-1", hold, "bob@example.test", "carol@example.test", "dave@example.test")
			require.NoError(t, f.engine.Delivered(ctx, ref, "d1", tracking.Outcome{Recipient: "bob@example.test", Diagnostic: "250 2.0.0 ok"}))
			require.NoError(t, f.engine.Failed(ctx, ref, "f1", tracking.Outcome{Recipient: "carol@example.test", Status: "5.1.1", RemoteMTA: "mx.remote.test", Diagnostic: "550 5.1.1 no such user"}))

			res, err := f.dial(t).Track(ctx, "env-1", secret)
			require.NoError(t, err)
			rep := res.Report
			assert.Equal(t, "env-1", rep.EnvelopeID)
			assert.Equal(t, mtqp.DNS("mx1.example.test"), rep.ReportingMTA)
			rs := byRecipient(rep)
			require.Len(t, rs, 3)
			assert.Equal(t, mtqp.Action("delivered"), rs["bob@example.test"].Action)
			assert.Equal(t, "2.0.0", rs["bob@example.test"].Status.String())
			assert.Equal(t, "250 2.0.0 ok", ext(rs["bob@example.test"], mtqpbackend.FieldDiagnostic))
			assert.Equal(t, mtqp.Action("failed"), rs["carol@example.test"].Action)
			assert.Equal(t, "5.1.1", rs["carol@example.test"].Status.String())
			assert.Equal(t, mtqp.DNS("mx.remote.test"), rs["carol@example.test"].RemoteMTA)
			assert.Equal(t, mtqp.Action("delayed"), rs["dave@example.test"].Action)
			assert.Equal(t, "held", ext(rs["dave@example.test"], mtqpbackend.FieldTrackingState))
			// The raw body parses back to the same report.
			again, err := mtqp.ParseReport(res.Raw)
			require.NoError(t, err)
			assert.Equal(t, rep, again)
		})
	}
}

func TestWrongSecretAndUnknownEnvelopeGetTheSameAnswer(t *testing.T) {
	f := newFixture(t, memstore.New(memstore.Options{}))
	ctx := context.Background()
	_, _ = accept(t, f.engine, "env-2", time.Time{}, "bob@example.test")
	other, err := mtrk.NewSecret()
	require.NoError(t, err)
	c := f.dial(t)
	_, errWrong := c.Track(ctx, "env-2", other)
	_, errUnknown := c.Track(ctx, "no-such-envelope", other)
	require.ErrorIs(t, errWrong, mtqp.ErrNotFound)
	require.ErrorIs(t, errUnknown, mtqp.ErrNotFound)
	assert.Equal(t, errWrong.Error(), errUnknown.Error())
}

func TestRecallWithdrawsQueuedRecipientsOnly(t *testing.T) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, mk(t))
			ctx := context.Background()
			secret, ref := accept(t, f.engine, "env-3", time.Now().Add(time.Hour), "a@example.test", "b@example.test", "c@example.test")
			require.NoError(t, f.engine.Delivered(ctx, ref, "d-a", tracking.Outcome{Recipient: "a@example.test"}))
			f.queue.sending["c@example.test"] = true
			claims, err := f.engine.BeginDelivery(ctx, ref, []string{"c@example.test"})
			require.NoError(t, err)
			require.Equal(t, tracking.ClaimProceed, claims[0])

			res, err := f.dial(t).Recall(ctx, "env-3", secret)
			require.NoError(t, err)
			rs := byRecipient(res.Report)
			assert.Equal(t, mtqp.RecallTooLate, ptr(rs["a@example.test"]).RecallStatus())
			assert.Equal(t, mtqp.RecallRecalled, ptr(rs["b@example.test"]).RecallStatus())
			assert.Equal(t, mtqp.RecallInProgress, ptr(rs["c@example.test"]).RecallStatus())
			assert.True(t, f.queue.removed["b@example.test"])
			assert.False(t, f.queue.removed["c@example.test"])
			assert.False(t, f.queue.removed["a@example.test"])

			// A later TRACK shows the recall; the recalled recipient can no
			// longer be claimed for delivery.
			tr, err := f.dial(t).Track(ctx, "env-3", secret)
			require.NoError(t, err)
			assert.Equal(t, "recalled", ext(byRecipient(tr.Report)["b@example.test"], mtqpbackend.FieldTrackingState))
			claims, err = f.engine.BeginDelivery(ctx, ref, []string{"b@example.test"})
			require.NoError(t, err)
			assert.Equal(t, tracking.ClaimRecalled, claims[0])
		})
	}
}

// TestRecallReportsNotRecallableRecipients: alias children that did not
// get the certifier and mailing-list members are outcomes of the engine's
// recall like any other, so the RECALL answer over MTQP carries a group
// for each, with X-Recall-Status not-recallable.
func TestRecallReportsNotRecallableRecipients(t *testing.T) {
	f := newFixture(t, memstore.New(memstore.Options{}))
	ctx := context.Background()
	secret, ref := accept(t, f.engine, "env-5", time.Now().Add(time.Hour), "team@example.test", "list@example.test", "d@example.test")
	require.NoError(t, f.engine.Expanded(ctx, ref, "exp-team", "team@example.test", false, []tracking.Child{
		{Address: "x@example.test", Tracked: true},
		{Address: "y@example.test", Tracked: false},
	}))
	require.NoError(t, f.engine.Expanded(ctx, ref, "exp-list", "list@example.test", true, []tracking.Child{
		{Address: "m1@example.test", Tracked: true},
	}))

	// What the engine answers is what the report must show, one group per
	// outcome.
	direct, err := f.engine.Recall(ctx, "env-5", secret)
	require.NoError(t, err)
	want := map[string]tracking.RecallOutcome{}
	for _, r := range direct.Results {
		want[r.Recipient] = r.Outcome
	}
	require.Equal(t, tracking.RecallNotRecallable, want["y@example.test"], "engine: %+v", direct.Results)

	res, err := f.dial(t).Recall(ctx, "env-5", secret)
	require.NoError(t, err)
	rs := byRecipient(res.Report)
	for addr, o := range want {
		rc, ok := rs[addr]
		if assert.True(t, ok, "no report group for %s (outcome %s)", addr, o) {
			assert.Equal(t, mtqp.RecallStatus(o), ptr(rc).RecallStatus(), addr)
		}
	}
	y := rs["y@example.test"]
	assert.Equal(t, mtqp.RecallNotRecallable, ptr(y).RecallStatus())
	assert.Equal(t, mtqp.ActionOpaque, y.Action)
	assert.Equal(t, "team@example.test", y.OriginalRecipient.Value)
	assert.Equal(t, mtqp.RecallNotRecallable, ptr(rs["list@example.test"]).RecallStatus())
	assert.Equal(t, mtqp.RecallRecalled, ptr(rs["x@example.test"]).RecallStatus())
	assert.Equal(t, mtqp.RecallRecalled, ptr(rs["d@example.test"]).RecallStatus())
	// The body the client parsed is the one the server wrote: every group
	// is there once.
	n := 0
	for _, r := range res.Report.Recipients {
		if r.FinalRecipient.Value == "y@example.test" {
			n++
		}
	}
	assert.Equal(t, 1, n)
}

func TestStoreOutageIsATemporaryFailureNotNotFound(t *testing.T) {
	m := testenv.StartMemcached(t)
	s, err := memcachestore.New(memcachestore.Options{Servers: []string{m.Addr}, Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	f := newFixture(t, s)
	secret, _ := accept(t, f.engine, "env-4", time.Time{}, "bob@example.test")
	m.Stop()
	_, err = f.dial(t).Track(context.Background(), "env-4", secret)
	require.Error(t, err)
	assert.NotErrorIs(t, err, mtqp.ErrNotFound)
	var re *mtqp.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, mtqp.CodeLocalError, re.Code)
}

func ptr(r mtqp.Recipient) *mtqp.Recipient { return &r }

// BenchmarkTrack measures TRACK round trips through the whole stack (MTQP
// client, server, adapter, engine) against memstore and memcached, beside a
// raw gomemcache Get on the same memcached, so the ratio can be read off one
// run: go test -run '^$' -bench . -count 10 ./tracking/mtqpbackend | go tool benchstat -
func BenchmarkTrack(b *testing.B) {
	m := testenv.StartMemcached(b)
	raw := memcache.New(m.Addr)
	require.NoError(b, raw.Set(&memcache.Item{Key: "raw", Value: make([]byte, 600)}))
	b.Run("raw-gomemcache-get", func(b *testing.B) {
		for b.Loop() {
			if _, err := raw.Get("raw"); err != nil {
				b.Fatal(err)
			}
		}
	})
	mc, err := memcachestore.New(memcachestore.Options{Servers: []string{m.Addr}})
	require.NoError(b, err)
	defer mc.Close()
	for _, st := range []struct {
		name  string
		store trackstore.Store
	}{{"memstore", memstore.New(memstore.Options{})}, {"memcached", mc}} {
		for _, conns := range []int{1, 16} {
			b.Run(st.name+"/conns="+itoa(conns), func(b *testing.B) {
				benchTrack(b, st.store, conns)
			})
		}
	}
}

func benchTrack(b *testing.B, store trackstore.Store, conns int) {
	eng := tracking.New(store, tracking.Options{ReportingMTA: "mx1.example.test"})
	srv := &mtqp.Server{Backend: mtqpbackend.New(eng, mtqpbackend.Options{}), Domain: "mx1.example.test", MaxConnections: -1}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	secret, err := mtrk.NewSecret()
	require.NoError(b, err)
	ctx := context.Background()
	require.NoError(b, eng.Accepted(ctx, tracking.Accept{
		Ref: tracking.Ref{Certifier: secret.Certifier(), QueueID: "q1"}, EventID: "a1", EnvelopeID: "bench-env",
		Sender: "a@example.test", Recipients: []tracking.AcceptedRecipient{{Address: "b@example.test"}},
	}))
	clients := make(chan *mtqp.Client, conns)
	for range conns {
		c, err := mtqp.Dial(ctx, l.Addr().String())
		require.NoError(b, err)
		defer c.Close()
		clients <- c
	}
	b.SetParallelism((conns + 1) / 2) // GOMAXPROCS is 2 here: conns goroutines in all
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := <-clients
		defer func() { clients <- c }()
		for pb.Next() {
			if _, err := c.Track(ctx, "bench-env", secret); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
