package tracking

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/trackstore"
)

// recordKeys returns the head key followed by the ShardCount shard keys.
func recordKeys(cert []byte) []string {
	keys := make([]string, 1+ShardCount)
	keys[0] = HeadKey(cert)
	for i := 0; i < ShardCount; i++ {
		keys[1+i] = ShardKey(cert, i)
	}
	return keys
}

// load reads the record for cert: the head, then the shards it lists.
// What is fetched in the first round trip depends on the layout cache:
// only the head for a record known to keep its recipients inline (or not
// yet seen), the head with the shards last seen listed for a sharded one.
// A head that is absent or undecodable is returned nil; then, with
// orphans, every shard slot is fetched (for Lookup and PendingRecall:
// surviving shards still tell something). Undecodable shards are left out
// (and so reported missing when the head lists them).
func (e *Engine) load(ctx context.Context, cert []byte, orphans bool) (*wireHead, []*wireShard, error) {
	headKey := HeadKey(cert)
	lay, known := e.layouts.get(headKey)
	var items map[string]trackstore.Item
	var guess uint32
	if known && lay.sharded {
		guess = lay.mask
		keys := append(make([]string, 0, 1+ShardCount), headKey)
		keys = appendShardKeys(keys, cert, guess)
		var err error
		if items, err = e.store.GetMulti(ctx, keys); err != nil {
			return nil, nil, fmt.Errorf("tracking: reading record: %w", err)
		}
	} else {
		it, err := e.store.Get(ctx, headKey)
		switch {
		case err == nil:
			items = map[string]trackstore.Item{headKey: it}
		case errors.Is(err, trackstore.ErrNotFound):
			items = map[string]trackstore.Item{}
		default:
			return nil, nil, fmt.Errorf("tracking: reading record: %w", err)
		}
	}
	var h *wireHead
	if it, ok := items[headKey]; ok {
		var err error
		h, err = decodeHead(it.Value, cert)
		if err != nil {
			e.log.Warn("tracking: unreadable record head", "key", headKey, "err", err)
			h = nil
		}
	}
	var more uint32
	switch {
	case h != nil:
		e.layouts.put(headKey, layoutOf(h))
		more = h.ShardMask &^ guess
	case orphans:
		more = 1<<ShardCount - 1&^guess
	}
	if more != 0 {
		got, err := e.store.GetMulti(ctx, appendShardKeys(nil, cert, more))
		if err != nil {
			return nil, nil, fmt.Errorf("tracking: reading record: %w", err)
		}
		for k, v := range got {
			items[k] = v
		}
	}
	if len(items) <= 1 && h != nil {
		return h, nil, nil
	}
	shards := make([]*wireShard, 0, ShardCount)
	for i := 0; i < ShardCount; i++ {
		key := ShardKey(cert, i)
		it, ok := items[key]
		if !ok {
			continue
		}
		s, err := decodeShard(it.Value, cert, i)
		if err != nil {
			e.log.Warn("tracking: unreadable record shard", "key", key, "err", err)
			continue
		}
		shards = append(shards, s)
	}
	return h, shards, nil
}

func appendShardKeys(keys []string, cert []byte, mask uint32) []string {
	for i := 0; i < ShardCount; i++ {
		if mask&(1<<i) != 0 {
			keys = append(keys, ShardKey(cert, i))
		}
	}
	return keys
}

// readHead reads and decodes the head alone.
func (e *Engine) readHead(ctx context.Context, cert []byte) (*wireHead, error) {
	it, err := e.store.Get(ctx, HeadKey(cert))
	if err != nil {
		return nil, fmt.Errorf("tracking: reading record head: %w", err)
	}
	return decodeHead(it.Value, cert)
}

// layout is what an Engine remembers of a record's layout, to route
// events and queries without reading the head first: whether it is
// sharded, the shards its head lists, and the recipients it keeps inline
// (final once it is sharded; at most InlineRecipients).
type layout struct {
	sharded bool
	mask    uint32
	inline  []string
}

func layoutOf(h *wireHead) layout {
	l := layout{sharded: h.Sharded, mask: h.ShardMask}
	if h.Sharded && len(h.Rcpts) > 0 {
		l.inline = make([]string, len(h.Rcpts))
		for i := range h.Rcpts {
			l.inline[i] = h.Rcpts[i].Final
		}
	}
	return l
}

func (l layout) isInline(addr string) bool {
	for _, a := range l.inline {
		if a == addr {
			return true
		}
	}
	return false
}

// layoutCache remembers, per record, the layout last seen in its head.
// It is a hint: a stale entry costs one more round trip, never a wrong
// answer (an event looks in the shard for a recipient the head does not
// hold, and a query reads whatever the head lists). It is bounded by
// clearing it when full.
type layoutCache struct {
	mu sync.Mutex
	m  map[string]layout
}

const layoutCacheSize = 4096

func (c *layoutCache) get(k string) (layout, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *layoutCache) put(k string, v layout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= layoutCacheSize {
		c.m = make(map[string]layout)
	}
	c.m[k] = v
}

// authenticate loads the record of SHA1(secret) and checks its envelope
// ID in constant time. A missing record, an undecodable head and a
// different envelope ID all give ErrNotFound after the same comparison.
func (e *Engine) authenticate(ctx context.Context, envelopeID string, secret mtrk.Secret) (*wireHead, []*wireShard, error) {
	cert := []byte(secret.Certifier())
	h, shards, err := e.load(ctx, cert, false)
	if err != nil {
		return nil, nil, err
	}
	stored := ""
	if h != nil {
		stored = h.EnvID
	}
	want := sha256.Sum256([]byte(envelopeID))
	have := sha256.Sum256([]byte(stored))
	ok := subtle.ConstantTimeCompare(want[:], have[:])
	ok &= subtle.ConstantTimeEq(int32(len(envelopeID)), int32(len(stored)))
	if h == nil || ok != 1 {
		return nil, nil, ErrNotFound
	}
	return h, shards, nil
}

// Track answers a tracking query (RFC 3887 TRACK): envelopeID is the
// ENVID and secret the tracking secret A the user presents. The record is
// found under SHA1(secret) and returned only if its envelope ID matches
// (compared in constant time). An unknown envelope ID and a wrong secret
// both give ErrNotFound. Store failures are returned wrapped (they match
// trackstore.ErrUnavailable), never as ErrNotFound.
func (e *Engine) Track(ctx context.Context, envelopeID string, secret mtrk.Secret) (*Record, error) {
	h, shards, err := e.authenticate(ctx, envelopeID, secret)
	if err != nil {
		return nil, err
	}
	return buildRecord(h, shards), nil
}

// Lookup is the privileged lookup by tracking ID (certifier) for
// administrators: no secret and no envelope ID. It returns whatever
// survives, with Record.HeadMissing set when only shards remain, and
// ErrNotFound when nothing does. Never expose it to MTQP clients.
func (e *Engine) Lookup(ctx context.Context, cert mtrk.Certifier) (*Record, error) {
	h, shards, err := e.load(ctx, cert, true)
	if err != nil {
		return nil, err
	}
	if h == nil && len(shards) == 0 {
		return nil, ErrNotFound
	}
	return buildRecord(h, shards), nil
}

// PendingRecall lists the recipients of ref's queue that a recall has
// claimed and that the queue has not yet confirmed removed. A queue polls
// it for messages it is holding (which see no BeginDelivery until
// released), removes the recipients durably and calls Recalled.
func (e *Engine) PendingRecall(ctx context.Context, ref Ref) ([]string, error) {
	h, shards, err := e.load(ctx, ref.Certifier, true)
	if err != nil {
		return nil, err
	}
	var out []string
	pick := func(rs []wireRcpt) {
		for _, r := range rs {
			if r.Action == StateRecalling && r.OwnerMTA == e.owner() && r.Queue == ref.QueueID {
				out = append(out, r.Final)
			}
		}
	}
	if h != nil {
		pick(h.Rcpts)
	}
	for _, s := range shards {
		pick(s.Rcpts)
	}
	return out, nil
}
