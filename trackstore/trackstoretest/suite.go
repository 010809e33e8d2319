// Package trackstoretest is the conformance suite for trackstore.Store
// backends. A backend's tests call Run with a constructor; every backend
// of this module (memstore, memcachestore, sealed) passes it, which is what
// lets the tracking engine be tested on the in-memory store and deployed on
// memcached.
//
// The suite never depends on how fast the backend is: TTL tests sleep past
// the expiry and then poll for a bounded while, since memcached counts
// time in whole seconds on its own clock.
package trackstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/trackstore"
)

// Run runs the conformance suite as subtests of t. newStore is called once
// per subtest; it may return a fresh store or a shared one (the suite uses
// keys unique to each run and subtest).
func Run(t *testing.T, newStore func(t *testing.T) trackstore.Store) {
	t.Helper()
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	prefix := hex.EncodeToString(nonce[:])
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.parallel {
				t.Parallel()
			}
			s := newStore(t)
			k := keys{ns: "tst" + prefix + tc.name}
			tc.fn(t, s, k)
		})
	}
}

// keys makes per-subtest keys through trackstore.SafeKey.
type keys struct{ ns string }

func (k keys) key(id string) string { return trackstore.SafeKey(k.ns, id) }

type testCase struct {
	name     string
	parallel bool
	fn       func(t *testing.T, s trackstore.Store, k keys)
}

var bg = context.Background()

var cases = []testCase{
	{name: "GetMissing", fn: testGetMissing},
	{name: "AddGet", fn: testAddGet},
	{name: "AddExists", fn: testAddExists},
	{name: "Set", fn: testSet},
	{name: "VersionChangesOnEveryWrite", fn: testVersions},
	{name: "CASStale", fn: testCASStale},
	{name: "CASMissing", fn: testCASMissing},
	{name: "Delete", fn: testDelete},
	{name: "TTLExpiry", parallel: true, fn: testTTL},
	{name: "NegativeTTL", fn: testNegativeTTL},
	{name: "TooLarge", fn: testTooLarge},
	{name: "ContextDone", fn: testContextDone},
	{name: "InvalidKey", fn: testInvalidKey},
	{name: "ConcurrentCASIncrements", fn: testConcurrentCAS},
	{name: "GetMulti", fn: testGetMulti},
	{name: "BinaryValues", fn: testBinary},
	{name: "EmptyValue", fn: testEmpty},
	{name: "ValueIsolation", fn: testIsolation},
}

func testGetMissing(t *testing.T, s trackstore.Store, k keys) {
	_, err := s.Get(bg, k.key("never-written"))
	require.ErrorIs(t, err, trackstore.ErrNotFound)
}

func testAddGet(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("a")
	require.NoError(t, s.Add(bg, key, []byte("hello"), 0))
	it, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, key, it.Key)
	assert.Equal(t, []byte("hello"), it.Value)
	assert.NotZero(t, it.Version)
}

func testAddExists(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("a")
	require.NoError(t, s.Add(bg, key, []byte("first"), time.Hour))
	err := s.Add(bg, key, []byte("second"), time.Hour)
	require.ErrorIs(t, err, trackstore.ErrExists)
	it, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, []byte("first"), it.Value, "a failed Add must not change the value")
}

func testSet(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("a")
	require.NoError(t, s.Set(bg, key, []byte("one"), 0), "Set creates a missing item")
	it1, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, []byte("one"), it1.Value)
	require.NoError(t, s.Set(bg, key, []byte("two"), time.Hour), "Set replaces")
	it2, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, []byte("two"), it2.Value)
	assert.NotEqual(t, it1.Version, it2.Version)
}

func testVersions(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("v")
	seen := map[trackstore.Version]string{}
	record := func(step string) trackstore.Item {
		t.Helper()
		it, err := s.Get(bg, key)
		require.NoError(t, err, step)
		require.NotZero(t, it.Version, step)
		prev, dup := seen[it.Version]
		require.False(t, dup, "%s reused the version of %s", step, prev)
		seen[it.Version] = step
		return it
	}
	same := []byte("same bytes")
	require.NoError(t, s.Add(bg, key, same, 0))
	it := record("Add")
	require.NoError(t, s.Set(bg, key, same, 0))
	it2 := record("Set of identical bytes")
	_ = it
	require.NoError(t, s.CompareAndSwap(bg, it2, 0))
	record("CompareAndSwap of identical bytes")
	require.NoError(t, s.Delete(bg, key))
	require.NoError(t, s.Add(bg, key, same, 0))
	record("Add after Delete")
	// Reading does not change the version.
	a, err := s.Get(bg, key)
	require.NoError(t, err)
	b, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, a.Version, b.Version, "Get must not change the version")
}

func testCASStale(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("c")
	require.NoError(t, s.Add(bg, key, []byte("v0"), 0))
	old, err := s.Get(bg, key)
	require.NoError(t, err)

	next := old
	next.Value = []byte("v1")
	require.NoError(t, s.CompareAndSwap(bg, next, time.Hour))
	cur, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, []byte("v1"), cur.Value)
	assert.NotEqual(t, old.Version, cur.Version)

	stale := old
	stale.Value = []byte("lost update")
	require.ErrorIs(t, s.CompareAndSwap(bg, stale, time.Hour), trackstore.ErrConflict)
	require.ErrorIs(t, s.CompareAndSwap(bg, next, time.Hour), trackstore.ErrConflict,
		"a version is good for one swap only")

	// A Set in between also invalidates the version.
	require.NoError(t, s.Set(bg, key, []byte("v2"), 0))
	cur.Value = []byte("stale again")
	require.ErrorIs(t, s.CompareAndSwap(bg, cur, 0), trackstore.ErrConflict)

	// Delete and re-add: the old version must not match the new item.
	fresh, err := s.Get(bg, key)
	require.NoError(t, err)
	require.NoError(t, s.Delete(bg, key))
	require.NoError(t, s.Add(bg, key, []byte("v3"), 0))
	fresh.Value = []byte("ghost")
	require.ErrorIs(t, s.CompareAndSwap(bg, fresh, 0), trackstore.ErrConflict)

	got, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, []byte("v3"), got.Value)

	// A zero version never matches.
	got.Version = 0
	got.Value = []byte("zero")
	require.ErrorIs(t, s.CompareAndSwap(bg, got, 0), trackstore.ErrConflict)
}

func testCASMissing(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("m")
	err := s.CompareAndSwap(bg, trackstore.Item{Key: key, Value: []byte("x"), Version: 1}, 0)
	require.ErrorIs(t, err, trackstore.ErrNotFound)

	require.NoError(t, s.Add(bg, key, []byte("x"), 0))
	it, err := s.Get(bg, key)
	require.NoError(t, err)
	require.NoError(t, s.Delete(bg, key))
	err = s.CompareAndSwap(bg, it, 0)
	require.ErrorIs(t, err, trackstore.ErrNotFound, "CAS on a deleted item")
	_, err = s.Get(bg, key)
	require.ErrorIs(t, err, trackstore.ErrNotFound, "a failed CAS must not create the item")
}

func testDelete(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("d")
	require.ErrorIs(t, s.Delete(bg, key), trackstore.ErrNotFound)
	require.NoError(t, s.Set(bg, key, []byte("x"), 0))
	require.NoError(t, s.Delete(bg, key))
	_, err := s.Get(bg, key)
	require.ErrorIs(t, err, trackstore.ErrNotFound)
	require.ErrorIs(t, s.Delete(bg, key), trackstore.ErrNotFound)
	require.NoError(t, s.Add(bg, key, []byte("y"), 0), "Add after Delete")
}

func testTTL(t *testing.T, s trackstore.Store, k keys) {
	const short = time.Second
	gone := k.key("expires")
	setForever := k.key("set-to-forever")
	casLonger := k.key("cas-to-longer")
	long := k.key("long")

	require.NoError(t, s.Add(bg, gone, []byte("a"), short))
	require.NoError(t, s.Set(bg, setForever, []byte("b"), short))
	require.NoError(t, s.Set(bg, setForever, []byte("b2"), 0))
	require.NoError(t, s.Add(bg, casLonger, []byte("c"), short))
	it, err := s.Get(bg, casLonger)
	require.NoError(t, err, "read at once after a write with a 1 s TTL")
	it.Value = []byte("c2")
	if err := s.CompareAndSwap(bg, it, time.Hour); err != nil {
		// A very slow machine may have let the 1 s TTL lapse already;
		// that is not what this test is about.
		require.ErrorIs(t, err, trackstore.ErrNotFound)
		require.NoError(t, s.Set(bg, casLonger, []byte("c2"), time.Hour))
	}
	require.NoError(t, s.Set(bg, long, []byte("d"), time.Hour))

	// memcached expires an item once its (whole-second) clock is past the
	// expiry, so allow up to 2 s past it, then poll for a bounded while.
	time.Sleep(short + 1100*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Get(bg, gone)
		if errors.Is(err, trackstore.ErrNotFound) {
			break
		}
		require.NoError(t, err)
		require.True(t, time.Now().Before(deadline), "item with a 1 s TTL still there after 12 s")
		time.Sleep(200 * time.Millisecond)
	}
	for key, want := range map[string]string{setForever: "b2", casLonger: "c2", long: "d"} {
		it, err := s.Get(bg, key)
		require.NoError(t, err, "the last write's TTL counts")
		assert.Equal(t, want, string(it.Value))
	}
	// An expired item is absent for every operation.
	require.ErrorIs(t, s.Delete(bg, gone), trackstore.ErrNotFound)
	require.ErrorIs(t, s.CompareAndSwap(bg, trackstore.Item{Key: gone, Value: []byte("x"), Version: 1}, 0),
		trackstore.ErrNotFound)
	require.NoError(t, s.Add(bg, gone, []byte("again"), 0), "Add over an expired item")
	m, err := s.GetMulti(bg, []string{gone, long})
	require.NoError(t, err)
	assert.Len(t, m, 2)
}

func testNegativeTTL(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("n")
	require.ErrorIs(t, s.Add(bg, key, []byte("x"), -time.Second), trackstore.ErrInvalidTTL)
	require.ErrorIs(t, s.Set(bg, key, []byte("x"), -time.Second), trackstore.ErrInvalidTTL)
	require.NoError(t, s.Set(bg, key, []byte("x"), 0))
	it, err := s.Get(bg, key)
	require.NoError(t, err)
	require.ErrorIs(t, s.CompareAndSwap(bg, it, -1), trackstore.ErrInvalidTTL)
}

func testTooLarge(t *testing.T, s trackstore.Store, k keys) {
	max := s.MaxValueSize()
	require.Greater(t, max, 0)
	key := k.key("big")
	exact := bytes.Repeat([]byte{0xa5}, max)
	require.NoError(t, s.Add(bg, key, exact, time.Minute), "a value of exactly MaxValueSize")
	it, err := s.Get(bg, key)
	require.NoError(t, err)
	require.True(t, bytes.Equal(exact, it.Value), "big value read back")

	over := append(exact, 0x5a)
	require.ErrorIs(t, s.Add(bg, k.key("big2"), over, time.Minute), trackstore.ErrTooLarge)
	require.ErrorIs(t, s.Set(bg, key, over, time.Minute), trackstore.ErrTooLarge)
	it.Value = over
	require.ErrorIs(t, s.CompareAndSwap(bg, it, time.Minute), trackstore.ErrTooLarge)

	got, err := s.Get(bg, key)
	require.NoError(t, err)
	require.True(t, bytes.Equal(exact, got.Value), "a refused write leaves the item alone")
	_, err = s.Get(bg, k.key("big2"))
	require.ErrorIs(t, err, trackstore.ErrNotFound)
}

func testContextDone(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("ctx")
	require.NoError(t, s.Set(bg, key, []byte("x"), 0))
	it, err := s.Get(bg, key)
	require.NoError(t, err)

	cancelled, cancel := context.WithCancel(bg)
	cancel()
	expired, cancel2 := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel2()

	for name, c := range map[string]struct {
		ctx  context.Context
		want error
	}{
		"cancelled": {cancelled, context.Canceled},
		"deadline":  {expired, context.DeadlineExceeded},
	} {
		ctx := c.ctx
		ops := map[string]func() error{
			"Get":      func() error { _, err := s.Get(ctx, key); return err },
			"GetMulti": func() error { _, err := s.GetMulti(ctx, []string{key}); return err },
			"Add":      func() error { return s.Add(ctx, k.key("ctx-add"), []byte("y"), 0) },
			"Set":      func() error { return s.Set(ctx, key, []byte("y"), 0) },
			"CAS":      func() error { return s.CompareAndSwap(ctx, it, 0) },
			"Delete":   func() error { return s.Delete(ctx, key) },
		}
		for op, f := range ops {
			err := f()
			require.ErrorIs(t, err, trackstore.ErrUnavailable, "%s with %s context", op, name)
			require.ErrorIs(t, err, c.want, "%s with %s context", op, name)
		}
	}
	got, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, it.Version, got.Version, "no write went through with a done context")
	_, err = s.Get(bg, k.key("ctx-add"))
	require.ErrorIs(t, err, trackstore.ErrNotFound)
}

func testInvalidKey(t *testing.T, s trackstore.Store, k keys) {
	bad := []string{
		"",
		"has space",
		"tab\there",
		"nl\nhere",
		"cr\rlf",
		"nul\x00",
		"del\x7f",
		"high\xff",
		strings.Repeat("k", trackstore.MaxKeyLen+1),
	}
	for _, key := range bad {
		require.ErrorIs(t, s.Set(bg, key, []byte("x"), 0), trackstore.ErrInvalidKey, "Set %q", key)
		require.ErrorIs(t, s.Add(bg, key, []byte("x"), 0), trackstore.ErrInvalidKey, "Add %q", key)
		_, err := s.Get(bg, key)
		require.ErrorIs(t, err, trackstore.ErrInvalidKey, "Get %q", key)
		_, err = s.GetMulti(bg, []string{k.key("fine"), key})
		require.ErrorIs(t, err, trackstore.ErrInvalidKey, "GetMulti %q", key)
		require.ErrorIs(t, s.CompareAndSwap(bg, trackstore.Item{Key: key, Version: 1}, 0),
			trackstore.ErrInvalidKey, "CAS %q", key)
		require.ErrorIs(t, s.Delete(bg, key), trackstore.ErrInvalidKey, "Delete %q", key)
	}
	// The longest legal key works, and SafeKey output of hostile IDs too.
	longest := k.ns[:min(len(k.ns), 10)] + strings.Repeat("L", trackstore.MaxKeyLen-min(len(k.ns), 10))
	require.NoError(t, s.Set(bg, longest, []byte("x"), 0))
	for _, id := range []string{"", " ", "a b\r\nc", "\x00\xff", strings.Repeat("\xfe", 1000), "END\r\n"} {
		key := k.key(id)
		require.NoError(t, s.Set(bg, key, []byte(id), 0), "SafeKey(%q)", id)
		it, err := s.Get(bg, key)
		require.NoError(t, err)
		assert.Equal(t, id, string(it.Value))
	}
}

func testConcurrentCAS(t *testing.T, s trackstore.Store, k keys) {
	const workers, perWorker = 16, 40
	key := k.key("counter")
	require.NoError(t, s.Add(bg, key, []byte("0"), time.Hour))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				for {
					it, err := s.Get(bg, key)
					if err != nil {
						errs <- err
						return
					}
					n, err := strconv.Atoi(string(it.Value))
					if err != nil {
						errs <- err
						return
					}
					it.Value = strconv.AppendInt(nil, int64(n+1), 10)
					err = s.CompareAndSwap(bg, it, time.Hour)
					if err == nil {
						break
					}
					if !errors.Is(err, trackstore.ErrConflict) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	it, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(workers*perWorker), string(it.Value), "no increment may be lost")
}

func testGetMulti(t *testing.T, s trackstore.Store, k keys) {
	present := []string{k.key("p1"), k.key("p2"), k.key("p3")}
	missing := []string{k.key("m1"), k.key("m2")}
	for i, key := range present {
		require.NoError(t, s.Set(bg, key, []byte{byte('a' + i)}, 0))
	}
	m, err := s.GetMulti(bg, []string{missing[0], present[0], present[1], missing[1], present[2]})
	require.NoError(t, err)
	require.Len(t, m, len(present))
	for i, key := range present {
		it, ok := m[key]
		require.True(t, ok, key)
		assert.Equal(t, key, it.Key)
		assert.Equal(t, []byte{byte('a' + i)}, it.Value)
		single, err := s.Get(bg, key)
		require.NoError(t, err)
		assert.Equal(t, single.Version, it.Version, "GetMulti and Get agree on versions")
		// The version from GetMulti works for CAS.
		it.Value = []byte("swapped")
		require.NoError(t, s.CompareAndSwap(bg, it, 0))
	}
	for _, key := range missing {
		assert.NotContains(t, m, key)
	}
	m, err = s.GetMulti(bg, nil)
	require.NoError(t, err)
	assert.Empty(t, m)
	m, err = s.GetMulti(bg, missing)
	require.NoError(t, err)
	assert.Empty(t, m)
}

func testBinary(t *testing.T, s trackstore.Store, k keys) {
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	values := map[string][]byte{
		"every-byte":  all,
		"reversed":    bytes.Repeat([]byte{0xff, 0xfe, 0x00, 0x0d, 0x0a}, 100),
		"protocol":    []byte("x\r\nEND\r\nVALUE k 0 1\r\n\r\n"),
		"crlf-only":   []byte("\r\n"),
		"nul-only":    {0},
		"utf8-broken": {0xc3, 0x28, 0xe2, 0x82},
	}
	for name, v := range values {
		key := k.key(name)
		require.NoError(t, s.Set(bg, key, v, 0), name)
		it, err := s.Get(bg, key)
		require.NoError(t, err, name)
		assert.True(t, bytes.Equal(v, it.Value), "%s: got %x", name, it.Value)
		it.Value = append(it.Value, 0x00)
		require.NoError(t, s.CompareAndSwap(bg, it, 0), name)
		got, err := s.Get(bg, key)
		require.NoError(t, err, name)
		assert.True(t, bytes.Equal(append(bytes.Clone(v), 0), got.Value), name)
	}
}

func testEmpty(t *testing.T, s trackstore.Store, k keys) {
	for name, v := range map[string][]byte{"nil": nil, "empty": {}} {
		key := k.key(name)
		require.NoError(t, s.Add(bg, key, v, 0), name)
		it, err := s.Get(bg, key)
		require.NoError(t, err, name)
		assert.Empty(t, it.Value, name)
		assert.NotZero(t, it.Version, name)
		it.Value = nil
		require.NoError(t, s.CompareAndSwap(bg, it, 0), name)
		m, err := s.GetMulti(bg, []string{key})
		require.NoError(t, err)
		require.Contains(t, m, key, "an empty value is present, not missing")
		assert.Empty(t, m[key].Value)
	}
}

func testIsolation(t *testing.T, s trackstore.Store, k keys) {
	key := k.key("iso")
	v := []byte("original")
	require.NoError(t, s.Set(bg, key, v, 0))
	v[0] = 'X' // the caller reuses its buffer
	it, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, "original", string(it.Value), "Set must not keep the caller's slice")
	it.Value[0] = 'Y' // the caller scribbles on what it read
	again, err := s.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, "original", string(again.Value), "Get must return a copy")
}
