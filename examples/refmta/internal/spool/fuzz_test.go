package spool

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeEnvelope: the decoder never panics, anything it accepts is
// valid, and re-encoding an accepted envelope decodes to the same value.
func FuzzDecodeEnvelope(f *testing.F) {
	good := &Envelope{V: 1, ID: strings.Repeat("a", 32), From: "a@x", EnvID: "e",
		Recipients: []Recipient{{Addr: "b@x", State: Deferred, NextAttempt: time.Unix(100, 0).UTC(), Meta: map[string]string{"k": "v"}}},
		Tracking:   Tracking{ID: "t", Timeout: time.Second}, Arrival: time.Unix(5, 0).UTC(), HoldUntil: time.Unix(9, 0).UTC()}
	b, err := EncodeEnvelope(good)
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte(`{"v":2,"id":"` + strings.Repeat("a", 32) + `","rcpts":[{"addr":"x","state":"queued"}]}`))
	f.Add([]byte(`{"v":1,"id":"` + strings.Repeat("a", 32) + `","rcpts":[{"addr":"x","state":"queued"}],"arrival":"2026-01-01T00:00:00Z"} {}`))
	f.Add([]byte(`{"v":1,"extra":true}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEnvelope(data)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		require.NoError(t, e.validate())
		again, err := EncodeEnvelope(e)
		require.NoError(t, err)
		e2, err := DecodeEnvelope(again)
		require.NoError(t, err)
		require.Equal(t, e.Clone(), e2.Clone())
	})
}
