package trackstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/trackstore"
)

func TestCheckKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"mt1:abc-_", true},
		{"!~", true},
		{strings.Repeat("x", 250), true},
		{strings.Repeat("x", 251), false},
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"a\r\n", false},
		{"\x00", false},
		{"\x7f", false},
		{"caf\xc3\xa9", false}, // non-ASCII: memcached would take it, the rule does not
	}
	for _, tc := range tests {
		err := trackstore.CheckKey(tc.key)
		if tc.ok {
			assert.NoError(t, err, "%q", tc.key)
		} else {
			assert.ErrorIs(t, err, trackstore.ErrInvalidKey, "%q", tc.key)
		}
	}
}

func TestSafeKeyForms(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	digest := func(b string) string { s := sha256.Sum256([]byte(b)); return enc(s[:]) }
	long := strings.Repeat("\xff", 300)
	tests := []struct {
		name, ns, id, want string
	}{
		{"short", "mt1", "abc", "mt1:" + enc([]byte("abc"))},
		{"empty id", "mt1", "", "mt1:"},
		{"binary id", "mt1", "\x00 \r\n\xff", "mt1:" + enc([]byte("\x00 \r\n\xff"))},
		{"colon namespace", "a:b", "x", "a:b:" + enc([]byte("x"))},
		{"long id", "mt1", long, "mt1:~" + digest(long)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, trackstore.SafeKey(tc.ns, tc.id))
		})
	}
	// Form 3: the namespace itself is unusable.
	for _, ns := range []string{"", "has space", "~tilde", strings.Repeat("n", 65), "ünï"} {
		k := trackstore.SafeKey(ns, "id")
		assert.True(t, strings.HasPrefix(k, "~"), "%q -> %q", ns, k)
		assert.NotContains(t, k, ":")
		require.NoError(t, trackstore.CheckKey(k))
	}
}

func TestSafeKeyBoundary(t *testing.T) {
	// With a 4-byte namespace, 183 bytes of ID encode to 244 characters:
	// 4 + 1 + 244 = 249 fits; 184 bytes give 246 characters and 251 total.
	ns := "mtk1"
	k183 := trackstore.SafeKey(ns, strings.Repeat("a", 183))
	assert.NotContains(t, k183, "~")
	assert.LessOrEqual(t, len(k183), trackstore.MaxKeyLen)
	k184 := trackstore.SafeKey(ns, strings.Repeat("a", 184))
	assert.True(t, strings.HasPrefix(k184, ns+":~"), k184)
}

func TestSafeKeyAdversarial(t *testing.T) {
	ids := []string{
		"", " ", "\x00", "\r\n", "get foo\r\n", "END\r\n", "a b c",
		strings.Repeat(" ", 250), strings.Repeat("\x00", 10000), "~", ":", "::~",
		"\xff\xfe\xfd", "é", "\u202e", strings.Repeat("k", 250), strings.Repeat("k", 251),
	}
	namespaces := []string{"mt1", "a:b", "x", "", " ", strings.Repeat("n", 64), strings.Repeat("n", 65), "~", "ns\n"}
	seen := map[string][2]string{}
	for _, ns := range namespaces {
		for _, id := range ids {
			k := trackstore.SafeKey(ns, id)
			require.NoError(t, trackstore.CheckKey(k), "SafeKey(%q, %q) = %q", ns, id, k)
			if prev, dup := seen[k]; dup {
				t.Fatalf("SafeKey(%q, %q) = SafeKey(%q, %q) = %q", ns, id, prev[0], prev[1], k)
			}
			seen[k] = [2]string{ns, id}
			assert.Equal(t, k, trackstore.SafeKey(ns, id), "deterministic")
		}
	}
}

func FuzzSafeKey(f *testing.F) {
	f.Add("mt1", "abc", "mt1", "abd")
	f.Add("a:b", "x", "a", "b:x")
	f.Add("", "\x00", " ", "")
	f.Add("mt1", strings.Repeat("z", 200), "mt1:", "~")
	f.Fuzz(func(t *testing.T, ns1, id1, ns2, id2 string) {
		k1 := trackstore.SafeKey(ns1, id1)
		if err := trackstore.CheckKey(k1); err != nil {
			t.Fatalf("SafeKey(%q, %q) = %q: %v", ns1, id1, k1, err)
		}
		if ns1 == ns2 && id1 == id2 {
			return
		}
		if k1 == trackstore.SafeKey(ns2, id2) {
			t.Fatalf("collision: (%q, %q) and (%q, %q) -> %q", ns1, id1, ns2, id2, k1)
		}
	})
}

func TestCheckTTL(t *testing.T) {
	require.NoError(t, trackstore.CheckTTL(0))
	require.NoError(t, trackstore.CheckTTL(time.Hour))
	require.ErrorIs(t, trackstore.CheckTTL(-1), trackstore.ErrInvalidTTL)
}

func TestContextError(t *testing.T) {
	require.NoError(t, trackstore.ContextError(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := trackstore.ContextError(ctx)
	require.ErrorIs(t, err, trackstore.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, trackstore.ErrNotFound))
}

func BenchmarkSafeKey(b *testing.B) {
	b.ReportAllocs()
	id := "9d3f0c2e1a7b4c58"
	for b.Loop() {
		_ = trackstore.SafeKey("mt1", id)
	}
}

func TestKeyError(t *testing.T) {
	cause := errors.New("backend said no")
	err := error(&trackstore.KeyError{Err: trackstore.ErrConflict, Op: "cas", Key: "k 1", Cause: cause})
	assert.ErrorIs(t, err, trackstore.ErrConflict)
	assert.ErrorIs(t, err, cause)
	assert.NotErrorIs(t, err, trackstore.ErrNotFound)
	assert.Equal(t, `trackstore: version conflict: cas "k 1": backend said no`, err.Error())

	err = &trackstore.KeyError{Err: trackstore.ErrNotFound, Op: "get", Key: "k"}
	assert.ErrorIs(t, err, trackstore.ErrNotFound)
	assert.Equal(t, `trackstore: not found: get "k"`, err.Error())
}
