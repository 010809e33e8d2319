package gosmtp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/futurerelease"
	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
)

// Defaults for zero Options fields.
const (
	// DefaultMaxHeaderBytes bounds the part of a message read ahead at
	// DATA to find the Message-ID and Date fields.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultStoreTimeout bounds the tracking work done at the end of DATA
	// (secret lookup and record write) while the client waits.
	DefaultStoreTimeout = 10 * time.Second
)

// Options configure a Middleware.
type Options struct {
	// Engine records accepted messages. Required.
	Engine *tracking.Engine
	// Generator makes identifiers for trackinggenerate. Nil means an
	// idgen Generator without a secret source: always the MD4 path.
	Generator *idgen.Generator
	// MTA holds the MTA options; only log_tracking and log_futurerelease
	// are used here.
	MTA channelopts.MTA
	// Submission marks the channel as a message submission service
	// (RFC 6409). Only then is FUTURERELEASE offered (RFC 4865 section
	// 1), and only over TLS.
	Submission bool
	// FutureRelease is the hold policy of a submission channel. A zero
	// MaxInterval disables FUTURERELEASE.
	FutureRelease futurerelease.Limits
	// Internal marks the channel as carrying mail from other MTAs of the
	// same deployment (tracking.Accept.Internal): the engine then adds
	// this MTA as a further hop of an existing record.
	Internal bool
	// RequireEnvelopeID refuses MTRK= without ENVID at MAIL time (501
	// 5.5.4) instead of deriving an envelope ID (see the package
	// documentation, "Envelope ID").
	RequireEnvelopeID bool
	// AddMessageID inserts a Message-ID field at the top of a message that
	// has none (RFC 6409 section 8.3), with Hostname as its domain, before
	// the wrapped session sees the message. Off by default.
	AddMessageID bool
	// Hostname names this MTA in generated Message-IDs and queue IDs.
	// Empty means "localhost".
	Hostname string
	// QueueID makes this MTA's identifier of a message (tracking.Ref);
	// nil draws 16 random hex characters and appends "@" + Hostname. It
	// is also the unique ID hashed on the MD4 path, so it must be unique
	// across the deployment.
	QueueID func() string
	// FailClosed answers 451 4.3.0 (and calls RollbackSession.Rollback)
	// when the tracking record cannot be written at the end of DATA. The
	// default, fail-open, accepts the message and logs and counts the
	// failure.
	FailClosed bool
	// MaxHeaderBytes bounds the header read ahead; 0 means
	// DefaultMaxHeaderBytes. Fields after it are not looked at.
	MaxHeaderBytes int
	// StoreTimeout bounds the end-of-DATA tracking work; 0 means
	// DefaultStoreTimeout.
	StoreTimeout time.Duration
	// When further restricts where MTRK and FUTURERELEASE are offered
	// (for example smtpext.OnListeners), for a smtpext.Server that serves
	// several channels. Nil means everywhere.
	When smtpext.Condition
	// Logger receives one line per accepted message (with the mt and fr
	// fields as the MTA options enable them) and warnings. Nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats are the middleware's counters; read them with Middleware.Stats.
type Stats struct {
	// Messages counts messages the wrapped session accepted (for LMTP,
	// messages with at least one accepted recipient); Rejected those it
	// refused, for which nothing was recorded.
	Messages, Rejected uint64
	// FromClient and Generated count tracked messages by Source;
	// GeneratedSHA1 those generated on the SHA-1 path.
	FromClient, Generated, GeneratedSHA1 uint64
	// Holds counts accepted messages with a FUTURERELEASE hold.
	Holds uint64
	// Recorded counts tracking records written; Foreign arrivals the
	// engine refused (tracking.ErrForeignRecord, carried on untracked);
	// StoreFailures records that could not be written; FailedClosed the
	// messages answered 451 because of such a failure.
	Recorded, Foreign, StoreFailures, FailedClosed uint64
	// GenerateErrors counts identifiers that could not be generated.
	GenerateErrors uint64
}

type counters struct {
	messages, rejected, fromClient, generated, generatedSHA1, holds atomic.Uint64
	recorded, foreign, storeFailures, failedClosed, generateErrors  atomic.Uint64
}

// Middleware wraps an smtp.Backend for one channel: it offers MTRK and
// FUTURERELEASE through smtpext, validates their parameters, gives the
// wrapped sessions the tracking and hold information and records every
// accepted tracked message. It implements smtp.Backend and is safe for
// concurrent use.
type Middleware struct {
	inner  smtp.Backend
	ch     channelopts.Channel
	limits mtrk.Limits
	opts   Options
	gen    *idgen.Generator
	log    *slog.Logger
	logCfg tracking.LogConfig
	now    func() time.Time
	frOn   bool
	c      counters
}

// New returns the middleware for inner on channel ch.
func New(inner smtp.Backend, ch channelopts.Channel, opts Options) (*Middleware, error) {
	if inner == nil {
		return nil, errors.New("gosmtp: nil backend")
	}
	if opts.Engine == nil {
		return nil, errors.New("gosmtp: Options.Engine is required")
	}
	if err := ch.Validate(); err != nil {
		return nil, err
	}
	if opts.FutureRelease.MaxInterval < 0 {
		return nil, errors.New("gosmtp: negative FutureRelease.MaxInterval")
	}
	m := &Middleware{inner: inner, ch: ch, limits: ch.TrackingLimits(), opts: opts}
	m.gen = opts.Generator
	if m.gen == nil {
		m.gen = idgen.New(idgen.Options{})
	}
	m.log = opts.Logger
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.now = opts.Now
	if m.now == nil {
		m.now = time.Now
	}
	if m.opts.Hostname == "" {
		m.opts.Hostname = "localhost"
	}
	if m.opts.MaxHeaderBytes <= 0 {
		m.opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if m.opts.StoreTimeout <= 0 {
		m.opts.StoreTimeout = DefaultStoreTimeout
	}
	if m.opts.QueueID == nil {
		host := m.opts.Hostname
		m.opts.QueueID = func() string { return queueID(host) }
	}
	m.logCfg = tracking.LogConfig{
		Tracking:      tracking.LogFlags(opts.MTA.LogTracking),
		FutureRelease: tracking.LogFlags(opts.MTA.LogFutureRelease),
	}
	m.frOn = opts.Submission && opts.FutureRelease.MaxInterval > 0
	return m, nil
}

// Channel returns the channel the middleware was configured with.
func (m *Middleware) Channel() channelopts.Channel { return m.ch }

// Stats returns the counters.
func (m *Middleware) Stats() Stats {
	return Stats{
		Messages: m.c.messages.Load(), Rejected: m.c.rejected.Load(),
		FromClient: m.c.fromClient.Load(), Generated: m.c.generated.Load(), GeneratedSHA1: m.c.generatedSHA1.Load(),
		Holds: m.c.holds.Load(), Recorded: m.c.recorded.Load(), Foreign: m.c.foreign.Load(),
		StoreFailures: m.c.storeFailures.Load(), FailedClosed: m.c.failedClosed.Load(),
		GenerateErrors: m.c.generateErrors.Load(),
	}
}

func (m *Middleware) when(ci smtpext.ConnInfo) bool { return m.opts.When == nil || m.opts.When(ci) }

// Extensions returns the smtpext extensions of the channel, for
// smtpext.Config.Extensions:
//
//   - MTRK (RFC 3885 section 3), enabled only when the channel has
//     trackingserver; its MAIL parameter is parsed by mtrk.ParseParam, so a
//     malformed value gets 501 5.5.4, and MTRK= where the extension is not
//     enabled gets 555 5.5.4 from smtpext (RFC 5321 section 4.1.1.11);
//   - FUTURERELEASE (RFC 4865 section 3), enabled only on a submission
//     channel with a hold policy and only after TLS, advertised as
//     "FUTURERELEASE <max-interval> <max-date-time>" computed at EHLO time
//     from Options.Now and Options.FutureRelease. HOLDFOR= and HOLDUNTIL=
//     from a session that has not authenticated get 530 5.7.0; malformed
//     values 501 5.5.4. The checks that need both parameters or the
//     current limits (both given, beyond the limits) are made when go-smtp
//     calls the session's Mail.
//
// Both are always registered, so that their parameters are answered 555
// (rather than go-smtp's 500) where they are not offered.
func (m *Middleware) Extensions() []smtpext.Extension {
	mtrkExt := smtpext.Extension{
		Keyword: mtrk.Keyword,
		When:    func(ci smtpext.ConnInfo) bool { return m.ch.TrackingServer && m.when(ci) },
		Mail: []smtpext.ParamSpec{{
			Name: mtrk.Keyword,
			Parse: func(_ smtpext.ConnInfo, v string, _ bool) (any, error) {
				return mtrk.ParseParam(v)
			},
		}},
	}
	holdParse := func(name string, parse func(string) error) func(smtpext.ConnInfo, string, bool) (any, error) {
		return func(ci smtpext.ConnInfo, v string, _ bool) (any, error) {
			if !ci.Authenticated {
				return nil, futurerelease.NotAuthenticatedError(name)
			}
			if err := parse(v); err != nil {
				return nil, err
			}
			return v, nil
		}
	}
	frExt := smtpext.Extension{
		Keyword: futurerelease.Keyword,
		KeywordArgs: func(smtpext.ConnInfo) []string {
			return strings.Fields(m.opts.FutureRelease.Advertise(m.now()).String())
		},
		When: func(ci smtpext.ConnInfo) bool { return m.frOn && ci.TLS != nil && m.when(ci) },
		Mail: []smtpext.ParamSpec{
			{Name: futurerelease.HoldFor, Parse: holdParse(futurerelease.HoldFor, func(v string) error {
				_, err := futurerelease.ParseHoldFor(v)
				return err
			})},
			{Name: futurerelease.HoldUntil, Parse: holdParse(futurerelease.HoldUntil, func(v string) error {
				_, err := futurerelease.ParseHoldUntil(v)
				return err
			})},
		},
	}
	return []smtpext.Extension{mtrkExt, frExt}
}

// NewServer wires srv to the middleware and serves it through smtpext: it
// sets srv.Backend to m, enables DSN on srv (ENVID is needed with MTRK,
// RFC 3885) and appends m's Extensions to cfg before calling
// smtpext.NewServer. srv.Backend must be nil or m's own backend.
func (m *Middleware) NewServer(srv *smtp.Server, cfg smtpext.Config) (*smtpext.Server, error) {
	if srv == nil {
		return nil, errors.New("gosmtp: nil smtp.Server")
	}
	if srv.Backend != nil && srv.Backend != m.inner && srv.Backend != smtp.Backend(m) {
		return nil, errors.New("gosmtp: smtp.Server already has another Backend")
	}
	srv.Backend = m
	srv.EnableDSN = true
	cfg.Extensions = append(append([]smtpext.Extension(nil), cfg.Extensions...), m.Extensions()...)
	return smtpext.NewServer(srv, cfg)
}

// queueID is the default Options.QueueID: 16 random hex characters, "@"
// and host, made with a single allocation.
func queueID(host string) string {
	var r [8]byte
	_, _ = rand.Read(r[:]) // never fails (crypto/rand, Go 1.24+)
	var sb strings.Builder
	sb.Grow(2*len(r) + 1 + len(host))
	var h [2 * len(r)]byte
	hex.Encode(h[:], r[:])
	sb.Write(h[:])
	sb.WriteByte('@')
	sb.WriteString(host)
	return sb.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// smtpError converts an error carrying an SMTP reply (the project's
// SMTPReply convention) into the *smtp.SMTPError go-smtp needs: go-smtp
// recognises only that concrete type.
func smtpError(err error) error {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	var r interface {
		SMTPReply() (int, [3]int, string)
	}
	if errors.As(err, &r) {
		code, enh, msg := r.SMTPReply()
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enh), Message: msg}
	}
	return err
}
