package idgen

import (
	"context"
	"errors"
	"fmt"

	"github.com/msgtrack/msgtrack/mtrk"
)

// SecretSource looks up a user's general recall secret, the value of the
// directory attribute named by the product's ldap_attr_auth_recall_secret
// option. Package idgen/ldapsecret implements it on LDAP.
//
// RecallSecret returns the raw secret bytes, or an error that wraps one of
// ErrUnknownUser (no such user), ErrNoSecret (the user exists but has no
// secret or an empty one) or ErrAmbiguous (several entries or several
// values), or any other error for a failure of the source itself
// (transport, timeout, bind), which implementations wrap with %w.
// Implementations must be safe for concurrent use and must honour ctx.
// The caller must not modify the returned slice.
type SecretSource interface {
	RecallSecret(ctx context.Context, user string) ([]byte, error)
}

var (
	// ErrNoSecret means the user exists but has no general recall secret,
	// or an empty one.
	ErrNoSecret = errors.New("idgen: user has no general recall secret")
	// ErrUnknownUser means the source has no entry for the user.
	ErrUnknownUser = errors.New("idgen: unknown user")
	// ErrAmbiguous means several entries match the user, or the entry has
	// several secret values; none is used, since the client cannot know
	// which one the server chose.
	ErrAmbiguous = errors.New("idgen: several entries or secret values for user")
)

// StaticSource is a SecretSource held in memory, mapping user names to
// general secrets: for tests, examples and small sites configured from a
// file. It must not be modified while in use.
type StaticSource map[string][]byte

// RecallSecret implements SecretSource.
func (s StaticSource) RecallSecret(ctx context.Context, user string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, ok := s[user]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %q", ErrUnknownUser, user)
	case len(v) == 0:
		return nil, fmt.Errorf("%w: %q", ErrNoSecret, user)
	}
	return v, nil
}

// SourceFunc adapts a function to SecretSource.
type SourceFunc func(ctx context.Context, user string) ([]byte, error)

// RecallSecret implements SecretSource.
func (f SourceFunc) RecallSecret(ctx context.Context, user string) ([]byte, error) {
	return f(ctx, user)
}

// Random draws a random tracking secret A and returns it with its
// certifier B = SHA1(A), for a client that tracks its own messages
// (RFC 3885 section 3). It wraps mtrk.NewSecret.
func Random() (mtrk.Secret, mtrk.Certifier, error) {
	s, err := mtrk.NewSecret()
	if err != nil {
		return nil, nil, err
	}
	return s, s.Certifier(), nil
}
