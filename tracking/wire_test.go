package tracking

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/trackstore"
)

func TestDecodeRejectsForeignBytes(t *testing.T) {
	cert := []byte("0123456789abcdefghij")
	head, err := encodeItem(kindHead, &wireHead{Cert: cert, EnvID: "e", ShardCount: ShardCount})
	require.NoError(t, err)
	shard, err := encodeItem(kindShard, &wireShard{Cert: cert, N: 3, Rcpts: []wireRcpt{{Final: "a@b"}}})
	require.NoError(t, err)
	_, err = decodeHead(head, cert)
	require.NoError(t, err)
	_, err = decodeShard(shard, cert, 3)
	require.NoError(t, err)

	tests := []struct {
		name  string
		b     []byte
		shard bool
	}{
		{"empty", nil, false},
		{"short", []byte("MT"), false},
		{"no magic", []byte(`{"c":"eA=="}`), false},
		{"shard under head key", shard, false},
		{"head under shard key", head, true},
		{"future version", append([]byte{'M', 'T', 'H', FormatVersion + 1}, head[4:]...), false},
		{"version 0", append([]byte{'M', 'T', 'H', 0}, head[4:]...), false},
		{"truncated binary", head[:len(head)-1], false},
		{"v1 json under v2", append([]byte{'M', 'T', 'H', 2}, mustEncodeV1(t, kindHead, &wireHead{Cert: cert, ShardCount: ShardCount})[4:]...), false},
		{"v1 truncated json", mustEncodeV1(t, kindHead, &wireHead{Cert: cert, ShardCount: ShardCount})[:10], false},
		{"unsharded head listing shards", mustEncode(t, kindHead, &wireHead{Cert: cert, ShardCount: ShardCount, ShardMask: 3}), false},
		{"inline recipient without address", mustEncode(t, kindHead, &wireHead{Cert: cert, ShardCount: ShardCount, Rcpts: []wireRcpt{{Action: StateQueued}}}), false},
		{"field of the wrong type", append(append([]byte{}, head[:4]...), byte(fhEnvID<<1|wtVarint), 5), false},
		{"truncated json", head[:len(head)-3], false},
		{"other certifier", mustEncode(t, kindHead, &wireHead{Cert: []byte("other"), ShardCount: ShardCount}), false},
		{"wrong shard count", mustEncode(t, kindHead, &wireHead{Cert: cert, ShardCount: 8}), false},
		{"negative expiry", mustEncode(t, kindHead, &wireHead{Cert: cert, ShardCount: ShardCount, Expires: -1}), false},
		{"wrong shard number", mustEncode(t, kindShard, &wireShard{Cert: cert, N: 4}), true},
		{"recipient without address", mustEncode(t, kindShard, &wireShard{Cert: cert, N: 3, Rcpts: []wireRcpt{{}}}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.shard {
				_, err = decodeShard(tc.b, cert, 3)
			} else {
				_, err = decodeHead(tc.b, cert)
			}
			assert.ErrorIs(t, err, trackstore.ErrCorrupt)
		})
	}
}

func mustEncodeV1(t *testing.T, kind byte, v any) []byte {
	t.Helper()
	b, err := encodeItemV1(kind, v)
	require.NoError(t, err)
	return b
}

func mustEncode(t *testing.T, kind byte, v any) []byte {
	t.Helper()
	b, err := encodeItem(kind, v)
	require.NoError(t, err)
	return b
}

func TestKeysAreValidAndDistinct(t *testing.T) {
	certs := [][]byte{make([]byte, 16), make([]byte, 20), make([]byte, 300), []byte("x")}
	seen := map[string]bool{}
	for _, c := range certs {
		for _, k := range recordKeys(c) {
			require.NoError(t, trackstore.CheckKey(k))
			assert.False(t, seen[k], "duplicate key %s", k)
			seen[k] = true
		}
	}
	assert.Equal(t, ShardOf("a@example.org"), ShardOf("a@example.org"))
}

func FuzzDecode(f *testing.F) {
	cert := []byte("0123456789abcdefghij")
	head, _ := encodeItem(kindHead, &wireHead{Cert: cert, EnvID: "e", ShardCount: ShardCount, Hops: []wireHop{{MTA: "m"}}})
	shard, _ := encodeItem(kindShard, &wireShard{Cert: cert, N: 1, Rcpts: []wireRcpt{{Final: "a@b", Action: StateQueued}}})
	f.Add(head)
	f.Add(shard)
	v1head, _ := encodeItemV1(kindHead, &wireHead{Cert: cert, EnvID: "e", ShardCount: ShardCount, ShardMask: 2, Hops: []wireHop{{MTA: "m"}}})
	v1shard, _ := encodeItemV1(kindShard, &wireShard{Cert: cert, N: 1, Rcpts: []wireRcpt{{Final: "a@b", Action: StateQueued}}})
	inline, _ := encodeItem(kindHead, &wireHead{Cert: cert, EnvID: "e", ShardCount: ShardCount, Events: []string{"ev"},
		Rcpts: []wireRcpt{{Final: "a@b", Action: StateQueued, Children: []string{"c@d"}, Hop: 1, LastAttempt: 7}}})
	f.Add(v1head)
	f.Add(v1shard)
	f.Add(inline)
	f.Add([]byte("MTH\x01{}"))
	f.Add([]byte("MTH\x02"))
	f.Add([]byte("MTS\x01{\"c\":\"MDEyMzQ1Njc4OWFiY2RlZmdoaWo=\",\"n\":99}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range [][]byte{cert, nil} {
			if h, err := decodeHead(b, c); err == nil {
				rec := buildRecord(h, nil)
				if c != nil && !rec.Certifier.Equal(c) {
					t.Fatal("decoded head of another certifier")
				}
				// Round trip: what is decoded encodes, decodes again, and
				// encodes to the same bytes.
				b1 := mustEncodeF(t, kindHead, h)
				h2, err := decodeHead(b1, c)
				if err != nil {
					t.Fatalf("re-encoded head does not decode: %v", err)
				}
				if b2 := mustEncodeF(t, kindHead, h2); !bytes.Equal(b1, b2) {
					t.Fatalf("head round trip differs:\n%q\n%q", b1, b2)
				}
			} else if !isCorrupt(err) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			for n := -1; n < 2; n++ {
				if s, err := decodeShard(b, c, n); err == nil {
					_ = buildRecord(nil, []*wireShard{s})
					b1 := mustEncodeF(t, kindShard, s)
					s2, err := decodeShard(b1, c, n)
					if err != nil {
						t.Fatalf("re-encoded shard does not decode: %v", err)
					}
					if b2 := mustEncodeF(t, kindShard, s2); !bytes.Equal(b1, b2) {
						t.Fatalf("shard round trip differs:\n%q\n%q", b1, b2)
					}
				} else if !isCorrupt(err) {
					t.Fatalf("error not ErrCorrupt: %v", err)
				}
			}
		}
	})
}

func mustEncodeF(t *testing.T, kind byte, v any) []byte {
	b, err := encodeItem(kind, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isCorrupt(err error) bool { return err != nil && errorsIs(err, trackstore.ErrCorrupt) }
