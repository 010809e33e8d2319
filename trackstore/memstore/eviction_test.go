package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// clock is a fake clock for Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var ctx = context.Background()

// oneShard returns a store small enough to have a single shard, so that
// the eviction order is global: room for 13 items of 200-byte values with
// two-byte keys (cost 298 each, 4000 bytes).
func oneShard(c *clock) *memstore.Store {
	return memstore.New(memstore.Options{MaxBytes: 4000, MaxValueSize: 1000, Now: c.Now})
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	c := newClock()
	s := oneShard(c)
	v := make([]byte, 200)
	keys := make([]string, 14)
	for i := range keys {
		keys[i] = fmt.Sprintf("%02d", i) // two bytes: cost 298
	}
	for _, k := range keys[:13] {
		require.NoError(t, s.Set(ctx, k, v, 0))
	}
	require.EqualValues(t, 13, s.Stats().Items)
	require.Zero(t, s.Stats().Evictions)

	_, err := s.Get(ctx, keys[0]) // keys[0] becomes the most recently used
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, keys[13], v, 0))

	st := s.Stats()
	assert.EqualValues(t, 1, st.Evictions)
	assert.LessOrEqual(t, st.Bytes, s.MaxBytes())
	_, err = s.Get(ctx, keys[1])
	assert.ErrorIs(t, err, trackstore.ErrNotFound, "the least recently used item goes first")
	for _, k := range append([]string{keys[0]}, keys[2:]...) {
		_, err := s.Get(ctx, k)
		assert.NoError(t, err, k)
	}
}

func TestEvictsExpiredBeforeLive(t *testing.T) {
	c := newClock()
	s := oneShard(c)
	v := make([]byte, 200)
	for i := 0; i < 13; i++ {
		ttl := time.Duration(0)
		if i == 0 || i == 7 {
			ttl = time.Minute
		}
		require.NoError(t, s.Set(ctx, fmt.Sprintf("%02d", i), v, ttl))
	}
	// Touch the two short-lived items last: they are the most recently
	// used, and still go first once expired.
	for _, k := range []string{"00", "07"} {
		_, err := s.Get(ctx, k)
		require.NoError(t, err)
	}
	c.Advance(2 * time.Minute)
	require.NoError(t, s.Set(ctx, "13", v, 0))
	require.NoError(t, s.Set(ctx, "14", v, 0))
	st := s.Stats()
	assert.EqualValues(t, 2, st.Expirations)
	assert.Zero(t, st.Evictions, "no live item is evicted while expired ones can go")
	for i := 1; i <= 14; i++ {
		if i == 7 {
			continue
		}
		_, err := s.Get(ctx, fmt.Sprintf("%02d", i))
		assert.NoError(t, err, i)
	}
	// The next write must evict a live item: "01", least recently used.
	require.NoError(t, s.Set(ctx, "15", v, 0))
	assert.EqualValues(t, 1, s.Stats().Evictions)
	_, err := s.Get(ctx, "01")
	assert.ErrorIs(t, err, trackstore.ErrNotFound)
}

func TestNeverEvictsTheItemBeingWritten(t *testing.T) {
	c := newClock()
	s := memstore.New(memstore.Options{MaxBytes: 2000, Now: c.Now})
	require.Equal(t, 2000-memstore.ItemOverhead-trackstore.MaxKeyLen, s.MaxValueSize(),
		"MaxValueSize is lowered to what MaxBytes can hold")
	require.NoError(t, s.Set(ctx, "small", []byte("x"), 0))
	big := make([]byte, s.MaxValueSize())
	bigKey := strings.Repeat("b", trackstore.MaxKeyLen) // the item costs all of MaxBytes
	require.NoError(t, s.Set(ctx, bigKey, big, 0))
	it, err := s.Get(ctx, bigKey)
	require.NoError(t, err)
	assert.Len(t, it.Value, len(big))
	_, err = s.Get(ctx, "small")
	assert.ErrorIs(t, err, trackstore.ErrNotFound, "evicted to make room")
	assert.LessOrEqual(t, s.Stats().Bytes, s.MaxBytes())
}

func TestExpiryIsLazyAndSweptInBatches(t *testing.T) {
	c := newClock()
	s := memstore.New(memstore.Options{Now: c.Now})
	const n = 100
	for i := 0; i < n; i++ {
		require.NoError(t, s.Set(ctx, fmt.Sprintf("e%03d", i), []byte("v"), time.Second))
	}
	require.NoError(t, s.Set(ctx, "keep", []byte("v"), time.Hour))
	c.Advance(time.Second) // expiry is inclusive: at the instant, gone
	_, err := s.Get(ctx, "e000")
	require.ErrorIs(t, err, trackstore.ErrNotFound)
	require.EqualValues(t, n+1, s.Stats().Items, "a read does not remove")

	// A write sweeps at most SweepBatch expired items of its shard.
	require.NoError(t, s.Set(ctx, "w", []byte("v"), 0))
	st := s.Stats()
	assert.LessOrEqual(t, st.Expirations, uint64(memstore.SweepBatch))
	assert.GreaterOrEqual(t, st.Items, int64(n+2-memstore.SweepBatch))

	swept := s.Sweep()
	assert.Equal(t, n, swept+int(st.Expirations))
	st = s.Stats()
	assert.EqualValues(t, 2, st.Items)
	assert.EqualValues(t, n, st.Expirations)
	_, err = s.Get(ctx, "keep")
	assert.NoError(t, err)
}

func TestTTLWithFakeClock(t *testing.T) {
	c := newClock()
	s := memstore.New(memstore.Options{Now: c.Now})
	require.NoError(t, s.Add(ctx, "a", []byte("1"), 10*time.Second))
	c.Advance(9 * time.Second)
	it, err := s.Get(ctx, "a")
	require.NoError(t, err)
	it.Value = []byte("2")
	require.NoError(t, s.CompareAndSwap(ctx, it, 10*time.Second), "CAS sets a new TTL")
	c.Advance(9 * time.Second)
	_, err = s.Get(ctx, "a")
	require.NoError(t, err, "18 s after Add, 9 s after the CAS")
	c.Advance(time.Second)
	_, err = s.Get(ctx, "a")
	require.ErrorIs(t, err, trackstore.ErrNotFound)
	require.NoError(t, s.Set(ctx, "b", []byte("x"), time.Second))
	require.NoError(t, s.Set(ctx, "b", []byte("x"), 0), "Set to no expiry")
	c.Advance(100 * 365 * 24 * time.Hour)
	_, err = s.Get(ctx, "b")
	require.NoError(t, err)
}

func TestAccountingOnOverwrite(t *testing.T) {
	s := memstore.New(memstore.Options{})
	for i := 0; i < 100; i++ {
		require.NoError(t, s.Set(ctx, "same", make([]byte, i%10), 0))
	}
	require.NoError(t, s.Set(ctx, "same", make([]byte, 5), 0))
	st := s.Stats()
	assert.EqualValues(t, 1, st.Items)
	assert.EqualValues(t, len("same")+5+memstore.ItemOverhead, st.Bytes)
	require.NoError(t, s.Delete(ctx, "same"))
	assert.Zero(t, s.Stats().Bytes)
}

func TestDefaults(t *testing.T) {
	s := memstore.New(memstore.Options{})
	assert.Equal(t, memstore.DefaultMaxValueSize, s.MaxValueSize())
	assert.EqualValues(t, memstore.DefaultMaxBytes, s.MaxBytes())
}

// TestBoundUnderConcurrency mixes operations from many goroutines on a
// small store and checks the memory bound and the counters throughout.
func TestBoundUnderConcurrency(t *testing.T) {
	c := newClock()
	s := memstore.New(memstore.Options{MaxBytes: 256 << 10, MaxValueSize: 4 << 10, Now: c.Now})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for i := 0; i < 3000; i++ {
				k := fmt.Sprintf("k%d", r.IntN(500))
				v := make([]byte, r.IntN(4<<10))
				ttl := time.Duration(r.IntN(3)) * time.Second
				var err error
				switch r.IntN(6) {
				case 0:
					err = s.Set(ctx, k, v, ttl)
				case 1:
					err = s.Add(ctx, k, v, ttl)
				case 2:
					var it trackstore.Item
					if it, err = s.Get(ctx, k); err == nil {
						it.Value = v
						err = s.CompareAndSwap(ctx, it, ttl)
					}
				case 3:
					err = s.Delete(ctx, k)
				case 4:
					_, err = s.GetMulti(ctx, []string{k, k + "x"})
				case 5:
					c.Advance(100 * time.Millisecond)
				}
				if err != nil && !errors.Is(err, trackstore.ErrNotFound) &&
					!errors.Is(err, trackstore.ErrExists) && !errors.Is(err, trackstore.ErrConflict) {
					t.Error(err)
					return
				}
				if i%100 == 0 {
					if b := s.Stats().Bytes; b > s.MaxBytes() {
						t.Errorf("%d bytes held, bound %d", b, s.MaxBytes())
						return
					}
				}
			}
		}(uint64(g))
	}
	wg.Wait()
	st := s.Stats()
	assert.LessOrEqual(t, st.Bytes, s.MaxBytes())
	s.Sweep()
	c.Advance(time.Hour)
	s.Sweep()
	st = s.Stats()
	// Only items without expiry are left; the byte count matches them.
	var sum int64
	for i := 0; i < 500; i++ {
		k := fmt.Sprintf("k%d", i)
		if it, err := s.Get(ctx, k); err == nil {
			sum += int64(len(k) + len(it.Value) + memstore.ItemOverhead)
		}
	}
	assert.Equal(t, sum, st.Bytes, "accounting matches contents")
}
