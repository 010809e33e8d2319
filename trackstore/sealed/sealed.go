// Package sealed wraps a trackstore.Store so that every value is encrypted
// and authenticated with AES-GCM under a deployment key. A shared memcached
// holds recipient lists and has no authentication of its own (anyone who
// can reach its port can read and write), so a deployment that cannot
// fence memcached off seals its records.
//
// # Format
//
// A sealed value is
//
//	version (1 byte, 0x01) || key ID (1 byte) || nonce (12 bytes) || AES-GCM ciphertext and tag (len(plaintext) + 16 bytes)
//
// Overhead bytes in all. The GCM additional data is the version, the key
// ID and the storage key, so a value copied from one storage key to
// another, or relabelled with another key ID, fails to open. Nonces are
// random; rotate keys well before 2^32 writes under one key (NIST SP
// 800-38D section 8.3).
//
// # Rotation
//
// New takes the keys newest first: the first seals every write, and all of
// them open. To rotate, deploy the new key second on every MTA, then move
// it first everywhere; once every record written under the old key has
// expired (the longest tracking TTL), drop the old key.
//
// Bytes that do not open (foreign, damaged, too short, unknown key ID or
// format version) give an error wrapping trackstore.ErrCorrupt, never a
// panic.
package sealed

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/msgtrack/msgtrack/trackstore"
)

const (
	version   = 0x01
	nonceSize = 12
	tagSize   = 16
	// Overhead is the number of bytes sealing adds to a value.
	Overhead = 2 + nonceSize + tagSize
)

// Key is one deployment key: an ID written beside each value it seals,
// and an AES key of 16, 24 or 32 bytes (32 recommended).
type Key struct {
	ID     byte
	Secret []byte
}

// Store is a trackstore.Store that seals values before handing them to an
// inner store. It is safe for concurrent use if the inner store is.
type Store struct {
	inner trackstore.Store
	seal  byte // ID of the sealing key
	aeads [256]cipher.AEAD
}

var _ trackstore.Store = (*Store)(nil)

// New returns a Store over inner that seals with keys[0] and opens with
// any of keys. Key IDs must be distinct.
func New(inner trackstore.Store, keys ...Key) (*Store, error) {
	if len(keys) == 0 {
		return nil, errors.New("sealed: no keys")
	}
	if inner.MaxValueSize() <= Overhead {
		return nil, fmt.Errorf("sealed: inner store's value limit %d leaves no room", inner.MaxValueSize())
	}
	s := &Store{inner: inner, seal: keys[0].ID}
	for _, k := range keys {
		if s.aeads[k.ID] != nil {
			return nil, fmt.Errorf("sealed: key ID %d listed twice", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("sealed: key ID %d: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("sealed: key ID %d: %w", k.ID, err)
		}
		s.aeads[k.ID] = aead
	}
	return s, nil
}

func additionalData(keyID byte, key string) []byte {
	ad := make([]byte, 0, 2+len(key))
	ad = append(ad, version, keyID)
	return append(ad, key...)
}

// Seal returns the sealed form of value for storage key.
func (s *Store) Seal(key string, value []byte) []byte {
	aead := s.aeads[s.seal]
	out := make([]byte, 2+nonceSize, Overhead+len(value))
	out[0], out[1] = version, s.seal
	_, _ = rand.Read(out[2 : 2+nonceSize]) // crypto/rand.Read never fails
	return aead.Seal(out, out[2:2+nonceSize], value, additionalData(s.seal, key))
}

// Open returns the plaintext of a value sealed for storage key, or an
// error wrapping trackstore.ErrCorrupt.
func (s *Store) Open(key string, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: %q: %d bytes, too short to be sealed", trackstore.ErrCorrupt, key, len(sealed))
	}
	if sealed[0] != version {
		return nil, fmt.Errorf("%w: %q: unknown format version %d", trackstore.ErrCorrupt, key, sealed[0])
	}
	aead := s.aeads[sealed[1]]
	if aead == nil {
		return nil, fmt.Errorf("%w: %q: unknown key ID %d", trackstore.ErrCorrupt, key, sealed[1])
	}
	plain, err := aead.Open(nil, sealed[2:2+nonceSize], sealed[2+nonceSize:], additionalData(sealed[1], key))
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", trackstore.ErrCorrupt, key, err)
	}
	if plain == nil {
		plain = []byte{}
	}
	return plain, nil
}

// MaxValueSize is the inner store's limit less Overhead.
func (s *Store) MaxValueSize() int { return s.inner.MaxValueSize() - Overhead }

func (s *Store) checkSize(value []byte) error {
	if len(value) > s.MaxValueSize() {
		return fmt.Errorf("%w: %d bytes, limit %d", trackstore.ErrTooLarge, len(value), s.MaxValueSize())
	}
	return nil
}

// Get opens the item under key.
func (s *Store) Get(ctx context.Context, key string) (trackstore.Item, error) {
	it, err := s.inner.Get(ctx, key)
	if err != nil {
		return it, err
	}
	plain, err := s.Open(key, it.Value)
	if err != nil {
		return trackstore.Item{}, err
	}
	it.Value = plain
	return it, nil
}

// CorruptError is returned by GetMulti when some items did not open. The
// map returned with it holds the items that did.
type CorruptError struct {
	// Keys are the storage keys whose values did not open.
	Keys []string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: %d items did not open: %s", trackstore.ErrCorrupt, len(e.Keys), strings.Join(e.Keys, " "))
}

// Unwrap makes the error match trackstore.ErrCorrupt.
func (e *CorruptError) Unwrap() error { return trackstore.ErrCorrupt }

// GetMulti opens the items found among keys. If some do not open it
// returns the others together with a *CorruptError naming them.
func (s *Store) GetMulti(ctx context.Context, keys []string) (map[string]trackstore.Item, error) {
	m, err := s.inner.GetMulti(ctx, keys)
	if err != nil {
		return m, err
	}
	var bad []string
	for k, it := range m {
		plain, err := s.Open(k, it.Value)
		if err != nil {
			bad = append(bad, k)
			delete(m, k)
			continue
		}
		it.Value = plain
		m[k] = it
	}
	if bad != nil {
		return m, &CorruptError{Keys: bad}
	}
	return m, nil
}

// Add seals value and adds it under key.
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.checkSize(value); err != nil {
		return err
	}
	return s.inner.Add(ctx, key, s.Seal(key, value), ttl)
}

// Set seals value and stores it under key.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.checkSize(value); err != nil {
		return err
	}
	return s.inner.Set(ctx, key, s.Seal(key, value), ttl)
}

// CompareAndSwap seals item.Value and swaps it in if the inner version is
// still item.Version.
func (s *Store) CompareAndSwap(ctx context.Context, item trackstore.Item, ttl time.Duration) error {
	if err := s.checkSize(item.Value); err != nil {
		return err
	}
	item.Value = s.Seal(item.Key, item.Value)
	return s.inner.CompareAndSwap(ctx, item, ttl)
}

// Delete deletes key from the inner store.
func (s *Store) Delete(ctx context.Context, key string) error { return s.inner.Delete(ctx, key) }
