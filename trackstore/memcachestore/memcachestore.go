// Package memcachestore is the trackstore.Store on memcached, through
// github.com/bradfitz/gomemcache. It is how the MTAs of a deployment share
// tracking records: every MTA points at the same memcached server or
// servers, and the tracking engine's compare-and-swap updates (memcached's
// "gets"/"cas" commands) keep concurrent updates from different processes
// from losing each other.
//
// # Several servers
//
// With more than one server the key space is split over them by
// gomemcache's ServerList: CRC-32 (IEEE) of the key modulo the number of
// listed servers, a server listed twice getting twice the share. There is
// no replication: each key lives on exactly one server. The list, its order
// and its duplicates must be identical on every MTA of the deployment,
// otherwise two MTAs look for one record on different servers and each
// sees its own copy. Changing the list moves most keys; records on a server
// that goes away are lost (the engine treats this like eviction).
//
// # Timeouts and contexts
//
// Options.Timeout bounds each network read or write (gomemcache sets the
// connection deadline before each step) and Options.DialTimeout each
// connection attempt, so a single-key call that is not answered ends after
// at most DialTimeout + Timeout (its bound). gomemcache takes no context,
// so a Store method:
//
//   - checks ctx first, and returns an error wrapping
//     trackstore.ErrUnavailable and ctx.Err() without sending anything if
//     it is already done;
//   - if ctx has a deadline sooner than the call's bound, runs the
//     gomemcache call on its own goroutine and returns when the deadline
//     passes (or ctx is cancelled), again with an error wrapping
//     ErrUnavailable and ctx.Err(). The abandoned call goes on until
//     memcached answers or Timeout expires. A write abandoned this way may
//     or may not take effect: its outcome is unknown, which is what
//     ErrUnavailable means, and the engine treats it like any other
//     ambiguous write (its events are idempotent for that reason);
//   - otherwise (no deadline, or a later one) runs the call on the
//     caller's goroutine, where it ends within its bound anyway. A
//     cancellation that arrives during such a call is not acted on until
//     the call ends; the call's real result is returned (a write that
//     succeeded is reported as a success), and a failure also wraps
//     ctx.Err() if ctx is done by then. This avoids a goroutine hand-off
//     on every call, which costs more than the wrapper's other work.
//
// A network error, a timeout, a refused connection or an unexpected reply
// all wrap trackstore.ErrUnavailable. The connection involved is closed, so
// after a server restart each idle pooled connection fails at most once.
//
// # Expiration
//
// memcached takes expiration times in whole seconds, and reads any value
// above 30 days (2,592,000 s) as an absolute Unix time (protocol.txt,
// "Expiration times"). TTLs are rounded up to whole seconds; a TTL over 30
// days is sent as the local clock's Unix time plus the TTL, which is right
// only while the MTA's clock and memcached's agree (keep them on NTP). Times
// past the int32 range (January 2038) are clamped to its end.
//
// # Keys and sizes
//
// Keys must pass trackstore.CheckKey (derive them with trackstore.SafeKey);
// a key that does not is refused with trackstore.ErrInvalidKey before
// anything is sent. Values are limited to Options.MaxValueSize, by default
// DefaultMaxValueSize: memcached's default item size of 1 MiB (-I 1m) less
// ItemOverhead for the item header, the longest key and the CAS field. For
// a server started with a larger -I, set MaxValueSize to that size less
// ItemOverhead (ValueSizeFor computes it). memcached must run with CAS
// enabled (not with -C).
package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/msgtrack/msgtrack/trackstore"
)

// Defaults used for zero Options fields.
const (
	// DefaultTimeout bounds each network read or write.
	DefaultTimeout = 500 * time.Millisecond
	// DefaultMaxIdleConns is the idle connections kept per server; more
	// than gomemcache's own default of 2, so that an engine with many
	// concurrent updates does not dial for most of them.
	DefaultMaxIdleConns = 16
	// ItemOverhead is what memcached's item limit must leave besides the
	// value: the item header (48 bytes on 64-bit builds), the key (up to
	// 250 bytes plus a terminator), the value's CRLF and the 8-byte CAS,
	// rounded up.
	ItemOverhead = 512
	// DefaultMaxValueSize fits memcached's default 1 MiB item limit.
	DefaultMaxValueSize = 1<<20 - ItemOverhead
	// relativeMax is memcached's largest relative expiration (30 days).
	relativeMax = 30 * 24 * 60 * 60
)

// ValueSizeFor returns the MaxValueSize for a memcached started with
// -I itemSizeMax (in bytes).
func ValueSizeFor(itemSizeMax int) int { return itemSizeMax - ItemOverhead }

// Options configure New.
type Options struct {
	// Servers are host:port addresses (or Unix socket paths) of the
	// memcached servers; at least one. See the package documentation for
	// how keys are spread over several.
	Servers []string
	// Timeout bounds each network read and write; 0 means DefaultTimeout.
	Timeout time.Duration
	// DialTimeout bounds each connection attempt; 0 means Timeout.
	DialTimeout time.Duration
	// MaxIdleConns is the number of idle connections kept per server; 0
	// means DefaultMaxIdleConns. Set it near the number of concurrent
	// store calls expected, since a call that finds no idle connection
	// dials a new one.
	MaxIdleConns int
	// MaxValueSize is the largest value accepted; 0 means
	// DefaultMaxValueSize. Larger values are refused with
	// trackstore.ErrTooLarge before being sent.
	MaxValueSize int
	// Now is the clock used for absolute expiration times; nil means
	// time.Now.
	Now func() time.Time
}

// Store is a trackstore.Store on memcached. Its methods are safe for
// concurrent use. Create it with New and release its connections with
// Close.
type Store struct {
	c        *memcache.Client
	maxValue int
	now      func() time.Time
	bound    time.Duration // DialTimeout + Timeout

	unavailable atomic.Uint64
	abandoned   atomic.Uint64
}

// Stats are counters a caller can read at any time (for metrics).
type Stats struct {
	// Unavailable counts calls that failed with ErrUnavailable, including
	// those whose context was done.
	Unavailable uint64
	// Abandoned counts calls that returned because their context ended
	// while the gomemcache call was still running (outcome unknown).
	Abandoned uint64
}

// Stats returns the current counters.
func (s *Store) Stats() Stats {
	return Stats{Unavailable: s.unavailable.Load(), Abandoned: s.abandoned.Load()}
}

var _ trackstore.Store = (*Store)(nil)

// New returns a Store for opts.Servers. It resolves the addresses but does
// not connect; the first call does.
func New(opts Options) (*Store, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("memcachestore: no servers")
	}
	ss := new(memcache.ServerList)
	if err := ss.SetServers(opts.Servers...); err != nil {
		return nil, fmt.Errorf("memcachestore: servers %v: %w", opts.Servers, err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialTimeout := opts.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = timeout
	}
	idle := opts.MaxIdleConns
	if idle <= 0 {
		idle = DefaultMaxIdleConns
	}
	maxValue := opts.MaxValueSize
	if maxValue <= 0 {
		maxValue = DefaultMaxValueSize
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	c := memcache.NewFromSelector(ss)
	c.Timeout = timeout
	c.MaxIdleConns = idle
	dialer := &net.Dialer{Timeout: dialTimeout}
	// gomemcache bounds the dial by Timeout through ctx; our own dialer
	// applies DialTimeout instead.
	c.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(context.WithoutCancel(ctx), network, addr)
	}
	return &Store{c: c, maxValue: maxValue, now: now, bound: dialTimeout + timeout}, nil
}

// Close closes the idle connections.
func (s *Store) Close() error { return s.c.Close() }

// MaxValueSize returns the largest value the store accepts.
func (s *Store) MaxValueSize() int { return s.maxValue }

// Expiration converts a TTL to memcached's expiration field as of now:
// 0 for none, whole seconds (rounded up) up to 30 days, an absolute Unix
// time beyond, clamped to the int32 range. It is exported for tests and
// for tools that talk to memcached directly.
func Expiration(ttl time.Duration, now time.Time) int32 {
	if ttl <= 0 {
		return 0
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	if secs <= relativeMax {
		return int32(secs)
	}
	abs := now.Unix() + secs
	if abs > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(abs)
}

// async reports whether a call under ctx runs on its own goroutine: when
// ctx's deadline comes before the call's own bound.
func (s *Store) async(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ok && time.Until(deadline) < s.bound
}

// call runs f honouring ctx as the package documentation describes.
func call[T any](ctx context.Context, s *Store, f func() (T, error)) (T, error) {
	var zero T
	if err := trackstore.ContextError(ctx); err != nil {
		return zero, err // counted by mapError
	}
	if !s.async(ctx) {
		v, err := f()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		return v, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		s.abandoned.Add(1)
		return zero, trackstore.Unavailable(context.Cause(ctx))
	}
}

func call0(ctx context.Context, s *Store, f func() error) error {
	_, err := call(ctx, s, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// mapError turns a gomemcache error of op on key into a trackstore error.
// notStored is the sentinel for memcached's NOT_STORED reply (which means
// "exists" for add and "gone" for cas).
func (s *Store) mapError(op, key string, err error, notStored error) error {
	err = mapError(op, key, err, notStored)
	if errors.Is(err, trackstore.ErrUnavailable) {
		s.unavailable.Add(1)
	}
	return err
}

func mapError(op, key string, err error, notStored error) error {
	var sentinel error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, trackstore.ErrUnavailable):
		return err // from call: context done
	case errors.Is(err, memcache.ErrCacheMiss):
		sentinel = trackstore.ErrNotFound
	case errors.Is(err, memcache.ErrCASConflict):
		sentinel = trackstore.ErrConflict
	case errors.Is(err, memcache.ErrNotStored):
		sentinel = notStored
	case errors.Is(err, memcache.ErrMalformedKey):
		sentinel = trackstore.ErrInvalidKey
	case strings.Contains(err.Error(), "too large"):
		// "SERVER_ERROR object too large for cache": the server's -I is
		// smaller than MaxValueSize assumes.
		sentinel = trackstore.ErrTooLarge
	default:
		// Network errors, timeouts, io.EOF, ErrServerError, ErrNoServers,
		// unexpected replies: the server did not do (or confirm) the job.
		sentinel = trackstore.ErrUnavailable
	}
	return &trackstore.KeyError{Err: sentinel, Op: "memcached " + op, Key: key, Cause: err}
}

var errNoCAS = errors.New("memcachestore: server returned CAS 0; is memcached running with -C?")

// Get returns the item under key, or an error wrapping
// trackstore.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (trackstore.Item, error) {
	if err := trackstore.CheckKey(key); err != nil {
		return trackstore.Item{}, err
	}
	it, err := call(ctx, s, func() (*memcache.Item, error) { return s.c.Get(key) })
	if err != nil {
		return trackstore.Item{}, s.mapError("get", key, err, trackstore.ErrNotFound)
	}
	if it.CasID == 0 {
		return trackstore.Item{}, s.mapError("get", key, errNoCAS, nil)
	}
	return trackstore.Item{Key: key, Value: it.Value, Version: trackstore.Version(it.CasID)}, nil
}

// GetMulti returns the items found among keys, asking each server once
// (in parallel when keys live on several). If any server fails, it returns
// an error wrapping trackstore.ErrUnavailable and no items.
func (s *Store) GetMulti(ctx context.Context, keys []string) (map[string]trackstore.Item, error) {
	for _, k := range keys {
		if err := trackstore.CheckKey(k); err != nil {
			return nil, err
		}
	}
	if len(keys) == 0 {
		if err := trackstore.ContextError(ctx); err != nil {
			return nil, err
		}
		return map[string]trackstore.Item{}, nil
	}
	m, err := call(ctx, s, func() (map[string]*memcache.Item, error) { return s.c.GetMulti(keys) })
	if err != nil {
		return nil, s.mapError("get", strings.Join(keys, " "), err, trackstore.ErrNotFound)
	}
	out := make(map[string]trackstore.Item, len(m))
	for k, it := range m {
		if it.CasID == 0 {
			return nil, s.mapError("get", k, errNoCAS, nil)
		}
		out[k] = trackstore.Item{Key: k, Value: it.Value, Version: trackstore.Version(it.CasID)}
	}
	return out, nil
}

func (s *Store) check(key string, value []byte, ttl time.Duration) error {
	if err := trackstore.CheckKey(key); err != nil {
		return err
	}
	if err := trackstore.CheckTTL(ttl); err != nil {
		return err
	}
	if len(value) > s.maxValue {
		return fmt.Errorf("%w: %d bytes, limit %d", trackstore.ErrTooLarge, len(value), s.maxValue)
	}
	return nil
}

// item builds the gomemcache item. On the goroutine path the call may be
// abandoned while gomemcache still sends the value, so the value is copied:
// the caller may reuse its buffer as soon as the method returns.
func (s *Store) item(ctx context.Context, key string, value []byte, ttl time.Duration) *memcache.Item {
	if value == nil || s.async(ctx) {
		value = append([]byte{}, value...)
	}
	return &memcache.Item{Key: key, Value: value, Expiration: Expiration(ttl, s.now())}
}

// Add stores value under key only if memcached holds nothing there, else
// it returns an error wrapping trackstore.ErrExists.
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.check(key, value, ttl); err != nil {
		return err
	}
	it := s.item(ctx, key, value, ttl)
	return s.mapError("add", key, call0(ctx, s, func() error { return s.c.Add(it) }), trackstore.ErrExists)
}

// Set stores value under key unconditionally.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.check(key, value, ttl); err != nil {
		return err
	}
	it := s.item(ctx, key, value, ttl)
	return s.mapError("set", key, call0(ctx, s, func() error { return s.c.Set(it) }), trackstore.ErrUnavailable)
}

// CompareAndSwap stores item.Value if the item's CAS value is still
// item.Version: trackstore.ErrConflict if it changed, trackstore.ErrNotFound
// if the item is gone (deleted, expired or evicted).
func (s *Store) CompareAndSwap(ctx context.Context, item trackstore.Item, ttl time.Duration) error {
	if err := s.check(item.Key, item.Value, ttl); err != nil {
		return err
	}
	it := s.item(ctx, item.Key, item.Value, ttl)
	it.CasID = uint64(item.Version)
	return s.mapError("cas", item.Key, call0(ctx, s, func() error { return s.c.CompareAndSwap(it) }), trackstore.ErrNotFound)
}

// Delete removes the item, or returns an error wrapping
// trackstore.ErrNotFound if there was none.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := trackstore.CheckKey(key); err != nil {
		return err
	}
	return s.mapError("delete", key, call0(ctx, s, func() error { return s.c.Delete(key) }), trackstore.ErrNotFound)
}

// Ping checks that every server answers.
func (s *Store) Ping(ctx context.Context) error {
	err := call0(ctx, s, s.c.Ping)
	if err != nil && !errors.Is(err, trackstore.ErrUnavailable) {
		err = fmt.Errorf("%w: memcached ping: %w", trackstore.ErrUnavailable, err)
	}
	return err
}
