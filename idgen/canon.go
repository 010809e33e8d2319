package idgen

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/msgtrack/msgtrack/mtrk"
)

// MinGeneralSecretSize is the shortest general recall secret accepted, in
// bytes: 128 bits, because B, the Message-ID and the Date are public and a
// shorter secret can be searched offline.
const MinGeneralSecretSize = 16

// MaxEnvelopeIDParam is the longest "ENVID=" parameter, keyword included,
// that DeriveEnvelopeID produces (RFC 3461 section 4.4, strict reading).
const MaxEnvelopeIDParam = 100

var (
	// ErrNoMessageID means the Message-ID field is absent or empty, so a
	// client could not recompute a secret.
	ErrNoMessageID = errors.New("idgen: no Message-ID")
	// ErrMalformedHeader means a field body holds a CR or LF that is not
	// part of a fold (RFC 5322 section 2.2.3).
	ErrMalformedHeader = errors.New("idgen: malformed header field body")
	// ErrWeakSecret means the general recall secret is shorter than
	// MinGeneralSecretSize.
	ErrWeakSecret = errors.New("idgen: general recall secret shorter than 128 bits")
)

// Canonical returns canon(v) as defined in the package documentation:
// v unfolded, runs of white space made one space, trimmed. v is a field
// body as it stands in the message, possibly folded, with or without the
// final line terminator. It fails with ErrMalformedHeader when a CR or LF
// remains that is not part of a fold.
func Canonical(v string) (string, error) {
	// Fast path: nothing to fold, collapse or trim.
	if isCanonical(v) {
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(v))
	space := false // a space is pending (only written before the next non-WSP)
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case ' ', '\t':
			space = true
			continue
		case '\r':
			if i+2 < len(v) && v[i+1] == '\n' && isWSP(v[i+2]) {
				i++ // the fold's CRLF goes; its white space follows
				continue
			}
			if i+2 == len(v) && v[i+1] == '\n' {
				i++ // the line terminator
				continue
			}
			return "", fmt.Errorf("%w: CR at offset %d", ErrMalformedHeader, i)
		case '\n':
			if i+1 < len(v) && isWSP(v[i+1]) {
				continue
			}
			if i == len(v)-1 {
				continue
			}
			return "", fmt.Errorf("%w: LF at offset %d", ErrMalformedHeader, i)
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(c)
	}
	return b.String(), nil
}

// isCanonical reports whether v is already in canonical form.
func isCanonical(v string) bool {
	if v == "" {
		return true
	}
	if v[0] == ' ' || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\t', '\r', '\n':
			return false
		case ' ':
			if v[i+1] == ' ' {
				return false
			}
		}
	}
	return true
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// hashInput canonicalises the two fields. It fails when the Message-ID is
// missing or a field is malformed.
func hashInput(messageID, date string) (mid, d string, err error) {
	mid, err = Canonical(messageID)
	if err != nil {
		return "", "", fmt.Errorf("%w (Message-ID field)", err)
	}
	if mid == "" {
		return "", "", ErrNoMessageID
	}
	d, err = Canonical(date)
	if err != nil {
		return "", "", fmt.Errorf("%w (Date field)", err)
	}
	return mid, d, nil
}

// ComputeSecret returns the per-message secret
// A = SHA1(canon(messageID) || canon(date) || general) of the SHA-1
// trackinggenerate path, so that a tracking client can recompute from a
// sent copy what the submission server derived. messageID and date are
// the field bodies as they stand in the message (date may be empty when
// the message has no Date field). The certifier is A.Certifier().
//
// It fails with ErrNoMessageID, ErrMalformedHeader or ErrWeakSecret.
func ComputeSecret(messageID, date string, general []byte) (mtrk.Secret, error) {
	if len(general) < MinGeneralSecretSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrWeakSecret, len(general))
	}
	mid, d, err := hashInput(messageID, date)
	if err != nil {
		return nil, err
	}
	return sha1Secret(mid, d, general), nil
}

func sha1Secret(mid, date string, general []byte) mtrk.Secret {
	h := sha1.New()
	h.Write([]byte(mid))
	h.Write([]byte(date))
	h.Write(general)
	return mtrk.Secret(h.Sum(make([]byte, 0, sha1.Size)))
}

// DeriveEnvelopeID returns the envelope ID (decoded, not xtext) that a
// message without ENVID gets, derived from its Message-ID field body as
// the package documentation describes: the msg-id without angle brackets
// when it is graphic US-ASCII short enough for RFC 3461 section 4.4, the
// hex SHA-1 of the canonical Message-ID otherwise. It fails with
// ErrNoMessageID or ErrMalformedHeader.
func DeriveEnvelopeID(messageID string) (string, error) {
	mid, err := Canonical(messageID)
	if err != nil {
		return "", fmt.Errorf("%w (Message-ID field)", err)
	}
	if mid == "" {
		return "", ErrNoMessageID
	}
	return envelopeIDFromCanonical(mid), nil
}

func envelopeIDFromCanonical(mid string) string {
	id := mid
	if i := strings.IndexByte(mid, '<'); i >= 0 {
		if j := strings.IndexByte(mid[i+1:], '>'); j >= 0 {
			id = mid[i+1 : i+1+j]
		}
	}
	if ValidEnvelopeID(id) {
		return id
	}
	sum := sha1.Sum([]byte(mid))
	return hex.EncodeToString(sum[:])
}

// ValidEnvelopeID reports whether id is an envelope ID this package would
// produce: not empty, only graphic US-ASCII (%x21-7E) other than "<" and
// ">", and "ENVID=" plus its xtext encoding (RFC 3461 section 4) at most
// MaxEnvelopeIDParam characters.
func ValidEnvelopeID(id string) bool {
	if id == "" {
		return false
	}
	n := len("ENVID=")
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c < 0x21 || c > 0x7e || c == '<' || c == '>':
			return false
		case c == '+' || c == '=':
			n += 3 // xtext hexchar "+XX"
		default:
			n++
		}
	}
	return n <= MaxEnvelopeIDParam
}
