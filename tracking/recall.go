package tracking

import (
	"context"
	"errors"
	"sort"
	"strconv"

	"github.com/msgtrack/msgtrack/mtrk"
)

// RecallOutcome is a recall's answer for one recipient.
type RecallOutcome string

// Recall outcomes.
const (
	// RecallRecalled: the owning queue removed the recipient durably.
	RecallRecalled RecallOutcome = "recalled"
	// RecallTooLate: delivered, failed, relayed, or transferred out of
	// the deployment; Action says which.
	RecallTooLate RecallOutcome = "too-late"
	// RecallInProgress: a delivery attempt is under way (or the queue
	// refused to remove the recipient because its spool says it is being
	// sent); it is never reported recalled.
	RecallInProgress RecallOutcome = "in-progress"
	// RecallNotRecallable: reached through a mailing list, or an alias
	// child that did not receive the certifier.
	RecallNotRecallable RecallOutcome = "not-recallable"
	// RecallPending: claimed for recall, waiting for the owning queue
	// (in another process, or in transit to the next internal hop) to
	// confirm removal. Asking again later gives the final answer.
	RecallPending RecallOutcome = "pending"
)

// RecallResult is one recipient's line of a recall report.
type RecallResult struct {
	Recipient string
	Outcome   RecallOutcome
	// Action is the recipient's state after the recall.
	Action    Action
	RemoteMTA string
	OwnerMTA  string
}

// RecallReport is the answer to Recall.
type RecallReport struct {
	OriginalEnvelopeID string
	// Results are sorted by recipient.
	Results []RecallResult
	// Incomplete is true when shards of the record were missing, so
	// recipients may be absent from Results.
	Incomplete bool
}

// Outcomes counts the results per outcome.
func (r *RecallReport) Outcomes() map[RecallOutcome]int {
	m := make(map[RecallOutcome]int)
	for _, x := range r.Results {
		m[x.Outcome]++
	}
	return m
}

type recallClaim struct {
	res   RecallResult
	queue string
}

// Recall withdraws the message identified by (envelopeID, secret), as
// Track authenticates it, for every recipient that is still queued in
// the deployment (the recall extension; see the package documentation,
// "Recall").
//
// Each queued recipient is claimed by compare-and-swap, queued to
// recalling. A recipient owned by this MTA's queue (Options.Queue) is
// then removed through Queue.Remove and reported recalled only when the
// queue says it removed it; one the queue refuses is given back (queued)
// and reported in progress. Recipients owned elsewhere stay pending until
// their queue sees the claim (BeginDelivery or PendingRecall) and confirms
// with Recalled. A recipient being delivered is reported in progress; one
// delivered, failed, relayed or transferred out is too late.
func (e *Engine) Recall(ctx context.Context, envelopeID string, secret mtrk.Secret) (*RecallReport, error) {
	h, shards, err := e.authenticate(ctx, envelopeID, secret)
	if err != nil {
		return nil, err
	}
	cert := []byte(secret.Certifier())
	now := e.now().Unix()
	rep := &RecallReport{OriginalEnvelopeID: h.EnvID}
	rec := buildRecord(h, shards)
	rep.Incomplete = rec.Incomplete

	// claimAll claims every claimable recipient of one item's list and
	// records the results in mine (reset on every attempt).
	claimAll := func(rs []wireRcpt, mine *[]recallClaim) bool {
		*mine = (*mine)[:0]
		changed := false
		for j := range rs {
			r := &rs[j]
			c := recallClaim{res: RecallResult{Recipient: r.Final, RemoteMTA: r.RemoteMTA, OwnerMTA: r.OwnerMTA}, queue: r.Queue}
			switch {
			case r.Action.claimable():
				r.Action = StateRecalling
				if r.RecallReq == 0 {
					r.RecallReq = now
				}
				c.res.Outcome, changed = RecallPending, true
			case r.Action == StateRecalling:
				c.res.Outcome = RecallPending
			case r.Action == StateRecalled:
				c.res.Outcome = RecallRecalled
			case r.Action == StateDelivering:
				c.res.Outcome = RecallInProgress
			case r.Action == ActionTransferred && r.Internal:
				// In transit to another MTA of the deployment: its
				// Accepted takes the recipient over as recalling.
				if r.RecallReq == 0 {
					r.RecallReq, changed = now, true
				}
				c.res.Outcome = RecallPending
			case r.Action == ActionExpanded:
				if r.List {
					c.res.Outcome = RecallNotRecallable
					break
				}
				for _, u := range r.Untracked {
					*mine = append(*mine, recallClaim{res: RecallResult{Recipient: u, Outcome: RecallNotRecallable, Action: ActionExpanded, OwnerMTA: r.OwnerMTA}})
				}
				continue // tracked children have entries of their own
			default:
				c.res.Outcome = RecallTooLate
			}
			c.res.Action = r.Action
			*mine = append(*mine, c)
		}
		return changed
	}

	var claims []recallClaim
	var errs []error
	// The head: the recall time, and the recipients kept inline.
	if h.Recall == 0 || len(h.Rcpts) > 0 {
		var mine []recallClaim
		ho := &op{apply: func(d doc, exists bool) bool {
			mine = mine[:0]
			if !exists {
				return false
			}
			hd := d.(*wireHead)
			changed := claimAll(hd.Rcpts, &mine)
			if hd.Recall == 0 {
				hd.Recall, changed = now, true
			}
			return changed
		}}
		if err := e.submit(ctx, HeadKey(cert), headKind(cert), ho); err != nil {
			if len(h.Rcpts) > 0 {
				errs = append(errs, err)
			} else {
				e.log.Warn("tracking: recall time not recorded", "mt", mtrk.Certifier(cert).String(), "err", err)
			}
		} else {
			claims = append(claims, mine...)
		}
	}
	for _, s := range shards {
		var mine []recallClaim
		o := &op{apply: func(d doc, exists bool) bool {
			mine = mine[:0]
			if !exists {
				return false
			}
			return claimAll(d.(*wireShard).Rcpts, &mine)
		}}
		if err := e.submit(ctx, ShardKey(cert, s.N), shardKind(cert, s.N), o); err != nil {
			errs = append(errs, err)
			continue
		}
		claims = append(claims, mine...)
	}

	// Withdraw what this MTA's queue owns.
	if e.opts.Queue != nil {
		byQueue := make(map[string][]int)
		for i, c := range claims {
			if c.res.Outcome == RecallPending && c.res.Action == StateRecalling && c.res.OwnerMTA == e.owner() {
				byQueue[c.queue] = append(byQueue[c.queue], i)
			}
		}
		for qid, idx := range byQueue {
			addrs := make([]string, len(idx))
			for k, i := range idx {
				addrs[k] = claims[i].res.Recipient
			}
			removed, err := e.opts.Queue.Remove(ctx, qid, addrs)
			if err != nil {
				e.log.Warn("tracking: queue could not remove recalled recipients", "queue", qid, "err", err)
				continue // left recalling: pending
			}
			gone := make(map[string]bool, len(removed))
			for _, r := range removed {
				gone[r] = true
			}
			ref := Ref{Certifier: cert, QueueID: qid}
			var back []Outcome
			for _, i := range idx {
				c := &claims[i]
				if gone[c.res.Recipient] {
					c.res.Outcome, c.res.Action = RecallRecalled, StateRecalled
				} else {
					c.res.Outcome, c.res.Action = RecallInProgress, StateQueued
					back = append(back, Outcome{Recipient: c.res.Recipient})
				}
			}
			if len(removed) > 0 {
				if err := e.Recalled(ctx, ref, "recall:"+strconv.FormatInt(now, 10)+":"+qid, removed...); err != nil {
					errs = append(errs, err)
				}
			}
			if len(back) > 0 {
				// The queue is the authority: give the claim back.
				if err := e.update(ctx, "recall-refused", ref, "", back, func(r *wireRcpt, _ Outcome, _ int64) bool {
					if r.Action != StateRecalling {
						return false
					}
					r.Action = StateQueued
					return true
				}); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	for _, c := range claims {
		rep.Results = append(rep.Results, c.res)
	}
	sort.Slice(rep.Results, func(i, j int) bool { return rep.Results[i].Recipient < rep.Results[j].Recipient })
	if e.debugging(DebugEvents) {
		e.log.Debug("tracking: recall", "mt", mtrk.Certifier(cert).String(), "results", len(rep.Results))
	}
	if err := errors.Join(errs...); err != nil {
		return rep, e.failed("recall", "", cert, err)
	}
	return rep, nil
}
