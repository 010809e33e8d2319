package mta

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/msgtrack/msgtrack/aliasing"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/aliases"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/received"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/spool"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/gosmtp"
)

// Keys of spool.Tracking.Extra and spool.Recipient.Meta.
const (
	extraQueue    = "queue"  // tracking.Ref.QueueID
	extraEnvID    = "envid"  // decoded envelope ID the record uses
	extraSource   = "source" // gosmtp.Source
	metaCertifier = "mtrk"   // "1" when the recipient carries the certifier
	metaParent    = "parent" // the address whose expansion produced it
)

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func smtpErr(code int, enh [3]int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enh), Message: msg}
}

// replyOf turns an error with the project's SMTPReply convention into a
// go-smtp error.
func replyOf(err error) error {
	var r interface {
		SMTPReply() (int, [3]int, string)
	}
	if errors.As(err, &r) {
		c, e, msg := r.SMTPReply()
		return smtpErr(c, e, msg)
	}
	return smtpErr(451, [3]int{4, 3, 0}, "Local error, try again later")
}

// backend is the inner go-smtp backend of one listener.
type backend struct {
	m          *MTA
	submission bool
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := &session{m: b.m, submission: b.submission, conn: c, info: smtpext.FromConn(c)}
	if !b.m.limit.allow(c.Conn().RemoteAddr()) {
		b.m.log.Warn("smtp: session rate limit", "remote", s.remote())
		return nil, smtpErr(421, [3]int{4, 7, 0}, "Too many sessions from your address, try again later")
	}
	if b.submission {
		return &authSession{s}, nil
	}
	return s, nil
}

type rcpt struct {
	addr string
	opts smtp.RcptOptions
}

// accepted is a message spooled by this session whose tracking record is
// being written by the middleware; afterAccept finishes it.
type accepted struct {
	id   string
	tr   *gosmtp.Tracking
	plan *aliasing.Plan
}

// session is one SMTP session. The middleware wraps it.
type session struct {
	m          *MTA
	submission bool
	conn       *smtp.Conn
	info       *smtpext.Info

	user  string
	from  string
	mopts smtp.MailOptions
	rcpts []rcpt
	tr    *gosmtp.Tracking

	pending []accepted
}

// authSession adds AUTH PLAIN (submission only).
type authSession struct{ *session }

func (s *authSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *authSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtpErr(504, [3]int{5, 5, 4}, "Unsupported authentication mechanism")
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return smtpErr(535, [3]int{5, 7, 8}, "Authorization identity must match")
		}
		if s.m.users == nil || s.m.users.Authenticate(username, password) != nil {
			s.m.log.Info("smtp: authentication failed", "user", username, "remote", s.remote())
			return smtpErr(535, [3]int{5, 7, 8}, "Authentication credentials invalid")
		}
		s.user = username
		return nil
	}), nil
}

// AuthenticatedUser implements gosmtp.AuthUserSession.
func (s *session) AuthenticatedUser() string { return s.user }

func (s *session) remote() string {
	if s.info != nil && s.info.RemoteAddr() != nil {
		return s.info.RemoteAddr().String()
	}
	return s.conn.Conn().RemoteAddr().String()
}

// SetTracking implements gosmtp.TrackedSession.
func (s *session) SetTracking(t *gosmtp.Tracking) { s.tr = t }

func (s *session) Reset() {
	s.from, s.mopts, s.rcpts, s.tr = "", smtp.MailOptions{}, nil, nil
	s.afterAccept()
}

func (s *session) Logout() error {
	s.afterAccept()
	return nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.submission && s.user == "" {
		return smtpErr(530, [3]int{5, 7, 0}, "Authentication required")
	}
	s.from = from
	if opts != nil {
		s.mopts = *opts
	}
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	local, dom := splitAddr(to)
	if dom == "" {
		return smtpErr(550, [3]int{5, 1, 3}, "Fully qualified address required")
	}
	if s.m.isLocal(to) {
		if !s.m.mailbox(local) && !s.m.isAlias(to) {
			return smtpErr(550, [3]int{5, 1, 1}, "No such user here")
		}
	} else if !(s.submission && s.user != "") {
		return smtpErr(554, [3]int{5, 7, 1}, "Relaying denied")
	}
	r := rcpt{addr: to}
	if opts != nil {
		r.opts = *opts
	}
	s.rcpts = append(s.rcpts, r)
	return nil
}

// Data reads the message, checks the hop count, prepends a Received field,
// expands aliases and spools the message durably. The middleware writes
// the tracking record once Data has returned; go-smtp replies 250 after
// that.
func (s *session) Data(r io.Reader) error {
	m := s.m
	body, err := io.ReadAll(io.LimitReader(r, DefaultMaxMessage+1))
	if err != nil {
		return err
	}
	if len(body) > DefaultMaxMessage {
		return smtpErr(552, [3]int{5, 3, 4}, "Message too big")
	}
	hops := received.CountBytes(body)
	if err := received.Check(hops, 0); err != nil {
		m.log.Warn("smtp: loop detected", "from", s.from, "hops", hops)
		return replyOf(err)
	}
	tr := s.tr
	if tr == nil {
		tr = &gosmtp.Tracking{QueueID: newID() + "@" + m.hostname}
	}
	now := time.Now()

	plan, err := s.plan(tr)
	if err != nil {
		return err
	}
	env := &spool.Envelope{
		From: s.from, Ret: string(s.mopts.Return), AuthUser: s.user, Hops: hops + 1,
		Arrival: now,
		Tracking: spool.Tracking{Extra: map[string]string{
			extraQueue: tr.QueueID, extraSource: tr.Source.String(),
		}},
	}
	if s.mopts.EnvelopeID != "" {
		env.EnvID = smtpext.XText(s.mopts.EnvelopeID)
	}
	if tr.Tracked() {
		env.Tracking.ID = tr.Certifier.String()
		env.Tracking.Certifier = tr.Certifier.String()
		env.Tracking.Timeout = tr.Timeout
		env.Tracking.Extra[extraEnvID] = tr.EnvelopeID
	}
	if tr.HasHold {
		env.HoldUntil = tr.Hold.Until
	}
	byAddr := map[string]rcpt{}
	for _, rc := range s.rcpts {
		byAddr[rc.addr] = rc
	}
	for _, root := range plan.Roots {
		orig := byAddr[root.Address]
		root.Walk(func(n *aliasing.Node, _ int) bool {
			for _, c := range n.Children {
				if c.Outcome == aliasing.Final {
					env.Recipients = append(env.Recipients, spoolRcpt(c, orig, n.Address))
				}
			}
			return true
		})
		if root.Outcome == aliasing.Final {
			env.Recipients = append(env.Recipients, spoolRcpt(root, orig, ""))
		}
	}
	if len(env.Recipients) == 0 {
		return smtpErr(554, [3]int{5, 4, 6}, "Alias expansion loop: no recipient left")
	}

	var rcptAddrs []string
	for _, rc := range s.rcpts {
		rcptAddrs = append(rcptAddrs, rc.addr)
	}
	info := received.Info{
		Helo: s.conn.Hostname(), By: m.hostname, ESMTP: true, Auth: s.user != "",
		ID: tr.QueueID, Rcpts: rcptAddrs, Time: now,
	}
	if s.info != nil {
		if st, ok := s.info.TLS(); ok {
			info.TLS = true
			info.TLSDetail = tlsDetail(st.Version, st.CipherSuite)
		}
	}
	if ap, err := netip.ParseAddrPort(s.remote()); err == nil {
		info.RemoteIP = ap.Addr().Unmap()
	} else if h, _, err := net.SplitHostPort(s.remote()); err == nil {
		info.RemoteIP, _ = netip.ParseAddr(h)
	}
	msg := io.MultiReader(strings.NewReader(received.Field(info)), bytes.NewReader(body))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := m.spool.Put(ctx, env, msg)
	if err != nil {
		m.log.Error("smtp: spooling failed", "err", err)
		return replyOf(err)
	}
	m.openGate(id)
	s.pending = append(s.pending, accepted{id: id, tr: tr, plan: plan})

	attrs := []slog.Attr{
		slog.String("id", id), slog.String("queue", tr.QueueID), slog.String("from", s.from),
		slog.String("envid", s.mopts.EnvelopeID), slog.Int("rcpts", len(env.Recipients)),
		slog.Int64("size", int64(len(body))), slog.String("tracking", tr.Source.String()),
		slog.String("user", s.user), slog.Bool("submission", s.submission),
	}
	attrs = append(attrs, m.logCfg.SlogAttrs(tracking.LogInfo{Certifier: tr.Certifier, Timeout: tr.Timeout, ReleaseAt: env.HoldUntil, Now: now})...)
	m.log.LogAttrs(ctx, slog.LevelInfo, "message spooled", attrs...)
	for _, rc := range env.Recipients {
		m.log.Info("recipient queued", "id", id, "rcpt", rc.Addr, "carries_mtrk", rc.Meta[metaCertifier] == "1", "parent", rc.Meta[metaParent])
	}
	return nil
}

func spoolRcpt(n *aliasing.Node, orig rcpt, parent string) spool.Recipient {
	r := spool.Recipient{Addr: n.Address, Meta: map[string]string{}}
	if len(orig.opts.Notify) > 0 {
		ns := make([]string, len(orig.opts.Notify))
		for i, x := range orig.opts.Notify {
			ns[i] = string(x)
		}
		r.Notify = strings.Join(ns, ",")
	}
	switch {
	case orig.opts.OriginalRecipient != "":
		t := strings.ToLower(string(orig.opts.OriginalRecipientType))
		if t == "" {
			t = "rfc822"
		}
		r.ORcpt = t + ";" + smtpext.XText(orig.opts.OriginalRecipient)
	case parent != "":
		r.ORcpt = "rfc822;" + smtpext.XText(orig.addr)
	}
	if n.Carries {
		r.Meta[metaCertifier] = "1"
	}
	if parent != "" {
		r.Meta[metaParent] = parent
	}
	return r
}

// plan expands the transaction's recipients under the source channel's
// alias policy.
func (s *session) plan(tr *gosmtp.Tracking) (*aliasing.Plan, error) {
	ch := s.m.chMX
	if s.submission {
		ch = s.m.chSub
	}
	pl := aliasing.Planner{Policy: ch.AliasPolicy, Expander: aliasing.ExpanderFunc(s.m.expand)}
	roots := make([]aliasing.Recipient, len(s.rcpts))
	for i, rc := range s.rcpts {
		roots[i] = aliasing.Recipient{Address: rc.addr, Tracked: tr.Tracked()}
	}
	plan, err := pl.Plan(context.Background(), roots...)
	if err != nil {
		s.m.log.Warn("smtp: alias expansion failed", "err", err)
		return nil, smtpErr(554, [3]int{5, 4, 6}, "Alias expansion failed")
	}
	return plan, nil
}

// isAlias reports whether addr is an alias or list of a local domain.
func (m *MTA) isAlias(addr string) bool {
	_, ok, _ := m.expand(context.Background(), addr)
	return ok
}

// expand is the aliasing.Expander over the aliases file: names of local
// domains, looked up as the full address and then as the local part; bare
// targets are qualified with the alias's domain.
func (m *MTA) expand(_ context.Context, addr string) (aliasing.Expansion, bool, error) {
	if m.aliases == nil || !m.isLocal(addr) {
		return aliasing.Expansion{}, false, nil
	}
	local, dom := splitAddr(addr)
	kind, targets, ok := m.aliases.Lookup(addr)
	if !ok {
		kind, targets, ok = m.aliases.Lookup(local)
	}
	if !ok {
		return aliasing.Expansion{}, false, nil
	}
	exp := aliasing.Expansion{Kind: aliasing.Alias}
	if kind == aliases.List {
		exp.Kind = aliasing.List
	}
	for _, t := range targets {
		if !strings.Contains(t, "@") {
			t += "@" + dom
		}
		exp.Members = append(exp.Members, t)
	}
	return exp, true, nil
}

// afterAccept runs once go-smtp has answered the message (the middleware
// has written the tracking record by then): it records the alias
// expansions and lets the scheduler deliver the message.
func (s *session) afterAccept() {
	if len(s.pending) == 0 {
		return
	}
	m := s.m
	for _, a := range s.pending {
		if a.tr.Tracked() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ref := tracking.Ref{Certifier: a.tr.Certifier, QueueID: a.tr.QueueID}
			for _, root := range a.plan.Roots {
				root.Walk(func(n *aliasing.Node, _ int) bool {
					if n.Outcome != aliasing.Expanded {
						return true
					}
					var kids []tracking.Child
					for _, c := range n.Children {
						if c.Outcome == aliasing.Final || c.Outcome == aliasing.Expanded {
							kids = append(kids, tracking.Child{Address: c.Address, Tracked: c.Carries})
						}
					}
					evID := fmt.Sprintf("expanded:%s:%s", a.tr.QueueID, n.Address)
					if err := m.engine.Expanded(ctx, ref, evID, n.Address, n.Kind == aliasing.List, kids); err != nil {
						m.log.Warn("tracking: expansion not recorded", "queue", a.tr.QueueID, "rcpt", n.Address, "err", err)
					}
					return true
				})
			}
			cancel()
		}
		m.closeGate(a.id)
	}
	s.pending = nil
	m.sched.Notify()
}

// openGate marks a spooled message whose tracking record may still be
// being written; deliver waits for closeGate.
func (m *MTA) openGate(id string) {
	m.gatesMu.Lock()
	m.gates[id] = make(chan struct{})
	m.gatesMu.Unlock()
}

func (m *MTA) closeGate(id string) {
	m.gatesMu.Lock()
	if ch, ok := m.gates[id]; ok {
		close(ch)
		delete(m.gates, id)
	}
	m.gatesMu.Unlock()
}

func (m *MTA) waitGate(ctx context.Context, id string) {
	m.gatesMu.Lock()
	ch, ok := m.gates[id]
	m.gatesMu.Unlock()
	if !ok {
		return
	}
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-t.C:
	}
}

func tlsDetail(version, suite uint16) string {
	return strings.ReplaceAll(tls.VersionName(version), " ", "") + " " + tls.CipherSuiteName(suite)
}
