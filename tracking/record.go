package tracking

import (
	"slices"
	"strings"
	"time"

	"github.com/msgtrack/msgtrack/mtrk"
)

// Action is a recipient's state. The first group are the action values of
// RFC 3886 section 3.3.3 (which extends RFC 3464 section 2.3.3 with
// "transferred" and "opaque"); the second group are the engine's own
// states of a recipient still in a queue of the deployment, which an MTQP
// report shows through RFCAction.
type Action string

// RFC 3886 action values.
const (
	ActionFailed      Action = "failed"
	ActionDelayed     Action = "delayed"
	ActionDelivered   Action = "delivered"
	ActionRelayed     Action = "relayed"
	ActionExpanded    Action = "expanded"
	ActionTransferred Action = "transferred"
	ActionOpaque      Action = "opaque"
)

// Internal states. A recipient is claimed once by compare-and-swap out of
// StateQueued (or ActionDelayed, which is queued again after an attempt):
// into StateDelivering by its queue, or into StateRecalling by a recall.
const (
	StateQueued     Action = "queued"
	StateDelivering Action = "delivering"
	StateRecalling  Action = "recalling"
	StateRecalled   Action = "recalled"
)

// claimable reports whether a recipient in state a may be claimed.
func (a Action) claimable() bool { return a == StateQueued || a == ActionDelayed }

// final reports whether a is an outcome that later events must not undo.
func (a Action) final() bool {
	switch a {
	case ActionFailed, ActionDelivered, ActionRelayed, ActionExpanded, ActionTransferred, ActionOpaque, StateRecalled:
		return true
	}
	return false
}

// RFCAction maps a state to the RFC 3886 action value a report shows:
// queued, delivering and recalling recipients are still in a queue
// ("delayed"); a recalled one will not be delivered ("failed", with the
// recall in its status and diagnostic). RFC values map to themselves.
func (a Action) RFCAction() Action {
	switch a {
	case StateQueued, StateDelivering, StateRecalling:
		return ActionDelayed
	case StateRecalled:
		return ActionFailed
	}
	return a
}

// Hop is one MTA's acceptance of the message, in order of arrival.
type Hop struct {
	// ReportingMTA is the accepting MTA's name (Options.ReportingMTA).
	ReportingMTA string
	// QueueID is the MTA's own identifier of its copy of the message.
	QueueID string
	// ArrivalDate is when the MTA accepted it.
	ArrivalDate time.Time
	// Internal is true when it arrived over a channel marked internal
	// (trackinginternal) from another MTA of the deployment.
	Internal bool
}

// Record is one tracked message as the store holds it, in the terms of
// RFC 3886 section 3: per-message fields, then one Recipient per
// recipient. It never contains the secret, only the certifier.
type Record struct {
	// OriginalEnvelopeID is the DSN envelope ID (RFC 3461 ENVID;
	// RFC 3886 section 3.2.1 Original-Envelope-Id).
	OriginalEnvelopeID string
	// Certifier is B = SHA1(secret) from MTRK= (RFC 3885 section 3).
	Certifier mtrk.Certifier
	// Timeout is the tracking timeout applied at the first hop.
	Timeout time.Duration
	// Expires is when the store may forget the record: the end of the
	// hold (if any) plus Timeout, so a hold longer than trackingtimeoutmax
	// is still covered, or later when a Delayed event's Will-Retry-Until
	// extended it (see the package documentation, "Expiry").
	Expires time.Time
	// Sender is the envelope sender (MAIL FROM).
	Sender string
	// ArrivalDate is the first hop's acceptance (Arrival-Date).
	ArrivalDate time.Time
	// ReportingMTA is the first hop's name (Reporting-MTA).
	ReportingMTA string
	// HoldUntil is the FUTURERELEASE release time (RFC 4865), zero if none.
	HoldUntil time.Time
	// Held is true while the message is held.
	Held bool
	// RecallRequested is the first time a recall was requested, zero if
	// never.
	RecallRequested time.Time
	// Hops lists the MTAs that accepted the message.
	Hops []Hop
	// Recipients are sorted by FinalRecipient.
	Recipients []Recipient
	// Incomplete is true when recipient shards the head lists are missing
	// from the store (evicted); MissingShards names them.
	Incomplete    bool
	MissingShards []int
	// HeadMissing is true only from Lookup when the per-message item is
	// gone and the recipients come from surviving shards alone; the
	// per-message fields are then empty.
	HeadMissing bool
}

// Recipient is one recipient's tracking state (RFC 3886 section 3.3).
type Recipient struct {
	// OriginalRecipient is the address before expansion or ORCPT
	// (Original-Recipient); empty if the same as FinalRecipient.
	OriginalRecipient string
	// FinalRecipient is the address this entry tracks (Final-Recipient).
	FinalRecipient string
	// Action is the state; see Action and RFCAction.
	Action Action
	// Status is the RFC 3463 status code, for example "2.0.0".
	Status string
	// RemoteMTA is the next hop (Remote-MTA); for "transferred" it is
	// where a tracking client asks next.
	RemoteMTA string
	// LastAttemptDate is the last delivery attempt (Last-Attempt-Date).
	LastAttemptDate time.Time
	// WillRetryUntil is when the queue gives up (Will-Retry-Until).
	WillRetryUntil time.Time
	// NextAttempt is the next scheduled attempt of a delayed recipient.
	NextAttempt time.Time
	// Diagnostic is the last remote or local reply, carried in reports as
	// an extension field (RFC 3886 has no Diagnostic-Code field).
	Diagnostic string
	// TransferredInternal is true when Action is transferred to an MTA of
	// the same deployment (the channel is trackinginternal).
	TransferredInternal bool
	// ExpandedFrom is the address whose expansion produced this one.
	ExpandedFrom string
	// Children are the addresses an expansion produced; UntrackedChildren
	// the ones that did not receive the certifier (alias policy or list).
	Children          []string
	UntrackedChildren []string
	// List is true when Action is expanded by a mailing list.
	List bool
	// OwnerMTA and QueueID name the queue that currently holds the
	// recipient (the only one that may deliver it).
	OwnerMTA string
	QueueID  string
	// Hop indexes Record.Hops: the hop that owns the recipient.
	Hop int
	// RecallRequested is when a recall claimed or marked the recipient.
	RecallRequested time.Time
}

func unixOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func unixOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (r *wireRcpt) public() Recipient {
	return Recipient{
		OriginalRecipient:   r.Orig,
		FinalRecipient:      r.Final,
		Action:              r.Action,
		Status:              r.Status,
		RemoteMTA:           r.RemoteMTA,
		LastAttemptDate:     unixOrZero(r.LastAttempt),
		WillRetryUntil:      unixOrZero(r.RetryUntil),
		NextAttempt:         unixOrZero(r.NextAttempt),
		Diagnostic:          r.Diag,
		TransferredInternal: r.Internal,
		ExpandedFrom:        r.Parent,
		Children:            append([]string(nil), r.Children...),
		UntrackedChildren:   append([]string(nil), r.Untracked...),
		List:                r.List,
		OwnerMTA:            r.OwnerMTA,
		QueueID:             r.Queue,
		Hop:                 r.Hop,
		RecallRequested:     unixOrZero(r.RecallReq),
	}
}

// buildRecord assembles the public record from a head (may be nil) and the
// shards found.
func buildRecord(h *wireHead, shards []*wireShard) *Record {
	rec := &Record{}
	if h != nil {
		rec.OriginalEnvelopeID = h.EnvID
		rec.Certifier = mtrk.Certifier(append([]byte(nil), h.Cert...))
		rec.Timeout = time.Duration(h.Timeout) * time.Second
		rec.Expires = unixOrZero(h.Expires)
		rec.Sender = h.Sender
		rec.ArrivalDate = unixOrZero(h.Arrival)
		rec.ReportingMTA = h.MTA
		rec.HoldUntil = unixOrZero(h.HoldUntil)
		rec.Held = h.Held
		rec.RecallRequested = unixOrZero(h.Recall)
		for _, hp := range h.Hops {
			rec.Hops = append(rec.Hops, Hop{ReportingMTA: hp.MTA, QueueID: hp.Queue, ArrivalDate: unixOrZero(hp.Arrival), Internal: hp.Internal})
		}
	} else {
		rec.HeadMissing = true
	}
	present := uint32(0)
	n := 0
	if h != nil {
		n = len(h.Rcpts)
	}
	for _, s := range shards {
		if s != nil {
			n += len(s.Rcpts)
		}
	}
	// Sort pointers, then build: cheaper than sorting the large public
	// structs.
	all := make([]*wireRcpt, 0, n)
	if h != nil {
		for i := range h.Rcpts {
			all = append(all, &h.Rcpts[i])
		}
	}
	for _, s := range shards {
		if s == nil {
			continue
		}
		if rec.Certifier == nil {
			rec.Certifier = mtrk.Certifier(append([]byte(nil), s.Cert...))
		}
		present |= 1 << s.N
		for i := range s.Rcpts {
			all = append(all, &s.Rcpts[i])
		}
	}
	slices.SortFunc(all, func(a, b *wireRcpt) int { return strings.Compare(a.Final, b.Final) })
	rec.Recipients = make([]Recipient, len(all))
	for i, r := range all {
		rec.Recipients[i] = r.public()
	}
	if h != nil {
		for i := 0; i < ShardCount; i++ {
			if h.ShardMask&(1<<i) != 0 && present&(1<<i) == 0 {
				rec.MissingShards = append(rec.MissingShards, i)
			}
		}
		rec.Incomplete = len(rec.MissingShards) > 0
	}
	return rec
}
