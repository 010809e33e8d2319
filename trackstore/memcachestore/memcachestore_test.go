package memcachestore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
	"github.com/msgtrack/msgtrack/trackstore/trackstoretest"
)

func newStore(t testing.TB, opts memcachestore.Options) *memcachestore.Store {
	t.Helper()
	if opts.Timeout == 0 {
		// Generous: the tests share a loaded CPU, and none is about speed.
		opts.Timeout = 5 * time.Second
	}
	s, err := memcachestore.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	m := testenv.StartMemcached(t)
	trackstoretest.Run(t, func(t *testing.T) trackstore.Store {
		return newStore(t, memcachestore.Options{Servers: []string{m.Addr}})
	})
}

func TestConformanceTwoServers(t *testing.T) {
	a, b := testenv.StartMemcached(t), testenv.StartMemcached(t)
	trackstoretest.Run(t, func(t *testing.T) trackstore.Store {
		return newStore(t, memcachestore.Options{Servers: []string{a.Addr, b.Addr}})
	})
}

func TestConformanceLargerItems(t *testing.T) {
	m := testenv.StartMemcached(t, testenv.MemcachedOptions{MaxItemSize: "2m", MemoryMB: 128})
	trackstoretest.Run(t, func(t *testing.T) trackstore.Store {
		return newStore(t, memcachestore.Options{
			Servers:      []string{m.Addr},
			MaxValueSize: memcachestore.ValueSizeFor(2 << 20),
		})
	})
}

func TestLongestKeyLargestValue(t *testing.T) {
	m := testenv.StartMemcached(t)
	s := newStore(t, memcachestore.Options{Servers: []string{m.Addr}})
	ctx := context.Background()
	key := strings.Repeat("k", trackstore.MaxKeyLen)
	v := bytes.Repeat([]byte{'\n'}, s.MaxValueSize())
	require.NoError(t, s.Set(ctx, key, v, time.Minute), "the limits must hold together")
	it, err := s.Get(ctx, key)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(v, it.Value))
	it.Value[0] = 'x'
	require.NoError(t, s.CompareAndSwap(ctx, it, time.Minute))
}

func TestServerItemLimitSmallerThanConfigured(t *testing.T) {
	// A deployment error: memcached runs with -I 1m, the store was told 2m.
	m := testenv.StartMemcached(t)
	s := newStore(t, memcachestore.Options{Servers: []string{m.Addr}, MaxValueSize: 2 << 20})
	ctx := context.Background()
	err := s.Set(ctx, "big", make([]byte, 3<<19), 0)
	require.ErrorIs(t, err, trackstore.ErrTooLarge)
	// The connection that saw the error is dropped; the store goes on.
	require.NoError(t, s.Set(ctx, "small", []byte("x"), 0))
}

func TestExpiration(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		ttl  time.Duration
		want int32
	}{
		{0, 0},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{30 * 24 * time.Hour, 2_592_000}, // last relative value
		{30*24*time.Hour + time.Second, 1_800_000_000 + 2_592_001}, // absolute
		{31 * 24 * time.Hour, 1_800_000_000 + 31*86400},
		{100 * 365 * 24 * time.Hour, math.MaxInt32}, // clamped
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, memcachestore.Expiration(tc.ttl, now), "%v", tc.ttl)
	}
}

// metaTTL asks memcached for the remaining TTL of key with the meta get
// command ("mg key t" -> "HD t<seconds>"); -1 means no expiry.
func metaTTL(t *testing.T, addr, key string) int64 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = fmt.Fprintf(c, "mg %s t\r\n", key)
	require.NoError(t, err)
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	f := strings.Fields(line)
	require.GreaterOrEqual(t, len(f), 2, "reply %q", line)
	require.Equal(t, "HD", f[0], "reply %q", line)
	require.True(t, strings.HasPrefix(f[1], "t"), "reply %q", line)
	n, err := strconv.ParseInt(f[1][1:], 10, 64)
	require.NoError(t, err)
	return n
}

func TestTTLOverThirtyDays(t *testing.T) {
	m := testenv.StartMemcached(t)
	s := newStore(t, memcachestore.Options{Servers: []string{m.Addr}})
	ctx := context.Background()
	const ttl = 31 * 24 * time.Hour
	require.NoError(t, s.Set(ctx, "long", []byte("kept"), ttl))
	require.NoError(t, s.Add(ctx, "long-add", []byte("kept"), ttl))
	it, err := s.Get(ctx, "long")
	require.NoError(t, err, "a 31-day TTL sent as relative seconds would be a time in 1970: expired at once")
	assert.Equal(t, "kept", string(it.Value))
	it.Value = []byte("swapped")
	require.NoError(t, s.CompareAndSwap(ctx, it, ttl))
	_, err = s.Get(ctx, "long-add")
	require.NoError(t, err)

	// memcached itself reports about 31 days left.
	for _, key := range []string{"long", "long-add"} {
		left := metaTTL(t, m.Addr, key)
		assert.Greater(t, left, int64(30*86400), key)
		assert.LessOrEqual(t, left, int64(31*86400+2), key)
	}
	require.NoError(t, s.Set(ctx, "forever", []byte("x"), 0))
	assert.Equal(t, int64(-1), metaTTL(t, m.Addr, "forever"))
}

func TestServerRestart(t *testing.T) {
	m := testenv.StartMemcached(t)
	const idle = 4
	s := newStore(t, memcachestore.Options{Servers: []string{m.Addr}, MaxIdleConns: idle, Timeout: 2 * time.Second})
	ctx := context.Background()
	key := trackstore.SafeKey("t", "before-restart")
	require.NoError(t, s.Set(ctx, key, []byte("v"), 0))
	// Fill the idle pool.
	for i := 0; i < 3*idle; i++ {
		_, err := s.Get(ctx, key)
		require.NoError(t, err)
	}

	m.Stop()
	// Every call fails with ErrUnavailable (a hang would time the test
	// out). More calls than pooled connections, so that the dead ones are
	// all used up.
	ops := map[string]func() error{
		"Get":      func() error { _, err := s.Get(ctx, key); return err },
		"GetMulti": func() error { _, err := s.GetMulti(ctx, []string{key}); return err },
		"Set":      func() error { return s.Set(ctx, key, []byte("w"), 0) },
		"Add":      func() error { return s.Add(ctx, key, []byte("w"), 0) },
		"CAS":      func() error { return s.CompareAndSwap(ctx, trackstore.Item{Key: key, Version: 1}, 0) },
		"Delete":   func() error { return s.Delete(ctx, key) },
		"Ping":     func() error { return s.Ping(ctx) },
	}
	for round := 0; round < 2*idle; round++ {
		for name, op := range ops {
			require.ErrorIs(t, op(), trackstore.ErrUnavailable, "%s while memcached is down", name)
		}
	}
	// With a cancellable context too.
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := s.Get(cctx, key)
	require.ErrorIs(t, err, trackstore.ErrUnavailable)

	failures := s.Stats().Unavailable
	assert.GreaterOrEqual(t, failures, uint64(2*idle*(len(ops)-1)), "Ping is not counted")

	m.Start()
	_, err = s.Get(ctx, key)
	require.ErrorIs(t, err, trackstore.ErrNotFound, "data is gone after a restart, and the store works again")
	require.NoError(t, s.Add(ctx, key, []byte("again"), 0))
	it, err := s.Get(cctx, key)
	require.NoError(t, err)
	assert.Equal(t, "again", string(it.Value))
	require.NoError(t, s.Ping(ctx))
	assert.Equal(t, failures, s.Stats().Unavailable, "no failures after the restart")
}

// blackhole accepts connections and never answers, like a hung server.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

func TestHungServer(t *testing.T) {
	addr := blackhole(t)
	ctx := context.Background()

	// Timeout alone bounds the call.
	s := newStore(t, memcachestore.Options{Servers: []string{addr}, Timeout: 100 * time.Millisecond})
	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, trackstore.ErrUnavailable)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	require.ErrorIs(t, s.Set(ctx, "k", []byte("v"), 0), trackstore.ErrUnavailable)

	// A context deadline shorter than Timeout wins.
	slow := newStore(t, memcachestore.Options{Servers: []string{addr}, Timeout: time.Hour})
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = slow.Set(dctx, "k", []byte("v"), 0)
	require.ErrorIs(t, err, trackstore.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.EqualValues(t, 1, slow.Stats().Abandoned)

	// So does cancellation, when the deadline is within the call's bound.
	cctx, cancel2 := context.WithTimeout(ctx, time.Minute)
	go func() { time.Sleep(20 * time.Millisecond); cancel2() }()
	_, err = slow.Get(cctx, "k")
	require.ErrorIs(t, err, trackstore.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)

	// Without a deadline the call runs to its own bound (Timeout); the
	// failure then names the cancellation too.
	nctx, cancel3 := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel3() }()
	_, err = s.Get(nctx, "k")
	require.ErrorIs(t, err, trackstore.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
}

func TestCancelledDuringSuccessfulCall(t *testing.T) {
	// A call on the caller's goroutine that succeeds reports its success,
	// even if ctx is cancelled while it runs: the write did happen.
	m := testenv.StartMemcached(t)
	s := newStore(t, memcachestore.Options{Servers: []string{m.Addr}})
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, s.Set(cctx, "k", []byte("v"), 0))
	cancel()
	require.ErrorIs(t, s.Set(cctx, "k", []byte("w"), 0), context.Canceled, "checked before the call")
	it, err := s.Get(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(it.Value))
}

func TestDistributedLayout(t *testing.T) {
	a, b := testenv.StartMemcached(t), testenv.StartMemcached(t)
	ctx := context.Background()
	mta1 := newStore(t, memcachestore.Options{Servers: []string{a.Addr, b.Addr}})
	mta2 := newStore(t, memcachestore.Options{Servers: []string{a.Addr, b.Addr}})
	wrong := newStore(t, memcachestore.Options{Servers: []string{b.Addr, a.Addr}})

	var keys []string
	for i := 0; i < 64; i++ {
		key := trackstore.SafeKey("mt", fmt.Sprintf("id-%d", i))
		keys = append(keys, key)
		require.NoError(t, mta1.Set(ctx, key, []byte(key), 0))
	}
	// Each key is on exactly one server, and both servers hold some.
	rawA, rawB := memcache.New(a.Addr), memcache.New(b.Addr)
	onA, onB := 0, 0
	for _, key := range keys {
		_, errA := rawA.Get(key)
		_, errB := rawB.Get(key)
		if errA == nil {
			onA++
		}
		if errB == nil {
			onB++
		}
		assert.True(t, (errA == nil) != (errB == nil), "%s on exactly one server", key)
	}
	assert.Positive(t, onA)
	assert.Positive(t, onB)

	// Another MTA with the same list sees everything, in one GetMulti.
	m, err := mta2.GetMulti(ctx, keys)
	require.NoError(t, err)
	assert.Len(t, m, len(keys))
	// A list in another order misses the keys that moved.
	m, err = wrong.GetMulti(ctx, keys)
	require.NoError(t, err)
	assert.Less(t, len(m), len(keys), "a different server order must be visible as misses")
}

func TestNewErrors(t *testing.T) {
	_, err := memcachestore.New(memcachestore.Options{})
	require.Error(t, err)
	_, err = memcachestore.New(memcachestore.Options{Servers: []string{"no-port-here"}})
	require.Error(t, err)
}

func TestDefaults(t *testing.T) {
	s := newStore(t, memcachestore.Options{Servers: []string{"127.0.0.1:1"}})
	assert.Equal(t, memcachestore.DefaultMaxValueSize, s.MaxValueSize())
	// Port 1 on loopback refuses: a clean ErrUnavailable.
	_, err := s.Get(context.Background(), "k")
	require.ErrorIs(t, err, trackstore.ErrUnavailable)
}

// TestServerRestartUnderLoad stops memcached while workers are updating a
// counter and starts it again: calls fail with ErrUnavailable (never hang,
// never another error), and the workers recover once it is back.
func TestServerRestartUnderLoad(t *testing.T) {
	m := testenv.StartMemcached(t)
	s := newStore(t, memcachestore.Options{Servers: []string{m.Addr}, Timeout: time.Second, MaxIdleConns: 4})
	key := trackstore.SafeKey("t", "counter")
	require.NoError(t, s.Set(context.Background(), key, []byte("0"), 0))

	var (
		mu          sync.Mutex
		unavailable int
		okAfter     = map[int]bool{}
		restarted   atomic.Bool
		stop        = make(chan struct{})
		wg          sync.WaitGroup
	)
	step := func(w int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		it, err := s.Get(ctx, key)
		if errors.Is(err, trackstore.ErrNotFound) {
			err = s.Add(ctx, key, []byte("0"), 0) // the restart lost it
			if errors.Is(err, trackstore.ErrExists) {
				return nil
			}
			return err
		}
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(string(it.Value))
		it.Value = []byte(strconv.Itoa(n + 1))
		err = s.CompareAndSwap(ctx, it, 0)
		if errors.Is(err, trackstore.ErrConflict) || errors.Is(err, trackstore.ErrNotFound) {
			return nil
		}
		return err
	}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := restarted.Load()
				err := step(w)
				mu.Lock()
				switch {
				case err == nil:
					if after {
						okAfter[w] = true
					}
				case errors.Is(err, trackstore.ErrUnavailable):
					unavailable++
				default:
					t.Errorf("worker %d: unexpected error %v", w, err)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	m.Stop()
	time.Sleep(300 * time.Millisecond)
	m.Start()
	restarted.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(okAfter)
		mu.Unlock()
		if n == 8 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	assert.Positive(t, unavailable, "the outage was seen")
	assert.Len(t, okAfter, 8, "every worker succeeded again after the restart")
}
