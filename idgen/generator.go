package idgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	//lint:ignore SA1019 the product's trackinggenerate path is defined as MD4; no security rests on it (see the package doc).
	"golang.org/x/crypto/md4"

	"github.com/msgtrack/msgtrack/mtrk"
)

// DefaultSourceTimeout bounds a secret lookup when Options.SourceTimeout
// is zero. The lookup runs while the client waits for the reply to the
// end of DATA, so it is short.
const DefaultSourceTimeout = 3 * time.Second

// Path says how a certifier was generated.
type Path int

const (
	// PathMD4 is MD4(unique ID): nobody can track with a secret.
	PathMD4 Path = iota
	// PathSHA1 is SHA1(A) with A derived from the general recall secret.
	PathSHA1
)

// String returns "md4" or "sha1".
func (p Path) String() string {
	if p == PathSHA1 {
		return "sha1"
	}
	return "md4"
}

// Reason says why the MD4 path was used. ReasonNone goes with PathSHA1.
type Reason int

const (
	// ReasonNone: the SHA-1 path was used.
	ReasonNone Reason = iota
	// ReasonUnauthenticated: the sender did not authenticate.
	ReasonUnauthenticated
	// ReasonNoSource: the Generator has no SecretSource.
	ReasonNoSource
	// ReasonNoMessageID: the message has no Message-ID.
	ReasonNoMessageID
	// ReasonMalformedHeader: the Message-ID or Date field is malformed.
	ReasonMalformedHeader
	// ReasonUnknownUser: the source does not know the user.
	ReasonUnknownUser
	// ReasonNoSecret: the user has no, or an empty, general secret.
	ReasonNoSecret
	// ReasonAmbiguous: several entries or several secret values.
	ReasonAmbiguous
	// ReasonWeakSecret: the general secret is shorter than
	// MinGeneralSecretSize.
	ReasonWeakSecret
	// ReasonSourceError: the source failed (down, timeout, bind, ...).
	ReasonSourceError
	numReasons
)

var reasonNames = [numReasons]string{
	"none", "unauthenticated", "no-source", "no-message-id", "malformed-header",
	"unknown-user", "no-secret", "ambiguous", "weak-secret", "source-error",
}

// String returns a short lower-case name, suitable as a log or metric
// label.
func (r Reason) String() string {
	if r < 0 || r >= numReasons {
		return fmt.Sprintf("reason(%d)", int(r))
	}
	return reasonNames[r]
}

// Options configure a Generator. The zero value gives a Generator that
// always uses the MD4 path.
type Options struct {
	// Source finds general recall secrets. Nil: always the MD4 path.
	Source SecretSource
	// Logger receives warnings (weak secrets, source failures) and debug
	// lines; it never receives secrets. Nil discards.
	Logger *slog.Logger
	// SourceTimeout bounds one lookup; zero means DefaultSourceTimeout.
	SourceTimeout time.Duration
	// UniqueID draws the unique identifier for the MD4 path when
	// Input.UniqueID is empty. Nil draws 16 random bytes (32 hex
	// characters). Values must be unique across the deployment.
	UniqueID func() (string, error)
}

// Input describes the message at the end of DATA.
type Input struct {
	// User is the authenticated user name; empty when the sender did not
	// authenticate.
	User string
	// MessageID and Date are the field bodies of the first Message-ID and
	// Date fields as they stand in the message, possibly folded; empty
	// when absent. A server that adds a Message-ID adds it first.
	MessageID, Date string
	// UniqueID identifies the message for the MD4 path, e.g. the queue ID
	// qualified with the host name. Empty: Options.UniqueID draws one.
	UniqueID string
	// EnvelopeID is the ENVID the message arrived with (decoded), if any.
	EnvelopeID string
}

// Result is a generated tracking identifier.
type Result struct {
	// Certifier is B, the value to send as MTRK= and the store key: 20
	// bytes on PathSHA1, 16 on PathMD4.
	Certifier mtrk.Certifier
	// Path says how Certifier was made.
	Path Path
	// Secret is A on PathSHA1, nil on PathMD4. The server must not store
	// or log it: it may only hand it to the authenticated user in the
	// same session; the tracking store keeps Certifier only. Anyone with
	// A can track and recall the message.
	Secret mtrk.Secret
	// EnvelopeID is Input.EnvelopeID when set; otherwise the derived one
	// (see DeriveEnvelopeID), or on the MD4 path without a usable
	// Message-ID the hex form of Certifier.
	EnvelopeID string
	// EnvelopeIDGenerated is true when EnvelopeID was derived here; the
	// caller should then relay it as ENVID.
	EnvelopeIDGenerated bool
	// UniqueID is the value hashed on PathMD4.
	UniqueID string
	// Reason is why PathMD4 was used (ReasonNone on PathSHA1).
	Reason Reason
	// Err is the underlying error for Reason, when there is one.
	Err error
}

// Stats counts generated identifiers; read it with Generator.Stats.
type Stats struct {
	SHA1, MD4 uint64
	// ByReason counts MD4 results by Reason.
	ByReason map[Reason]uint64
}

// Generator implements the product's trackinggenerate option. It is safe
// for concurrent use.
type Generator struct {
	opts     Options
	log      *slog.Logger
	sha1     atomic.Uint64
	byReason [numReasons]atomic.Uint64
}

// New returns a Generator.
func New(opts Options) *Generator {
	if opts.SourceTimeout <= 0 {
		opts.SourceTimeout = DefaultSourceTimeout
	}
	if opts.UniqueID == nil {
		opts.UniqueID = randomUniqueID
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Generator{opts: opts, log: log}
}

func randomUniqueID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// MD4Identifier returns MD4(uniqueID), the certifier of the MD4 path.
func MD4Identifier(uniqueID string) mtrk.Certifier {
	h := md4.New()
	h.Write([]byte(uniqueID))
	return mtrk.Certifier(h.Sum(make([]byte, 0, mtrk.MD4CertifierSize)))
}

// Generate makes the tracking identifier of a message that arrived
// without MTRK. It looks up the user's general secret (bounded by
// Options.SourceTimeout and ctx) and takes the SHA-1 path when it can;
// anything that prevents it gives the MD4 path, with Result.Reason set.
// The only error is a failure to draw a unique ID when Input.UniqueID is
// empty and the SHA-1 path was not possible; the message should then be
// accepted untracked.
func (g *Generator) Generate(ctx context.Context, in Input) (Result, error) {
	mid, date, herr := hashInput(in.MessageID, in.Date)
	reason, err := ReasonNone, error(nil)
	var general []byte
	switch {
	case in.User == "":
		reason = ReasonUnauthenticated
	case g.opts.Source == nil:
		reason = ReasonNoSource
	case herr != nil:
		reason, err = ReasonMalformedHeader, herr
		if errors.Is(herr, ErrNoMessageID) {
			reason = ReasonNoMessageID
		}
	default:
		general, reason, err = g.lookup(ctx, in.User)
	}
	if reason == ReasonNone {
		a := sha1Secret(mid, date, general)
		g.sha1.Add(1)
		res := Result{Certifier: a.Certifier(), Path: PathSHA1, Secret: a}
		res.setEnvelopeID(in.EnvelopeID, envelopeIDFromCanonical(mid))
		return res, nil
	}

	uid := in.UniqueID
	if uid == "" {
		var uerr error
		if uid, uerr = g.opts.UniqueID(); uerr != nil {
			return Result{}, fmt.Errorf("idgen: drawing a unique ID: %w", uerr)
		}
		if uid == "" {
			return Result{}, errors.New("idgen: drawing a unique ID: empty")
		}
	}
	g.byReason[reason].Add(1)
	res := Result{Certifier: MD4Identifier(uid), Path: PathMD4, UniqueID: uid, Reason: reason, Err: err}
	derived := hex.EncodeToString(res.Certifier)
	if herr == nil {
		derived = envelopeIDFromCanonical(mid)
	}
	res.setEnvelopeID(in.EnvelopeID, derived)
	return res, nil
}

func (r *Result) setEnvelopeID(given, derived string) {
	if given != "" {
		r.EnvelopeID = given
		return
	}
	r.EnvelopeID, r.EnvelopeIDGenerated = derived, true
}

// lookup asks the source and classifies the outcome.
func (g *Generator) lookup(ctx context.Context, user string) ([]byte, Reason, error) {
	ctx, cancel := context.WithTimeout(ctx, g.opts.SourceTimeout)
	defer cancel()
	secret, err := g.opts.Source.RecallSecret(ctx, user)
	if err == nil && len(secret) == 0 {
		err = fmt.Errorf("%w: %q (empty value)", ErrNoSecret, user)
	}
	switch {
	case err == nil && len(secret) < MinGeneralSecretSize:
		err = fmt.Errorf("%w: %d bytes for %q", ErrWeakSecret, len(secret), user)
		g.log.WarnContext(ctx, "idgen: general recall secret too short, using the MD4 path",
			"user", user, "bits", 8*len(secret), "min_bits", 8*MinGeneralSecretSize)
		return nil, ReasonWeakSecret, err
	case err == nil:
		return secret, ReasonNone, nil
	case errors.Is(err, ErrUnknownUser):
		g.log.DebugContext(ctx, "idgen: user unknown to the secret source, using the MD4 path", "user", user)
		return nil, ReasonUnknownUser, err
	case errors.Is(err, ErrNoSecret):
		g.log.DebugContext(ctx, "idgen: user has no general recall secret, using the MD4 path", "user", user)
		return nil, ReasonNoSecret, err
	case errors.Is(err, ErrAmbiguous):
		g.log.WarnContext(ctx, "idgen: ambiguous general recall secret, using the MD4 path", "user", user, "err", err)
		return nil, ReasonAmbiguous, err
	default:
		g.log.WarnContext(ctx, "idgen: secret source failed, using the MD4 path", "user", user, "err", err)
		return nil, ReasonSourceError, err
	}
}

// Stats returns the counts since New.
func (g *Generator) Stats() Stats {
	s := Stats{SHA1: g.sha1.Load(), ByReason: make(map[Reason]uint64)}
	for r := ReasonNone + 1; r < numReasons; r++ {
		if n := g.byReason[r].Load(); n > 0 {
			s.ByReason[r] = n
			s.MD4 += n
		}
	}
	return s
}
