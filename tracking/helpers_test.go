package tracking

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	t      *testing.T
	clock  *clock
	store  *memstore.Store
	secret mtrk.Secret
	cert   mtrk.Certifier
	envid  string
	logs   *syncBuf
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := newClock()
	s, err := mtrk.NewSecret()
	require.NoError(t, err)
	return &fixture{t: t, clock: c, store: memstore.New(memstore.Options{Now: c.Now}), secret: s, cert: s.Certifier(), envid: "env-" + s.String()[:8], logs: &syncBuf{}}
}

// engine returns an engine for the named MTA on the fixture's store.
func (f *fixture) engine(mta string, mod ...func(*Options)) *Engine {
	o := Options{ReportingMTA: mta, Now: f.clock.Now, RetryDelay: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mod {
		m(&o)
	}
	return New(f.store, o)
}

func rcpts(n int) []AcceptedRecipient {
	out := make([]AcceptedRecipient, n)
	for i := range out {
		out[i] = AcceptedRecipient{Address: fmt.Sprintf("user%d@example.org", i)}
	}
	return out
}

func addrsOf(rs []AcceptedRecipient) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Address
	}
	return out
}

func (f *fixture) accept(e *Engine, queue string, rs []AcceptedRecipient, mod ...func(*Accept)) Ref {
	f.t.Helper()
	a := Accept{Ref: Ref{Certifier: f.cert, QueueID: queue}, EventID: "acc-" + queue, EnvelopeID: f.envid,
		Sender: "sender@example.com", Recipients: rs, Timeout: mtrk.DefaultLimits.Default}
	for _, m := range mod {
		m(&a)
	}
	require.NoError(f.t, e.Accepted(context.Background(), a))
	return a.Ref
}

// itemKey returns the key of the store item that holds recipient addr:
// the head when it is kept inline, else its shard.
func (f *fixture) itemKey(addr string) string {
	f.t.Helper()
	it, err := f.store.Get(context.Background(), HeadKey(f.cert))
	require.NoError(f.t, err)
	h, err := decodeHead(it.Value, f.cert)
	require.NoError(f.t, err)
	if h.find(addr) >= 0 {
		return HeadKey(f.cert)
	}
	return ShardKey(f.cert, ShardOf(addr))
}

func (f *fixture) track(e *Engine) *Record {
	f.t.Helper()
	rec, err := e.Track(context.Background(), f.envid, f.secret)
	require.NoError(f.t, err)
	return rec
}

func byAddr(rec *Record) map[string]Recipient {
	m := make(map[string]Recipient, len(rec.Recipients))
	for _, r := range rec.Recipients {
		m[r.FinalRecipient] = r
	}
	return m
}

// faultStore wraps a Store and injects failures.
type faultStore struct {
	trackstore.Store
	down      atomic.Bool  // every call fails with ErrUnavailable
	conflict  atomic.Bool  // every CompareAndSwap/Add fails with ErrConflict
	cas       atomic.Int64 // CompareAndSwap+Add calls
	gate      chan struct{}
	inGet     chan struct{}
	gateArmed atomic.Bool
	// hook, if set, runs on every CompareAndSwap/Add with the call's
	// number (after cas is counted) and overrides the answer when it
	// returns an error.
	hook func(n int64) error
}

func (s *faultStore) fail() error {
	if s.down.Load() {
		return trackstore.Unavailable(fmt.Errorf("injected outage"))
	}
	return nil
}

func (s *faultStore) Get(ctx context.Context, key string) (trackstore.Item, error) {
	if s.gateArmed.CompareAndSwap(true, false) {
		s.inGet <- struct{}{}
		<-s.gate
	}
	if err := s.fail(); err != nil {
		return trackstore.Item{}, err
	}
	return s.Store.Get(ctx, key)
}

func (s *faultStore) GetMulti(ctx context.Context, keys []string) (map[string]trackstore.Item, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.GetMulti(ctx, keys)
}

func (s *faultStore) Add(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	n := s.cas.Add(1)
	if s.hook != nil {
		if err := s.hook(n); err != nil {
			return err
		}
	}
	if err := s.fail(); err != nil {
		return err
	}
	if s.conflict.Load() {
		return trackstore.ErrExists
	}
	return s.Store.Add(ctx, key, v, ttl)
}

func (s *faultStore) CompareAndSwap(ctx context.Context, it trackstore.Item, ttl time.Duration) error {
	n := s.cas.Add(1)
	if s.hook != nil {
		if err := s.hook(n); err != nil {
			return err
		}
	}
	if err := s.fail(); err != nil {
		return err
	}
	if s.conflict.Load() {
		return trackstore.ErrConflict
	}
	return s.Store.CompareAndSwap(ctx, it, ttl)
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
