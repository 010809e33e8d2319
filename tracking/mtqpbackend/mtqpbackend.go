// Package mtqpbackend serves the tracking engine over MTQP: it adapts a
// *tracking.Engine to the mtqp.Backend interface, turning tracking records
// into RFC 3886 message/tracking-status reports and recall reports into the
// recall extension's per-recipient X-Recall-Status fields.
//
// It is the only place that knows both packages, so that mtqp stays free of
// storage and tracking free of the wire protocol.
//
// # Mapping (RFC 3886 section 3)
//
//   - Original-Envelope-Id: the record's envelope ID.
//   - Reporting-MTA: "dns; " + Options.ReportingMTA (the host answering the
//     query), falling back to the first hop's name.
//   - Arrival-Date: the first hop's acceptance.
//   - Per recipient: Original-Recipient and Final-Recipient as "rfc822;"
//     values, Action as tracking.Action.RFCAction (the engine's internal
//     queue states read as "delayed", a recalled recipient as "failed"),
//     Status from the record or, when the record has none, the default for
//     the action (see DefaultStatus), Remote-MTA, Last-Attempt-Date,
//     Will-Retry-Until.
//   - Extension fields (RFC 3886 allows them; the names are this library's):
//     X-Tracking-State carries the engine's own state when it is finer than
//     the RFC action (queued, held, delivering, recalling, recalled);
//     X-Diagnostic the last reply; X-Hold-Until (per message) the
//     FUTURERELEASE release time; X-Record-Incomplete when shards of a
//     large record were evicted from the store.
//
// A RECALL answer is the same report with X-Recall-Status on each group
// the engine's recall reached, plus one group (Action "opaque",
// Original-Recipient the alias) for every alias child that did not get the
// certifier and is therefore not recallable; see Backend.Recall.
//
// Unknown envelope IDs and wrong secrets both come back from the engine as
// tracking.ErrNotFound and are returned as mtqp.ErrNotFound, which the
// server answers with one fixed reply. A store failure becomes a 451 reply
// that names no detail.
package mtqpbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
)

// Extension field names written by this package.
const (
	FieldTrackingState = "X-Tracking-State"
	FieldDiagnostic    = "X-Diagnostic"
	FieldHoldUntil     = "X-Hold-Until"
	FieldIncomplete    = "X-Record-Incomplete"
)

// Options configure a Backend.
type Options struct {
	// ReportingMTA is this host's name for Reporting-MTA. Empty means the
	// record's first hop.
	ReportingMTA string
	// Now is the clock used to tell whether a hold is still in force;
	// nil means time.Now.
	Now func() time.Time
}

// Backend answers MTQP TRACK and RECALL from a tracking engine.
type Backend struct {
	engine *tracking.Engine
	opts   Options
}

var _ mtqp.Backend = (*Backend)(nil)

// New returns a Backend over e.
func New(e *tracking.Engine, opts Options) *Backend {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Backend{engine: e, opts: opts}
}

// Track answers TRACK: the record for (EnvID, secret) as a report.
func (b *Backend) Track(ctx context.Context, q mtqp.Query) (*mtqp.Report, error) {
	rec, err := b.engine.Track(ctx, q.EnvID, mtrk.Secret(q.Secret))
	if err != nil {
		return nil, mapError(err)
	}
	return b.Report(rec), nil
}

// Recall answers the recall extension: it asks the engine to recall the
// message for every recipient still queued, then reports the record with
// each recipient's outcome in X-Recall-Status.
//
// Every outcome the engine returns appears in the report. Most name a
// recipient of the record and are set on its group. The others are alias
// children that did not receive the certifier (tracking.RecallNotRecallable
// for an address in some recipient's UntrackedChildren): the record has no
// entry of their own, so each gets a group of its own with Action "opaque"
// (RFC 3886: passed on where tracking information cannot be obtained),
// Original-Recipient naming the alias it was expanded from, and
// X-Recall-Status not-recallable.
func (b *Backend) Recall(ctx context.Context, q mtqp.Query) (*mtqp.Report, error) {
	secret := mtrk.Secret(q.Secret)
	rr, err := b.engine.Recall(ctx, q.EnvID, secret)
	if err != nil {
		return nil, mapError(err)
	}
	rec, err := b.engine.Track(ctx, q.EnvID, secret)
	if err != nil {
		return nil, mapError(err)
	}
	rep := b.Report(rec)
	addRecallOutcomes(rep, rec, rr.Results)
	if rr.Incomplete && !rec.Incomplete {
		rep.Extensions = append(rep.Extensions, mtqp.Field{Name: FieldIncomplete, Value: "yes"})
	}
	return rep, nil
}

// addRecallOutcomes sets each result's X-Recall-Status on the report
// group of the same address (each group takes one result, in order) and
// appends a group for every result that has none: an untracked alias
// child, or an address the record no longer lists.
func addRecallOutcomes(rep *mtqp.Report, rec *tracking.Record, results []tracking.RecallResult) {
	groups := make(map[string][]int, len(rep.Recipients))
	for i, rc := range rep.Recipients {
		groups[rc.FinalRecipient.Value] = append(groups[rc.FinalRecipient.Value], i)
	}
	parent := map[string]string{}
	for _, r := range rec.Recipients {
		for _, c := range r.UntrackedChildren {
			if _, ok := parent[c]; !ok {
				parent[c] = r.FinalRecipient
			}
		}
	}
	for _, res := range results {
		from, child := parent[res.Recipient]
		child = child && res.Outcome == tracking.RecallNotRecallable && res.Action == tracking.ActionExpanded
		if is := groups[res.Recipient]; len(is) > 0 && !(child && !hasExpanded(rep, is)) {
			groups[res.Recipient] = is[1:]
			rep.Recipients[is[0]].SetRecallStatus(mtqp.RecallStatus(res.Outcome))
			continue
		}
		rep.Recipients = append(rep.Recipients, outcomeOnly(res, from, child))
	}
}

// hasExpanded reports whether one of the groups is an expansion (a list
// address reports not-recallable on its own group).
func hasExpanded(rep *mtqp.Report, is []int) bool {
	for _, i := range is {
		if rep.Recipients[i].Action == mtqp.ActionExpanded {
			return true
		}
	}
	return false
}

// outcomeOnly is the report group for a recall result without a record
// entry.
func outcomeOnly(res tracking.RecallResult, from string, child bool) mtqp.Recipient {
	action := res.Action.RFCAction()
	if child {
		action = tracking.ActionOpaque
	}
	out := mtqp.Recipient{
		FinalRecipient: mtqp.RFC822(res.Recipient),
		Action:         mtqp.Action(action),
		Status:         DefaultStatus(action),
	}
	if from != "" && child {
		out.OriginalRecipient = mtqp.RFC822(from)
	}
	if res.RemoteMTA != "" {
		out.RemoteMTA = mtqp.DNS(res.RemoteMTA)
	}
	out.SetRecallStatus(mtqp.RecallStatus(res.Outcome))
	return out
}

// Report converts a tracking record into an RFC 3886 report.
func (b *Backend) Report(rec *tracking.Record) *mtqp.Report {
	now := b.opts.Now()
	reporting := b.opts.ReportingMTA
	if reporting == "" {
		reporting = rec.ReportingMTA
	}
	rep := &mtqp.Report{
		EnvelopeID:   rec.OriginalEnvelopeID,
		ReportingMTA: mtqp.DNS(reporting),
		ArrivalDate:  rec.ArrivalDate,
	}
	held := rec.Held && (rec.HoldUntil.IsZero() || now.Before(rec.HoldUntil))
	if !rec.HoldUntil.IsZero() {
		rep.Extensions = append(rep.Extensions, mtqp.Field{Name: FieldHoldUntil, Value: mtqp.FormatDate(rec.HoldUntil)})
	}
	if rec.Incomplete {
		rep.Extensions = append(rep.Extensions, mtqp.Field{Name: FieldIncomplete, Value: fmt.Sprintf("shards %v missing", rec.MissingShards)})
	}
	rep.Recipients = make([]mtqp.Recipient, 0, len(rec.Recipients))
	for _, r := range rec.Recipients {
		rep.Recipients = append(rep.Recipients, recipient(r, held))
	}
	return rep
}

func recipient(r tracking.Recipient, held bool) mtqp.Recipient {
	action := r.Action.RFCAction()
	out := mtqp.Recipient{
		FinalRecipient:  mtqp.RFC822(r.FinalRecipient),
		Action:          mtqp.Action(action),
		LastAttemptDate: r.LastAttemptDate,
		WillRetryUntil:  r.WillRetryUntil,
	}
	if r.OriginalRecipient != "" && r.OriginalRecipient != r.FinalRecipient {
		out.OriginalRecipient = mtqp.RFC822(r.OriginalRecipient)
	}
	if r.RemoteMTA != "" {
		out.RemoteMTA = mtqp.DNS(r.RemoteMTA)
	}
	st, err := mtqp.ParseStatus(r.Status)
	if err != nil || !st.Valid() {
		st = DefaultStatus(r.Action)
	}
	out.Status = st
	state := ""
	switch {
	case r.Action == tracking.StateQueued && held:
		state = "held"
	case r.Action != action:
		state = string(r.Action)
	}
	if state != "" {
		out.Extensions = append(out.Extensions, mtqp.Field{Name: FieldTrackingState, Value: state})
	}
	if r.Diagnostic != "" {
		out.Extensions = append(out.Extensions, mtqp.Field{Name: FieldDiagnostic, Value: r.Diagnostic})
	}
	return out
}

// DefaultStatus is the RFC 3463 code reported for a recipient whose record
// carries none: 2.0.0 for delivered, expanded and transferred, 2.1.9
// (RFC 3886: relayed to a non-compliant mailer) for relayed, 4.0.0 for
// anything still queued or delayed, 5.0.0 for failed and recalled.
func DefaultStatus(a tracking.Action) mtqp.Status {
	switch a {
	case tracking.ActionDelivered, tracking.ActionExpanded, tracking.ActionTransferred, tracking.ActionOpaque:
		return mtqp.Status{Class: 2, Subject: 0, Detail: 0}
	case tracking.ActionRelayed:
		return mtqp.Status{Class: 2, Subject: 1, Detail: 9}
	case tracking.ActionFailed, tracking.StateRecalled:
		return mtqp.Status{Class: 5, Subject: 0, Detail: 0}
	}
	return mtqp.Status{Class: 4, Subject: 0, Detail: 0}
}

// storeError is a temporary failure whose reply names no detail.
type storeError struct{ err error }

func (e *storeError) Error() string { return "mtqpbackend: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// MTQPReply makes the server answer 451 without detail.
func (e *storeError) MTQPReply() (int, string) {
	return mtqp.CodeLocalError, "Tracking information temporarily unavailable"
}

func mapError(err error) error {
	if errors.Is(err, tracking.ErrNotFound) {
		return mtqp.ErrNotFound
	}
	return &storeError{err: err}
}
