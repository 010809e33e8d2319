// Package memstore is the in-memory trackstore.Store: the embedded default
// for a single MTA, and the store the tracking engine's tests run on.
//
// # Memory bound and eviction rule
//
// Every item is charged len(key) + len(value) + ItemOverhead bytes. The
// store is split into shards by a hash of the key; each shard owns an equal
// part of Options.MaxBytes. When a write would take a shard over its part,
// the shard frees space by removing, in this order:
//
//  1. expired items, earliest expiry first;
//  2. live items, least recently used first (Get, GetMulti and every write
//     count as a use).
//
// The item being written is never evicted by its own write. Like
// memcached, the store may therefore forget an item before its TTL; the
// tracking engine treats that as ErrNotFound, as it must with memcached.
//
// # Expiry
//
// Expiry is lazy (an expired item is invisible from the instant it
// expires) and swept in bounded steps: every write to a shard also removes
// up to SweepBatch of that shard's expired items, found in expiry order
// through a heap, so memory held by dead items is released without a
// background goroutine. Sweep removes all of them at once.
//
// # Versions
//
// Versions come from one store-wide counter, so every write (Add, Set,
// CompareAndSwap) gives the item a version no earlier item had, even a
// write of identical bytes.
package memstore

import (
	"container/heap"
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgtrack/msgtrack/trackstore"
)

// Defaults for the zero Options.
const (
	// DefaultMaxBytes is the memory bound of a zero Options: 64 MiB, as
	// memcached's default -m 64.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxValueSize is the value size limit of a zero Options:
	// 1 MiB, memcached's default item size (-I 1m).
	DefaultMaxValueSize = 1 << 20
	// ItemOverhead is the bookkeeping charge per item, added to the key and
	// value lengths when accounting against MaxBytes.
	ItemOverhead = 96
	// SweepBatch is the most expired items a single write sweeps from its
	// shard.
	SweepBatch = 8
	// maxShards is the shard count when memory allows; a shard must be
	// able to hold at least two items of the largest value size.
	maxShards = 32
)

// Options configure New. The zero value is usable.
type Options struct {
	// MaxBytes bounds the memory charged to items (see the package
	// documentation); 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxValueSize is the largest accepted value; 0 means
	// DefaultMaxValueSize. It is lowered to what MaxBytes can hold.
	MaxValueSize int
	// Now is the clock; nil means time.Now. Tests pass a fake clock to
	// move time forward without sleeping.
	Now func() time.Time
}

// Stats are counters a caller can read at any time.
type Stats struct {
	// Items and Bytes are the current item count and charged bytes,
	// including expired items not yet swept.
	Items int64
	Bytes int64
	// Evictions counts live items removed to make room; Expirations
	// counts expired items removed (by sweeping or to make room).
	Evictions   uint64
	Expirations uint64
}

// Store is an in-memory trackstore.Store. Its methods are safe for
// concurrent use. Create it with New.
type Store struct {
	shards      []shard
	seed        maphash.Seed
	now         func() time.Time
	maxValue    int
	version     atomic.Uint64
	evictions   atomic.Uint64
	expirations atomic.Uint64
	shardBudget int64
	totalBudget int64
}

var _ trackstore.Store = (*Store)(nil)

type entry struct {
	key     string
	value   []byte
	version trackstore.Version
	expires int64 // UnixNano; 0 = never
	// LRU list links (most recent at head).
	prev, next *entry
	heapIdx    int // index in the expiry heap, -1 if not there
}

func (e *entry) cost() int64 { return int64(len(e.key) + len(e.value) + ItemOverhead) }

type shard struct {
	mu    sync.Mutex
	items map[string]*entry
	head  *entry // most recently used
	tail  *entry // least recently used
	exp   expHeap
	bytes int64
	_     [40]byte // keep shards on separate cache lines
}

// New returns an empty store configured by opts.
func New(opts Options) *Store {
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	maxValue := opts.MaxValueSize
	if maxValue <= 0 {
		maxValue = DefaultMaxValueSize
	}
	// The largest item must fit in a shard, even alone.
	if limit := maxBytes - ItemOverhead - trackstore.MaxKeyLen; int64(maxValue) > limit {
		maxValue = int(max(limit, 0))
	}
	n := maxShards
	for n > 1 && maxBytes/int64(n) < 2*int64(maxValue+ItemOverhead+trackstore.MaxKeyLen) {
		n /= 2
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{
		shards:      make([]shard, n),
		seed:        maphash.MakeSeed(),
		now:         now,
		maxValue:    maxValue,
		shardBudget: maxBytes / int64(n),
		totalBudget: maxBytes,
	}
	for i := range s.shards {
		s.shards[i].items = make(map[string]*entry)
	}
	return s
}

// MaxValueSize returns the largest value the store accepts.
func (s *Store) MaxValueSize() int { return s.maxValue }

// MaxBytes returns the memory bound in effect.
func (s *Store) MaxBytes() int64 { return s.totalBudget }

func (s *Store) shardFor(key string) *shard {
	if len(s.shards) == 1 {
		return &s.shards[0]
	}
	return &s.shards[maphash.String(s.seed, key)%uint64(len(s.shards))]
}

func (s *Store) nowNano() int64 { return s.now().UnixNano() }

func expiry(now int64, ttl time.Duration) int64 {
	if ttl == 0 {
		return 0
	}
	return now + int64(ttl)
}

func (e *entry) expired(now int64) bool { return e.expires != 0 && e.expires <= now }

// Get returns the item under key, or an error wrapping
// trackstore.ErrNotFound. The returned value is a copy.
func (s *Store) Get(ctx context.Context, key string) (trackstore.Item, error) {
	if err := trackstore.ContextError(ctx); err != nil {
		return trackstore.Item{}, err
	}
	if err := trackstore.CheckKey(key); err != nil {
		return trackstore.Item{}, err
	}
	now := s.nowNano()
	sh := s.shardFor(key)
	sh.mu.Lock()
	e, ok := sh.items[key]
	if !ok || e.expired(now) {
		sh.mu.Unlock()
		return trackstore.Item{}, &trackstore.KeyError{Err: trackstore.ErrNotFound, Op: "get", Key: key}
	}
	sh.touch(e)
	it := trackstore.Item{Key: key, Value: clone(e.value), Version: e.version}
	sh.mu.Unlock()
	return it, nil
}

// GetMulti returns the live items among keys; missing keys are absent
// from the map.
func (s *Store) GetMulti(ctx context.Context, keys []string) (map[string]trackstore.Item, error) {
	if err := trackstore.ContextError(ctx); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := trackstore.CheckKey(k); err != nil {
			return nil, err
		}
	}
	now := s.nowNano()
	out := make(map[string]trackstore.Item, len(keys))
	for _, k := range keys {
		sh := s.shardFor(k)
		sh.mu.Lock()
		if e, ok := sh.items[k]; ok && !e.expired(now) {
			sh.touch(e)
			out[k] = trackstore.Item{Key: k, Value: clone(e.value), Version: e.version}
		}
		sh.mu.Unlock()
	}
	return out, nil
}

func (s *Store) checkWrite(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := trackstore.ContextError(ctx); err != nil {
		return err
	}
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

// Add stores value under key if no live item is there, else it returns an
// error wrapping trackstore.ErrExists.
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.checkWrite(ctx, key, value, ttl); err != nil {
		return err
	}
	now := s.nowNano()
	sh := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.items[key]; ok && !e.expired(now) {
		return &trackstore.KeyError{Err: trackstore.ErrExists, Op: "add", Key: key}
	}
	s.store(sh, key, value, ttl, now)
	return nil
}

// Set stores value under key unconditionally.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.checkWrite(ctx, key, value, ttl); err != nil {
		return err
	}
	now := s.nowNano()
	sh := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s.store(sh, key, value, ttl, now)
	return nil
}

// CompareAndSwap replaces item.Key's value with item.Value if the stored
// version is still item.Version. It returns an error wrapping
// trackstore.ErrConflict if the version differs and trackstore.ErrNotFound
// if no live item is there.
func (s *Store) CompareAndSwap(ctx context.Context, item trackstore.Item, ttl time.Duration) error {
	if err := s.checkWrite(ctx, item.Key, item.Value, ttl); err != nil {
		return err
	}
	now := s.nowNano()
	sh := s.shardFor(item.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.items[item.Key]
	if !ok || e.expired(now) {
		return &trackstore.KeyError{Err: trackstore.ErrNotFound, Op: "cas", Key: item.Key}
	}
	if e.version != item.Version {
		return &trackstore.KeyError{Err: trackstore.ErrConflict, Op: "cas", Key: item.Key}
	}
	s.store(sh, item.Key, item.Value, ttl, now)
	return nil
}

// Delete removes the item under key, or returns an error wrapping
// trackstore.ErrNotFound if there was no live item.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := trackstore.ContextError(ctx); err != nil {
		return err
	}
	if err := trackstore.CheckKey(key); err != nil {
		return err
	}
	now := s.nowNano()
	sh := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.items[key]
	if !ok {
		return &trackstore.KeyError{Err: trackstore.ErrNotFound, Op: "delete", Key: key}
	}
	live := !e.expired(now)
	sh.remove(e)
	if !live {
		s.expirations.Add(1)
		return &trackstore.KeyError{Err: trackstore.ErrNotFound, Op: "delete", Key: key}
	}
	return nil
}

// Sweep removes every expired item now and returns how many it removed.
func (s *Store) Sweep() int {
	now := s.nowNano()
	total := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		total += s.sweep(sh, now, -1)
		sh.mu.Unlock()
	}
	return total
}

// Stats returns the current counters.
func (s *Store) Stats() Stats {
	var st Stats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Items += int64(len(sh.items))
		st.Bytes += sh.bytes
		sh.mu.Unlock()
	}
	st.Evictions = s.evictions.Load()
	st.Expirations = s.expirations.Load()
	return st
}

// store writes key under sh.mu, replacing any entry, sweeping and evicting
// as the package documentation describes.
func (s *Store) store(sh *shard, key string, value []byte, ttl time.Duration, now int64) {
	s.sweep(sh, now, SweepBatch)
	e, ok := sh.items[key]
	if ok {
		sh.bytes -= e.cost()
		e.value = append(e.value[:0:0], value...)
		sh.bytes += e.cost()
		sh.touch(e)
	} else {
		e = &entry{key: key, value: append([]byte{}, value...), heapIdx: -1}
		sh.items[key] = e
		sh.pushFront(e)
		sh.bytes += e.cost()
	}
	e.version = trackstore.Version(s.version.Add(1))
	old := e.expires
	e.expires = expiry(now, ttl)
	switch {
	case e.expires == 0 && e.heapIdx >= 0:
		heap.Remove(&sh.exp, e.heapIdx)
	case e.expires != 0 && e.heapIdx < 0:
		heap.Push(&sh.exp, e)
	case e.expires != 0 && old != e.expires:
		heap.Fix(&sh.exp, e.heapIdx)
	}
	// Make room: expired first, then least recently used, never e.
	for sh.bytes > s.shardBudget {
		if s.sweep(sh, now, 1) > 0 {
			continue
		}
		victim := sh.tail
		if victim == e {
			victim = e.prev
		}
		if victim == nil {
			break
		}
		sh.remove(victim)
		s.evictions.Add(1)
	}
}

// sweep removes up to limit expired entries (all if limit < 0).
func (s *Store) sweep(sh *shard, now int64, limit int) int {
	n := 0
	for (limit < 0 || n < limit) && len(sh.exp) > 0 && sh.exp[0].expires <= now {
		sh.remove(sh.exp[0])
		n++
	}
	if n > 0 {
		s.expirations.Add(uint64(n))
	}
	return n
}

func (sh *shard) remove(e *entry) {
	delete(sh.items, e.key)
	sh.unlink(e)
	if e.heapIdx >= 0 {
		heap.Remove(&sh.exp, e.heapIdx)
	}
	sh.bytes -= e.cost()
}

func (sh *shard) pushFront(e *entry) {
	e.prev = nil
	e.next = sh.head
	if sh.head != nil {
		sh.head.prev = e
	}
	sh.head = e
	if sh.tail == nil {
		sh.tail = e
	}
}

func (sh *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (sh *shard) touch(e *entry) {
	if sh.head == e {
		return
	}
	sh.unlink(e)
	sh.pushFront(e)
}

func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

// expHeap orders entries with an expiry by expiry time.
type expHeap []*entry

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *expHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *expHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}
