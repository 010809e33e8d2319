package trackstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MaxKeyLen is the longest key any backend must accept: memcached's limit
// of 250 bytes (protocol.txt, "Keys").
const MaxKeyLen = 250

// ErrInvalidTTL is returned for a negative TTL. It is not one of the
// engine's retry or fail-open signals: it is a programming error.
var ErrInvalidTTL = errors.New("trackstore: negative TTL")

// CheckKey reports whether key obeys the portable key rule that every
// backend enforces: 1 to MaxKeyLen bytes, each a printable ASCII character
// other than space (0x21 to 0x7e). That is memcached's text-protocol rule
// (no spaces or control characters) narrowed to ASCII, so that a key that
// works with the in-memory store also works with memcached. The error
// wraps ErrInvalidKey.
func CheckKey(key string) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: byte 0x%02x at offset %d", ErrInvalidKey, c, i)
		}
	}
	return nil
}

// CheckTTL returns an error wrapping ErrInvalidTTL for a negative ttl.
func CheckTTL(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: %v", ErrInvalidTTL, ttl)
	}
	return nil
}

// ContextError returns nil while ctx is live, and otherwise an error that
// wraps both ErrUnavailable and ctx.Err(), as every Store method must
// report a done context.
func ContextError(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return Unavailable(err)
	}
	return nil
}

// Unavailable wraps err so that it matches ErrUnavailable as well as
// itself under errors.Is.
func Unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// maxNamespaceLen bounds the namespace that SafeKey uses verbatim.
const maxNamespaceLen = 64

var b64 = base64.RawURLEncoding

// SafeKey derives a key that every backend accepts (see CheckKey) from a
// namespace (a short program constant such as "mt1") and an arbitrary
// tracking ID (any bytes). Distinct (namespace, id) pairs give distinct keys
// except in the digest forms, where a collision needs a SHA-256 collision.
//
// The derivation, in order:
//
//  1. If namespace is 1 to 64 bytes of printable non-space ASCII and does
//     not begin with "~", and namespace + ":" + base64url(id) (RFC 4648
//     section 5, no padding) fits in MaxKeyLen bytes, that is the key.
//     Tracking IDs up to 138 bytes take this form with a 64-byte namespace
//     (183 bytes with a 4-byte one) and stay readable in memcached dumps.
//  2. Else, if the namespace qualifies, the key is
//     namespace + ":~" + base64url(SHA-256(id)) (44 characters after ":").
//  3. Else the key is "~" + base64url(SHA-256(len(namespace) as 8 bytes big
//     endian || namespace || id)).
//
// The forms cannot be confused: neither base64url nor "~" contains ":", so
// the text after the last ":" is either the encoded ID or, beginning with
// "~", a digest; form 3 has no ":" at all and a qualifying namespace never
// begins with "~".
func SafeKey(namespace, id string) string {
	if namespaceOK(namespace) {
		if n := len(namespace) + 1 + b64.EncodedLen(len(id)); n <= MaxKeyLen {
			buf := make([]byte, 0, n)
			buf = append(buf, namespace...)
			buf = append(buf, ':')
			buf = b64.AppendEncode(buf, []byte(id))
			return string(buf)
		}
		sum := sha256.Sum256([]byte(id))
		buf := make([]byte, 0, len(namespace)+2+b64.EncodedLen(len(sum)))
		buf = append(buf, namespace...)
		buf = append(buf, ':', '~')
		buf = b64.AppendEncode(buf, sum[:])
		return string(buf)
	}
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(namespace)))
	h.Write(n[:])
	h.Write([]byte(namespace))
	h.Write([]byte(id))
	return "~" + b64.EncodeToString(h.Sum(nil))
}

func namespaceOK(ns string) bool {
	if len(ns) == 0 || len(ns) > maxNamespaceLen || ns[0] == '~' {
		return false
	}
	for i := 0; i < len(ns); i++ {
		if c := ns[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
