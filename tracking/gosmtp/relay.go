package gosmtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/msgtrack/msgtrack/aliasing"
	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
)

// Relay sends queued messages onward over one destination channel with
// smtpext's Client, passing MTRK= on where RFC 3885 allows it, and records
// each recipient's outcome through the engine. It is safe for concurrent
// use (each call needs its own Client).
type Relay struct {
	// Engine records the outcomes. Nil: nothing is recorded.
	Engine *tracking.Engine
	// Channel is the destination channel: trackingclient (pass MTRK on),
	// trackinginternal / trackingrelayed / trackingdelivered (what a
	// successful transfer means).
	Channel channelopts.Channel
	// Logger receives store failures. Nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Message is one queued message to relay.
type Message struct {
	// Certifier, Timeout and Arrival are the message's tracking ID, its
	// tracking timeout and when this MTA accepted it (Tracking.Certifier,
	// Timeout, Arrival); a nil Certifier is an untracked message.
	Certifier mtrk.Certifier
	Timeout   time.Duration
	Arrival   time.Time
	// QueueID is this MTA's identifier of the message (tracking.Ref).
	QueueID string
	// EnvelopeID is the decoded ENVID; it is sent (xtext-encoded) to peers
	// that offer DSN, and MTRK is only sent with it.
	EnvelopeID string
	// From is the reverse-path.
	From string
	// WithCertifier and WithoutCertifier are the recipients that carry the
	// tracking certifier and those that do not, as an aliasing.Plan lists
	// them (see Relay.Plan). For an untracked message use either.
	WithCertifier, WithoutCertifier []string
	// Body opens the message content; it is called once per transaction.
	Body func() (io.Reader, error)
	// EventID identifies this delivery attempt, so that replaying it
	// changes nothing (tracking events are idempotent by ID). Required
	// when the message is tracked.
	EventID string
}

// RecipientResult is the peer's answer for one recipient.
type RecipientResult struct {
	Address string
	// Reply is the peer's reply to RCPT, or to MAIL or DATA when that is
	// what refused the recipient.
	Reply smtpext.Reply
	// Accepted is true when the peer took the message for the recipient.
	Accepted bool
	// MTRK is true when the recipient went in a transaction carrying
	// MTRK= (so tracking continues at the peer).
	MTRK bool
}

// RelayResult is what Send did.
type RelayResult struct {
	// PeerMTRK reports whether the peer offered MTRK.
	PeerMTRK bool
	// Timeout is the MTRK timeout sent (zero when MTRK was not sent).
	Timeout time.Duration
	// Transactions is the number of mail transactions used (two when the
	// recipients had to be split).
	Transactions int
	Recipients   []RecipientResult
	// RecordErr is the first error of the engine (fail-open: the relay
	// itself is not affected).
	RecordErr error
}

// Policy returns the alias policy to plan with for this destination: the
// strict RFC 3885 rule (aliasing.Strict: one recipient, or a designated
// primary, keeps the certifier) towards hops outside the deployment
// (trackingrelayed), otherwise the source channel's policy.
func (r *Relay) Policy(source aliasing.Policy) aliasing.Policy {
	if r.Channel.Disposition == channelopts.Relayed {
		return aliasing.Strict
	}
	return source
}

// Plan expands the original recipients of a message with exp under
// r.Policy(source) and returns the plan whose WithCertifier and
// WithoutCertifier lists go into Message. tracked says whether the message
// has a certifier at all.
func (r *Relay) Plan(ctx context.Context, exp aliasing.Expander, source aliasing.Policy, tracked bool, rcpts ...string) (*aliasing.Plan, error) {
	pl := aliasing.Planner{Policy: r.Policy(source), Expander: exp}
	in := make([]aliasing.Recipient, len(rcpts))
	for i, a := range rcpts {
		in[i] = aliasing.Recipient{Address: a, Tracked: tracked}
	}
	return pl.Plan(ctx, in...)
}

func (r *Relay) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Send relays msg over c (a Client whose EHLO, and STARTTLS if wanted, the
// caller has done) to the peer named remoteMTA (a host name; it becomes
// Remote-MTA, where a tracking client asks next). RFC 3885 rules:
//
//   - MTRK=<certifier>:<remaining> goes only to a peer that offers MTRK
//     and DSN, on a trackingclient channel, with the timeout reduced by
//     the time the message spent here (mtrk.Remaining); when nothing is
//     left, MTRK is dropped, never sent as 0. ENVID travels with it.
//   - MTRK belongs to the transaction, so when it is sent the recipients
//     with and without the certifier go in separate transactions.
//     Without MTRK one transaction carries them all.
//
// Then each recipient's outcome is recorded: accepted ones with
// Engine.Dequeued under the channel's disposition (transferred when MTRK
// went along, relayed when it did not, delivered on trackingdelivered),
// refused ones as failed (5yz) or delayed (4yz), with the peer's reply.
// An I/O error ends Send with the error; outcomes received before it are
// recorded, the others are left for the queue's next attempt.
func (r *Relay) Send(ctx context.Context, c *smtpext.Client, remoteMTA string, msg Message) (*RelayResult, error) {
	if msg.Body == nil {
		return nil, errors.New("gosmtp: Message.Body is nil")
	}
	res := &RelayResult{}
	res.PeerMTRK, _ = c.Extension(mtrk.Keyword)
	dsn, _ := c.Extension("DSN")
	tracked := len(msg.Certifier) > 0
	left, haveLeft := mtrk.Remaining(msg.Timeout, r.now().Sub(msg.Arrival))
	sendMTRK := tracked && r.Channel.TrackingClient && res.PeerMTRK && dsn && haveLeft && msg.EnvelopeID != ""
	if sendMTRK {
		res.Timeout = left
	}

	type group struct {
		rcpts []string
		mtrk  bool
	}
	var groups []group
	if sendMTRK {
		if len(msg.WithCertifier) > 0 {
			groups = append(groups, group{msg.WithCertifier, true})
		}
		if len(msg.WithoutCertifier) > 0 {
			groups = append(groups, group{msg.WithoutCertifier, false})
		}
	} else {
		all := append(append([]string(nil), msg.WithCertifier...), msg.WithoutCertifier...)
		if len(all) > 0 {
			groups = append(groups, group{all, false})
		}
	}

	var ioErr error
	for gi, g := range groups {
		params := make([]smtpext.MailParam, 0, 2)
		if msg.EnvelopeID != "" {
			params = append(params, smtpext.MailParam{Name: "ENVID", Value: smtpext.XText(msg.EnvelopeID), Keyword: "DSN", IfSupported: true})
		}
		if g.mtrk {
			p := mtrk.Param{Certifier: msg.Certifier, Timeout: left, TimeoutGiven: true}
			params = append(params, smtpext.MailParam{Name: mtrk.Keyword, Value: p.String(), Keyword: mtrk.Keyword})
		}
		res.Transactions++
		results, err := r.transaction(ctx, c, msg, g.rcpts, g.mtrk, params)
		res.Recipients = append(res.Recipients, results...)
		if tracked && r.Engine != nil {
			if rerr := r.record(ctx, msg, remoteMTA, gi, g.mtrk, results); rerr != nil && res.RecordErr == nil {
				res.RecordErr = rerr
			}
		}
		if err != nil {
			ioErr = err
			break
		}
	}
	return res, ioErr
}

// transaction runs one MAIL/RCPT/DATA exchange. A negative reply is not an
// error; an I/O failure is.
func (r *Relay) transaction(ctx context.Context, c *smtpext.Client, msg Message, rcpts []string, withMTRK bool, params []smtpext.MailParam) ([]RecipientResult, error) {
	out := make([]RecipientResult, 0, len(rcpts))
	refuseAll := func(rep smtpext.Reply) []RecipientResult {
		for _, a := range rcpts {
			out = append(out, RecipientResult{Address: a, Reply: rep, MTRK: withMTRK})
		}
		return out
	}
	if err := c.Mail(ctx, msg.From, params...); err != nil {
		var re *smtpext.ReplyError
		if !errors.As(err, &re) {
			return out, err
		}
		_ = c.Reset(ctx)
		return refuseAll(replyOf(re)), nil
	}
	var ok []int
	for _, a := range rcpts {
		rep, err := c.Rcpt(ctx, a)
		var re *smtpext.ReplyError
		if err != nil && !errors.As(err, &re) {
			return out, err
		}
		rr := RecipientResult{Address: a, MTRK: withMTRK}
		if rep != nil {
			rr.Reply = *rep
		} else if re != nil {
			rr.Reply = replyOf(re)
		}
		if err == nil {
			ok = append(ok, len(out))
		}
		out = append(out, rr)
	}
	if len(ok) == 0 {
		return out, c.Reset(ctx)
	}
	body, err := msg.Body()
	if err != nil {
		_ = c.Reset(ctx)
		return out[:0], fmt.Errorf("gosmtp: opening the message: %w", err)
	}
	w, err := c.Data(ctx)
	if err != nil {
		var re *smtpext.ReplyError
		if !errors.As(err, &re) {
			return out[:0], err
		}
		for _, i := range ok {
			out[i].Reply = replyOf(re)
		}
		return out, c.Reset(ctx)
	}
	if _, err := io.Copy(w, body); err != nil {
		w.Close()
		return out[:0], err
	}
	if err := w.Close(); err != nil {
		var re *smtpext.ReplyError
		if !errors.As(err, &re) {
			return out[:0], err
		}
		for _, i := range ok {
			out[i].Reply = replyOf(re)
		}
		return out, nil
	}
	for _, i := range ok {
		out[i].Accepted = true
	}
	return out, nil
}

func replyOf(re *smtpext.ReplyError) smtpext.Reply {
	return smtpext.Reply{Code: re.Code, Enhanced: re.Enhanced, Message: re.Message}
}

// record writes the outcomes of one transaction.
func (r *Relay) record(ctx context.Context, msg Message, remoteMTA string, gi int, withMTRK bool, results []RecipientResult) error {
	ref := tracking.Ref{Certifier: msg.Certifier, QueueID: msg.QueueID}
	var done, failed, delayed []tracking.Outcome
	for _, rr := range results {
		o := tracking.Outcome{Recipient: rr.Address, RemoteMTA: remoteMTA, Diagnostic: diagnostic(rr.Reply)}
		if rr.Reply.Enhanced != [3]int{} {
			o.Status = fmt.Sprintf("%d.%d.%d", rr.Reply.Enhanced[0], rr.Reply.Enhanced[1], rr.Reply.Enhanced[2])
		}
		switch {
		case rr.Accepted:
			o.Status = "" // the event's default (2.0.0, or 2.1.9 for relayed)
			done = append(done, o)
		case rr.Reply.Code/100 == 4:
			delayed = append(delayed, o)
		default:
			failed = append(failed, o)
		}
	}
	id := msg.EventID + "/" + strconv.Itoa(gi)
	var errs []error
	if len(done) > 0 {
		errs = append(errs, r.Engine.Dequeued(ctx, ref, id+"/done", disposition(r.Channel.Disposition), withMTRK, done...))
	}
	if len(failed) > 0 {
		errs = append(errs, r.Engine.Failed(ctx, ref, id+"/failed", failed...))
	}
	if len(delayed) > 0 {
		errs = append(errs, r.Engine.Delayed(ctx, ref, id+"/delayed", delayed...))
	}
	err := errors.Join(errs...)
	if err != nil && r.Logger != nil {
		r.Logger.Warn("gosmtp: relay outcome not recorded", "queue", msg.QueueID, "err", err)
	}
	return err
}

func diagnostic(rep smtpext.Reply) string {
	if rep.Code == 0 {
		return ""
	}
	s := "smtp; " + strconv.Itoa(rep.Code)
	if rep.Enhanced != [3]int{} {
		s += fmt.Sprintf(" %d.%d.%d", rep.Enhanced[0], rep.Enhanced[1], rep.Enhanced[2])
	}
	if rep.Message != "" {
		s += " " + rep.Message
	}
	return s
}

func disposition(d channelopts.Disposition) tracking.Disposition {
	switch d {
	case channelopts.Relayed:
		return tracking.DispositionRelayed
	case channelopts.Delivered:
		return tracking.DispositionDelivered
	}
	return tracking.DispositionInternal
}
