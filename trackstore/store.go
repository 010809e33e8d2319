// Package trackstore defines the storage interface that the tracking engine
// keeps its records in, the errors every backend reports, and a conformance
// suite (see the trackstoretest package) that each backend must pass.
//
// A record holds what an MTA must keep for RFC 3885 message tracking: the
// certifier of the MAIL FROM MTRK parameter (RFC 3885 section 3) for as
// long as its timeout asks, and the per-recipient fields that an RFC 3886
// message/tracking-status report is built from. Every MTA of a
// deployment must see the same record, updated by many processes at once,
// which is why the interface is compare-and-swap.
//
// The interface is deliberately the intersection of what memcached offers
// and what an in-process map can do cheaply: get with a version token,
// add-if-absent, compare-and-swap and delete, each with a TTL. That is
// enough for the engine's optimistic read-modify-write updates. Backends
// live in their own subpackages (memstore, memcachestore, sealed), so that
// importing trackstore or tracking pulls in no client library.
//
// # Keys
//
// Every backend enforces the same key rule (CheckKey: 1 to 250 bytes of
// printable ASCII without space), memcached's rule narrowed to ASCII.
// Tracking IDs may hold any bytes, so callers derive keys with SafeKey.
//
// # Errors
//
// Backends report conditions through the sentinels below, wrapped with
// detail (test with errors.Is). ErrUnavailable is the only ambiguous one:
// after it, a write may or may not have happened.
package trackstore

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Sentinel errors. Backends wrap them (test with errors.Is) and may add
// detail; the engine decides on retries and fail-open behaviour from them.
var (
	// ErrNotFound: no item under the key (never written, deleted, expired
	// or evicted).
	ErrNotFound = errors.New("trackstore: not found")
	// ErrConflict: a compare-and-swap lost; the item changed (or vanished)
	// since it was read. Re-read and retry.
	ErrConflict = errors.New("trackstore: version conflict")
	// ErrExists: Add found an item already under the key.
	ErrExists = errors.New("trackstore: already exists")
	// ErrTooLarge: the value exceeds the backend's item size limit.
	ErrTooLarge = errors.New("trackstore: value too large")
	// ErrUnavailable: the backend could not be reached or did not answer
	// in time. The outcome of a write that failed this way is unknown.
	ErrUnavailable = errors.New("trackstore: store unavailable")
	// ErrCorrupt: bytes under a key could not be decoded (foreign, damaged
	// or from an unknown format version). Reported by decoders above the
	// store, never a panic.
	ErrCorrupt = errors.New("trackstore: corrupt record")
	// ErrInvalidKey: the key breaks the backend's key rules. Callers
	// derive keys with a backend-safe function rather than pass raw IDs.
	ErrInvalidKey = errors.New("trackstore: invalid key")
)

// Version is an opaque compare-and-swap token returned by Get. Zero is
// never a valid version.
type Version uint64

// Item is one stored value with the version it was read at.
type Item struct {
	Key     string
	Value   []byte
	Version Version
}

// Store is a key-value store with compare-and-swap. Implementations must be
// safe for concurrent use. Every method honours ctx: when it is done the
// call returns an error wrapping both ErrUnavailable and ctx.Err().
//
// A TTL of zero means "no expiry"; a negative TTL is an error wrapping
// ErrInvalidTTL. Backends may round TTLs up to their granularity
// (memcached: whole seconds). Every write (Add, Set, CompareAndSwap) gives
// the item a new version, even when the bytes are unchanged. A key that
// breaks CheckKey gives ErrInvalidKey, and a value longer than MaxValueSize
// ErrTooLarge, before anything is stored. Values are copied: a caller may
// reuse its buffers after a call returns.
type Store interface {
	// Get returns the item under key, or ErrNotFound.
	Get(ctx context.Context, key string) (Item, error)
	// GetMulti returns the items found among keys; missing keys are simply
	// absent from the map (no error).
	GetMulti(ctx context.Context, keys []string) (map[string]Item, error)
	// Add stores value under key only if nothing is there; otherwise it
	// returns ErrExists.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// CompareAndSwap replaces the item if its version is still
	// item.Version; otherwise ErrConflict (or ErrNotFound if it is gone).
	CompareAndSwap(ctx context.Context, item Item, ttl time.Duration) error
	// Set stores value under key unconditionally.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes the item; ErrNotFound if there was none.
	Delete(ctx context.Context, key string) error
	// MaxValueSize is the largest value the backend accepts, in bytes.
	MaxValueSize() int
}

// KeyError is an outcome about one key: Err is one of the sentinel errors
// above (errors.Is finds it), Op names the operation and Cause, when not
// nil, is the backend's own error. Backends return it for the expected
// outcomes of the engine's read-modify-write (not found, exists, conflict)
// because it costs one small allocation and no formatting: a not-found Get
// precedes every new record's Add. The message is built only when asked.
type KeyError struct {
	Err   error
	Op    string
	Key   string
	Cause error
}

// Error returns "<sentinel>: <op> <quoted key>[: <cause>]".
func (e *KeyError) Error() string {
	s := e.Err.Error() + ": " + e.Op + " " + strconv.Quote(e.Key)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Is reports whether target is the sentinel, so errors.Is finds it without
// the allocation an Unwrap() []error would cost on every check.
func (e *KeyError) Is(target error) bool { return target == e.Err }

// Unwrap returns the backend's error, or nil.
func (e *KeyError) Unwrap() error { return e.Cause }
