package mtrk

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
)

// SecretSize is the length in bytes of secrets made by NewSecret: 160 bits,
// the SHA-1 block output size, well above the 128 bits SPEC requires.
const SecretSize = 20

// CertifierSize is the length of a SHA-1 certifier (RFC 3885 section 3).
const CertifierSize = sha1.Size

// MD4CertifierSize is the length of a certifier made by the product's MD4
// generation path (trackinggenerate without a recall secret). No secret
// hashes to it, because SHA-1 output is 20 bytes.
const MD4CertifierSize = 16

// b64 is the base64 alphabet of RFC 3885's ABNF without padding (RFC 5321
// esmtp-value excludes "=").
var b64 = base64.RawStdEncoding

// Secret is the tracking secret A that the submitter keeps and presents
// with MTQP queries. It never travels in SMTP.
type Secret []byte

// Certifier is B = SHA1(A), the value sent as MTRK= and stored by servers.
// Knowing it does not allow tracking.
type Certifier []byte

// NewSecret draws a random SecretSize-byte secret from crypto/rand.
func NewSecret() (Secret, error) {
	s := make(Secret, SecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("mtrk: drawing a secret: %w", err)
	}
	return s, nil
}

// Certifier returns SHA1(s).
func (s Secret) Certifier() Certifier {
	sum := sha1.Sum(s)
	return Certifier(sum[:])
}

// String returns the unpadded base64 form of the secret, the form users
// copy into tracking clients.
func (s Secret) String() string { return b64.EncodeToString(s) }

// Verify reports, in constant time with respect to the contents, whether
// SHA1(s) equals c.
func (c Certifier) Verify(s Secret) bool {
	sum := sha1.Sum(s)
	return subtle.ConstantTimeCompare(sum[:], c) == 1
}

// Equal compares two certifiers in constant time.
func (c Certifier) Equal(o Certifier) bool { return subtle.ConstantTimeCompare(c, o) == 1 }

// String returns the unpadded base64 wire form.
func (c Certifier) String() string { return b64.EncodeToString(c) }
