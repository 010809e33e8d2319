package idgen

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/mtrk"
)

var errDown = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}

func testSource() SecretSource {
	static := StaticSource{
		"alice": []byte(vecGeneral),
		"bob":   {},
		"carol": []byte("8 bytes!"),
	}
	return SourceFunc(func(ctx context.Context, user string) ([]byte, error) {
		switch user {
		case "dave":
			return nil, fmt.Errorf("test source: %w", ErrAmbiguous)
		case "down":
			return nil, fmt.Errorf("test source: %w", errDown)
		case "slow":
			<-ctx.Done()
			return nil, fmt.Errorf("test source: %w", ctx.Err())
		case "emptyok":
			return []byte{}, nil
		}
		return static.RecallSecret(ctx, user)
	})
}

func TestGenerate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src      SecretSource
		in       Input
		path     Path
		reason   Reason
		errIs    error
		warnLogs int
	}{
		{"sha1", testSource(), Input{User: "alice", MessageID: vecMID, Date: vecDate}, PathSHA1, ReasonNone, nil, 0},
		{"sha1 no date", testSource(), Input{User: "alice", MessageID: vecMID}, PathSHA1, ReasonNone, nil, 0},
		{"unauthenticated", testSource(), Input{MessageID: vecMID, Date: vecDate}, PathMD4, ReasonUnauthenticated, nil, 0},
		{"no source", nil, Input{User: "alice", MessageID: vecMID}, PathMD4, ReasonNoSource, nil, 0},
		{"no message id", testSource(), Input{User: "alice", Date: vecDate}, PathMD4, ReasonNoMessageID, ErrNoMessageID, 0},
		{"malformed date", testSource(), Input{User: "alice", MessageID: vecMID, Date: "x\ry"}, PathMD4, ReasonMalformedHeader, ErrMalformedHeader, 0},
		{"unknown user", testSource(), Input{User: "zoe", MessageID: vecMID}, PathMD4, ReasonUnknownUser, ErrUnknownUser, 0},
		{"empty secret", testSource(), Input{User: "bob", MessageID: vecMID}, PathMD4, ReasonNoSecret, ErrNoSecret, 0},
		{"empty secret without error", testSource(), Input{User: "emptyok", MessageID: vecMID}, PathMD4, ReasonNoSecret, ErrNoSecret, 0},
		{"weak secret", testSource(), Input{User: "carol", MessageID: vecMID}, PathMD4, ReasonWeakSecret, ErrWeakSecret, 1},
		{"ambiguous", testSource(), Input{User: "dave", MessageID: vecMID}, PathMD4, ReasonAmbiguous, ErrAmbiguous, 1},
		{"source down", testSource(), Input{User: "down", MessageID: vecMID}, PathMD4, ReasonSourceError, errDown, 1},
		{"source timeout", testSource(), Input{User: "slow", MessageID: vecMID}, PathMD4, ReasonSourceError, context.DeadlineExceeded, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			g := New(Options{
				Source:        tc.src,
				Logger:        slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
				SourceTimeout: 50 * time.Millisecond,
			})
			in := tc.in
			in.UniqueID = "q123@mx.example.com"
			res, err := g.Generate(context.Background(), in)
			require.NoError(t, err)
			assert.Equal(t, tc.path, res.Path)
			assert.Equal(t, tc.reason, res.Reason)
			if tc.errIs != nil {
				assert.ErrorIs(t, res.Err, tc.errIs)
			} else {
				assert.NoError(t, res.Err)
			}
			assert.Equal(t, tc.warnLogs, bytes.Count(logs.Bytes(), []byte("\n")), logs.String())
			assert.NotContains(t, logs.String(), vecGeneral, "secrets never reach the log")
			assert.True(t, res.EnvelopeIDGenerated)
			assert.True(t, ValidEnvelopeID(res.EnvelopeID), res.EnvelopeID)

			switch tc.path {
			case PathSHA1:
				want, err := ComputeSecret(in.MessageID, in.Date, []byte(vecGeneral))
				require.NoError(t, err)
				assert.Equal(t, want, res.Secret)
				assert.Len(t, []byte(res.Certifier), mtrk.CertifierSize)
				assert.True(t, res.Certifier.Verify(res.Secret))
				assert.Equal(t, "20260801123456.A1B2C3@mail.example.com", res.EnvelopeID)
				assert.Empty(t, res.UniqueID)
			case PathMD4:
				assert.Nil(t, res.Secret)
				assert.Len(t, []byte(res.Certifier), mtrk.MD4CertifierSize)
				assert.Equal(t, MD4Identifier("q123@mx.example.com"), res.Certifier)
				assert.Equal(t, "q123@mx.example.com", res.UniqueID)
				if in.MessageID != "" && tc.reason != ReasonMalformedHeader {
					assert.Equal(t, "20260801123456.A1B2C3@mail.example.com", res.EnvelopeID)
				} else {
					assert.Equal(t, hex.EncodeToString(res.Certifier), res.EnvelopeID)
				}
			}
		})
	}
}

func TestGenerateVectorThroughGenerator(t *testing.T) {
	g := New(Options{Source: StaticSource{"alice": []byte(vecGeneral)}})
	res, err := g.Generate(context.Background(), Input{
		User: "alice", MessageID: " " + vecMID + "\r\n", Date: " Sat, 1 Aug 2026\r\n 12:34:56 +0200\r\n",
	})
	require.NoError(t, err)
	assert.Equal(t, "e1db9f7ee406353cd2687a9044dab9e58ef896ba", hex.EncodeToString(res.Secret))
	assert.Equal(t, "OA78niVTivgNZPholvpuD2W6WNU", res.Certifier.String())
}

func TestGenerateKeepsGivenEnvelopeID(t *testing.T) {
	g := New(Options{Source: StaticSource{"alice": []byte(vecGeneral)}})
	for _, user := range []string{"alice", ""} {
		res, err := g.Generate(context.Background(), Input{User: user, MessageID: vecMID, EnvelopeID: "client-envid-1"})
		require.NoError(t, err)
		assert.Equal(t, "client-envid-1", res.EnvelopeID)
		assert.False(t, res.EnvelopeIDGenerated)
	}
}

func TestGenerateUniqueIDs(t *testing.T) {
	n := 0
	g := New(Options{UniqueID: func() (string, error) { n++; return fmt.Sprintf("u%d@h", n), nil }})
	r1, err := g.Generate(context.Background(), Input{MessageID: vecMID})
	require.NoError(t, err)
	r2, err := g.Generate(context.Background(), Input{MessageID: vecMID})
	require.NoError(t, err)
	assert.Equal(t, "u1@h", r1.UniqueID)
	assert.Equal(t, MD4Identifier("u2@h"), r2.Certifier)
	assert.False(t, r1.Certifier.Equal(r2.Certifier))

	// The default draws random IDs.
	d := New(Options{})
	a, err := d.Generate(context.Background(), Input{})
	require.NoError(t, err)
	b, err := d.Generate(context.Background(), Input{})
	require.NoError(t, err)
	assert.Len(t, a.UniqueID, 32)
	assert.NotEqual(t, a.UniqueID, b.UniqueID)

	bad := New(Options{UniqueID: func() (string, error) { return "", errors.New("no entropy") }})
	_, err = bad.Generate(context.Background(), Input{MessageID: vecMID})
	assert.ErrorContains(t, err, "no entropy")
	empty := New(Options{UniqueID: func() (string, error) { return "", nil }})
	_, err = empty.Generate(context.Background(), Input{MessageID: vecMID})
	assert.Error(t, err)
	// The SHA-1 path needs no unique ID.
	sha := New(Options{Source: StaticSource{"alice": []byte(vecGeneral)}, UniqueID: func() (string, error) { return "", errors.New("no entropy") }})
	res, err := sha.Generate(context.Background(), Input{User: "alice", MessageID: vecMID})
	require.NoError(t, err)
	assert.Equal(t, PathSHA1, res.Path)
}

func TestGenerateCallerContext(t *testing.T) {
	g := New(Options{Source: testSource(), SourceTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := g.Generate(ctx, Input{User: "slow", MessageID: vecMID, UniqueID: "u"})
	require.NoError(t, err)
	assert.Equal(t, ReasonSourceError, res.Reason)
	assert.ErrorIs(t, res.Err, context.Canceled)
}

func TestStatsConcurrent(t *testing.T) {
	g := New(Options{Source: testSource()})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				for _, u := range []string{"alice", "", "carol", "zoe"} {
					_, err := g.Generate(context.Background(), Input{User: u, MessageID: vecMID})
					assert.NoError(t, err)
				}
			}
		}()
	}
	wg.Wait()
	s := g.Stats()
	assert.Equal(t, uint64(400), s.SHA1)
	assert.Equal(t, uint64(1200), s.MD4)
	assert.Equal(t, map[Reason]uint64{ReasonUnauthenticated: 400, ReasonWeakSecret: 400, ReasonUnknownUser: 400}, s.ByReason)
}

func TestStrings(t *testing.T) {
	assert.Equal(t, "sha1", PathSHA1.String())
	assert.Equal(t, "md4", PathMD4.String())
	assert.Equal(t, "weak-secret", ReasonWeakSecret.String())
	assert.Equal(t, "none", ReasonNone.String())
	assert.Equal(t, "reason(99)", Reason(99).String())
}

func TestRandom(t *testing.T) {
	a, b, err := Random()
	require.NoError(t, err)
	assert.Len(t, []byte(a), mtrk.SecretSize)
	assert.True(t, b.Verify(a))
	a2, _, err := Random()
	require.NoError(t, err)
	assert.NotEqual(t, a, a2)
}

func TestStaticSource(t *testing.T) {
	s := StaticSource{"a": []byte("x"), "b": nil}
	v, err := s.RecallSecret(context.Background(), "a")
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), v)
	_, err = s.RecallSecret(context.Background(), "b")
	assert.ErrorIs(t, err, ErrNoSecret)
	_, err = s.RecallSecret(context.Background(), "c")
	assert.ErrorIs(t, err, ErrUnknownUser)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.RecallSecret(ctx, "a")
	assert.ErrorIs(t, err, context.Canceled)
}
