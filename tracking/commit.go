package tracking

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/msgtrack/msgtrack/trackstore"
)

// This file is the write path: optimistic read-modify-write with
// compare-and-swap, bounded retries, and group commit. Every event becomes
// one op per store item it touches. Ops for the same key inside one Engine
// queue up; one goroutine at a time (the leader, itself a caller) takes
// every op waiting, reads the item once, applies them all, and writes once.
// Ops that arrive meanwhile wait for the next round, led by the first of
// them, or join a round that is being retried. No goroutine is started.
//
// Fairness between processes (see the package documentation, "Writes,
// retries, group commit"): a key is "contended" for a while after this
// Engine lost a compare-and-swap on it or read it as last written by
// another Engine. On a contended key, a round that follows this Engine's
// own successful write waits a short jittered gap first, so that the
// other writer, which has just lost and re-reads at once, can complete its
// own read-modify-write instead of being starved by back-to-back rounds
// here.

// doc is an item being updated: a head or a shard.
type doc interface {
	events() *[]string
	expiresAt() int64
	writer() *uint64
}

func (h *wireHead) events() *[]string  { return &h.Events }
func (h *wireHead) expiresAt() int64   { return h.Expires }
func (h *wireHead) writer() *uint64    { return &h.Writer }
func (s *wireShard) events() *[]string { return &s.Events }
func (s *wireShard) expiresAt() int64  { return s.Expires }
func (s *wireShard) writer() *uint64   { return &s.Writer }

// itemKind tells the write path how to handle one key's item: the head
// (shard false) or shard n of the record of cert. A plain value, so that
// naming the kind of an event's item costs no allocation.
type itemKind struct {
	cert  []byte
	shard bool
	n     int
}

func headKind(cert []byte) itemKind         { return itemKind{cert: cert} }
func shardKind(cert []byte, n int) itemKind { return itemKind{cert: cert, shard: true, n: n} }

// fresh returns an empty item of this kind.
func (k itemKind) fresh() doc {
	if k.shard {
		return &wireShard{Cert: k.cert, N: k.n}
	}
	return &wireHead{Cert: k.cert, ShardCount: ShardCount}
}

// decode decodes an item of this kind.
func (k itemKind) decode(b []byte) (doc, error) {
	if k.shard {
		return decodeShard(b, k.cert, k.n)
	}
	return decodeHead(b, k.cert)
}

// encode encodes an item of this kind.
func (k itemKind) encode(d doc) ([]byte, error) {
	if k.shard {
		return encodeItem(kindShard, d)
	}
	return encodeItem(kindHead, d)
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
	// absent: the caller expects no item under the key yet (a message's
	// first arrival). The op's first round then adds a fresh item without
	// the read that would only find nothing, and falls back to reading
	// when an item is there after all.
	absent bool
	dup    bool
	err    error
	sig    chan int
	tries  int // rounds this op took part in
}

type keyQueue struct {
	key     string
	kind    itemKind
	pending []*op
	busy    bool
}

// keyState is what an Engine remembers about a key between rounds, for
// the fairness rule above. Bounded (Engine.keyStates).
type keyState struct {
	contendedUntil time.Time     // other writers seen until then
	lastWrite      time.Time     // this Engine's last successful write
	took           time.Duration // moving average of one round (read to write)
	// streak counts this Engine's writes in a row on a contended key
	// (each read found the item as this Engine last wrote it): the
	// longer it is, the likelier another writer is starving, and the
	// longer the yield.
	streak int
}

// maxKeyStates bounds Engine.keys; the map is cleared when full (the
// state is a hint: losing it only costs a little fairness).
const maxKeyStates = 4096

// submit applies o to the item under key and returns when it is written
// (or failed after its last attempt).
func (e *Engine) submit(ctx context.Context, key string, kind itemKind, o *op) error {
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

// takePending moves the ops waiting on q into batch.
func (e *Engine) takePending(q *keyQueue, batch []*op) []*op {
	e.mu.Lock()
	batch = append(batch, q.pending...)
	q.pending = nil
	e.mu.Unlock()
	return batch
}

// lead runs rounds for every op pending on q, then hands the queue to the
// first op that arrived meanwhile, or retires it.
func (e *Engine) lead(ctx context.Context, q *keyQueue) {
	if gap := e.yieldGap(q.key); gap > 0 {
		// Contended key written by us a moment ago: let the other writer
		// in first (more events ride along in this round meanwhile).
		_ = sleep(ctx, gap)
	}
	e.commit(ctx, q, e.takePending(q, nil))

	e.mu.Lock()
	if len(q.pending) > 0 {
		next := q.pending[0]
		e.mu.Unlock()
		next.sig <- sigLead
		return
	}
	q.busy = false
	delete(e.queues, q.key)
	e.mu.Unlock()
}

// state returns the key's state, creating it; e.mu must be held.
func (e *Engine) state(key string) *keyState {
	st := e.keys[key]
	if st == nil {
		if len(e.keys) >= maxKeyStates {
			clear(e.keys)
		}
		st = &keyState{}
		e.keys[key] = st
	}
	return st
}

// yieldGap returns how long a round on key should wait before reading:
// zero unless the key is contended and this Engine wrote it within the
// last gap. The gap is one to two rounds' worth (jittered), doubled for
// every further write in a row this Engine made on the key (up to 8
// times), and at most half the retry delay.
func (e *Engine) yieldGap(key string) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.keys[key]
	if st == nil {
		return 0
	}
	now := time.Now()
	if now.After(st.contendedUntil) || st.lastWrite.IsZero() {
		return 0
	}
	base := st.took << min(max(st.streak-1, 0), 3)
	gap := min(time.Duration(float64(base)*(1+rand.Float64())), 2*e.delay)
	if wait := st.lastWrite.Add(gap).Sub(now); wait > 0 {
		return wait
	}
	return 0
}

// noteRound records one round's outcome for the fairness rule: wrote
// (this round's write succeeded), contended (the item read was another
// Engine's, or the write lost), own (the item read was this Engine's).
func (e *Engine) noteRound(key string, took time.Duration, wrote, contended, own bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state(key)
	now := time.Now()
	if st.took == 0 {
		st.took = took
	} else {
		st.took = (3*st.took + took) / 4
	}
	if wrote {
		st.lastWrite = now
	}
	switch {
	case contended:
		st.contendedUntil = now.Add(e.contendedFor)
		st.streak = 0
	case own && wrote:
		st.streak++
	}
}

// backoff returns the pause before retry k (1 for the first retry) after
// a failure; conflict tells whether it was a lost compare-and-swap. See
// the package documentation for the schedule.
func (e *Engine) backoff(k int, conflict bool) time.Duration {
	if k == 1 && conflict {
		return 0 // the other writer has just written: re-read at once
	}
	exp := max(k-2, 0)
	if exp > maxBackoffDoublings {
		exp = maxBackoffDoublings
	}
	return e.jittered(e.delay << exp)
}

// maxBackoffDoublings caps the exponential growth of the retry pause at
// 8 × RetryDelay.
const maxBackoffDoublings = 3

// commit performs the read-modify-write of batch with retries and
// signals every op when it is done. Ops that arrive on q while a round is
// being retried join the next attempt, with the attempts of their own
// still to come.
func (e *Engine) commit(ctx context.Context, q *keyQueue, batch []*op) {
	retries := 0 // retries of this round so far (the oldest op's)
	for len(batch) > 0 {
		for _, o := range batch {
			o.tries++
			e.noteAttempts(o.tries)
		}
		e.c.rounds.Add(1)
		if retries > 0 {
			e.c.retried.Add(1)
		}
		start := time.Now()
		wrote, foreign, own, conflict, err := e.attempt(ctx, q, batch)
		e.noteRound(q.key, time.Since(start), wrote, foreign || conflict, own)
		if err == nil {
			e.finish(batch)
			return
		}
		if conflict {
			e.c.conflicts.Add(1)
		}
		if e.debugging(DebugWrites) {
			e.log.Debug("tracking: round failed", "key", q.key, "retry", retries, "err", err)
		}
		// Ops out of attempts fail now; the others go on.
		again := retryable(err)
		keep := batch[:0:0]
		var done []*op
		for _, o := range batch {
			if !again || o.tries > e.retry {
				done = append(done, o)
			} else {
				keep = append(keep, o)
			}
		}
		e.finishErr(q.key, done, err)
		batch = keep
		if len(batch) == 0 {
			return
		}
		retries++
		if err := sleep(ctx, e.backoff(retries, conflict)); err != nil {
			e.finishErr(q.key, batch, err)
			return
		}
		batch = e.takePending(q, batch)
	}
}

// attempt is one round: read, apply every op, write. It returns a nil
// error when the item is written (wrote) or nothing needed writing.
// foreign tells that the item read was last written by another Engine,
// own that it was by this one; conflict that the compare-and-swap (or add) lost against another
// writer.
func (e *Engine) attempt(ctx context.Context, q *keyQueue, batch []*op) (wrote, foreign, own, conflict bool, err error) {
	if addFirst(batch) {
		if wrote, done, err := e.addFresh(ctx, q, batch); done {
			return wrote, false, false, false, err
		}
	}
	item, err := e.store.Get(ctx, q.key)
	exists := true
	var d doc
	switch {
	case err == nil:
		d, err = q.kind.decode(item.Value)
		if err != nil {
			return false, false, false, false, err // corrupt: not retryable
		}
	case errors.Is(err, trackstore.ErrNotFound):
		exists = false
		d = q.kind.fresh()
	default:
		if e.debugging(DebugWrites) {
			e.log.Debug("tracking: read failed", "key", q.key, "err", err)
		}
		return false, false, false, false, err
	}
	foreign = exists && *d.writer() != 0 && *d.writer() != e.wid
	own = exists && *d.writer() == e.wid
	if !applyBatch(d, exists, batch) {
		return false, foreign, own, false, nil
	}
	*d.writer() = e.wid
	val, err := q.kind.encode(d)
	if err != nil {
		return false, foreign, own, false, err
	}
	ttl := e.ttlFor(d.expiresAt())
	if exists {
		err = e.store.CompareAndSwap(ctx, trackstore.Item{Key: q.key, Value: val, Version: item.Version}, ttl)
	} else {
		err = e.store.Add(ctx, q.key, val, ttl)
	}
	if err == nil {
		e.wrote(q.key, len(val), len(batch))
		return true, foreign, own, false, nil
	}
	conflict = errors.Is(err, trackstore.ErrConflict) || errors.Is(err, trackstore.ErrExists) || errors.Is(err, trackstore.ErrNotFound)
	return false, foreign, own, conflict, err
}

// applyBatch applies each op of batch to d, skipping (and marking dup)
// those whose event d already records, and reports whether d changed.
func applyBatch(d doc, exists bool, batch []*op) bool {
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
	return changed
}

// addFirst reports whether a round of batch may start with addFresh:
// every op expects no item and this is its first round.
func addFirst(batch []*op) bool {
	for _, o := range batch {
		if !o.absent || o.tries != 1 {
			return false
		}
	}
	return true
}

// addFresh is the first round of ops that expect no item: it applies them
// to a fresh item and adds it, saving the read (a store round trip with
// memcached) that would only have found nothing. done is false when the
// round must go on as usual, from a read: an item is there (a replay, a
// later hop, another sender's record) or a fresh item needs no write.
// Otherwise err is the outcome of the add, as in attempt.
func (e *Engine) addFresh(ctx context.Context, q *keyQueue, batch []*op) (wrote, done bool, err error) {
	d := q.kind.fresh()
	if !applyBatch(d, false, batch) {
		return false, false, nil
	}
	*d.writer() = e.wid
	val, err := q.kind.encode(d)
	if err != nil {
		return false, true, err
	}
	switch err := e.store.Add(ctx, q.key, val, e.ttlFor(d.expiresAt())); {
	case err == nil:
		e.wrote(q.key, len(val), len(batch))
		return true, true, nil
	case errors.Is(err, trackstore.ErrExists):
		return false, false, nil
	default:
		return false, true, err
	}
}

// wrote counts a successful write of n bytes carrying events events.
func (e *Engine) wrote(key string, n, events int) {
	e.c.writes.Add(1)
	e.c.merged.Add(uint64(events - 1))
	if e.debugging(DebugWrites) {
		e.log.Debug("tracking: wrote", "key", key, "bytes", n, "events", events)
	}
}

func (e *Engine) noteAttempts(n int) {
	for {
		cur := e.c.mostAttempts.Load()
		if uint64(n) <= cur || e.c.mostAttempts.CompareAndSwap(cur, uint64(n)) {
			return
		}
	}
}

// finish ends ops successfully and signals them.
func (e *Engine) finish(batch []*op) {
	for _, o := range batch {
		o.err = nil
		if o.dup {
			e.c.duplicates.Add(1)
		}
		o.sig <- sigDone
	}
}

// finishErr fails ops after their last attempt and signals them.
func (e *Engine) finishErr(key string, ops []*op, err error) {
	for _, o := range ops {
		o.err = fmt.Errorf("tracking: updating %s failed after %d attempts: %w", key, o.tries, err)
		o.sig <- sigDone
	}
}
