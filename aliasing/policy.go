package aliasing

import (
	"errors"
	"fmt"
	"strings"
)

// Policy says which recipients of an alias or forward expansion carry the
// tracking certifier. The zero value is Multiple, the product's default.
// Mailing lists never pass the certifier, whatever the policy.
type Policy int

// The policies, named after the product's source channel options.
const (
	// Multiple passes the certifier to every recipient of an alias
	// expansion (trackingmultiple, the default).
	Multiple Policy = iota
	// Single passes it only when the expansion results in exactly one
	// recipient (trackingsingle).
	Single
	// First passes it to the first recipient of the expansion
	// (trackingfirst).
	First
	// Strict follows RFC 3885: one recipient, or the designated primary of
	// several, or nobody (trackingstrict; this library's addition).
	Strict
)

// ErrUnknownPolicy is returned (wrapped) by ParsePolicy for a keyword that
// names no policy.
var ErrUnknownPolicy = errors.New("aliasing: unknown alias policy")

var policyNames = [...]string{
	Multiple: "trackingmultiple",
	Single:   "trackingsingle",
	First:    "trackingfirst",
	Strict:   "trackingstrict",
}

// String returns the policy's channel keyword, e.g. "trackingsingle".
func (p Policy) String() string {
	if p.Valid() {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Valid reports whether p is one of the defined policies.
func (p Policy) Valid() bool { return p >= Multiple && p <= Strict }

// ParsePolicy parses a channel keyword ("trackingmultiple",
// "trackingsingle", "trackingfirst", "trackingstrict") or its short form
// without the "tracking" prefix ("multiple", "single", "first",
// "strict"). Case is ignored, as the product ignores the case of channel
// keywords; surrounding white space is not accepted.
func ParsePolicy(s string) (Policy, error) {
	k := strings.ToLower(s)
	short := strings.TrimPrefix(k, "tracking")
	for p, name := range policyNames {
		if k == name || (short == k && "tracking"+k == name) {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownPolicy, s)
}

// MarshalText implements encoding.TextMarshaler with the keyword form.
func (p Policy) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownPolicy, int(p))
	}
	return []byte(policyNames[p]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParsePolicy.
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
