package futurerelease

import "errors"

// Reason says why a hold request or advertisement was refused.
type Reason int

// The reasons an *Error can carry.
const (
	// Malformed: a HOLDFOR or HOLDUNTIL value that does not match the
	// RFC 4865 section 3 syntax (including a HOLDUNTIL written as an
	// integer), or an advertisement that does not.
	Malformed Reason = iota
	// Conflict: both HOLDFOR and HOLDUNTIL in one MAIL command.
	Conflict
	// Duplicate: the same hold parameter twice in one MAIL command.
	Duplicate
	// BeyondInterval: the hold is longer than max-future-release-interval.
	BeyondInterval
	// BeyondDateTime: the release is later than max-future-release-date-time.
	BeyondDateTime
	// NotAuthenticated: a hold parameter in a session that has not
	// authenticated, where the server requires it (see NotAuthenticatedError).
	NotAuthenticated
	// UnixDateTime: an advertisement whose date-time is an integer, the
	// defect of a known server (see ParseAdvertisement).
	UnixDateTime
)

// Sentinels matching each Reason under errors.Is.
var (
	ErrMalformed        = errors.New("futurerelease: malformed value")
	ErrConflict         = errors.New("futurerelease: both HOLDFOR and HOLDUNTIL")
	ErrDuplicate        = errors.New("futurerelease: hold parameter given twice")
	ErrBeyondInterval   = errors.New("futurerelease: hold longer than the maximum interval")
	ErrBeyondDateTime   = errors.New("futurerelease: release later than the maximum date-time")
	ErrNotAuthenticated = errors.New("futurerelease: authentication required")
	ErrUnixDateTime     = errors.New("futurerelease: advertised date-time is a Unix integer")
)

// Error is a refused hold parameter or advertisement. It implements
// SMTPReply so an SMTP server can answer a MAIL command with it directly,
// and matches the sentinel of its Reason under errors.Is.
type Error struct {
	Reason Reason
	// Param is the parameter concerned (HoldFor, HoldUntil or Keyword), in
	// upper case, or "" when none applies.
	Param string
	// Detail is a short human explanation without any client text.
	Detail string
}

// Error returns "futurerelease: [PARAM ]detail".
func (e *Error) Error() string {
	if e.Param != "" {
		return "futurerelease: " + e.Param + " " + e.Detail
	}
	return "futurerelease: " + e.Detail
}

// Is reports whether target is the sentinel for e.Reason.
func (e *Error) Is(target error) bool {
	switch e.Reason {
	case Malformed:
		return target == ErrMalformed
	case Conflict:
		return target == ErrConflict
	case Duplicate:
		return target == ErrDuplicate
	case BeyondInterval:
		return target == ErrBeyondInterval
	case BeyondDateTime:
		return target == ErrBeyondDateTime
	case NotAuthenticated:
		return target == ErrNotAuthenticated
	case UnixDateTime:
		return target == ErrUnixDateTime
	}
	return false
}

// SMTPReply returns the reply for a MAIL command carrying the refused
// parameters:
//
//   - NotAuthenticated: 530 5.7.0 (RFC 4954 section 6, "authentication
//     required"): a hold stores mail on the server on the client's behalf,
//     so it is for authenticated submitters only (RFC 4865's security
//     considerations; the reference product says the same).
//   - everything else: 501 5.5.4, "syntax error in parameters or
//     arguments" (RFC 5321 section 4.2.3) with RFC 3463's X.5.4 "invalid
//     command arguments". A request beyond the limits is refused, never
//     shortened: the client asked for a release time the server cannot
//     promise, and RFC 4865 gives the limits in the EHLO reply precisely so
//     the client can stay inside them. RFC 4865 section 4 requires the
//     refusal and, as far as could be checked (see the package doc), asks
//     for semantic errors to be answered as syntax errors; the exact codes
//     are UNVERIFIED against its text.
//
// It never answers with RFC 4865's own X.7 status codes: the IANA registry
// gives their numbers to other RFCs (see the package doc).
//
// The message never echoes client text.
func (e *Error) SMTPReply() (code int, enhanced [3]int, message string) {
	if e.Reason == NotAuthenticated {
		if e.Param == "" {
			return 530, [3]int{5, 7, 0}, "Authentication required for future release"
		}
		return 530, [3]int{5, 7, 0}, "Authentication required for " + e.Param + " (future release)"
	}
	return 501, [3]int{5, 5, 4}, "Invalid " + e.paramOr() + " parameter: " + e.Detail
}

func (e *Error) paramOr() string {
	if e.Param == "" {
		return "future release"
	}
	return e.Param
}

// NotAuthenticatedError returns the error a server sends (530 5.7.0) when
// a MAIL command carries the hold parameter name in a session that has not
// authenticated. Validate does not know about sessions; the server calls
// this itself.
func NotAuthenticatedError(name string) *Error {
	return &Error{Reason: NotAuthenticated, Param: canonicalName(name), Detail: "needs an authenticated session"}
}
