package sealed_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
	"github.com/msgtrack/msgtrack/trackstore/sealed"
	"github.com/msgtrack/msgtrack/trackstore/trackstoretest"
)

var ctx = context.Background()

func key(id byte) sealed.Key { return sealed.Key{ID: id, Secret: bytes.Repeat([]byte{id}, 32)} }

func mustNew(t testing.TB, inner trackstore.Store, keys ...sealed.Key) *sealed.Store {
	t.Helper()
	s, err := sealed.New(inner, keys...)
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	trackstoretest.Run(t, func(t *testing.T) trackstore.Store {
		return mustNew(t, memstore.New(memstore.Options{}), key(2), key(1))
	})
}

func TestValuesAreSealed(t *testing.T) {
	inner := memstore.New(memstore.Options{})
	s := mustNew(t, inner, key(7))
	secret := []byte("rcpt: alice@example.com")
	require.NoError(t, s.Set(ctx, "k", secret, 0))
	raw, err := inner.Get(ctx, "k")
	require.NoError(t, err)
	assert.False(t, bytes.Contains(raw.Value, []byte("alice")), "plaintext must not reach the inner store")
	assert.Len(t, raw.Value, len(secret)+sealed.Overhead)
	assert.Equal(t, byte(1), raw.Value[0], "format version")
	assert.Equal(t, byte(7), raw.Value[1], "key ID")
	assert.Equal(t, inner.MaxValueSize()-sealed.Overhead, s.MaxValueSize())

	// Two seals of the same bytes differ (random nonce).
	require.NoError(t, s.Set(ctx, "k2", secret, 0))
	raw2, err := inner.Get(ctx, "k2")
	require.NoError(t, err)
	assert.NotEqual(t, raw.Value[2:], raw2.Value[2:])
}

func TestCorrupt(t *testing.T) {
	inner := memstore.New(memstore.Options{})
	s := mustNew(t, inner, key(1))
	require.NoError(t, s.Set(ctx, "a", []byte("record of a"), 0))
	require.NoError(t, s.Set(ctx, "b", []byte("record of b"), 0))
	good, err := inner.Get(ctx, "a")
	require.NoError(t, err)

	flip := func(i int) []byte {
		v := bytes.Clone(good.Value)
		v[i] ^= 0x01
		return v
	}
	cases := map[string][]byte{
		"empty":          {},
		"short":          good.Value[:sealed.Overhead-1],
		"plaintext":      []byte("a foreign writer's bytes, long enough to pass the length check"),
		"version":        flip(0),
		"key ID":         flip(1),
		"nonce":          flip(2),
		"ciphertext":     flip(2 + 12),
		"tag":            flip(len(good.Value) - 1),
		"truncated tag":  good.Value[:len(good.Value)-1],
		"appended":       append(bytes.Clone(good.Value), 0),
		"unknown key ID": append([]byte{1, 9}, good.Value[2:]...),
		"future version": append([]byte{2}, good.Value[1:]...),
		"all zero":       make([]byte, 64),
		"all ones":       bytes.Repeat([]byte{0xff}, 64),
	}
	for name, v := range cases {
		require.NoError(t, inner.Set(ctx, "x", v, 0))
		_, err := s.Get(ctx, "x")
		assert.ErrorIs(t, err, trackstore.ErrCorrupt, name)
	}

	// A value moved to another storage key does not open there.
	require.NoError(t, inner.Set(ctx, "b", good.Value, 0))
	_, err = s.Get(ctx, "b")
	require.ErrorIs(t, err, trackstore.ErrCorrupt, "values are bound to their storage key")

	// GetMulti returns what opens, and names what does not.
	require.NoError(t, s.Set(ctx, "c", []byte("record of c"), 0))
	m, err := s.GetMulti(ctx, []string{"a", "b", "c", "missing"})
	require.ErrorIs(t, err, trackstore.ErrCorrupt)
	var ce *sealed.CorruptError
	require.True(t, errors.As(err, &ce))
	assert.Equal(t, []string{"b"}, ce.Keys)
	require.Len(t, m, 2)
	assert.Equal(t, "record of a", string(m["a"].Value))
	assert.Equal(t, "record of c", string(m["c"].Value))
}

func TestRotation(t *testing.T) {
	inner := memstore.New(memstore.Options{})
	old := mustNew(t, inner, key(1))
	require.NoError(t, old.Set(ctx, "r", []byte("written under key 1"), 0))

	// Step 1: the new key is known but does not seal yet.
	both := mustNew(t, inner, key(1), key(2))
	it, err := both.Get(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, "written under key 1", string(it.Value))

	// Step 2: the new key seals; old records still open, CAS rewrites them.
	rotated := mustNew(t, inner, key(2), key(1))
	it, err = rotated.Get(ctx, "r")
	require.NoError(t, err)
	it.Value = []byte("rewritten under key 2")
	require.NoError(t, rotated.CompareAndSwap(ctx, it, time.Hour))
	raw, err := inner.Get(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, byte(2), raw.Value[1])
	_, err = both.Get(ctx, "r")
	require.NoError(t, err, "MTAs still at step 1 open key-2 values")

	// Step 3: key 1 dropped; anything still under it is corrupt to us.
	require.NoError(t, old.Set(ctx, "stale", []byte("x"), 0))
	only2 := mustNew(t, inner, key(2))
	_, err = only2.Get(ctx, "r")
	require.NoError(t, err)
	_, err = only2.Get(ctx, "stale")
	require.ErrorIs(t, err, trackstore.ErrCorrupt)

	// Same ID, different secret: corrupt, not garbage.
	impostor := mustNew(t, inner, sealed.Key{ID: 2, Secret: bytes.Repeat([]byte{0xee}, 32)})
	_, err = impostor.Get(ctx, "r")
	require.ErrorIs(t, err, trackstore.ErrCorrupt)
}

func TestNewErrors(t *testing.T) {
	inner := memstore.New(memstore.Options{})
	for name, keys := range map[string][]sealed.Key{
		"none":      nil,
		"bad size":  {{ID: 1, Secret: []byte("short")}},
		"duplicate": {key(1), key(1)},
	} {
		_, err := sealed.New(inner, keys...)
		assert.Error(t, err, name)
	}
	tiny := memstore.New(memstore.Options{MaxBytes: 300})
	_, err := sealed.New(tiny, key(1))
	assert.Error(t, err, "an inner limit below Overhead")
}

func FuzzOpen(f *testing.F) {
	s := mustNew(f, memstore.New(memstore.Options{}), key(1), key(2))
	f.Add("k", s.Seal("k", []byte("hello")))
	f.Add("k", []byte{})
	f.Add("", []byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add("k", bytes.Repeat([]byte{1}, 40))
	f.Fuzz(func(t *testing.T, k string, b []byte) {
		plain, err := s.Open(k, b)
		if err != nil {
			if !errors.Is(err, trackstore.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// Anything that opens reseals and opens to the same bytes.
		again, err := s.Open(k, s.Seal(k, plain))
		if err != nil || !bytes.Equal(again, plain) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func BenchmarkSealOpen(b *testing.B) {
	s := mustNew(b, memstore.New(memstore.Options{}), key(1))
	v := make([]byte, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := s.Open("mt1:k", s.Seal("mt1:k", v)); err != nil {
			b.Fatal(err)
		}
	}
}
