package tracking

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/msgtrack/msgtrack/trackstore"
)

// Layout constants. See the package documentation, "Storage layout".
const (
	// ShardCount is the number of recipient shard slots of every record in
	// format version 1. It is part of the format: every MTA of a
	// deployment must agree on it, because an event finds the shard of a
	// recipient from the address alone, without reading the head.
	ShardCount = 16
	// FormatVersion is the version byte this package writes.
	FormatVersion = 1
	// MaxAppliedEvents bounds the event IDs remembered per item (head or
	// shard) for idempotency. Older IDs are forgotten first; events that
	// old are still harmless because state transitions never regress.
	MaxAppliedEvents = 128

	headNamespace = "mt"
)

// Item header: two magic bytes, a kind byte and a version byte.
const (
	magic0    = 'M'
	magic1    = 'T'
	kindHead  = 'H'
	kindShard = 'S'
	hdrLen    = 4
)

// HeadKey returns the store key of the head item of the record for cert:
// trackstore.SafeKey("mt", cert bytes).
func HeadKey(cert []byte) string { return trackstore.SafeKey(headNamespace, string(cert)) }

// ShardKey returns the store key of recipient shard i (0 to ShardCount-1)
// of the record for cert: trackstore.SafeKey("mts" + hex digit of i, cert
// bytes), a namespace per shard so that the key stays within every
// backend's key rules whatever the certifier's length.
func ShardKey(cert []byte, i int) string {
	return trackstore.SafeKey("mts"+strconv.FormatInt(int64(i), 16), string(cert))
}

// ShardOf returns the shard slot of a recipient address: FNV-1a (32 bit) of
// the address bytes, modulo ShardCount. It must be stable across processes
// and versions, so it is not a seeded hash.
func ShardOf(addr string) int {
	h := fnv.New32a()
	h.Write([]byte(addr))
	return int(h.Sum32() % ShardCount)
}

// wireHop is one MTA's acceptance of the message.
type wireHop struct {
	MTA      string `json:"m"`
	Queue    string `json:"q,omitempty"`
	Arrival  int64  `json:"a"`
	Internal bool   `json:"i,omitempty"`
}

// wireHead is the per-message item.
type wireHead struct {
	Cert       []byte    `json:"c"`
	EnvID      string    `json:"id"`
	Timeout    int64     `json:"t"`
	Expires    int64     `json:"x"`
	Sender     string    `json:"s,omitempty"`
	Arrival    int64     `json:"ad"`
	MTA        string    `json:"m"`
	HoldUntil  int64     `json:"hu,omitempty"`
	Held       bool      `json:"h,omitempty"`
	Recall     int64     `json:"rc,omitempty"`
	Hops       []wireHop `json:"hp,omitempty"`
	ShardMask  uint32    `json:"sm"`
	ShardCount int       `json:"ns"`
	Events     []string  `json:"e,omitempty"`
	// Writer tags the Engine that last wrote the item (commit.go).
	Writer uint64 `json:"w,omitempty"`
}

// wireRcpt is one recipient inside a shard.
type wireRcpt struct {
	Orig        string   `json:"o,omitempty"`
	Final       string   `json:"f"`
	Action      Action   `json:"a"`
	Status      string   `json:"s,omitempty"`
	RemoteMTA   string   `json:"r,omitempty"`
	LastAttempt int64    `json:"l,omitempty"`
	RetryUntil  int64    `json:"w,omitempty"`
	NextAttempt int64    `json:"n,omitempty"`
	Diag        string   `json:"d,omitempty"`
	Internal    bool     `json:"i,omitempty"`
	Parent      string   `json:"p,omitempty"`
	Children    []string `json:"c,omitempty"`
	Untracked   []string `json:"u,omitempty"`
	List        bool     `json:"ls,omitempty"`
	OwnerMTA    string   `json:"om,omitempty"`
	Queue       string   `json:"q,omitempty"`
	Hop         int      `json:"h,omitempty"`
	RecallReq   int64    `json:"rr,omitempty"`
}

// wireShard is one recipient shard item.
type wireShard struct {
	Cert    []byte     `json:"c"`
	N       int        `json:"n"`
	Expires int64      `json:"x"`
	Rcpts   []wireRcpt `json:"r"`
	Events  []string   `json:"e,omitempty"`
	Writer  uint64     `json:"w,omitempty"`
}

func (s *wireShard) find(addr string) int {
	for i := range s.Rcpts {
		if s.Rcpts[i].Final == addr {
			return i
		}
	}
	return -1
}

func encodeItem(kind byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(256)
	buf.Write([]byte{magic0, magic1, kind, FormatVersion})
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("tracking: encoding record: %w", err)
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil // drop the encoder's newline
}

func checkHeader(b []byte, kind byte) ([]byte, error) {
	if len(b) < hdrLen || b[0] != magic0 || b[1] != magic1 {
		return nil, fmt.Errorf("%w: no tracking record header", trackstore.ErrCorrupt)
	}
	if b[2] != kind {
		return nil, fmt.Errorf("%w: item kind %q, want %q", trackstore.ErrCorrupt, b[2], kind)
	}
	if b[3] != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d unsupported (this package reads %d)", trackstore.ErrCorrupt, b[3], FormatVersion)
	}
	return b[hdrLen:], nil
}

// decodeHead decodes a head item; cert, when not nil, must match the one
// stored (foreign bytes under the key are corrupt).
func decodeHead(b []byte, cert []byte) (*wireHead, error) {
	body, err := checkHeader(b, kindHead)
	if err != nil {
		return nil, err
	}
	h := new(wireHead)
	if err := json.Unmarshal(body, h); err != nil {
		return nil, fmt.Errorf("%w: head: %w", trackstore.ErrCorrupt, err)
	}
	if len(h.Cert) == 0 || (cert != nil && !bytes.Equal(h.Cert, cert)) {
		return nil, fmt.Errorf("%w: head belongs to another certifier", trackstore.ErrCorrupt)
	}
	if h.ShardCount != ShardCount {
		return nil, fmt.Errorf("%w: head has %d shards, this format has %d", trackstore.ErrCorrupt, h.ShardCount, ShardCount)
	}
	if h.Timeout < 0 || h.Expires < 0 {
		return nil, fmt.Errorf("%w: negative time in head", trackstore.ErrCorrupt)
	}
	return h, nil
}

// decodeShard decodes shard n of cert (cert nil: any certifier).
func decodeShard(b []byte, cert []byte, n int) (*wireShard, error) {
	body, err := checkHeader(b, kindShard)
	if err != nil {
		return nil, err
	}
	s := new(wireShard)
	if err := json.Unmarshal(body, s); err != nil {
		return nil, fmt.Errorf("%w: shard: %w", trackstore.ErrCorrupt, err)
	}
	if len(s.Cert) == 0 || (cert != nil && !bytes.Equal(s.Cert, cert)) {
		return nil, fmt.Errorf("%w: shard belongs to another certifier", trackstore.ErrCorrupt)
	}
	if s.N < 0 || s.N >= ShardCount || (n >= 0 && s.N != n) {
		return nil, fmt.Errorf("%w: shard number %d under the key of shard %d", trackstore.ErrCorrupt, s.N, n)
	}
	for i := range s.Rcpts {
		if s.Rcpts[i].Final == "" {
			return nil, fmt.Errorf("%w: recipient without address", trackstore.ErrCorrupt)
		}
	}
	return s, nil
}

// rememberEvent appends id to a bounded list of applied event IDs.
func rememberEvent(list []string, id string) []string {
	if id == "" {
		return list
	}
	list = append(list, id)
	if n := len(list) - MaxAppliedEvents; n > 0 {
		list = append(list[:0], list[n:]...)
	}
	return list
}

func hasEvent(list []string, id string) bool {
	if id == "" {
		return false
	}
	for _, e := range list {
		if e == id {
			return true
		}
	}
	return false
}
