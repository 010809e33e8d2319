package mtqp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
)

// Backend answers queries. The tracking engine is adapted to it; mtqp knows
// nothing of storage.
//
// Security contract: a Backend must compare the presented secret with the
// stored certifier in constant time (mtrk.Certifier.Verify does) and must
// return ErrNotFound, and nothing that tells them apart, both for an unknown
// envelope ID and for a wrong secret. The server turns every ErrNotFound
// into the same reply bytes and counts it against the client's failure
// budget without looking at why.
type Backend interface {
	// Track answers TRACK (RFC 3887 section 4) with the current status of
	// the message for each recipient.
	Track(ctx context.Context, q Query) (*Report, error)
	// Recall answers the non-standard RECALL (see OptionRecall): it tries to
	// withdraw the message for every recipient still held and reports, per
	// recipient, the outcome in an X-Recall-Status field (SetRecallStatus).
	Recall(ctx context.Context, q Query) (*Report, error)
}

// Query is one TRACK or RECALL request as the server received it.
type Query struct {
	// Command is CmdTrack or CmdRecall.
	Command string
	// EnvID is the envelope ID (xtext-decoded).
	EnvID string
	// Secret is the tracking secret A as presented. Never log it, and do
	// not keep it: the server zeroes it when the call returns.
	Secret []byte
	// RemoteAddr is the client's address.
	RemoteAddr net.Addr
	// TLS is the connection's TLS state, nil before STARTTLS.
	TLS *tls.ConnectionState
}

// ErrNotFound is what a Backend returns for an unknown envelope ID and for
// a wrong secret alike. The client returns an error wrapping it for the
// server's not-found reply.
var ErrNotFound = errors.New("mtqp: no such message, or wrong secret")

// Replier is implemented by errors that carry the MTQP reply they should
// produce; the server sends Code and Message for a Backend error that
// implements it (other errors become 451).
type Replier interface {
	MTQPReply() (code int, message string)
}

// ReplyError is an MTQP reply as an error: what the client returns for a
// reply it did not expect, and what a Backend can return to choose the
// reply.
type ReplyError struct {
	Code  int
	Lines []string
}

// Error returns the reply as text.
func (e *ReplyError) Error() string {
	return "mtqp: server replied " + itoa(e.Code) + " " + strings.Join(e.Lines, " / ")
}

// MTQPReply returns the code and the first line.
func (e *ReplyError) MTQPReply() (int, string) {
	if len(e.Lines) == 0 {
		return e.Code, ""
	}
	return e.Code, e.Lines[0]
}

// Is makes a 550 reply match ErrNotFound.
func (e *ReplyError) Is(target error) bool {
	return target == ErrNotFound && e.Code == CodeNotFound
}

// Temporary reports whether the reply is a 4xx.
func (e *ReplyError) Temporary() bool { return e.Code >= 400 && e.Code < 500 }

// RecallStatus is the per-recipient outcome of a RECALL, carried in the
// X-Recall-Status extension field of the recipient's group. This field and
// its values are this package's, not RFC 3886's; the group's Action and
// Status keep their RFC 3886 meaning (where the message is).
type RecallStatus string

// Recall outcomes.
const (
	// RecallRecalled: the message was removed from the queue for this
	// recipient, durably; it will not be delivered.
	RecallRecalled RecallStatus = "recalled"
	// RecallInProgress: a removal was started and is not yet confirmed.
	RecallInProgress RecallStatus = "in-progress"
	// RecallTooLate: the message already left (delivered, relayed or
	// transferred) for this recipient.
	RecallTooLate RecallStatus = "too-late"
	// RecallNotRecallable: policy forbids recalling it (for example after
	// mailing list expansion).
	RecallNotRecallable RecallStatus = "not-recallable"
	// RecallPending: the message is held here for the recipient and could
	// be recalled, but this answer did not recall it (e.g. a report made
	// before the attempt).
	RecallPending RecallStatus = "pending"
)

// RecallStatusField is the name of the extension field carrying a
// RecallStatus.
const RecallStatusField = "X-Recall-Status"

// RecallStatus returns the recipient's X-Recall-Status value, or "".
func (rc *Recipient) RecallStatus() RecallStatus {
	for _, f := range rc.Extensions {
		if strings.EqualFold(f.Name, RecallStatusField) {
			return RecallStatus(strings.ToLower(f.Value))
		}
	}
	return ""
}

// SetRecallStatus sets (or replaces) the recipient's X-Recall-Status field.
func (rc *Recipient) SetRecallStatus(s RecallStatus) {
	for i, f := range rc.Extensions {
		if strings.EqualFold(f.Name, RecallStatusField) {
			rc.Extensions[i].Value = string(s)
			return
		}
	}
	rc.Extensions = append(rc.Extensions, Field{Name: RecallStatusField, Value: string(s)})
}
