package tracking

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgtrack/msgtrack/trackstore"
)

// Defaults of a zero Options, the reference product's values.
const (
	// DefaultRetries is tracking_retries.
	DefaultRetries = 5
	// DefaultRetryDelay is tracking_retry_delay (10 centiseconds).
	DefaultRetryDelay = 100 * time.Millisecond
	// DefaultMaxRetryHorizon bounds how far a Delayed event's
	// Will-Retry-Until may push the record's expiry: at most this long
	// from now, plus the tracking timeout. It equals the product's
	// trackingtimeoutmax default (14 days, mtrk.DefaultLimits.Max), the
	// longest the product keeps tracking data at all, and is well above
	// real queue lifetimes (RFC 5321 section 4.5.4.1 suggests giving up
	// after 4 to 5 days). See the package documentation, "Expiry".
	DefaultMaxRetryHorizon = 14 * 24 * time.Hour
	// DefaultJitter is the fraction by which each retry delay varies
	// (uniformly in [delay*(1-j), delay*(1+j))).
	DefaultJitter = 0.5
)

// Debug levels for Options.DebugLevel (tracking_debug).
const (
	// DebugEvents logs every event applied, at slog.LevelDebug.
	DebugEvents = 1
	// DebugWrites also logs every store round trip and conflict.
	DebugWrites = 2
)

// Errors of the engine. Store errors are passed through wrapped, so
// errors.Is(err, trackstore.ErrUnavailable) and the like work.
var (
	// ErrNotFound is the answer to a query or recall whose envelope ID or
	// secret does not match a record. The two cases are not
	// distinguished.
	ErrNotFound = errors.New("tracking: no such tracked message")
	// ErrForeignRecord is returned by Accepted for a message that arrived
	// over a channel that is not internal when a record created by
	// another MTA or queue already exists under its certifier: the
	// engine refuses to write into it (see the package documentation,
	// "Hops").
	ErrForeignRecord = errors.New("tracking: a record created elsewhere exists for this certifier; not merging an external arrival")
)

// Queue is what the MTA's queue implements so that a recall can withdraw
// recipients. Remove must remove the recipients of messageID durably (the
// spool no longer delivers them, even after a restart) and return the ones
// it removed. A recipient it does not return is one the queue could not
// withdraw (already sent, or being sent right now). Remove must be safe to
// call again for recipients already removed (return them again).
type Queue interface {
	Remove(ctx context.Context, messageID string, recipients []string) (removed []string, err error)
}

// Options configure an Engine. The zero value (with a Store) is usable.
type Options struct {
	// Retries is how many times a failed read-modify-write round is
	// retried (tracking_retries): every event gets at most 1+Retries
	// attempts. 0 means DefaultRetries, negative none.
	Retries int
	// RetryDelay is the base pause between attempts
	// (tracking_retry_delay); 0 means DefaultRetryDelay. After a lost
	// compare-and-swap the first retry is immediate (the other writer has
	// just finished); retry k >= 2, and the first retry after an
	// unreachable store, waits RetryDelay × 2^(k-2) (at most 8 ×
	// RetryDelay), jittered. See the package documentation, "Writes,
	// retries, group commit", for the whole schedule.
	RetryDelay time.Duration
	// Jitter is the relative spread of every retry pause; 0 means
	// DefaultJitter, negative none.
	Jitter float64
	// FailClosed makes BeginDelivery answer ClaimDefer instead of
	// ClaimUnknown when the store cannot be reached, so the queue waits
	// rather than delivers. The default (fail-open) never stops mail.
	FailClosed bool
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// DebugLevel is tracking_debug: 0 quiet, DebugEvents, DebugWrites.
	DebugLevel int
	// ReportingMTA names this MTA (Reporting-MTA, without "dns;"). It
	// identifies the queue that owns a recipient, so every MTA sharing a
	// store must use a distinct name.
	ReportingMTA string
	// Queue is this MTA's queue, used by Recall for recipients this MTA
	// owns. Nil: recalls leave them pending until BeginDelivery or
	// PendingRecall tells the queue.
	Queue Queue
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxRetryHorizon bounds the expiry extension of a Delayed event: a
	// Will-Retry-Until later than now + MaxRetryHorizon counts as
	// now + MaxRetryHorizon. 0 means DefaultMaxRetryHorizon.
	MaxRetryHorizon time.Duration
}

// Stats are counters a caller can read at any time (Engine.Stats).
type Stats struct {
	// Events counts event calls; Duplicates those skipped because their
	// ID was already applied; Untracked those that found nothing of
	// theirs to change (record, shard or recipient missing, or owned by
	// another queue).
	Events, Duplicates, Untracked uint64
	// Rounds counts read-modify-write rounds; Writes successful writes;
	// Merged events that rode along in another event's write (group
	// commit); Conflicts lost compare-and-swaps; Failures events that
	// failed after the last retry.
	Rounds, Writes, Merged, Conflicts, Failures uint64
	// Retried counts rounds that were retries; MostAttempts is the
	// largest number of attempts any one item update needed (success or
	// not), a measure of how close contention came to Options.Retries.
	Retried, MostAttempts uint64
}

type counters struct {
	events, duplicates, untracked               atomic.Uint64
	rounds, writes, merged, conflicts, failures atomic.Uint64
	retried, mostAttempts                       atomic.Uint64
}

// Engine applies tracking events to a shared store, answers queries and
// runs recalls. It is safe for concurrent use; several Engines (in one
// process or many) may share a store.
type Engine struct {
	store  trackstore.Store
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	retry  int
	delay  time.Duration
	jitter float64
	// horizon is Options.MaxRetryHorizon with its default applied.
	horizon time.Duration
	c       counters

	// wid tags the items this Engine writes, so that it can tell when
	// another writer is active on a key.
	wid uint64
	// contendedFor is how long a key counts as contended after the last
	// sign of another writer.
	contendedFor time.Duration

	mu      sync.Mutex
	queues  map[string]*keyQueue
	keys    map[string]*keyState
	layouts layoutCache
}

// New returns an engine over store.
func New(store trackstore.Store, opts Options) *Engine {
	e := &Engine{store: store, opts: opts, queues: make(map[string]*keyQueue), keys: make(map[string]*keyState)}
	e.wid = rand.Uint64() | 1
	e.log = opts.Logger
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.now = opts.Now
	if e.now == nil {
		e.now = time.Now
	}
	switch {
	case opts.Retries == 0:
		e.retry = DefaultRetries
	case opts.Retries > 0:
		e.retry = opts.Retries
	}
	e.horizon = opts.MaxRetryHorizon
	if e.horizon <= 0 {
		e.horizon = DefaultMaxRetryHorizon
	}
	e.delay = opts.RetryDelay
	if e.delay <= 0 {
		e.delay = DefaultRetryDelay
	}
	switch {
	case opts.Jitter == 0:
		e.jitter = DefaultJitter
	case opts.Jitter > 0:
		e.jitter = min(opts.Jitter, 1)
	}
	// Contended for twice the longest a retried round can take, and at
	// least a second.
	var sched time.Duration
	for k := 1; k <= e.retry; k++ {
		sched += e.delay << min(max(k-2, 0), maxBackoffDoublings) * 3 / 2
	}
	e.contendedFor = max(time.Second, 2*sched)
	return e
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Events: e.c.events.Load(), Duplicates: e.c.duplicates.Load(), Untracked: e.c.untracked.Load(),
		Rounds: e.c.rounds.Load(), Writes: e.c.writes.Load(), Merged: e.c.merged.Load(),
		Conflicts: e.c.conflicts.Load(), Failures: e.c.failures.Load(),
		Retried: e.c.retried.Load(), MostAttempts: e.c.mostAttempts.Load(),
	}
}

// jittered returns d varied by the jitter fraction.
func (e *Engine) jittered(d time.Duration) time.Duration {
	if e.jitter == 0 {
		return d
	}
	f := 1 - e.jitter + 2*e.jitter*rand.Float64()
	return time.Duration(float64(d) * f)
}

// debugging reports whether tracking_debug is at least level. Callers
// test it before building a log record's arguments, which cost allocations
// on the hot path even when nothing is logged.
func (e *Engine) debugging(level int) bool { return e.opts.DebugLevel >= level }

// ttlFor converts an absolute expiry (Unix seconds) into a store TTL of at
// least one second.
func (e *Engine) ttlFor(expires int64) time.Duration {
	if expires == 0 {
		return 0
	}
	d := time.Unix(expires, 0).Sub(e.now())
	if d < time.Second {
		d = time.Second
	}
	return d.Round(time.Second)
}

// retryable reports whether a store error may go away on retry.
func retryable(err error) bool {
	return errors.Is(err, trackstore.ErrConflict) || errors.Is(err, trackstore.ErrExists) ||
		errors.Is(err, trackstore.ErrUnavailable) || errors.Is(err, trackstore.ErrNotFound)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return trackstore.Unavailable(ctx.Err())
	}
}
