package tracking

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ttlStore wraps a Store and remembers the TTL of the last write of every
// key, the value the backend was asked to keep the item for.
type ttlStore struct {
	trackstore.Store
	mu   sync.Mutex
	ttls map[string]time.Duration
}

func (s *ttlStore) note(key string, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ttls == nil {
		s.ttls = map[string]time.Duration{}
	}
	s.ttls[key] = ttl
}

func (s *ttlStore) ttl(key string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ttls[key]
}

func (s *ttlStore) Add(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	err := s.Store.Add(ctx, key, v, ttl)
	if err == nil {
		s.note(key, ttl)
	}
	return err
}

func (s *ttlStore) CompareAndSwap(ctx context.Context, it trackstore.Item, ttl time.Duration) error {
	err := s.Store.CompareAndSwap(ctx, it, ttl)
	if err == nil {
		s.note(it.Key, ttl)
	}
	return err
}

func (s *ttlStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	err := s.Store.Set(ctx, key, v, ttl)
	if err == nil {
		s.note(key, ttl)
	}
	return err
}

// TestDelayedExtendsExpiry: a queue that retries beyond the record's
// expiry (acceptance + tracking timeout) keeps the record, head and every
// shard, until its Will-Retry-Until plus the timeout, in the memstore.
func TestDelayedExtendsExpiry(t *testing.T) {
	timeout := mtrk.DefaultLimits.Default // 3 days
	for _, n := range []int{3, 40} {      // inline, sharded
		f := newFixture(t)
		st := &ttlStore{Store: f.store}
		e := New(st, Options{ReportingMTA: "mta1", Now: f.clock.Now, RetryDelay: time.Millisecond})
		rs := rcpts(n)
		ref := f.accept(e, "Q1", rs)
		addrs := addrsOf(rs)
		start := f.clock.Now()
		rec := f.track(e)
		require.Equal(t, start.Add(timeout).Unix(), rec.Expires.Unix())
		head := HeadKey(f.cert)
		require.Equal(t, timeout, st.ttl(head))

		// Retries that end now need no more than acceptance + timeout.
		_, err := e.BeginDelivery(bg, ref, addrs[:1])
		require.NoError(t, err)
		require.NoError(t, e.Delayed(bg, ref, "d0", Outcome{Recipient: addrs[0], WillRetryUntil: start}))
		assert.Equal(t, start.Add(timeout).Unix(), f.track(e).Expires.Unix(), "n=%d", n)

		// Five days of retries (RFC 5321 section 4.5.4.1's suggestion).
		retry := start.Add(5 * 24 * time.Hour)
		require.NoError(t, e.Delayed(bg, ref, "d1", Outcome{Recipient: addrs[0], WillRetryUntil: retry}))
		want := retry.Add(timeout)
		rec = f.track(e)
		assert.Equal(t, want.Unix(), rec.Expires.Unix(), "n=%d", n)
		assert.Equal(t, retry.Unix(), byAddr(rec)[addrs[0]].WillRetryUntil.Unix())
		assert.Equal(t, want.Sub(start), st.ttl(head), "n=%d: head TTL", n)
		shards := 0
		for sn := 0; sn < ShardCount; sn++ {
			if k := ShardKey(f.cert, sn); st.ttl(k) != 0 {
				shards++
				assert.Equal(t, want.Sub(start), st.ttl(k), "n=%d: shard %d TTL", n, sn)
			}
		}
		if n > InlineRecipients {
			assert.Positive(t, shards, "the record is sharded")
		}

		// The store really keeps it: past the old expiry every
		// recipient is still there; past the new one the record is gone.
		f.clock.Add(want.Sub(start) - time.Hour)
		assert.Len(t, f.track(e).Recipients, n, "n=%d: kept an hour before retry + timeout", n)
		f.clock.Add(2 * time.Hour)
		_, err = e.Track(bg, f.envid, f.secret)
		assert.ErrorIs(t, err, ErrNotFound, "n=%d: gone after retry + timeout", n)
	}
}

// TestDelayedExpiryBounded: a retry horizon further away than
// MaxRetryHorizon counts as MaxRetryHorizon from now, a replay changes
// nothing, and another queue's event does not extend the record.
func TestDelayedExpiryBounded(t *testing.T) {
	f := newFixture(t)
	st := &ttlStore{Store: f.store}
	e := New(st, Options{ReportingMTA: "mta1", Now: f.clock.Now, RetryDelay: time.Millisecond})
	other := New(st, Options{ReportingMTA: "mta2", Now: f.clock.Now, RetryDelay: time.Millisecond})
	rs := rcpts(2)
	ref := f.accept(e, "Q1", rs)
	addrs := addrsOf(rs)
	start := f.clock.Now()
	timeout := mtrk.DefaultLimits.Default

	require.NoError(t, other.Delayed(bg, Ref{Certifier: f.cert, QueueID: "Q9"}, "x",
		Outcome{Recipient: addrs[0], WillRetryUntil: start.Add(10 * 24 * time.Hour)}))
	assert.Equal(t, start.Add(timeout).Unix(), f.track(e).Expires.Unix(), "not the other queue's recipient")

	require.NoError(t, e.Delayed(bg, ref, "d1", Outcome{Recipient: addrs[1], WillRetryUntil: start.Add(9999 * 24 * time.Hour)}))
	want := start.Add(DefaultMaxRetryHorizon + timeout)
	assert.Equal(t, want.Unix(), f.track(e).Expires.Unix())
	assert.Equal(t, want.Sub(start), st.ttl(HeadKey(f.cert)))

	// A later, shorter horizon never shortens the record.
	f.clock.Add(time.Hour)
	require.NoError(t, e.Delayed(bg, ref, "d2", Outcome{Recipient: addrs[1], WillRetryUntil: start.Add(2 * 24 * time.Hour)}))
	assert.Equal(t, want.Unix(), f.track(e).Expires.Unix())

	// The bound is an option.
	g := newFixture(t)
	e2 := g.engine("mta1", func(o *Options) { o.MaxRetryHorizon = 24 * time.Hour })
	ref2 := g.accept(e2, "Q1", rcpts(1))
	require.NoError(t, e2.Delayed(bg, ref2, "d", Outcome{Recipient: rcpts(1)[0].Address, WillRetryUntil: g.clock.Now().Add(30 * 24 * time.Hour)}))
	assert.Equal(t, g.clock.Now().Add(24*time.Hour+timeout).Unix(), g.track(e2).Expires.Unix())
}
