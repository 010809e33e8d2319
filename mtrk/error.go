package mtrk

import "errors"

// Part names the part of an MTRK value that was wrong.
type Part int

// The parts an *Error can name.
const (
	// PartValue is the parameter value as a whole ("MTRK=" with nothing).
	PartValue Part = iota
	// PartCertifier is the certifier before the ":".
	PartCertifier
	// PartTimeout is the timeout after the ":".
	PartTimeout
	// PartSecret is a secret given to ParseSecret (never an SMTP value).
	PartSecret
)

// String returns the part's name as used in error messages.
func (p Part) String() string {
	switch p {
	case PartCertifier:
		return "certifier"
	case PartTimeout:
		return "timeout"
	case PartSecret:
		return "secret"
	default:
		return "value"
	}
}

// Sentinel errors, one per Part, so callers can test with errors.Is
// without looking at the *Error.
var (
	ErrValue     = errors.New("mtrk: invalid MTRK value")
	ErrCertifier = errors.New("mtrk: invalid certifier")
	ErrTimeout   = errors.New("mtrk: invalid timeout")
	ErrSecret    = errors.New("mtrk: invalid secret")
)

// Error is a rejected MTRK parameter, certifier or secret. It implements
// SMTPReply so an SMTP server can answer with it directly, and matches the
// sentinel of its Part under errors.Is.
type Error struct {
	Part   Part   // which part was wrong
	Reason string // what was wrong with it, e.g. "has more than 9 digits"
}

// Error returns "mtrk: <part> <reason>".
func (e *Error) Error() string { return "mtrk: " + e.Part.String() + " " + e.Reason }

// Is reports whether target is the sentinel for e.Part.
func (e *Error) Is(target error) bool { return target == e.sentinel() }

func (e *Error) sentinel() error {
	switch e.Part {
	case PartCertifier:
		return ErrCertifier
	case PartTimeout:
		return ErrTimeout
	case PartSecret:
		return ErrSecret
	default:
		return ErrValue
	}
}

// SMTPReply returns 501 with enhanced code 5.5.4 (RFC 5321 section 4.2.3,
// RFC 3463 X.5.4 "invalid command arguments") and a message naming the
// part. The message never echoes the client's text, so it cannot carry CR,
// LF or other bytes into the reply.
func (e *Error) SMTPReply() (code int, enhanced [3]int, message string) {
	return 501, [3]int{5, 5, 4}, "Invalid MTRK parameter: " + e.Part.String() + " " + e.Reason
}
