package mta

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"

	"net"
	"strings"
	"time"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/dsn"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/maildir"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/scheduler"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/spool"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/gosmtp"
)

// tracked is what the spool keeps of a message's tracking.
type tracked struct {
	ref     tracking.Ref
	timeout time.Duration
	envID   string
	ok      bool
}

func trackingOf(env *spool.Envelope) tracked {
	t := tracked{ref: tracking.Ref{QueueID: env.Tracking.Extra[extraQueue]}, timeout: env.Tracking.Timeout, envID: env.Tracking.Extra[extraEnvID]}
	if env.Tracking.Certifier == "" {
		return t
	}
	c, err := mtrk.ParseCertifier(env.Tracking.Certifier)
	if err != nil {
		return t
	}
	t.ref.Certifier, t.ok = c, true
	return t
}

func (m *MTA) logAttrs(env *spool.Envelope, tr tracked) []any {
	var out []any
	for _, a := range m.logCfg.SlogAttrs(tracking.LogInfo{Certifier: tr.ref.Certifier, Timeout: tr.timeout, ReleaseAt: env.HoldUntil}) {
		out = append(out, a)
	}
	return out
}

// deliver is the scheduler's DeliverFunc. The recipients are claimed in the
// spool; here they are claimed in the tracking record too, then delivered
// locally or relayed.
func (m *MTA) deliver(ctx context.Context, env *spool.Envelope, rcpts []string) []scheduler.Result {
	m.waitGate(ctx, env.ID)
	tr := trackingOf(env)
	var results []scheduler.Result
	todo := rcpts
	attempt := fmt.Sprintf("%s:%d", tr.ref.QueueID, env.Attempts)

	if tr.ok {
		claims, err := m.engine.BeginDelivery(ctx, tr.ref, rcpts)
		if err != nil {
			m.log.Warn("tracking: claim failed; the spool decides", "id", env.ID, "err", err)
		}
		todo = nil
		var recalled []string
		for i, r := range rcpts {
			c := tracking.ClaimUnknown
			if i < len(claims) {
				c = claims[i]
			}
			switch c {
			case tracking.ClaimRecalled:
				recalled = append(recalled, r)
			case tracking.ClaimDefer:
				results = append(results, scheduler.Result{Rcpt: r, Outcome: scheduler.Deferred, Reason: "451 4.3.0 tracking store unavailable"})
			default:
				todo = append(todo, r)
			}
		}
		if len(recalled) > 0 {
			m.recallClaimed(ctx, env, tr, recalled)
		}
	}

	var local, remote []string
	for _, r := range todo {
		if m.isLocal(r) {
			local = append(local, r)
		} else {
			remote = append(remote, r)
		}
	}
	if len(local) > 0 {
		results = append(results, m.deliverLocal(ctx, env, tr, local, attempt)...)
	}
	if len(remote) > 0 {
		results = append(results, m.deliverRemote(ctx, env, tr, remote, attempt)...)
	}
	return results
}

// recallClaimed withdraws recipients that a recall claimed before this
// attempt (they are Delivering in the spool, claimed by the scheduler) and
// confirms the recall to the engine.
func (m *MTA) recallClaimed(ctx context.Context, env *spool.Envelope, tr tracked, rcpts []string) {
	ioctx := context.WithoutCancel(ctx)
	var done []string
	_, err := m.spool.Update(ioctx, env.ID, func(e *spool.Envelope) error {
		done = done[:0]
		for _, a := range rcpts {
			if r := e.Recipient(a); r != nil && r.State == spool.Delivering {
				r.State, r.Reason, r.Updated = spool.Recalled, "recalled", time.Now()
				done = append(done, r.Addr)
			}
		}
		return nil
	})
	if err != nil {
		m.log.Error("spool: recording a recall failed", "id", env.ID, "err", err)
		return
	}
	if len(done) == 0 {
		return
	}
	if err := m.engine.Recalled(ioctx, tr.ref, "recalled:"+tr.ref.QueueID+":"+strings.Join(done, ","), done...); err != nil {
		m.log.Warn("tracking: recall not confirmed", "id", env.ID, "err", err)
	}
	for _, r := range done {
		m.log.Info("recipient recalled", append([]any{"id", env.ID, "rcpt", r, "queue", tr.ref.QueueID}, m.logAttrs(env, tr)...)...)
	}
}

func (m *MTA) deliverLocal(ctx context.Context, env *spool.Envelope, tr tracked, rcpts []string, attempt string) []scheduler.Result {
	var (
		results                  []scheduler.Result
		okOuts, failOuts, delays []tracking.Outcome
	)
	for _, r := range rcpts {
		user, _ := splitAddr(r)
		if !m.mailbox(user) {
			reason := "550 5.1.1 no such mailbox"
			results = append(results, scheduler.Result{Rcpt: r, Outcome: scheduler.Failed, Reason: reason})
			failOuts = append(failOuts, tracking.Outcome{Recipient: r, Status: "5.1.1", Diagnostic: reason})
			continue
		}
		body, err := m.spool.Body(env.ID)
		if err != nil {
			results = append(results, scheduler.Result{Rcpt: r, Outcome: scheduler.Deferred, Reason: "451 4.3.0 " + err.Error()})
			delays = append(delays, tracking.Outcome{Recipient: r, Status: "4.3.0", Diagnostic: err.Error()})
			continue
		}
		path, err := m.maildir.Deliver(ctx, user, body)
		_ = body.Close()
		var me *maildir.Error
		switch {
		case err == nil:
			results = append(results, scheduler.Result{Rcpt: r, Outcome: scheduler.Delivered, Reason: "delivered to " + path})
			okOuts = append(okOuts, tracking.Outcome{Recipient: r})
		case errors.As(err, &me) && me.Permanent:
			reason := "550 5.1.3 " + err.Error()
			results = append(results, scheduler.Result{Rcpt: r, Outcome: scheduler.Failed, Reason: reason})
			failOuts = append(failOuts, tracking.Outcome{Recipient: r, Status: "5.1.3", Diagnostic: reason})
		default:
			reason := "451 4.3.0 " + err.Error()
			results = append(results, scheduler.Result{Rcpt: r, Outcome: scheduler.Deferred, Reason: reason})
			delays = append(delays, tracking.Outcome{Recipient: r, Status: "4.3.0", Diagnostic: reason})
		}
	}
	if tr.ok {
		ioctx := context.WithoutCancel(ctx)
		if len(okOuts) > 0 {
			if err := m.engine.Dequeued(ioctx, tr.ref, "local-ok:"+attempt, tracking.DispositionDelivered, false, okOuts...); err != nil {
				m.log.Warn("tracking: delivery not recorded", "id", env.ID, "err", err)
			}
		}
		if len(failOuts) > 0 {
			if err := m.engine.Failed(ioctx, tr.ref, "local-fail:"+attempt, failOuts...); err != nil {
				m.log.Warn("tracking: failure not recorded", "id", env.ID, "err", err)
			}
		}
		if len(delays) > 0 {
			if err := m.engine.Delayed(ioctx, tr.ref, "local-delay:"+attempt, delays...); err != nil {
				m.log.Warn("tracking: delay not recorded", "id", env.ID, "err", err)
			}
		}
	}
	return results
}

func (m *MTA) deliverRemote(ctx context.Context, env *spool.Envelope, tr tracked, rcpts []string, attempt string) []scheduler.Result {
	fail := func(outcome scheduler.Outcome, status, reason string) []scheduler.Result {
		var res []scheduler.Result
		var outs []tracking.Outcome
		for _, r := range rcpts {
			res = append(res, scheduler.Result{Rcpt: r, Outcome: outcome, Reason: reason})
			outs = append(outs, tracking.Outcome{Recipient: r, Status: status, Diagnostic: reason, RemoteMTA: m.cfg.Relay})
		}
		if tr.ok {
			ioctx := context.WithoutCancel(ctx)
			var err error
			if outcome == scheduler.Failed {
				err = m.engine.Failed(ioctx, tr.ref, "remote-fail:"+attempt, outs...)
			} else {
				err = m.engine.Delayed(ioctx, tr.ref, "remote-delay:"+attempt, outs...)
			}
			if err != nil {
				m.log.Warn("tracking: relay outcome not recorded", "id", env.ID, "err", err)
			}
		}
		return res
	}
	if m.cfg.Relay == "" {
		return fail(scheduler.Failed, "5.4.4", "550 5.4.4 no route to the recipient's domain (no relay configured)")
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := smtpext.Dial(dctx, m.cfg.Relay)
	if err != nil {
		return fail(scheduler.Deferred, "4.4.1", "451 4.4.1 cannot connect to relay: "+err.Error())
	}
	defer c.Close()
	if err := c.Hello(dctx, m.hostname); err != nil {
		return fail(scheduler.Deferred, "4.4.2", "451 4.4.2 relay EHLO failed: "+err.Error())
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		host, _, _ := net.SplitHostPort(m.cfg.Relay)
		// Opportunistic TLS between MTAs (RFC 3207): the peer's
		// certificate is not verified, as is usual for MX traffic.
		if err := c.StartTLS(dctx, &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}); err != nil { //nolint:gosec
			return fail(scheduler.Deferred, "4.7.0", "451 4.7.0 relay STARTTLS failed: "+err.Error())
		}
	}
	msg := gosmtp.Message{
		QueueID: tr.ref.QueueID, EnvelopeID: tr.envID, From: env.From, Arrival: env.Arrival,
		EventID: "relay:" + attempt,
		Body: func() (io.Reader, error) {
			rc, err := m.spool.Body(env.ID)
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			return bytes.NewReader(b), err
		},
	}
	if tr.ok {
		msg.Certifier, msg.Timeout = tr.ref.Certifier, tr.timeout
		for _, r := range rcpts {
			if rr := env.Recipient(r); rr != nil && rr.Meta[metaCertifier] == "1" {
				msg.WithCertifier = append(msg.WithCertifier, r)
			} else {
				msg.WithoutCertifier = append(msg.WithoutCertifier, r)
			}
		}
	} else {
		msg.WithoutCertifier = rcpts
	}
	if msg.EnvelopeID == "" && env.EnvID != "" {
		msg.EnvelopeID, _ = dsn.DecodeXtext(env.EnvID)
	}
	relayHost, _, _ := net.SplitHostPort(m.cfg.Relay)
	res, err := m.relay.Send(dctx, c, relayHost, msg)
	got := map[string]bool{}
	var results []scheduler.Result
	if res != nil {
		for _, rr := range res.Recipients {
			got[strings.ToLower(rr.Address)] = true
			reason := fmt.Sprintf("%d %d.%d.%d %s", rr.Reply.Code, rr.Reply.Enhanced[0], rr.Reply.Enhanced[1], rr.Reply.Enhanced[2], rr.Reply.Message)
			out := scheduler.Deferred
			switch {
			case rr.Accepted:
				out = scheduler.Delivered
				reason = "relayed to " + m.cfg.Relay + fmt.Sprintf(" (mtrk=%v): ", rr.MTRK) + reason
			case rr.Reply.Code >= 500:
				out = scheduler.Failed
			}
			results = append(results, scheduler.Result{Rcpt: rr.Address, Outcome: out, Reason: reason})
		}
		if res.RecordErr != nil {
			m.log.Warn("tracking: relay outcome not recorded", "id", env.ID, "err", res.RecordErr)
		}
	}
	if err != nil {
		var rest []string
		for _, r := range rcpts {
			if !got[strings.ToLower(r)] {
				rest = append(rest, r)
			}
		}
		if len(rest) > 0 {
			rcpts = rest
			results = append(results, fail(scheduler.Deferred, "4.4.2", "451 4.4.2 relay failed: "+err.Error())...)
		}
	}
	_ = c.Quit(dctx)
	return results
}

// onResult logs each outcome and sends a DSN for permanent failures and
// expired recipients (RFC 3464, NOTIFY/RET/ENVID of RFC 3461).
func (m *MTA) onResult(ctx context.Context, env *spool.Envelope, results []scheduler.Result) {
	tr := trackingOf(env)
	var failed []dsn.Recipient
	for _, r := range results {
		args := []any{"id", env.ID, "queue", tr.ref.QueueID, "from", env.From, "rcpt", r.Rcpt, "outcome", r.Outcome.String(), "reason", r.Reason}
		m.log.Info("recipient result", append(args, m.logAttrs(env, tr)...)...)
		if r.Outcome != scheduler.Failed {
			continue
		}
		sr := env.Recipient(r.Rcpt)
		d := dsn.Recipient{Addr: r.Rcpt, Action: dsn.Failed, Diagnostic: r.Reason, LastAttempt: time.Now()}
		if r.Expired {
			d.Status = "4.4.7"
		}
		if sr != nil {
			d.ORcpt, d.Notify = sr.ORcpt, sr.Notify
		}
		if tr.ok && r.Expired {
			_ = m.engine.Failed(ctx, tr.ref, "expired:"+tr.ref.QueueID+":"+r.Rcpt, tracking.Outcome{Recipient: r.Rcpt, Status: "4.4.7", Diagnostic: r.Reason})
		}
		failed = append(failed, d)
	}
	if len(failed) == 0 {
		return
	}
	body, err := m.spool.Body(env.ID)
	if err != nil {
		m.log.Error("dsn: cannot read the original message", "id", env.ID, "err", err)
		return
	}
	defer body.Close()
	d, err := dsn.Build(dsn.Report{
		ReportingMTA: m.hostname, Sender: env.From, EnvID: env.EnvID, Ret: env.Ret,
		Arrival: env.Arrival, Recipients: failed,
	}, body)
	switch {
	case errors.Is(err, dsn.ErrNullSender), errors.Is(err, dsn.ErrNotRequested):
		m.log.Info("dsn: none sent", "id", env.ID, "why", err.Error())
		return
	case err != nil:
		m.log.Error("dsn: building failed", "id", env.ID, "err", err)
		return
	}
	id, err := m.spool.Put(ctx, &spool.Envelope{
		From: d.From, Recipients: []spool.Recipient{{Addr: d.To, Notify: "NEVER"}},
		Tracking: spool.Tracking{Extra: map[string]string{extraQueue: newID() + "@" + m.hostname}},
	}, bytes.NewReader(d.Message))
	if err != nil {
		m.log.Error("dsn: spooling failed", "id", env.ID, "err", err)
		return
	}
	m.log.Info("dsn queued", "id", id, "about", env.ID, "to", d.To, "reported", strings.Join(d.Reported, ","))
	m.sched.Notify()
}

// spoolQueue is the engine's tracking.Queue: a recall made through this
// MTA removes recipients from the spool, which is the authority.
type spoolQueue struct{ m *MTA }

// Remove implements tracking.Queue.
func (q spoolQueue) Remove(ctx context.Context, queueID string, rcpts []string) ([]string, error) {
	env := q.m.byQueueID(queueID)
	if env == nil {
		return nil, nil
	}
	if len(rcpts) == 0 {
		return nil, nil
	}
	// A recipient the record still shows unexpanded (the expansion event
	// was lost, say to a store outage) names an alias whose members are
	// what the spool holds: recall the members that carry the
	// certifier, and report the alias removed when all of them are.
	want := map[string][]string{}
	var addrs []string
	for _, r := range rcpts {
		if env.Recipient(r) != nil {
			want[strings.ToLower(r)] = []string{r}
			addrs = append(addrs, r)
			continue
		}
		for _, sr := range env.Recipients {
			if strings.EqualFold(sr.Meta[metaParent], r) && sr.Meta[metaCertifier] == "1" {
				want[strings.ToLower(r)] = append(want[strings.ToLower(r)], sr.Addr)
				addrs = append(addrs, sr.Addr)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, nil
	}
	got, err := q.m.spool.Recall(ctx, env.ID, addrs)
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for _, a := range got {
		done[strings.ToLower(a)] = true
	}
	var removed []string
	for _, r := range rcpts {
		members := want[strings.ToLower(r)]
		all := len(members) > 0
		for _, a := range members {
			all = all && done[strings.ToLower(a)]
		}
		if all {
			removed = append(removed, r)
		}
	}
	tr := trackingOf(env)
	for _, r := range removed {
		q.m.log.Info("recipient recalled", append([]any{"id", env.ID, "rcpt", r, "queue", queueID}, q.m.logAttrs(env, tr)...)...)
	}
	return removed, nil
}

func (m *MTA) byQueueID(queueID string) *spool.Envelope {
	for _, env := range m.spool.List() {
		if env.Tracking.Extra[extraQueue] == queueID {
			return env
		}
	}
	return nil
}

// pollRecalls asks the engine, for every tracked message with recipients
// still pending in the spool, whether a recall made elsewhere in the
// deployment waits for this queue, and carries it out.
func (m *MTA) pollRecalls(ctx context.Context) {
	every := m.cfg.PollInterval
	if every <= 0 {
		every = DefaultPollInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, env := range m.spool.List() {
			tr := trackingOf(env)
			if !tr.ok || env.Done() {
				continue
			}
			pending := false
			for _, r := range env.Recipients {
				if r.State.Pending() {
					pending = true
				}
			}
			if !pending {
				continue
			}
			want, err := m.engine.PendingRecall(ctx, tr.ref)
			if err != nil || len(want) == 0 {
				continue
			}
			removed, err := m.spool.Recall(ctx, env.ID, want)
			if err != nil {
				m.log.Error("spool: recall failed", "id", env.ID, "err", err)
				continue
			}
			if len(removed) == 0 {
				continue
			}
			if err := m.engine.Recalled(ctx, tr.ref, "recalled:"+tr.ref.QueueID+":"+strings.Join(removed, ","), removed...); err != nil {
				m.log.Warn("tracking: recall not confirmed", "id", env.ID, "err", err)
			}
			for _, r := range removed {
				m.log.Info("recipient recalled", append([]any{"id", env.ID, "rcpt", r, "queue", tr.ref.QueueID, "via", "pending"}, m.logAttrs(env, tr)...)...)
			}
			m.sched.Notify()
		}
	}
}
