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

// load reads the record for cert. It fetches the head together with the
// shards it last saw listed for this certifier (all ShardCount when it
// does not know), in one GetMulti, and then any further shards the head
// lists. A head that is absent or undecodable is returned nil;
// undecodable shards are left out (and so reported missing when the head
// lists them).
func (e *Engine) load(ctx context.Context, cert []byte) (*wireHead, []*wireShard, error) {
	headKey := HeadKey(cert)
	guess, known := e.masks.get(headKey)
	if !known {
		guess = 1<<ShardCount - 1
	}
	keys := append(make([]string, 0, 1+ShardCount), headKey)
	for i := 0; i < ShardCount; i++ {
		if guess&(1<<i) != 0 {
			keys = append(keys, ShardKey(cert, i))
		}
	}
	items, err := e.store.GetMulti(ctx, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("tracking: reading record: %w", err)
	}
	var h *wireHead
	if it, ok := items[headKey]; ok {
		h, err = decodeHead(it.Value, cert)
		if err != nil {
			e.log.Warn("tracking: unreadable record head", "key", headKey, "err", err)
			h = nil
		}
	}
	if h != nil {
		e.masks.put(headKey, h.ShardMask)
		if extra := h.ShardMask &^ guess; extra != 0 {
			more := make([]string, 0, ShardCount)
			for i := 0; i < ShardCount; i++ {
				if extra&(1<<i) != 0 {
					more = append(more, ShardKey(cert, i))
				}
			}
			got, err := e.store.GetMulti(ctx, more)
			if err != nil {
				return nil, nil, fmt.Errorf("tracking: reading record: %w", err)
			}
			for k, v := range got {
				items[k] = v
			}
		}
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

// maskCache remembers, per record, the shard mask last seen in its head,
// so that a query fetches only those shards in its first round trip. It
// is a hint: a stale mask costs one more round trip, never a wrong answer
// (shards the head does not list are fetched when it is unknown). It is
// bounded by clearing it when full.
type maskCache struct {
	mu sync.Mutex
	m  map[string]uint32
}

const maskCacheSize = 4096

func (c *maskCache) get(k string) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *maskCache) put(k string, v uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maskCacheSize {
		c.m = make(map[string]uint32)
	}
	c.m[k] = v
}

// authenticate loads the record of SHA1(secret) and checks its envelope
// ID in constant time. A missing record, an undecodable head and a
// different envelope ID all give ErrNotFound after the same comparison.
func (e *Engine) authenticate(ctx context.Context, envelopeID string, secret mtrk.Secret) (*wireHead, []*wireShard, error) {
	cert := []byte(secret.Certifier())
	h, shards, err := e.load(ctx, cert)
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
	h, shards, err := e.load(ctx, cert)
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
	_, shards, err := e.load(ctx, ref.Certifier)
	if err != nil {
		if errors.Is(err, trackstore.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, s := range shards {
		for _, r := range s.Rcpts {
			if r.Action == StateRecalling && r.OwnerMTA == e.owner() && r.Queue == ref.QueueID {
				out = append(out, r.Final)
			}
		}
	}
	return out, nil
}
