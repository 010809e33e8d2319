package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FormatVersion is the version written in every envelope file ("v"). A
// file with another version is reported as damaged rather than guessed at;
// a future format change bumps it and adds a migration in DecodeEnvelope.
const FormatVersion = 1

// ErrCorrupt marks an envelope file that cannot be decoded or fails
// validation. Open moves such files aside (see Damage).
var ErrCorrupt = errors.New("spool: corrupt envelope")

// State is the delivery state of one recipient. The transitions are:
//
//	queued   -> delivering (Claim), recalled (Recall)
//	deferred -> delivering (Claim), recalled (Recall), failed (expiry)
//	delivering -> delivered, failed, deferred (after an attempt)
//	delivering -> queued (only by Open, after a crash)
//
// delivered, failed and recalled are final.
type State string

// The recipient states.
const (
	// Queued: waiting for its first attempt (or for the hold to end).
	Queued State = "queued"
	// Delivering: claimed by an attempt that has not reported back.
	Delivering State = "delivering"
	// Delivered: the attempt succeeded (delivered locally or relayed).
	Delivered State = "delivered"
	// Failed: a permanent failure or an expired queue lifetime; Reason
	// says which.
	Failed State = "failed"
	// Recalled: withdrawn by a recall before any attempt claimed it.
	Recalled State = "recalled"
	// Deferred: a temporary failure; retried at NextAttempt.
	Deferred State = "deferred"
)

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	switch s {
	case Queued, Delivering, Delivered, Failed, Recalled, Deferred:
		return true
	}
	return false
}

// Final reports whether no further attempt will be made for a recipient in
// state s.
func (s State) Final() bool { return s == Delivered || s == Failed || s == Recalled }

// Pending reports whether a recipient in state s still waits for an
// attempt (and may therefore be claimed or recalled).
func (s State) Pending() bool { return s == Queued || s == Deferred }

// Recipient is one envelope recipient and its delivery state.
type Recipient struct {
	// Addr is the forward-path as given in RCPT TO (after alias
	// expansion, if the caller expands before spooling).
	Addr string `json:"addr"`
	// Notify is the raw RFC 3461 NOTIFY parameter ("" when absent).
	Notify string `json:"notify,omitempty"`
	// ORcpt is the raw RFC 3461 ORCPT parameter ("rfc822;xtext"), "" when
	// absent.
	ORcpt string `json:"orcpt,omitempty"`
	// State is the recipient's delivery state.
	State State `json:"state"`
	// Reason explains a failed or deferred state (for example an SMTP
	// reply, or "expired").
	Reason string `json:"reason,omitempty"`
	// NextAttempt is when a deferred recipient is due again.
	NextAttempt time.Time `json:"next,omitzero"`
	// Attempts counts delivery attempts made for this recipient.
	Attempts int `json:"attempts,omitempty"`
	// Updated is when State last changed.
	Updated time.Time `json:"updated,omitzero"`
	// Meta holds caller-defined per-recipient data (for example whether
	// this recipient carries the tracking certifier under the alias
	// policy). The spool never interprets it.
	Meta map[string]string `json:"meta,omitempty"`
}

// Tracking holds the RFC 3885 / RFC 4865 data of a message, kept opaque:
// the spool stores it so that a restart resumes tracking and holds, but it
// never interprets it (HoldUntil excepted, which the scheduler reads).
type Tracking struct {
	// ID is the tracking identifier (the record key), "" for untracked mail.
	ID string `json:"id,omitempty"`
	// Certifier is the MTRK certifier B in its wire form.
	Certifier string `json:"certifier,omitempty"`
	// Timeout is the tracking timeout the record was created with.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Extra holds any further caller data (for example the channel name).
	Extra map[string]string `json:"extra,omitempty"`
}

// Envelope is everything the spool keeps about a message besides its body.
// Get, List and Update hand out copies: changing one has no effect until it
// is written back through Update.
type Envelope struct {
	// V is the file format version (FormatVersion).
	V int `json:"v"`
	// ID is the spool identifier, assigned by Put.
	ID string `json:"id"`
	// From is the reverse-path; "" is the null reverse-path (bounces).
	From string `json:"from"`
	// EnvID is the raw RFC 3461 ENVID parameter (xtext), "" when absent.
	EnvID string `json:"envid,omitempty"`
	// Ret is the raw RFC 3461 RET parameter ("FULL", "HDRS" or "").
	Ret string `json:"ret,omitempty"`
	// MailParams holds any other MAIL FROM parameters worth keeping, raw.
	MailParams map[string]string `json:"mailparams,omitempty"`
	// AuthUser is the authenticated submitter, "" for unauthenticated mail.
	AuthUser string `json:"authuser,omitempty"`
	// Recipients are the envelope recipients, in RCPT order.
	Recipients []Recipient `json:"rcpts"`
	// Tracking is the opaque tracking data.
	Tracking Tracking `json:"tracking,omitzero"`
	// HoldUntil is the RFC 4865 release time; zero means not held.
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// Arrival is when the message was accepted (set by Put when zero).
	Arrival time.Time `json:"arrival"`
	// Hops is the number of Received fields counted at acceptance.
	Hops int `json:"hops,omitempty"`
	// Attempts counts delivery runs over the message.
	Attempts int `json:"attempts,omitempty"`
	// Size is the body size in bytes (set by Put).
	Size int64 `json:"size"`
}

// Clone returns a deep copy of e.
func (e *Envelope) Clone() *Envelope {
	c := *e
	c.MailParams = cloneMap(e.MailParams)
	c.Tracking.Extra = cloneMap(e.Tracking.Extra)
	c.Recipients = make([]Recipient, len(e.Recipients))
	for i, r := range e.Recipients {
		r.Meta = cloneMap(r.Meta)
		c.Recipients[i] = r
	}
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Recipient returns a pointer to the recipient with address addr (compared
// case-insensitively, see Recall), or nil.
func (e *Envelope) Recipient(addr string) *Recipient {
	for i := range e.Recipients {
		if strings.EqualFold(e.Recipients[i].Addr, addr) {
			return &e.Recipients[i]
		}
	}
	return nil
}

// Done reports whether every recipient is in a final state, so the message
// can be removed from the spool.
func (e *Envelope) Done() bool {
	for _, r := range e.Recipients {
		if !r.State.Final() {
			return false
		}
	}
	return true
}

// Held reports whether the message is still held at time now (RFC 4865).
func (e *Envelope) Held(now time.Time) bool {
	return !e.HoldUntil.IsZero() && now.Before(e.HoldUntil)
}

// validate checks the invariants a decoded or caller-supplied envelope must
// satisfy.
func (e *Envelope) validate() error {
	if e.V != FormatVersion {
		return fmt.Errorf("unknown format version %d", e.V)
	}
	if !validID(e.ID) {
		return fmt.Errorf("invalid id %q", e.ID)
	}
	if len(e.Recipients) == 0 {
		return errors.New("no recipients")
	}
	for i, r := range e.Recipients {
		if r.Addr == "" {
			return fmt.Errorf("recipient %d: empty address", i)
		}
		if !r.State.Valid() {
			return fmt.Errorf("recipient %d: invalid state %q", i, r.State)
		}
		if r.Attempts < 0 {
			return fmt.Errorf("recipient %d: negative attempts", i)
		}
	}
	if e.Hops < 0 || e.Attempts < 0 || e.Size < 0 {
		return errors.New("negative counter")
	}
	return nil
}

// EncodeEnvelope returns the JSON file form of e.
func EncodeEnvelope(e *Envelope) ([]byte, error) {
	b, err := json.MarshalIndent(e, "", " ")
	if err != nil {
		return nil, fmt.Errorf("spool: encoding envelope %s: %w", e.ID, err)
	}
	return append(b, '\n'), nil
}

// DecodeEnvelope parses and validates an envelope file. Every failure
// wraps ErrCorrupt; unknown fields are refused, so that a file written by a
// newer format is not silently half-read.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e Envelope
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrCorrupt)
	}
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return &e, nil
}

// validID reports whether id has the form Put generates: 32 lower-case hex
// digits. Everything that turns an ID into a path checks it first, so no
// caller-supplied ID can name a file outside the spool.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
