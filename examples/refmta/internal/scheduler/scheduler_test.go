package scheduler

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/spool"
)

var t0 = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

// guard bounds every wait so a broken scheduler fails the test instead of
// hanging it; it is never used to assert how long something took.
const guard = 20 * time.Second

type attempt struct {
	id    string
	rcpts []string
	at    time.Time
	reply chan []Result
}

type harness struct {
	t       *testing.T
	clock   *FakeClock
	spool   *spool.Spool
	sched   *Scheduler
	dir     string
	attempt chan attempt
	results chan []Result
}

func newHarness(t *testing.T, dir string, opts Options) *harness {
	t.Helper()
	clock := NewFakeClock(t0)
	if dir == "" {
		dir = t.TempDir()
	}
	sp, err := spool.Open(context.Background(), dir, spool.Options{Now: clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { sp.Close() })
	h := &harness{t: t, clock: clock, spool: sp, dir: dir, attempt: make(chan attempt), results: make(chan []Result, 100)}
	opts.Spool, opts.Clock = sp, clock
	if opts.Deliver == nil {
		opts.Deliver = func(ctx context.Context, env *spool.Envelope, rcpts []string) []Result {
			a := attempt{id: env.ID, rcpts: rcpts, at: clock.Now(), reply: make(chan []Result)}
			select {
			case h.attempt <- a:
			case <-ctx.Done():
				return nil
			}
			select {
			case r := <-a.reply:
				return r
			case <-ctx.Done():
				return nil
			}
		}
	}
	opts.OnResult = func(ctx context.Context, env *spool.Envelope, results []Result) { h.results <- results }
	h.sched, err = New(opts)
	require.NoError(t, err)
	return h
}

func (h *harness) start() {
	h.sched.Start(context.Background())
	h.t.Cleanup(func() { _ = h.sched.Stop(context.Background()) })
}

func (h *harness) put(hold time.Time, rcpts ...string) string {
	h.t.Helper()
	env := &spool.Envelope{From: "a@x", HoldUntil: hold}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, spool.Recipient{Addr: r})
	}
	id, err := h.spool.Put(context.Background(), env, strings.NewReader("m"))
	require.NoError(h.t, err)
	return id
}

func (h *harness) nextAttempt() attempt {
	h.t.Helper()
	select {
	case a := <-h.attempt:
		return a
	case <-time.After(guard):
		h.t.Fatal("no delivery attempt")
	}
	return attempt{}
}

func (h *harness) nextResults() []Result {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(guard):
		h.t.Fatal("no results")
	}
	return nil
}

func (h *harness) noAttemptPending() {
	h.t.Helper()
	select {
	case a := <-h.attempt:
		h.t.Fatalf("unexpected attempt for %s at %s", a.id, a.at)
	default:
	}
}

func all(o Outcome, reason string, rcpts []string) []Result {
	var out []Result
	for _, r := range rcpts {
		out = append(out, Result{Rcpt: r, Outcome: o, Reason: reason})
	}
	return out
}

func TestReleaseAtHoldTime(t *testing.T) {
	h := newHarness(t, "", Options{})
	hold := t0.Add(time.Hour)
	id := h.put(hold, "b@x", "c@x")
	h.start()

	require.True(t, h.clock.WaitForTimer(hold, guard), "scheduler did not wait for the hold time")
	h.noAttemptPending()
	h.clock.Advance(59 * time.Minute)
	require.True(t, h.clock.WaitForTimer(hold, guard))
	h.noAttemptPending()

	h.clock.Advance(time.Minute)
	a := h.nextAttempt()
	assert.Equal(t, id, a.id)
	assert.Equal(t, hold, a.at)
	assert.Equal(t, []string{"b@x", "c@x"}, a.rcpts)
	a.reply <- all(Delivered, "250 ok", a.rcpts)
	res := h.nextResults()
	assert.Len(t, res, 2)
	require.NoError(t, h.sched.Stop(context.Background()))
	_, err := h.spool.Get(id)
	assert.ErrorIs(t, err, spool.ErrNotFound, "finished message removed")
	st := h.sched.Stats()
	assert.EqualValues(t, 2, st.Attempts)
	assert.EqualValues(t, 2, st.Delivered)
}

func TestRecallWhileHeldIsNeverDelivered(t *testing.T) {
	h := newHarness(t, "", Options{})
	recalledID := h.put(t0.Add(time.Hour), "b@x")
	sentinel := h.put(t0.Add(2*time.Hour), "c@x")
	h.start()
	require.True(t, h.clock.WaitForTimer(t0.Add(time.Hour), guard))

	got, err := h.spool.Recall(context.Background(), recalledID, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"b@x"}, got)
	h.sched.Notify()
	// The recalled message no longer sets a timer; the sentinel's does.
	require.True(t, h.clock.WaitForTimer(t0.Add(2*time.Hour), guard))

	h.clock.Advance(3 * time.Hour)
	a := h.nextAttempt()
	assert.Equal(t, sentinel, a.id, "only the sentinel is delivered")
	a.reply <- all(Delivered, "", a.rcpts)
	h.nextResults()
	require.NoError(t, h.sched.Stop(context.Background()))
	assert.Equal(t, 0, h.spool.Len())
}

func TestBackoffAndExpiry(t *testing.T) {
	h := newHarness(t, "", Options{InitialBackoff: 10 * time.Minute, MaxBackoff: 40 * time.Minute, MaxLifetime: 2 * time.Hour})
	id := h.put(time.Time{}, "b@x")
	h.start()
	h.sched.Notify()

	// Attempts at 0, +10m, +20m (30m), +40m (70m), +40m (110m), and the
	// last one moved to the end of the lifetime (120m).
	for i, at := range []time.Duration{0, 10, 30, 70, 110, 120} {
		a := h.nextAttempt()
		require.Equal(t, t0.Add(at*time.Minute), a.at, "attempt %d", i)
		a.reply <- all(Deferred, "451 try later", a.rcpts)
		res := h.nextResults()
		require.Len(t, res, 1)
		if at == 120 {
			assert.Equal(t, Failed, res[0].Outcome)
			assert.True(t, res[0].Expired)
			assert.Equal(t, "expired: 451 try later", res[0].Reason)
			break
		}
		assert.Equal(t, Deferred, res[0].Outcome)
		env, err := h.spool.Get(id)
		require.NoError(t, err)
		r := env.Recipients[0]
		assert.Equal(t, spool.Deferred, r.State)
		assert.Equal(t, i+1, r.Attempts)
		assert.Equal(t, "451 try later", r.Reason)
		require.True(t, h.clock.WaitForTimer(r.NextAttempt, guard))
		h.clock.Set(r.NextAttempt)
	}
	require.NoError(t, h.sched.Stop(context.Background()))
	assert.Equal(t, 0, h.spool.Len())
	st := h.sched.Stats()
	assert.EqualValues(t, 6, st.Attempts)
	assert.EqualValues(t, 5, st.Deferred)
	assert.EqualValues(t, 1, st.Failed)
	assert.EqualValues(t, 1, st.Expired)
}

func TestLifetimeStartsAtRelease(t *testing.T) {
	h := newHarness(t, "", Options{InitialBackoff: time.Hour, MaxLifetime: 2 * time.Hour})
	hold := t0.Add(10 * time.Hour)
	h.put(hold, "b@x")
	h.start()
	require.True(t, h.clock.WaitForTimer(hold, guard))
	h.clock.Set(hold)
	a := h.nextAttempt()
	a.reply <- all(Deferred, "busy", a.rcpts)
	res := h.nextResults()
	assert.Equal(t, Deferred, res[0].Outcome, "a 10h hold must not count against a 2h lifetime")
	require.True(t, h.clock.WaitForTimer(hold.Add(time.Hour), guard))
}

func TestPermanentFailureMixedAndMissingResults(t *testing.T) {
	h := newHarness(t, "", Options{})
	id := h.put(time.Time{}, "ok@x", "bad@x", "silent@x")
	h.start()
	h.sched.Notify()
	a := h.nextAttempt()
	a.reply <- []Result{{Rcpt: "OK@x", Outcome: Delivered}, {Rcpt: "bad@x", Outcome: Failed, Reason: "550 no such user"}}
	res := h.nextResults()
	require.Len(t, res, 3)
	env, err := h.spool.Get(id)
	require.NoError(t, err)
	assert.Equal(t, spool.Delivered, env.Recipients[0].State)
	assert.Equal(t, spool.Failed, env.Recipients[1].State)
	assert.Equal(t, "550 no such user", env.Recipients[1].Reason)
	assert.Equal(t, spool.Deferred, env.Recipients[2].State)
	assert.Equal(t, "no result from delivery", env.Recipients[2].Reason)
	assert.Equal(t, t0.Add(30*time.Minute), env.Recipients[2].NextAttempt, "default initial backoff")
}

func TestPanicDefers(t *testing.T) {
	clock := NewFakeClock(t0)
	sp, err := spool.Open(context.Background(), t.TempDir(), spool.Options{Now: clock.Now})
	require.NoError(t, err)
	results := make(chan []Result, 1)
	s, err := New(Options{Spool: sp, Clock: clock,
		Deliver:  func(context.Context, *spool.Envelope, []string) []Result { panic("boom") },
		OnResult: func(_ context.Context, _ *spool.Envelope, r []Result) { results <- r }})
	require.NoError(t, err)
	_, err = sp.Put(context.Background(), &spool.Envelope{Recipients: []spool.Recipient{{Addr: "b@x"}}}, strings.NewReader("m"))
	require.NoError(t, err)
	s.Start(context.Background())
	defer s.Stop(context.Background())
	select {
	case r := <-results:
		require.Len(t, r, 1)
		assert.Equal(t, Deferred, r[0].Outcome)
		assert.Contains(t, r[0].Reason, "boom")
	case <-time.After(guard):
		t.Fatal("no result")
	}
}

func TestConcurrencyLimit(t *testing.T) {
	var cur, peak atomic.Int32
	var mu sync.Mutex
	gates := map[string]chan struct{}{}
	started := make(chan string, 10)
	deliver := func(ctx context.Context, env *spool.Envelope, rcpts []string) []Result {
		if n := cur.Add(1); n > peak.Load() {
			peak.Store(n)
		}
		defer cur.Add(-1)
		mu.Lock()
		g := gates[env.ID]
		mu.Unlock()
		started <- env.ID
		<-g
		return all(Delivered, "", rcpts)
	}
	h := newHarness(t, "", Options{Concurrency: 2, Deliver: deliver})
	for i := 0; i < 5; i++ {
		id := h.put(time.Time{}, "b@x")
		gates[id] = make(chan struct{})
	}
	sentinel := t0.Add(time.Hour)
	h.put(sentinel, "held@x")
	h.start()
	// The timer for the held sentinel is set after the scan's launches.
	require.True(t, h.clock.WaitForTimer(sentinel, guard))
	assert.Equal(t, 2, h.sched.Stats().InFlight)

	for i := 0; i < 5; i++ {
		id := <-started
		close(gates[id])
		h.nextResults()
	}
	assert.LessOrEqual(t, peak.Load(), int32(2))
	assert.EqualValues(t, 5, h.sched.Stats().Delivered)
}

func TestStopWaitsForInFlight(t *testing.T) {
	h := newHarness(t, "", Options{})
	id := h.put(time.Time{}, "b@x")
	h.start()
	a := h.nextAttempt()
	stopped := make(chan error)
	go func() { stopped <- h.sched.Stop(context.Background()) }()
	a.reply <- all(Delivered, "", a.rcpts)
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(guard):
		t.Fatal("Stop did not return")
	}
	// Stop returned only after the result was recorded and the message
	// removed.
	_, err := h.spool.Get(id)
	assert.ErrorIs(t, err, spool.ErrNotFound)
}

func TestStopTimeoutCancelsAndRecords(t *testing.T) {
	h := newHarness(t, "", Options{})
	id := h.put(time.Time{}, "b@x")
	h.start()
	h.nextAttempt() // never answered: the delivery waits for ctx
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, h.sched.Stop(ctx), context.Canceled)
	env, err := h.spool.Get(id)
	require.NoError(t, err)
	assert.Equal(t, spool.Deferred, env.Recipients[0].State, "the cancelled attempt is recorded, not left delivering")
}

func TestRestartResumesHeldAndDeferred(t *testing.T) {
	dir := t.TempDir()
	h1 := newHarness(t, dir, Options{InitialBackoff: 10 * time.Minute})
	held := h1.put(t0.Add(time.Hour), "held@x")
	deferred := h1.put(time.Time{}, "def@x")
	h1.start()
	a := h1.nextAttempt()
	require.Equal(t, deferred, a.id)
	a.reply <- all(Deferred, "451", a.rcpts)
	h1.nextResults()
	require.NoError(t, h1.sched.Stop(context.Background()))
	require.NoError(t, h1.spool.Close())

	// A new process: new spool handle, new scheduler, same directory.
	h2 := newHarness(t, dir, Options{InitialBackoff: 10 * time.Minute})
	h2.start()
	require.True(t, h2.clock.WaitForTimer(t0.Add(10*time.Minute), guard), "deferred retry resumed")
	h2.clock.Set(t0.Add(10 * time.Minute))
	a = h2.nextAttempt()
	assert.Equal(t, deferred, a.id)
	a.reply <- all(Delivered, "", a.rcpts)
	h2.nextResults()
	require.True(t, h2.clock.WaitForTimer(t0.Add(time.Hour), guard), "hold resumed")
	h2.clock.Set(t0.Add(time.Hour))
	a = h2.nextAttempt()
	assert.Equal(t, held, a.id)
	a.reply <- all(Delivered, "", a.rcpts)
	h2.nextResults()
}

func TestBackoffTable(t *testing.T) {
	s, err := New(Options{Spool: &spool.Spool{}, Deliver: func(context.Context, *spool.Envelope, []string) []Result { return nil },
		InitialBackoff: time.Minute, MaxBackoff: 10 * time.Minute})
	require.NoError(t, err)
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{0, time.Minute}, {1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {4, 8 * time.Minute}, {5, 10 * time.Minute}, {500, 10 * time.Minute}} {
		assert.Equal(t, tc.want, s.Backoff(tc.n), "after %d", tc.n)
	}
	_, err = New(Options{})
	assert.Error(t, err)
}

func TestRetainFinished(t *testing.T) {
	h := newHarness(t, "", Options{Retain: time.Hour})
	recalled := h.put(t0.Add(2*time.Hour), "b@x")
	delivered := h.put(time.Time{}, "c@x")
	h.start()
	a := h.nextAttempt()
	require.Equal(t, delivered, a.id)
	a.reply <- all(Delivered, "", a.rcpts)
	h.nextResults()
	_, err := h.spool.Recall(context.Background(), recalled, nil)
	require.NoError(t, err)
	h.sched.Notify()
	// Both finished at t0; both kept until t0+1h.
	require.True(t, h.clock.WaitForTimer(t0.Add(time.Hour), guard))
	assert.Equal(t, 2, h.spool.Len())
	again, err := h.spool.Recall(context.Background(), recalled, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"b@x"}, again, "a repeated recall still gets the spool's answer")

	require.NoError(t, h.sched.Stop(context.Background()))
	h.clock.Set(t0.Add(time.Hour))
	// Once the retention time has passed, a scan removes both.
	h2, err := New(Options{Spool: h.spool, Clock: h.clock, Retain: time.Hour,
		Deliver: func(context.Context, *spool.Envelope, []string) []Result { return nil }})
	require.NoError(t, err)
	h2.deliverCtx = context.Background()
	next, due := h2.scan(h.clock.Now())
	assert.True(t, next.IsZero())
	assert.Empty(t, due)
	assert.Equal(t, 0, h.spool.Len())
}
