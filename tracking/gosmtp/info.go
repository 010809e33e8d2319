package gosmtp

import (
	"time"

	"github.com/msgtrack/msgtrack/futurerelease"
	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
)

// Source says where a message's tracking identifier came from.
type Source int

const (
	// Untracked: the message has no tracking identifier (no MTRK= and no
	// trackinggenerate on the channel, or generation failed).
	Untracked Source = iota
	// FromClient: the client sent MTRK= (RFC 3885 section 3).
	FromClient
	// Generated: the channel's trackinggenerate option made one (see
	// Tracking.Path).
	Generated
)

// String returns "untracked", "client" or "generated".
func (s Source) String() string {
	switch s {
	case FromClient:
		return "client"
	case Generated:
		return "generated"
	}
	return "untracked"
}

// Tracking is what the middleware knows about the message being received.
// A wrapped session that implements TrackedSession gets it before its Data
// (or LMTPData) is called, so that it can spool it with the message: the
// MTA's queue needs the certifier, the timeout, the envelope ID and the hold
// to relay the message onward (see Relay) and to record its later events.
type Tracking struct {
	// Source says whether the message is tracked and how.
	Source Source
	// Certifier is the tracking ID B, the record's key and what a relay
	// sends as MTRK=; nil when Source is Untracked.
	Certifier mtrk.Certifier
	// Timeout is the tracking timeout after the channel's rules:
	// trackingtimeoutdefault/min/max for MTRK=, the trackinggenerate value
	// for a generated identifier.
	Timeout time.Duration
	// Path and Reason describe a generated identifier (idgen.PathSHA1 or
	// idgen.PathMD4, and why MD4 was used).
	Path   idgen.Path
	Reason idgen.Reason
	// Secret is the per-message secret A of the SHA-1 trackinggenerate
	// path, nil otherwise. Never store or log it; it may only be shown to
	// the authenticated user of this session.
	Secret mtrk.Secret

	// EnvelopeID is the decoded DSN envelope ID (RFC 3461 ENVID): the one
	// the client sent, or, for a tracked message without one, the one the
	// middleware derived (EnvelopeIDGenerated). A relay must send it as
	// ENVID whenever it sends MTRK.
	EnvelopeID          string
	EnvelopeIDGenerated bool

	// Hold is the accepted FUTURERELEASE request (RFC 4865), when HasHold.
	Hold    futurerelease.Hold
	HasHold bool

	// MessageID and Date are the field bodies of the message's first
	// Message-ID and Date header fields as they stand in the delivered
	// message (MessageIDAdded when the middleware inserted the field).
	MessageID, Date string
	MessageIDAdded  bool

	// User is the authenticated user name ("" without AUTH).
	User string
	// Sender and Recipients are the envelope as go-smtp accepted it.
	Sender     string
	Recipients []string

	// QueueID names this MTA's copy of the message in tracking events
	// (tracking.Ref.QueueID). The middleware fills it in from
	// Options.QueueID before Data; a session that has its own spool
	// identifier may replace it during Data, before returning.
	QueueID string

	// Arrival is when the end of DATA was reached (Options.Now).
	Arrival time.Time
}

// Tracked reports whether the message has a tracking identifier.
func (t *Tracking) Tracked() bool { return t.Source != Untracked }

// Ref returns the tracking.Ref of this MTA's copy of the message.
func (t *Tracking) Ref() tracking.Ref {
	return tracking.Ref{Certifier: t.Certifier, QueueID: t.QueueID}
}

// LogInfo returns what tracking.LogConfig needs for the log_tracking and
// log_futurerelease fields of a transaction log entry written at now.
func (t *Tracking) LogInfo(now time.Time) tracking.LogInfo {
	li := tracking.LogInfo{Now: now}
	if t.Tracked() {
		li.Certifier, li.Timeout = t.Certifier, t.Timeout
	}
	if t.HasHold {
		li.ReleaseAt = t.Hold.Until
	}
	return li
}

// TrackedSession is implemented by a wrapped smtp.Session that wants the
// tracking and hold information of each message. SetTracking is called once
// per message, after the header has been read and the tracking identifier
// chosen, right before the session's Data or LMTPData. t stays valid until
// Data returns; the session may keep a copy.
type TrackedSession interface {
	SetTracking(t *Tracking)
}

// RollbackSession is implemented by a wrapped session that can take back a
// message it accepted. With Options.FailClosed, when the tracking record
// cannot be written after the session accepted the message, the middleware
// calls Rollback (so the spooled copy is removed) and answers 451 4.3.0; the
// client will send the message again. For LMTP, recipients lists the
// recipients being taken back. A session that does not implement it keeps
// its copy while the client is told to retry, so with FailClosed the
// message may be delivered twice.
type RollbackSession interface {
	Rollback(t *Tracking, recipients []string, cause error)
}

// AuthUserSession may be implemented by a wrapped session to name the user
// it authenticated. Without it, the middleware reads the user name from the
// PLAIN (authorisation identity, or else authentication identity) or LOGIN
// exchange that go-smtp answered 235 to.
type AuthUserSession interface {
	AuthenticatedUser() string
}
