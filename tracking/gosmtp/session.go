package gosmtp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/msgtrack/msgtrack/futurerelease"
	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
)

// NewSession implements smtp.Backend: it opens a session of the wrapped
// backend and wraps it. The wrapper implements smtp.AuthSession exactly
// when the wrapped session does (go-smtp advertises AUTH on that basis),
// and smtp.LMTPSession always.
func (m *Middleware) NewSession(c *smtp.Conn) (smtp.Session, error) {
	in, err := m.inner.NewSession(c)
	if err != nil {
		return nil, err
	}
	s := &session{m: m, inner: in, info: smtpext.FromConn(c)}
	if a, ok := in.(smtp.AuthSession); ok {
		return &authSession{session: s, auth: a}, nil
	}
	return s, nil
}

// session wraps one go-smtp session of the inner backend.
type session struct {
	m     *Middleware
	inner smtp.Session
	info  *smtpext.Info // nil when not served through smtpext

	authed bool
	user   string

	// The transaction, following go-smtp: a second MAIL replaces the
	// sender and its parameters, not the recipients.
	from    string
	envID   string
	mt      mtrk.Param
	hasMT   bool
	hold    futurerelease.Hold
	hasHold bool
	rcpts   []tracking.AcceptedRecipient

	// hr is the header read-ahead of the current message, reused (with
	// its buffer) from one message to the next of the connection.
	hr headerReader
}

func (s *session) authenticated() bool {
	if s.info != nil && s.info.ConnInfo().Authenticated {
		return true
	}
	return s.authed
}

func (s *session) userName() string {
	if a, ok := s.inner.(AuthUserSession); ok {
		if u := a.AuthenticatedUser(); u != "" {
			return u
		}
	}
	return s.user
}

// Reset implements smtp.Session.
func (s *session) Reset() {
	s.clear()
	s.inner.Reset()
}

func (s *session) clear() {
	s.from, s.envID, s.mt, s.hasMT, s.hold, s.hasHold = "", "", mtrk.Param{}, false, futurerelease.Hold{}, false
	s.rcpts = nil
}

// Logout implements smtp.Session.
func (s *session) Logout() error { return s.inner.Logout() }

// Mail implements smtp.Session. It reads the MTRK, HOLDFOR and HOLDUNTIL
// parameters smtpext parsed for this command and makes the checks that
// need the whole command or the clock: both hold parameters, holds beyond
// the limits (refused, not shortened: futurerelease.Validate), and, with
// Options.RequireEnvelopeID, MTRK without ENVID. A refused command never
// reaches the wrapped session.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	var (
		mt    mtrk.Param
		hasMT bool
		holds []futurerelease.MailParam
	)
	if s.info != nil {
		for _, p := range s.info.CommandParams() {
			switch p.Name {
			case mtrk.Keyword:
				if v, ok := p.Value.(mtrk.Param); ok {
					mt, hasMT = v, true
				}
			case futurerelease.HoldFor, futurerelease.HoldUntil:
				holds = append(holds, futurerelease.MailParam{Name: p.Name, Value: p.Raw})
			}
		}
	}
	envID := ""
	if opts != nil {
		envID = opts.EnvelopeID
	}
	if hasMT && envID == "" && s.m.opts.RequireEnvelopeID {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "MTRK requires ENVID (RFC 3885)"}
	}
	var (
		hold    futurerelease.Hold
		hasHold bool
	)
	if len(holds) > 0 {
		if !s.authenticated() {
			return smtpError(futurerelease.NotAuthenticatedError(holds[0].Name))
		}
		var err error
		hold, hasHold, err = futurerelease.Validate(holds, s.m.opts.FutureRelease, s.m.now())
		if err != nil {
			return smtpError(err)
		}
	}
	if err := s.inner.Mail(from, opts); err != nil {
		return err
	}
	s.from, s.envID, s.mt, s.hasMT, s.hold, s.hasHold = from, envID, mt, hasMT, hold, hasHold
	return nil
}

// Rcpt implements smtp.Session; recipients the wrapped session accepts are
// remembered for the record, with their ORCPT (RFC 3461).
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if err := s.inner.Rcpt(to, opts); err != nil {
		return err
	}
	r := tracking.AcceptedRecipient{Address: to}
	if opts != nil && opts.OriginalRecipient != "" && opts.OriginalRecipient != to {
		r.Original = opts.OriginalRecipient
	}
	s.rcpts = append(s.rcpts, r)
	return nil
}

// Data implements smtp.Session.
func (s *session) Data(r io.Reader) error { return s.data(r, nil) }

// LMTPData implements smtp.LMTPSession: each recipient's status is held
// back until the record (of the recipients the wrapped session accepted)
// has been written, then passed on to go-smtp.
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	return s.data(r, status)
}

var errStoreClosed = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Tracking unavailable, try again later"}

func (s *session) data(r io.Reader, status smtp.StatusCollector) error {
	m := s.m
	// go-smtp's reader is not used once Data returns, and neither is hr:
	// its buffer serves the next message of the connection.
	s.hr = headerReader{r: r, buf: reuseBuf(s.hr.buf)}
	hr := &s.hr
	defer func() { s.hr.r = nil }()
	hr.readHeader(m.opts.MaxHeaderBytes)
	if hr.err != nil && hr.err != io.EOF {
		// The message ended abnormally while reading ahead (connection
		// lost, BDAT aborted, line too long): nothing reaches the
		// session and nothing is recorded.
		m.c.rejected.Add(1)
		return hr.err
	}

	t := &Tracking{
		Sender: s.from, User: s.userName(), EnvelopeID: s.envID,
		Hold: s.hold, HasHold: s.hasHold,
		MessageID: hr.messageID, Date: hr.date,
		QueueID: m.opts.QueueID(), Arrival: m.now(),
	}
	t.Recipients = make([]string, len(s.rcpts))
	for i, rc := range s.rcpts {
		t.Recipients[i] = rc.Address
	}
	if !hr.hasMessageID && m.opts.AddMessageID {
		id := " <" + strconv.FormatInt(t.Arrival.Unix(), 36) + "." + randomHex(8) + "@" + m.opts.Hostname + ">"
		hr.insert("Message-ID:" + id + "\r\n")
		t.MessageID, t.MessageIDAdded = id, true
	}

	ctx, cancel := context.WithTimeout(context.Background(), m.opts.StoreTimeout)
	defer cancel()
	s.identify(ctx, t)

	if ts, ok := s.inner.(TrackedSession); ok {
		ts.SetTracking(t)
	}

	var coll *collector
	if status == nil {
		if err := s.inner.Data(hr); err != nil {
			m.c.rejected.Add(1)
			return err
		}
	} else {
		coll = newCollector(t.Recipients)
		var err error
		if ls, ok := s.inner.(smtp.LMTPSession); ok {
			err = ls.LMTPData(hr, coll)
		} else {
			err = s.inner.Data(hr)
		}
		coll.fillRemaining(err)
	}

	accepted := s.rcpts
	if coll != nil {
		accepted = coll.accepted(s.rcpts)
	}
	if len(accepted) == 0 {
		m.c.rejected.Add(1)
		coll.forward(status)
		return nil
	}

	failed := s.record(ctx, t, accepted)
	if failed != nil {
		m.c.failedClosed.Add(1)
		addrs := make([]string, len(accepted))
		for i, a := range accepted {
			addrs[i] = a.Address
		}
		if rb, ok := s.inner.(RollbackSession); ok {
			rb.Rollback(t, addrs, failed)
		}
		if coll == nil {
			return errStoreClosed
		}
		coll.replaceAccepted(errStoreClosed)
		coll.forward(status)
		return nil
	}

	m.c.messages.Add(1)
	switch t.Source {
	case FromClient:
		m.c.fromClient.Add(1)
	case Generated:
		m.c.generated.Add(1)
		if t.Path == idgen.PathSHA1 {
			m.c.generatedSHA1.Add(1)
		}
	}
	if t.HasHold {
		m.c.holds.Add(1)
	}
	if m.log.Enabled(ctx, slog.LevelInfo) {
		attrs := []slog.Attr{
			slog.String("queue", t.QueueID), slog.String("from", t.Sender),
			slog.Int("rcpts", len(accepted)), slog.String("envid", t.EnvelopeID),
			slog.String("tracking", t.Source.String()),
		}
		attrs = append(attrs, m.logCfg.SlogAttrs(t.LogInfo(m.now()))...)
		m.log.LogAttrs(ctx, slog.LevelInfo, "gosmtp: message accepted", attrs...)
	}
	coll.forward(status)
	return nil
}

// identify chooses the message's tracking identifier: the client's MTRK=,
// or a generated one on a trackinggenerate channel.
func (s *session) identify(ctx context.Context, t *Tracking) {
	m := s.m
	switch {
	case s.hasMT:
		t.Source = FromClient
		t.Certifier = s.mt.Certifier
		t.Timeout = m.ch.Timeout(s.mt.Timeout, s.mt.TimeoutGiven)
		if t.EnvelopeID == "" {
			t.EnvelopeID, t.EnvelopeIDGenerated = deriveEnvelopeID(t.MessageID, t.Certifier), true
		}
	case m.ch.TrackingGenerate > 0:
		timeout, _ := m.ch.Generate()
		res, err := m.gen.Generate(ctx, idgen.Input{
			User: t.User, MessageID: t.MessageID, Date: t.Date,
			UniqueID: t.QueueID, EnvelopeID: t.EnvelopeID,
		})
		if err != nil {
			m.c.generateErrors.Add(1)
			m.log.Warn("gosmtp: cannot generate a tracking identifier; message untracked", "queue", t.QueueID, "err", err)
			return
		}
		t.Source, t.Certifier, t.Timeout = Generated, res.Certifier, timeout
		t.Path, t.Reason, t.Secret = res.Path, res.Reason, res.Secret
		t.EnvelopeID, t.EnvelopeIDGenerated = res.EnvelopeID, res.EnvelopeIDGenerated
	}
}

// deriveEnvelopeID gives a message that arrived with MTRK= but without
// ENVID an envelope ID its sender can compute too: the one idgen derives
// from the Message-ID, or, without a usable Message-ID, the hex form of
// the certifier (which the sender knows as SHA1 of its secret).
func deriveEnvelopeID(messageID string, cert mtrk.Certifier) string {
	if id, err := idgen.DeriveEnvelopeID(messageID); err == nil {
		return id
	}
	return hex.EncodeToString(cert)
}

// record writes the tracking record; it returns an error only when the
// message must be refused (FailClosed).
func (s *session) record(ctx context.Context, t *Tracking, accepted []tracking.AcceptedRecipient) error {
	m := s.m
	if !t.Tracked() {
		return nil
	}
	a := tracking.Accept{
		Ref:        t.Ref(),
		EventID:    "accepted:" + t.QueueID,
		EnvelopeID: t.EnvelopeID,
		Sender:     t.Sender,
		Recipients: accepted,
		Timeout:    t.Timeout,
		Internal:   m.opts.Internal,
		Arrival:    t.Arrival,
	}
	if t.HasHold {
		a.HoldUntil = t.Hold.Until
	}
	err := m.opts.Engine.Accepted(ctx, a)
	switch {
	case err == nil:
		m.c.recorded.Add(1)
		return nil
	case errors.Is(err, tracking.ErrForeignRecord):
		m.c.foreign.Add(1)
		if m.log.Enabled(context.Background(), slog.LevelInfo) {
			m.log.Info("gosmtp: a record made elsewhere exists for this certifier; message carries on untracked here",
				"queue", t.QueueID, "mt", t.Certifier.String())
		}
		return nil
	}
	m.c.storeFailures.Add(1)
	if m.log.Enabled(context.Background(), slog.LevelWarn) {
		m.log.Warn("gosmtp: tracking record not written", "queue", t.QueueID, "mt", t.Certifier.String(),
			"fail_closed", m.opts.FailClosed, "err", err)
	}
	if m.opts.FailClosed {
		return err
	}
	return nil
}

// collector stands in for go-smtp's StatusCollector in LMTP mode, so that
// the replies wait for the record.
type collector struct {
	mu    sync.Mutex
	addrs []string
	errs  []error
	set   []bool
}

func newCollector(addrs []string) *collector {
	return &collector{addrs: addrs, errs: make([]error, len(addrs)), set: make([]bool, len(addrs))}
}

// SetStatus implements smtp.StatusCollector: it fills the first slot of
// rcptTo without a status.
func (c *collector) SetStatus(rcptTo string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.addrs {
		if a == rcptTo && !c.set[i] {
			c.errs[i], c.set[i] = err, true
			return
		}
	}
}

func (c *collector) fillRemaining(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.set {
		if !c.set[i] {
			c.errs[i], c.set[i] = err, true
		}
	}
}

func (c *collector) accepted(rcpts []tracking.AcceptedRecipient) []tracking.AcceptedRecipient {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []tracking.AcceptedRecipient
	for i, e := range c.errs {
		if e == nil && i < len(rcpts) {
			out = append(out, rcpts[i])
		}
	}
	return out
}

func (c *collector) replaceAccepted(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.errs {
		if c.errs[i] == nil {
			c.errs[i] = err
		}
	}
}

// forward hands the statuses to go-smtp, in recipient order.
func (c *collector) forward(status smtp.StatusCollector) {
	if c == nil || status == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.addrs {
		status.SetStatus(a, c.errs[i])
	}
}

// authSession is the wrapper of a session that implements AUTH.
type authSession struct {
	*session
	auth smtp.AuthSession
}

// AuthMechanisms implements smtp.AuthSession.
func (s *authSession) AuthMechanisms() []string { return s.auth.AuthMechanisms() }

// Auth implements smtp.AuthSession; the SASL exchange is watched so that
// the user name is known for trackinggenerate.
func (s *authSession) Auth(mech string) (sasl.Server, error) {
	srv, err := s.auth.Auth(mech)
	if err != nil || srv == nil {
		return srv, err
	}
	return &saslWatch{s: s.session, inner: srv, plain: mech == sasl.Plain}, nil
}

type saslWatch struct {
	s     *session
	inner sasl.Server
	plain bool
	user  string
}

func (w *saslWatch) Next(resp []byte) ([]byte, bool, error) {
	if w.plain && resp != nil {
		w.user = plainUser(resp)
	}
	ch, done, err := w.inner.Next(resp)
	if done && err == nil {
		w.s.authed, w.s.user = true, w.user
	}
	return ch, done, err
}

// plainUser returns the user of a PLAIN response (RFC 4616 section 2):
// the authorisation identity when given, else the authentication identity.
func plainUser(resp []byte) string {
	parts := bytes.SplitN(resp, []byte{0}, 3)
	if len(parts) != 3 {
		return ""
	}
	if len(parts[0]) > 0 {
		return string(parts[0])
	}
	return string(parts[1])
}
