package tracking

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgtrack/msgtrack/mtrk"
)

// Ref names one MTA's copy of a tracked message: the certifier (the
// record's key) and the MTA's own queue identifier of the message. Every
// event carries one; an event changes only recipients whose current owner
// is this MTA (Options.ReportingMTA) and this QueueID.
type Ref struct {
	Certifier mtrk.Certifier
	QueueID   string
}

// AcceptedRecipient is one recipient of an accepted message.
type AcceptedRecipient struct {
	// Address is the RCPT TO address at this hop.
	Address string
	// Original is the ORCPT (RFC 3461) or the address before an earlier
	// expansion; empty when the same as Address.
	Original string
}

// Accept describes a message this MTA accepted (end of DATA).
type Accept struct {
	Ref
	// EventID makes the call idempotent; a spool replay passes the same.
	EventID string
	// EnvelopeID is the DSN ENVID (or one generated, trackinggenerate).
	EnvelopeID string
	// Sender is the MAIL FROM address.
	Sender     string
	Recipients []AcceptedRecipient
	// Timeout is the tracking timeout, already clamped (mtrk.Limits);
	// zero means mtrk.DefaultLimits.Default.
	Timeout time.Duration
	// HoldUntil is the FUTURERELEASE release time; zero for none.
	HoldUntil time.Time
	// Internal is true when the message came from another MTA of the
	// deployment over a channel marked trackinginternal. Only then does
	// the engine merge into an existing record as a further hop.
	Internal bool
	// Arrival is the acceptance time; zero means now.
	Arrival time.Time
}

// Outcome is one recipient's result of a delivery attempt.
type Outcome struct {
	Recipient string
	// Status is the RFC 3463 code; empty means a default per event
	// (2.0.0 delivered and transferred, 2.1.9 relayed, 4.0.0 delayed,
	// 5.0.0 failed).
	Status     string
	RemoteMTA  string
	Diagnostic string
	// NextAttempt and WillRetryUntil are for Delayed.
	NextAttempt    time.Time
	WillRetryUntil time.Time
}

// Child is one address produced by an alias or list expansion.
type Child struct {
	Address string
	// Tracked is true when the alias policy (trackingmultiple, single,
	// first) gave this child the certifier. List members never are.
	Tracked bool
}

// Claim is BeginDelivery's answer for one recipient.
type Claim int

// Claims.
const (
	// ClaimUnknown: the store has no state for this recipient of this
	// queue (never written, evicted, store unreachable with fail-open,
	// or owned by another queue). The queue decides from its own spool:
	// deliver unless the spool says recalled.
	ClaimUnknown Claim = iota
	// ClaimProceed: the recipient is now claimed for delivery by this
	// queue; a recall will report it in progress.
	ClaimProceed
	// ClaimRecalled: a recall claimed the recipient first. Do not
	// deliver; remove it from the spool durably, then call Recalled.
	ClaimRecalled
	// ClaimDone: the record already shows a final outcome (a replay).
	ClaimDone
	// ClaimDefer: the store is unreachable and Options.FailClosed is
	// set. Do not deliver now; try again later.
	ClaimDefer
)

// String returns the claim's name.
func (c Claim) String() string {
	switch c {
	case ClaimUnknown:
		return "unknown"
	case ClaimProceed:
		return "proceed"
	case ClaimRecalled:
		return "recalled"
	case ClaimDone:
		return "done"
	case ClaimDefer:
		return "defer"
	}
	return fmt.Sprintf("Claim(%d)", int(c))
}

// Disposition is what a successful dequeue from a channel means, the
// channel options trackinginternal (default), trackingrelayed and
// trackingdelivered.
type Disposition int

// Dispositions.
const (
	DispositionInternal Disposition = iota
	DispositionRelayed
	DispositionDelivered
)

func (e *Engine) owner() string { return e.opts.ReportingMTA }

func (e *Engine) failed(event, id string, cert []byte, err error) error {
	if err == nil {
		return nil
	}
	e.c.failures.Add(1)
	e.log.Warn("tracking: event not recorded", "event", event, "event_id", id, "mt", mtrk.Certifier(cert).String(), "err", err)
	return err
}

// groupByShard groups the indexes idx of addrs by shard.
func groupByShard(addrs []string, idx []int) map[int][]int {
	g := make(map[int][]int)
	for _, i := range idx {
		n := ShardOf(addrs[i])
		g[n] = append(g[n], i)
	}
	return g
}

func allIndexes(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func findRcpt(rs []wireRcpt, addr string) int {
	for i := range rs {
		if rs[i].Final == addr {
			return i
		}
	}
	return -1
}

// rcptsOf returns the recipient list of a head (inline recipients) or a
// shard, and the item's expiry.
func rcptsOf(d doc) (*[]wireRcpt, int64) {
	switch x := d.(type) {
	case *wireHead:
		return &x.Rcpts, x.Expires
	case *wireShard:
		return &x.Rcpts, x.Expires
	}
	return nil, 0
}

// rcptFn changes the existing recipient r, which is addrs[i], in an item
// expiring at exp, and reports whether it did.
type rcptFn func(r *wireRcpt, i int, exp int64) bool

// forRecipients applies fn to every existing recipient among addrs,
// wherever it lives: inline in the head, or in its shard. reset(idx)
// clears the results fn records for addrs[idx] (it runs before every
// attempt). onErr reports the indexes whose item could not be updated.
//
// Routing uses the layout cache: recipients of a record known to keep
// them all inline go to the head, of a sharded record to their shards
// (unless among its inline ones, a set that is final once the record is
// sharded), and of an unknown record to the head first, where its layout
// is learnt. It reports whether an op was skipped as a duplicate event.
// A recipient not found in the head of a sharded record, or
// of a record whose head is missing, is then looked for in its shard.
func (e *Engine) forRecipients(ctx context.Context, cert []byte, eventID string, addrs []string,
	reset func(idx []int), fn rcptFn, onErr func(idx []int, err error)) (dup bool) {
	headKey := HeadKey(cert)
	lay, known := e.layouts.get(headKey)
	var headIdx, shardIdx []int
	for i, a := range addrs {
		if !known || !lay.sharded || lay.isInline(a) {
			headIdx = append(headIdx, i)
		} else {
			shardIdx = append(shardIdx, i)
		}
	}
	found := make([]bool, len(addrs))
	mk := func(idx []int, head bool, seen *layout, exists *bool) *op {
		return &op{eventID: eventID, apply: func(d doc, ex bool) bool {
			for _, i := range idx {
				found[i] = false
			}
			reset(idx)
			if exists != nil {
				*exists = ex
			}
			if !ex {
				return false
			}
			if head {
				*seen = layoutOf(d.(*wireHead))
			}
			rs, exp := rcptsOf(d)
			changed := false
			for _, i := range idx {
				j := findRcpt(*rs, addrs[i])
				if j < 0 {
					continue
				}
				found[i] = true
				if fn(&(*rs)[j], i, exp) {
					changed = true
				}
			}
			return changed
		}}
	}
	if len(headIdx) > 0 {
		var seen layout
		var exists bool
		o := mk(headIdx, true, &seen, &exists)
		if err := e.submit(ctx, headKey, headKind(cert), o); err != nil {
			onErr(headIdx, err)
		} else {
			dup = dup || o.dup
			if exists {
				e.layouts.put(headKey, seen)
			}
			if !exists || seen.sharded {
				for _, i := range headIdx {
					if !found[i] {
						shardIdx = append(shardIdx, i)
					}
				}
			}
		}
	}
	for n, idx := range groupByShard(addrs, shardIdx) {
		o := mk(idx, false, nil, nil)
		if err := e.submit(ctx, ShardKey(cert, n), shardKind(cert, n), o); err != nil {
			onErr(idx, err)
			continue
		}
		dup = dup || o.dup
	}
	return dup
}

// Accepted records a message this MTA accepted, with its recipients, hold
// and timeout. The record's expiry is max(now, HoldUntil) + Timeout.
//
// With no record under the certifier, it creates one. With one, it adds
// this MTA as a further hop and takes ownership of the listed recipients
// only when a.Internal is true (or when the record already lists this
// MTA and queue: a replay). Otherwise it writes nothing and returns
// ErrForeignRecord; the MTA should carry on with the message untracked.
func (e *Engine) Accepted(ctx context.Context, a Accept) error {
	e.c.events.Add(1)
	cert := []byte(a.Certifier)
	now := e.now()
	arrival := a.Arrival
	if arrival.IsZero() {
		arrival = now
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = mtrk.DefaultLimits.Default
	}
	base := now
	if a.HoldUntil.After(base) {
		base = a.HoldUntil
	}
	exp := base.Add(timeout).Unix()
	addrs := make([]string, len(a.Recipients))
	for i, r := range a.Recipients {
		addrs[i] = r.Address
	}
	hop := wireHop{MTA: e.owner(), Queue: a.QueueID, Arrival: arrival.Unix(), Internal: a.Internal}
	var foreign bool
	var hopIndex int
	var toShard []int // recipients the head op sent to shards
	var seen layout
	var headFresh bool // this arrival created the head
	held := a.HoldUntil.After(now)
	// take applies this arrival to recipient w (existing) and reports
	// whether it changed it.
	take := func(w *wireRcpt, r AcceptedRecipient) bool {
		if w.OwnerMTA == e.owner() && w.Queue == a.QueueID {
			return false // replay
		}
		if !a.Internal {
			return false // never take over another queue's recipient from outside
		}
		state := StateQueued
		if w.RecallReq != 0 {
			state = StateRecalling
		}
		if w.Orig == "" {
			w.Orig = r.Original
		}
		w.Action, w.Status, w.RemoteMTA, w.Internal, w.NextAttempt = state, "", "", false, 0
		w.OwnerMTA, w.Queue, w.Hop = e.owner(), a.QueueID, hopIndex
		return true
	}
	fresh := func(r AcceptedRecipient) wireRcpt {
		return wireRcpt{Orig: r.Original, Final: r.Address, Action: StateQueued, OwnerMTA: e.owner(), Queue: a.QueueID, Hop: hopIndex}
	}
	headOp := &op{eventID: a.EventID, absent: !a.Internal, apply: func(d doc, exists bool) bool {
		h := d.(*wireHead)
		foreign = false
		toShard = toShard[:0]
		headFresh = !exists
		if !exists {
			h.EnvID, h.Timeout, h.Expires = a.EnvelopeID, int64(timeout/time.Second), exp
			h.Sender, h.Arrival, h.MTA = a.Sender, arrival.Unix(), e.owner()
			h.HoldUntil, h.Held = unixOf(a.HoldUntil), held
			h.Hops = []wireHop{hop}
			hopIndex = 0
			switch {
			case a.Internal:
				// An internal arrival finds no head: an earlier hop's head
				// was lost (evicted, or never written under fail-open).
				// Where its recipients were is unknown, so list every
				// shard: readers fetch every slot and the record reads as
				// incomplete; this hop's recipients go to their shards,
				// where earlier entries may be.
				h.Sharded, h.ShardMask = true, 1<<ShardCount-1
				toShard = append(toShard, allIndexes(len(addrs))...)
			case len(addrs) <= InlineRecipients:
				for _, r := range a.Recipients {
					if h.find(r.Address) < 0 {
						h.Rcpts = append(h.Rcpts, fresh(r))
					}
				}
			default:
				h.Sharded = true
				for i, ad := range addrs {
					h.ShardMask |= 1 << ShardOf(ad)
					toShard = append(toShard, i)
				}
			}
			seen = layoutOf(h)
			return true
		}
		hopIndex = h.hopIndex(hop.MTA, hop.Queue)
		if hopIndex < 0 {
			if !a.Internal {
				foreign = true
				return false
			}
			h.Hops = append(h.Hops, hop)
			hopIndex = len(h.Hops) - 1
		}
		if exp > h.Expires {
			h.Expires = exp
		}
		if held && unixOf(a.HoldUntil) > h.HoldUntil {
			h.HoldUntil, h.Held = unixOf(a.HoldUntil), true
		}
		if h.EnvID == "" {
			h.EnvID = a.EnvelopeID
		}
		var added []int
		for i, r := range a.Recipients {
			if j := h.find(r.Address); j >= 0 {
				take(&h.Rcpts[j], r)
			} else {
				added = append(added, i)
			}
		}
		if !h.Sharded && len(h.Rcpts)+len(added) <= InlineRecipients {
			for _, i := range added {
				if h.find(addrs[i]) < 0 {
					h.Rcpts = append(h.Rcpts, fresh(a.Recipients[i]))
				}
			}
		} else if len(added) > 0 {
			// Not inline: in their shards (they may be there already, from
			// an earlier hop). The head lists a shard before it exists.
			h.Sharded = true
			for _, i := range added {
				h.ShardMask |= 1 << ShardOf(addrs[i])
			}
			toShard = append(toShard, added...)
		}
		seen = layoutOf(h)
		return true
	}}
	headKey := HeadKey(cert)
	if err := e.submit(ctx, headKey, headKind(cert), headOp); err != nil {
		return e.failed("accepted", a.EventID, cert, err)
	}
	if foreign {
		e.log.Warn("tracking: external arrival for an existing record; not merged", "event_id", a.EventID, "mt", a.Certifier.String(), "queue", a.QueueID)
		return ErrForeignRecord
	}
	if headOp.dup {
		// A replay of an arrival the head already has: replay its shard
		// writes too (each is skipped where it was applied), which
		// completes an arrival whose shard writes failed.
		h, err := e.readHead(ctx, cert)
		if err != nil {
			return e.failed("accepted", a.EventID, cert, err)
		}
		hopIndex, toShard = max(h.hopIndex(hop.MTA, hop.Queue), 0), nil
		if h.Sharded {
			for i, ad := range addrs {
				if h.find(ad) < 0 {
					toShard = append(toShard, i)
				}
			}
		}
		seen = layoutOf(h)
	}
	e.layouts.put(headKey, seen)
	var errs []error
	for n, idx := range groupByShard(addrs, toShard) {
		// A head this external arrival created has no shards yet.
		o := &op{eventID: a.EventID, absent: headFresh && !a.Internal, apply: func(d doc, exists bool) bool {
			s := d.(*wireShard)
			changed := false
			if s.Expires < exp {
				s.Expires, changed = exp, true
			}
			for _, i := range idx {
				r := a.Recipients[i]
				j := s.find(r.Address)
				if j < 0 {
					s.Rcpts = append(s.Rcpts, fresh(r))
					changed = true
					continue
				}
				if take(&s.Rcpts[j], r) {
					changed = true
				}
			}
			return changed
		}}
		if err := e.submit(ctx, ShardKey(cert, n), shardKind(cert, n), o); err != nil {
			errs = append(errs, err)
		}
	}
	if e.debugging(DebugEvents) {
		e.log.Debug("tracking: accepted", "event_id", a.EventID, "mt", a.Certifier.String(), "recipients", len(addrs), "hop", hopIndex)
	}
	return e.failed("accepted", a.EventID, cert, errors.Join(errs...))
}

// rcptFunc changes one recipient owned by the event's queue and reports
// whether it did.
type rcptFunc func(r *wireRcpt, o Outcome, now int64) bool

// update applies fn to each listed recipient owned by ref.
func (e *Engine) update(ctx context.Context, event string, ref Ref, eventID string, outs []Outcome, fn rcptFunc) error {
	e.c.events.Add(1)
	cert := []byte(ref.Certifier)
	addrs := make([]string, len(outs))
	for i, o := range outs {
		addrs[i] = o.Recipient
	}
	now := e.now().Unix()
	var errs []error
	matched := make([]bool, len(addrs))
	dup := e.forRecipients(ctx, cert, eventID, addrs,
		func(idx []int) {
			for _, i := range idx {
				matched[i] = false
			}
		},
		func(r *wireRcpt, i int, _ int64) bool {
			if r.OwnerMTA != e.owner() || r.Queue != ref.QueueID {
				return false
			}
			matched[i] = true
			return fn(r, outs[i], now)
		},
		func(_ []int, err error) { errs = append(errs, err) })
	touched := dup
	for _, m := range matched {
		touched = touched || m
	}
	if len(errs) == 0 && !touched {
		e.c.untracked.Add(1)
		if e.debugging(DebugEvents) {
			e.log.Debug("tracking: event for untracked recipients", "event", event, "event_id", eventID, "mt", ref.Certifier.String())
		}
	} else {
		if e.debugging(DebugEvents) {
			e.log.Debug("tracking: "+event, "event_id", eventID, "mt", ref.Certifier.String(), "recipients", len(outs))
		}
	}
	return e.failed(event, eventID, cert, errors.Join(errs...))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// outcomeFunc returns a transition to a final action.
func (e *Engine) outcomeFunc(a Action, defStatus string, internal bool) rcptFunc {
	return func(r *wireRcpt, o Outcome, now int64) bool {
		if r.Action.final() && r.Action != StateRecalled {
			return false // the first final outcome wins; replays change nothing
		}
		if r.Action == StateRecalled {
			e.log.Warn("tracking: outcome reported for a recalled recipient; recording the outcome", "action", string(a), "recipient", r.Final)
		}
		r.Action, r.Status, r.RemoteMTA, r.Diag = a, orDefault(o.Status, defStatus), o.RemoteMTA, o.Diagnostic
		r.LastAttempt, r.NextAttempt, r.Internal = now, 0, internal
		return true
	}
}

// Delivered records final delivery of the listed recipients
// (Action delivered).
func (e *Engine) Delivered(ctx context.Context, ref Ref, eventID string, outs ...Outcome) error {
	return e.update(ctx, "delivered", ref, eventID, outs, e.outcomeFunc(ActionDelivered, "2.0.0", false))
}

// Failed records permanent failure (Action failed).
func (e *Engine) Failed(ctx context.Context, ref Ref, eventID string, outs ...Outcome) error {
	return e.update(ctx, "failed", ref, eventID, outs, e.outcomeFunc(ActionFailed, "5.0.0", false))
}

// Relayed records transfer to a next hop that does not offer MTRK:
// tracking ends here (Action relayed, default status 2.1.9, "message
// relayed to non-compliant mailer", RFC 3886 section 4).
func (e *Engine) Relayed(ctx context.Context, ref Ref, eventID string, outs ...Outcome) error {
	return e.update(ctx, "relayed", ref, eventID, outs, e.outcomeFunc(ActionRelayed, "2.1.9", false))
}

// Transferred records transfer to a next hop that accepted MTRK
// (Action transferred; Outcome.RemoteMTA is where to ask next). internal
// is true when the channel is trackinginternal: the next hop shares the
// store and will take the recipients over with its own Accepted, so a
// recall can still reach them. Otherwise they left the deployment.
func (e *Engine) Transferred(ctx context.Context, ref Ref, eventID string, internal bool, outs ...Outcome) error {
	return e.update(ctx, "transferred", ref, eventID, outs, e.outcomeFunc(ActionTransferred, "2.0.0", internal))
}

// Dequeued records a successful dequeue according to the channel's
// disposition (trackinginternal, trackingrelayed, trackingdelivered) and
// whether the next hop took MTRK: internal or relayed with MTRK is
// Transferred (internal or not); without MTRK it is Relayed; delivered is
// Delivered.
func (e *Engine) Dequeued(ctx context.Context, ref Ref, eventID string, disp Disposition, nextHopMTRK bool, outs ...Outcome) error {
	switch {
	case disp == DispositionDelivered:
		return e.Delivered(ctx, ref, eventID, outs...)
	case nextHopMTRK:
		return e.Transferred(ctx, ref, eventID, disp == DispositionInternal, outs...)
	default:
		return e.Relayed(ctx, ref, eventID, outs...)
	}
}

// Delayed records a failed attempt that will be retried (Action
// delayed): the recipient is queued again and claimable.
//
// An Outcome's WillRetryUntil also keeps the record alive while the queue
// may still hold the message: the record's expiry (head and every shard)
// becomes at least min(WillRetryUntil, now + Options.MaxRetryHorizon) +
// the tracking timeout. It never moves earlier. See the package
// documentation, "Expiry".
func (e *Engine) Delayed(ctx context.Context, ref Ref, eventID string, outs ...Outcome) error {
	var until int64
	for _, o := range outs {
		until = max(until, unixOf(o.WillRetryUntil))
	}
	applied := false // read after update returns: its ops are done
	err := e.update(ctx, "delayed", ref, eventID, outs, func(r *wireRcpt, o Outcome, now int64) bool {
		if r.Action != StateQueued && r.Action != StateDelivering && r.Action != ActionDelayed {
			return false
		}
		r.Action, r.Status, r.RemoteMTA, r.Diag = ActionDelayed, orDefault(o.Status, "4.0.0"), o.RemoteMTA, o.Diagnostic
		r.LastAttempt, r.NextAttempt, r.RetryUntil = now, unixOf(o.NextAttempt), unixOf(o.WillRetryUntil)
		applied = true
		return true
	})
	if until == 0 || (!applied && eventID == "") {
		// Nothing of this queue changed. (With an event ID, a replay
		// also finishes an extension a crash may have interrupted.)
		return err
	}
	if xerr := e.extendForRetry(ctx, ref, eventID, until); xerr != nil {
		return errors.Join(err, xerr)
	}
	return err
}

// extendForRetry moves the record's expiry to at least
// min(until, now + horizon) + timeout: the head first (where the timeout
// is), then every shard, so that no item of the record expires before
// another. Only a queue that is one of the record's hops may extend it.
func (e *Engine) extendForRetry(ctx context.Context, ref Ref, eventID string, until int64) error {
	cert := []byte(ref.Certifier)
	if eventID != "" {
		// The update wrote eventID into the same items.
		eventID += "/expiry"
	}
	now := e.now()
	until = min(until, now.Add(e.horizon).Unix())
	var mask uint32
	var exp int64
	ours := false
	o := &op{eventID: eventID, apply: func(d doc, exists bool) bool {
		ours, exp, mask = false, 0, 0
		if !exists {
			return false
		}
		h := d.(*wireHead)
		ours = h.hopIndex(e.owner(), ref.QueueID) >= 0
		if !ours {
			return false
		}
		mask = h.ShardMask
		exp = until + h.Timeout
		if exp <= h.Expires {
			exp = h.Expires
			return false
		}
		h.Expires = exp
		return true
	}}
	if err := e.submit(ctx, HeadKey(cert), headKind(cert), o); err != nil {
		return e.failed("delayed", eventID, cert, err)
	}
	if !ours || exp == 0 {
		return nil
	}
	err := errors.Join(e.extendShards(ctx, cert, eventID, mask, exp)...)
	if e.debugging(DebugEvents) {
		e.log.Debug("tracking: expiry extended for retries", "event_id", eventID, "mt", ref.Certifier.String(), "expires", exp)
	}
	return e.failed("delayed", eventID, cert, err)
}

// extendShards moves the expiry of the shards in mask to at least exp.
func (e *Engine) extendShards(ctx context.Context, cert []byte, eventID string, mask uint32, exp int64) []error {
	var errs []error
	for n := 0; n < ShardCount; n++ {
		if mask&(1<<n) == 0 {
			continue
		}
		so := &op{eventID: eventID, apply: func(d doc, exists bool) bool {
			s := d.(*wireShard)
			if !exists || s.Expires >= exp {
				return false
			}
			s.Expires = exp
			return true
		}}
		if err := e.submit(ctx, ShardKey(cert, n), shardKind(cert, n), so); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Recalled is the queue's confirmation that it removed the recipients
// durably after a recall claimed them (BeginDelivery said ClaimRecalled,
// or PendingRecall listed them). It marks them recalled; recipients with
// a final delivery outcome are left alone.
func (e *Engine) Recalled(ctx context.Context, ref Ref, eventID string, recipients ...string) error {
	outs := make([]Outcome, len(recipients))
	for i, r := range recipients {
		outs[i] = Outcome{Recipient: r}
	}
	return e.update(ctx, "recalled", ref, eventID, outs, markRecalled)
}

func markRecalled(r *wireRcpt, _ Outcome, now int64) bool {
	if r.Action == StateRecalled || (r.Action.final()) {
		return false
	}
	r.Action, r.Status, r.Diag = StateRecalled, "5.0.0", "recalled by the sender"
	if r.RecallReq == 0 {
		r.RecallReq = now
	}
	return true
}

// BeginDelivery claims recipients for a delivery attempt, by
// compare-and-swap, queued to delivering. Call it before every attempt and
// obey the answer per recipient (claims[i] is for recipients[i]); see
// Claim. A recipient already delivering for this queue is claimed again
// (an attempt after a crash).
//
// On a store failure it returns the error with ClaimUnknown for the
// recipients concerned (fail-open) or ClaimDefer (FailClosed).
func (e *Engine) BeginDelivery(ctx context.Context, ref Ref, recipients []string) ([]Claim, error) {
	e.c.events.Add(1)
	cert := []byte(ref.Certifier)
	claims := make([]Claim, len(recipients))
	now := e.now().Unix()
	var errs []error
	e.forRecipients(ctx, cert, "", recipients,
		func(idx []int) {
			for _, i := range idx {
				claims[i] = ClaimUnknown
			}
		},
		func(r *wireRcpt, i int, _ int64) bool {
			if r.OwnerMTA != e.owner() || r.Queue != ref.QueueID {
				return false
			}
			switch {
			case r.Action.claimable():
				r.Action, r.LastAttempt = StateDelivering, now
				claims[i] = ClaimProceed
				return true
			case r.Action == StateDelivering:
				claims[i] = ClaimProceed
			case r.Action == StateRecalling || r.Action == StateRecalled:
				claims[i] = ClaimRecalled
			default:
				claims[i] = ClaimDone
			}
			return false
		},
		func(idx []int, err error) {
			errs = append(errs, err)
			for _, i := range idx {
				if e.opts.FailClosed {
					claims[i] = ClaimDefer
				} else {
					claims[i] = ClaimUnknown
				}
			}
		})
	if e.debugging(DebugEvents) {
		e.log.Debug("tracking: begin delivery", "mt", ref.Certifier.String(), "queue", ref.QueueID, "recipients", len(recipients))
	}
	return claims, e.failed("begin-delivery", "", cert, errors.Join(errs...))
}

// Held records that the message is held until until (FUTURERELEASE, or
// an administrator's hold). The record's expiry is extended to cover the
// hold plus the tracking timeout.
func (e *Engine) Held(ctx context.Context, ref Ref, eventID string, until time.Time) error {
	return e.holdEvent(ctx, "held", ref, eventID, true, until)
}

// Released records the end of a hold.
func (e *Engine) Released(ctx context.Context, ref Ref, eventID string) error {
	return e.holdEvent(ctx, "released", ref, eventID, false, time.Time{})
}

func (e *Engine) holdEvent(ctx context.Context, event string, ref Ref, eventID string, hold bool, until time.Time) error {
	e.c.events.Add(1)
	cert := []byte(ref.Certifier)
	var mask uint32
	var exp int64
	ours := false
	o := &op{eventID: eventID, apply: func(d doc, exists bool) bool {
		ours = false
		if !exists {
			return false
		}
		h := d.(*wireHead)
		ours = h.hopIndex(e.owner(), ref.QueueID) >= 0
		if !ours {
			return false
		}
		mask = h.ShardMask
		if !hold {
			exp = 0
			if !h.Held {
				return false
			}
			h.Held = false
			return true
		}
		h.Held, h.HoldUntil = true, unixOf(until)
		if x := until.Unix() + h.Timeout; x > h.Expires {
			h.Expires = x
		}
		exp = h.Expires
		return true
	}}
	if err := e.submit(ctx, HeadKey(cert), headKind(cert), o); err != nil {
		return e.failed(event, eventID, cert, err)
	}
	if !ours {
		e.c.untracked.Add(1)
		return nil
	}
	var errs []error
	if exp != 0 {
		errs = e.extendShards(ctx, cert, eventID, mask, exp)
	}
	if e.debugging(DebugEvents) {
		e.log.Debug("tracking: "+event, "event_id", eventID, "mt", ref.Certifier.String())
	}
	return e.failed(event, eventID, cert, errors.Join(errs...))
}

// Expanded records that parent was expanded into children (an alias, or a
// mailing list when list is true). The parent's action becomes expanded
// and lists every child. Children the alias policy gave the certifier
// (Child.Tracked) get entries of their own, owned by this queue, so they
// can be tracked and recalled; list members never do (RFC 3885 section
// 7; a list owns its messages once expanded, so they are not
// recallable).
func (e *Engine) Expanded(ctx context.Context, ref Ref, eventID string, parent string, list bool, children []Child) error {
	e.c.events.Add(1)
	cert := []byte(ref.Certifier)
	var all, untracked, tracked []string
	for _, c := range children {
		all = append(all, c.Address)
		if c.Tracked && !list {
			tracked = append(tracked, c.Address)
		} else {
			untracked = append(untracked, c.Address)
		}
	}
	var found bool
	var orig string
	var hop int
	var recallReq, exp int64
	var errs []error
	e.forRecipients(ctx, cert, eventID, []string{parent},
		func([]int) { found = false },
		func(r *wireRcpt, _ int, itemExp int64) bool {
			if r.OwnerMTA != e.owner() || r.Queue != ref.QueueID {
				return false
			}
			found = true
			orig, hop, recallReq, exp = orDefault(r.Orig, r.Final), r.Hop, r.RecallReq, itemExp
			if r.Action.final() {
				return false
			}
			r.Action, r.Children, r.Untracked, r.List = ActionExpanded, all, untracked, list
			r.Status = "2.0.0"
			return true
		},
		func(_ []int, err error) { errs = append(errs, err) })
	if len(errs) > 0 {
		return e.failed("expanded", eventID, cert, errors.Join(errs...))
	}
	if !found {
		e.c.untracked.Add(1)
		return nil
	}
	child := func(a string) wireRcpt {
		state := StateQueued
		if recallReq != 0 {
			state = StateRecalling
		}
		return wireRcpt{Orig: orig, Final: a, Action: state, Parent: parent,
			OwnerMTA: e.owner(), Queue: ref.QueueID, Hop: hop, RecallReq: recallReq}
	}
	// The head decides where the tracked children go: inline while the
	// record is small and not sharded, else their shards (listed in the
	// head before they are written). These writes carry an event ID of
	// their own: the parent's write, under eventID, may be in the same
	// item.
	childID := eventID
	if childID != "" {
		childID += "/children"
	}
	toShard := allIndexes(len(tracked))
	if len(tracked) > 0 {
		var seen layout
		var exists bool
		ho := &op{eventID: childID, apply: func(d doc, ex bool) bool {
			h := d.(*wireHead)
			exists = ex
			toShard = toShard[:0]
			if !ex {
				toShard = allIndexes(len(tracked)) // head lost: shards only
				return false
			}
			var added []int
			for i, a := range tracked {
				if h.find(a) < 0 {
					added = append(added, i)
				}
			}
			changed := false
			if !h.Sharded && len(h.Rcpts)+len(added) <= InlineRecipients {
				for _, i := range added {
					h.Rcpts = append(h.Rcpts, child(tracked[i]))
					changed = true
				}
			} else {
				for i, a := range tracked {
					if h.find(a) >= 0 {
						continue // already inline
					}
					toShard = append(toShard, i)
					if bit := uint32(1) << ShardOf(a); h.ShardMask&bit == 0 || !h.Sharded {
						h.Sharded, h.ShardMask, changed = true, h.ShardMask|bit, true
					}
				}
			}
			seen = layoutOf(h)
			return changed
		}}
		if err := e.submit(ctx, HeadKey(cert), headKind(cert), ho); err != nil {
			return e.failed("expanded", eventID, cert, err)
		}
		if ho.dup {
			// Replayed: the children's head part is done; replay the
			// shard part (each shard op skips itself where applied).
			toShard = toShard[:0]
			if h, err := e.readHead(ctx, cert); err == nil {
				for i, a := range tracked {
					if h.Sharded && h.find(a) < 0 {
						toShard = append(toShard, i)
					}
				}
				seen, exists = layoutOf(h), true
			}
		}
		if exists {
			e.layouts.put(HeadKey(cert), seen)
		}
	}
	for sn, idx := range groupByShard(tracked, toShard) {
		co := &op{eventID: childID, apply: func(d doc, exists bool) bool {
			s := d.(*wireShard)
			changed := false
			if s.Expires < exp {
				s.Expires, changed = exp, true
			}
			for _, i := range idx {
				if s.find(tracked[i]) >= 0 {
					continue
				}
				s.Rcpts = append(s.Rcpts, child(tracked[i]))
				changed = true
			}
			return changed
		}}
		if err := e.submit(ctx, ShardKey(cert, sn), shardKind(cert, sn), co); err != nil {
			errs = append(errs, err)
		}
	}
	if e.debugging(DebugEvents) {
		e.log.Debug("tracking: expanded", "event_id", eventID, "mt", ref.Certifier.String(), "children", len(children), "list", list)
	}
	return e.failed("expanded", eventID, cert, errors.Join(errs...))
}
