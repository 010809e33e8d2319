// Package scheduler runs the reference MTA's queue: it releases held
// messages at their RFC 4865 release time, hands due recipients to a
// delivery function, retries temporary failures with exponential backoff
// and fails recipients whose queue lifetime has run out.
//
// # What is due
//
// A message is held while now is before its HoldUntil (RFC 4865 section 3:
// the message is not released before that time). Once released, a Queued
// recipient is due at once and a Deferred one at its NextAttempt. Every
// state change goes through the spool (Claim before an attempt, Update
// after it), which is what makes a recall authoritative: a recipient the
// spool has recalled is never claimed.
//
// # Retries and lifetime
//
// After the n-th temporary failure a recipient is retried after
// InitialBackoff * 2^(n-1), capped at MaxBackoff (RFC 5321 section 4.5.4.1
// asks for at least 30 minutes between retries in general; the defaults
// follow that). The queue lifetime (RFC 5321 section 4.5.4.1 suggests at
// least 4-5 days) runs from the later of arrival and release, so a long
// FUTURERELEASE hold does not eat into it. The last retry is moved to the
// end of the lifetime; a temporary failure at or after that instant fails
// the recipient with a Reason beginning with "expired", which is the
// caller's cue for an RFC 3464 "failed" DSN (status 4.4.7).
//
// # Design
//
// The scheduler keeps no queue of its own: each time it wakes (a timer, a
// Notify, a finished delivery) it scans spool.List and sets one timer for
// the earliest future due time. That is O(messages) per wake, which is
// fine for the reference MTA's queue sizes and means a restart needs no
// extra recovery: whatever the spool holds is resumed. Deliveries run one
// goroutine per message (all of its due recipients together), at most
// Concurrency at a time.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/spool"
)

// Outcome is the result of one delivery attempt for one recipient.
type Outcome int

// The outcomes a DeliverFunc reports.
const (
	// Delivered: delivered locally or accepted by the next hop.
	Delivered Outcome = iota + 1
	// Deferred: a temporary failure; retry later.
	Deferred
	// Failed: a permanent failure; no retry.
	Failed
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Deferred:
		return "deferred"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is a DeliverFunc's report for one recipient.
type Result struct {
	// Rcpt is the recipient address, as passed to the DeliverFunc.
	Rcpt string
	// Outcome says what happened.
	Outcome Outcome
	// Reason explains a failure or deferral (an SMTP reply, an I/O error).
	// The scheduler stores it in the spool; for an expired recipient it
	// prefixes "expired: ".
	Reason string
	// Expired is set by the scheduler (never by a DeliverFunc) on a
	// Failed result that failed because the queue lifetime ran out: the
	// cue for a DSN with status 4.4.7 (RFC 3463) rather than 5.x.x.
	Expired bool
}

// DeliverFunc attempts delivery of env to rcpts (all claimed, state
// Delivering) and reports one Result per recipient. A recipient without a
// result is treated as Deferred. It must honour ctx: when Stop gives up
// waiting, ctx is cancelled and the function should return promptly
// (reporting Deferred for anything not finished).
type DeliverFunc func(ctx context.Context, env *spool.Envelope, rcpts []string) []Result

// ResultFunc is told the outcome of every attempt once it is durable in
// the spool, with the envelope as it now stands and the results (expired
// recipients have Outcome Failed). The message body is still in the spool
// (Spool.Body), so this is where to build a DSN or update a tracking
// record. When the message is Done it is removed after ResultFunc returns
// (or after Options.Retain).
type ResultFunc func(ctx context.Context, env *spool.Envelope, results []Result)

// Options configure a Scheduler. Spool and Deliver are required.
type Options struct {
	// Spool is the queue to run.
	Spool *spool.Spool
	// Deliver attempts deliveries.
	Deliver DeliverFunc
	// OnResult, if set, is called after each attempt (see ResultFunc).
	OnResult ResultFunc
	// Clock defaults to RealClock().
	Clock Clock
	// Concurrency is the maximum number of messages being delivered at
	// once; default 4.
	Concurrency int
	// InitialBackoff is the delay after the first temporary failure;
	// default 30 minutes.
	InitialBackoff time.Duration
	// MaxBackoff caps the delay between retries; default 4 hours.
	MaxBackoff time.Duration
	// MaxLifetime is how long a message may stay queued after arrival
	// or release; default 5 days.
	MaxLifetime time.Duration
	// Retain keeps a finished message (every recipient delivered, failed
	// or recalled) in the spool this long after its last recipient
	// change, so that a repeated recall or a tracking query still finds
	// the spool's answer; default 0, remove at once. The spool's
	// Options.Now and Clock should be the same clock.
	Retain time.Duration
	// Logger receives delivery logs; nil discards them.
	Logger *slog.Logger
}

// Stats are counters a caller can read and publish.
type Stats struct {
	// Attempts counts recipient delivery attempts started.
	Attempts uint64
	// Delivered, Deferred and Failed count attempt outcomes.
	Delivered, Deferred, Failed uint64
	// Expired counts recipients failed because their lifetime ran out
	// (also counted in Failed).
	Expired uint64
	// InFlight is the number of messages being delivered now.
	InFlight int
}

// Scheduler runs deliveries from a spool. Create it with New, then Start
// and eventually Stop it.
type Scheduler struct {
	opts Options
	log  *slog.Logger

	kick     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}
	started  atomic.Bool
	stopOnce sync.Once

	deliverCtx    context.Context
	cancelDeliver context.CancelFunc
	wg            sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]bool

	attempts, delivered, deferred, failed, expired atomic.Uint64
}

// New checks opts, fills in defaults and returns a stopped Scheduler.
func New(opts Options) (*Scheduler, error) {
	if opts.Spool == nil || opts.Deliver == nil {
		return nil, errors.New("scheduler: Spool and Deliver are required")
	}
	if opts.Clock == nil {
		opts.Clock = RealClock()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = 30 * time.Minute
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 4 * time.Hour
	}
	if opts.MaxBackoff < opts.InitialBackoff {
		opts.MaxBackoff = opts.InitialBackoff
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = 5 * 24 * time.Hour
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		opts: opts, log: log,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), loopDone: make(chan struct{}),
		inflight: map[string]bool{},
	}, nil
}

// Start begins running the queue in the background: messages already in
// the spool (held, queued or deferred before a restart) are resumed.
// Deliveries get a context derived from ctx (its values, and its
// cancellation, which acts like a Stop that does not wait). Start may be
// called once.
func (s *Scheduler) Start(ctx context.Context) {
	if !s.started.CompareAndSwap(false, true) {
		panic("scheduler: Start called twice")
	}
	s.deliverCtx, s.cancelDeliver = context.WithCancel(ctx)
	go s.loop()
}

// Notify wakes the scheduler to rescan the spool; call it after Put (so a
// message that is due now goes out at once) or after changing a hold.
func (s *Scheduler) Notify() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Stop stops starting deliveries and waits for those in flight to finish
// and be recorded. If ctx ends first, the deliveries' context is cancelled,
// Stop still waits for them to return (their results are recorded) and
// returns ctx's error. Stop before Start returns nil.
func (s *Scheduler) Stop(ctx context.Context) error {
	if !s.started.Load() {
		return nil
	}
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.loopDone
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancelDeliver()
		return nil
	case <-ctx.Done():
		s.cancelDeliver()
		<-done
		return ctx.Err()
	}
}

// Stats returns the current counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	n := len(s.inflight)
	s.mu.Unlock()
	return Stats{
		Attempts: s.attempts.Load(), Delivered: s.delivered.Load(), Deferred: s.deferred.Load(),
		Failed: s.failed.Load(), Expired: s.expired.Load(), InFlight: n,
	}
}

type work struct {
	id    string
	rcpts []string
}

func (s *Scheduler) loop() {
	defer close(s.loopDone)
	var timer Timer
	for {
		next, due := s.scan(s.opts.Clock.Now())
		for _, w := range due {
			if !s.launch(w) {
				break // at the concurrency limit; a finishing delivery kicks us
			}
		}
		var tc <-chan time.Time
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if !next.IsZero() {
			timer = s.opts.Clock.TimerAt(next)
			tc = timer.C()
		}
		select {
		case <-s.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-s.deliverCtx.Done():
			return
		case <-s.kick:
		case <-tc:
		}
	}
}

// lifetimeEnd is when a message's recipients expire.
func (s *Scheduler) lifetimeEnd(env *spool.Envelope) time.Time {
	start := env.Arrival
	if env.HoldUntil.After(start) {
		start = env.HoldUntil
	}
	return start.Add(s.opts.MaxLifetime)
}

// scan returns the earliest future due time (zero if none) and the work
// due now. It also removes messages that are finished (every recipient
// recalled, for instance).
func (s *Scheduler) scan(now time.Time) (time.Time, []work) {
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var due []work
	for _, env := range s.opts.Spool.List() {
		s.mu.Lock()
		busy := s.inflight[env.ID]
		s.mu.Unlock()
		if busy {
			continue
		}
		if env.Done() {
			if until := s.retainUntil(env); now.Before(until) {
				earliest(until)
				continue
			}
			if err := s.opts.Spool.Remove(context.WithoutCancel(s.deliverCtx), env.ID); err != nil && !errors.Is(err, spool.ErrNotFound) {
				s.log.Error("scheduler: removing finished message", "id", env.ID, "err", err)
			}
			continue
		}
		if env.Held(now) {
			earliest(env.HoldUntil)
			continue
		}
		var rcpts []string
		for _, r := range env.Recipients {
			switch {
			case r.State == spool.Queued, r.State == spool.Deferred && !r.NextAttempt.After(now):
				rcpts = append(rcpts, r.Addr)
			case r.State == spool.Deferred:
				earliest(r.NextAttempt)
			}
		}
		if len(rcpts) > 0 {
			due = append(due, work{env.ID, rcpts})
		}
	}
	return next, due
}

// retainUntil is when a finished message may be removed.
func (s *Scheduler) retainUntil(env *spool.Envelope) time.Time {
	if s.opts.Retain <= 0 {
		return time.Time{}
	}
	var last time.Time
	for _, r := range env.Recipients {
		if r.Updated.After(last) {
			last = r.Updated
		}
	}
	return last.Add(s.opts.Retain)
}

// launch starts a delivery unless the concurrency limit is reached.
func (s *Scheduler) launch(w work) bool {
	s.mu.Lock()
	if len(s.inflight) >= s.opts.Concurrency {
		s.mu.Unlock()
		return false
	}
	s.inflight[w.id] = true
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.inflight, w.id)
			s.mu.Unlock()
			s.Notify()
		}()
		s.run(w)
	}()
	return true
}

// run claims, delivers and records one message's due recipients.
func (s *Scheduler) run(w work) {
	// Spool writes must complete even when deliveries are being cancelled:
	// a claim without its outcome would repeat the attempt after restart.
	ioctx := context.WithoutCancel(s.deliverCtx)
	claimed, err := s.opts.Spool.ClaimMany(ioctx, w.id, w.rcpts)
	if err != nil {
		if !errors.Is(err, spool.ErrNotFound) {
			s.log.Error("scheduler: claim failed", "id", w.id, "err", err)
		}
		return
	}
	if len(claimed) == 0 {
		return // recalled (or otherwise taken) since the scan
	}
	s.attempts.Add(uint64(len(claimed)))
	env, err := s.opts.Spool.Get(w.id)
	if err != nil {
		s.log.Error("scheduler: claimed message vanished", "id", w.id, "err", err)
		return
	}
	results := s.deliver(env, claimed)

	now := s.opts.Clock.Now()
	end := s.lifetimeEnd(env)
	var final []Result
	after, err := s.opts.Spool.Update(ioctx, w.id, func(e *spool.Envelope) error {
		final = final[:0]
		for _, addr := range claimed {
			r := e.Recipient(addr)
			if r == nil || r.State != spool.Delivering {
				continue
			}
			res, ok := results[strings.ToLower(addr)]
			if !ok {
				res = Result{Rcpt: addr, Outcome: Deferred, Reason: "no result from delivery"}
			}
			res.Rcpt, res.Expired = r.Addr, false
			r.Updated = now
			switch res.Outcome {
			case Delivered:
				r.State, r.Reason, r.NextAttempt = spool.Delivered, res.Reason, time.Time{}
			case Failed:
				r.State, r.Reason, r.NextAttempt = spool.Failed, res.Reason, time.Time{}
			default:
				if !now.Before(end) {
					res.Outcome, res.Expired = Failed, true
					res.Reason = "expired: " + res.Reason
					r.State, r.Reason, r.NextAttempt = spool.Failed, res.Reason, time.Time{}
				} else {
					res.Outcome = Deferred
					next := now.Add(s.backoff(r.Attempts))
					if next.After(end) {
						next = end
					}
					r.State, r.Reason, r.NextAttempt = spool.Deferred, res.Reason, next
				}
			}
			final = append(final, res)
		}
		return nil
	})
	if err != nil {
		// The recipients stay Delivering in the spool; the next Open
		// requeues them (at-least-once).
		s.log.Error("scheduler: recording results failed", "id", w.id, "err", err)
		return
	}
	for _, r := range final {
		s.count(r)
		s.log.Info("delivery", "id", w.id, "rcpt", r.Rcpt, "outcome", r.Outcome.String(), "reason", r.Reason)
	}
	if s.opts.OnResult != nil {
		s.opts.OnResult(ioctx, after, final)
	}
	if after.Done() && s.opts.Retain <= 0 {
		if err := s.opts.Spool.Remove(ioctx, w.id); err != nil && !errors.Is(err, spool.ErrNotFound) {
			s.log.Error("scheduler: removing finished message", "id", w.id, "err", err)
		}
	}
}

// deliver calls the DeliverFunc, turning a panic into Deferred results, and
// indexes the results by lower-cased address.
func (s *Scheduler) deliver(env *spool.Envelope, rcpts []string) (out map[string]Result) {
	out = map[string]Result{}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("scheduler: delivery panicked", "id", env.ID, "panic", p)
			out = map[string]Result{}
			for _, r := range rcpts {
				out[strings.ToLower(r)] = Result{Rcpt: r, Outcome: Deferred, Reason: fmt.Sprint("internal error: ", p)}
			}
		}
	}()
	for _, r := range s.opts.Deliver(s.deliverCtx, env, rcpts) {
		out[strings.ToLower(r.Rcpt)] = r
	}
	return out
}

func (s *Scheduler) count(r Result) {
	switch r.Outcome {
	case Delivered:
		s.delivered.Add(1)
	case Deferred:
		s.deferred.Add(1)
	case Failed:
		s.failed.Add(1)
		if r.Expired {
			s.expired.Add(1)
		}
	}
}

// backoff is the delay after the attempts-th attempt failed temporarily.
func (s *Scheduler) backoff(attempts int) time.Duration {
	d := s.opts.InitialBackoff
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= s.opts.MaxBackoff {
			return s.opts.MaxBackoff
		}
	}
	return min(d, s.opts.MaxBackoff)
}

// Backoff returns the retry delay the scheduler uses after the given number
// of failed attempts (exported for documentation and the lead's logs).
func (s *Scheduler) Backoff(attempts int) time.Duration { return s.backoff(attempts) }
