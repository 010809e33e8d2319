package tracking

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgtrack/msgtrack/trackstore"
)

// This file is the write path: optimistic read-modify-write with
// compare-and-swap, bounded retries, and group commit. Every event becomes
// one op per store item it touches. Ops for the same key inside one Engine
// queue up; one goroutine at a time (the leader, itself a caller) takes
// every op waiting, reads the item once, applies them all, and writes once.
// Ops that arrive meanwhile wait for the next round, led by the first of
// them. No goroutine is started.

// doc is an item being updated: a head or a shard.
type doc interface {
	events() *[]string
	expiresAt() int64
}

func (h *wireHead) events() *[]string  { return &h.Events }
func (h *wireHead) expiresAt() int64   { return h.Expires }
func (s *wireShard) events() *[]string { return &s.Events }
func (s *wireShard) expiresAt() int64  { return s.Expires }

// itemKind tells the write path how to handle one key's item.
type itemKind struct {
	fresh  func() doc
	decode func([]byte) (doc, error)
	encode func(doc) ([]byte, error)
}

func headKind(cert []byte) *itemKind {
	return &itemKind{
		fresh:  func() doc { return &wireHead{Cert: cert, ShardCount: ShardCount} },
		decode: func(b []byte) (doc, error) { return decodeHead(b, cert) },
		encode: func(d doc) ([]byte, error) { return encodeItem(kindHead, d) },
	}
}

func shardKind(cert []byte, n int) *itemKind {
	return &itemKind{
		fresh:  func() doc { return &wireShard{Cert: cert, N: n} },
		decode: func(b []byte) (doc, error) { return decodeShard(b, cert, n) },
		encode: func(d doc) ([]byte, error) { return encodeItem(kindShard, d) },
	}
}

const (
	sigDone = 1
	sigLead = 2
)

// op is one event's change to one item.
type op struct {
	eventID string
	// apply changes d and reports whether it did. exists tells whether
	// the item was in the store (d is fresh otherwise). It runs again on
	// every retry with a newly read d, so it must reset any result it
	// records.
	apply func(d doc, exists bool) bool
	dup   bool
	err   error
	sig   chan int
}

type keyQueue struct {
	key     string
	kind    *itemKind
	pending []*op
	busy    bool
	linger  time.Duration
}

// submit applies o to the item under key and returns when it is written
// (or failed after the last retry).
func (e *Engine) submit(ctx context.Context, key string, kind *itemKind, o *op) error {
	o.sig = make(chan int, 1)
	e.mu.Lock()
	q := e.queues[key]
	if q == nil {
		q = &keyQueue{key: key, kind: kind}
		e.queues[key] = q
	}
	q.pending = append(q.pending, o)
	if q.busy {
		e.mu.Unlock()
		if <-o.sig == sigDone {
			return o.err
		}
	} else {
		q.busy = true
		e.mu.Unlock()
	}
	e.lead(ctx, q)
	return o.err
}

// lead runs one round for every op pending on q, then hands the queue to
// the first op that arrived meanwhile, or retires it.
func (e *Engine) lead(ctx context.Context, q *keyQueue) {
	e.mu.Lock()
	batch := q.pending
	q.pending = nil
	e.mu.Unlock()

	if q.linger > 0 {
		// Handed over with work waiting: pause before reading so that a
		// writer in another process gets a gap to complete its own
		// compare-and-swap (without it, back-to-back rounds here can
		// starve it), and so that more events ride along in this round.
		_ = sleep(ctx, q.linger)
		e.mu.Lock()
		batch = append(batch, q.pending...)
		q.pending = nil
		e.mu.Unlock()
	}
	start := time.Now()
	e.commit(ctx, q, batch)
	took := time.Since(start)
	for _, o := range batch {
		o.sig <- sigDone
	}

	e.mu.Lock()
	if len(q.pending) > 0 {
		next := q.pending[0]
		q.linger = min(2*took, e.delay/2)
		e.mu.Unlock()
		next.sig <- sigLead
		return
	}
	q.busy = false
	delete(e.queues, q.key)
	e.mu.Unlock()
}

// commit performs the read-modify-write of batch with retries.
func (e *Engine) commit(ctx context.Context, q *keyQueue, batch []*op) {
	var lastErr error
	attempts := 0
	for attempt := 0; attempt <= e.retry; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, e.retryDelay()); err != nil {
				lastErr = err
				break
			}
		}
		attempts++
		e.c.rounds.Add(1)
		item, err := e.store.Get(ctx, q.key)
		exists := true
		var d doc
		switch {
		case err == nil:
			d, err = q.kind.decode(item.Value)
			if err != nil {
				lastErr = err
				attempt = e.retry // corrupt: retrying cannot help
				continue
			}
		case errors.Is(err, trackstore.ErrNotFound):
			exists = false
			d = q.kind.fresh()
		default:
			e.debug(DebugWrites, "tracking: read failed", "key", q.key, "attempt", attempt, "err", err)
			lastErr = err
			if !retryable(err) {
				attempt = e.retry
			}
			continue
		}
		changed := false
		for _, o := range batch {
			o.dup = false
			ev := d.events()
			if hasEvent(*ev, o.eventID) {
				o.dup = true
				continue
			}
			if o.apply(d, exists) {
				changed = true
				*ev = rememberEvent(*ev, o.eventID)
			}
		}
		if !changed {
			e.finish(batch, nil)
			return
		}
		val, err := q.kind.encode(d)
		if err != nil {
			lastErr = err
			break
		}
		ttl := e.ttlFor(d.expiresAt())
		if exists {
			err = e.store.CompareAndSwap(ctx, trackstore.Item{Key: q.key, Value: val, Version: item.Version}, ttl)
		} else {
			err = e.store.Add(ctx, q.key, val, ttl)
		}
		if err == nil {
			e.c.writes.Add(1)
			e.c.merged.Add(uint64(len(batch) - 1))
			e.debug(DebugWrites, "tracking: wrote", "key", q.key, "bytes", len(val), "events", len(batch), "attempt", attempt)
			e.finish(batch, nil)
			return
		}
		if errors.Is(err, trackstore.ErrConflict) || errors.Is(err, trackstore.ErrExists) || errors.Is(err, trackstore.ErrNotFound) {
			e.c.conflicts.Add(1)
		}
		e.debug(DebugWrites, "tracking: write failed", "key", q.key, "attempt", attempt, "err", err)
		lastErr = err
		if !retryable(err) {
			break
		}
	}
	e.finish(batch, fmt.Errorf("tracking: updating %s failed after %d attempts: %w", q.key, attempts, lastErr))
}

func (e *Engine) finish(batch []*op, err error) {
	for _, o := range batch {
		o.err = err
		if err == nil && o.dup {
			e.c.duplicates.Add(1)
		}
	}
}
