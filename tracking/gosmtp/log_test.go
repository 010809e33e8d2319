package gosmtp

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/channelopts"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records returns the JSON log records with the given message.
func (s *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for ln := range strings.SplitSeq(strings.TrimSpace(s.b.String()), "\n") {
		if ln == "" {
			continue
		}
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(ln), &r), ln)
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// TestLogLineTrackingFields: the middleware's own line for an accepted
// message carries mt (log_tracking bit 0: "id:timeout") and fr
// (log_futurerelease bit 0: release offset in seconds) exactly when the
// MTA options enable them; bit 1 alone (the LOG_ACTION probe) does not put
// them in this line.
func TestLogLineTrackingFields(t *testing.T) {
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name           string
		logTr, logFR   channelopts.LogFlags
		wantMT, wantFR bool
	}{
		{"set", 1, 1, true, true},
		{"tracking only", 1, 0, true, false},
		{"futurerelease only", 0, 1, false, true},
		{"unset", 0, 0, false, false},
		{"probe bit only", 2, 2, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			h := submissionHarness(t, channelopts.Channel{TrackingServer: true}, func(o *Options) {
				o.MTA = channelopts.MTA{LogTracking: tc.logTr, LogFutureRelease: tc.logFR}
				o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
				o.Now = func() time.Time { return now }
			})
			_, cert := newCert(t)
			res := runPython(t, h, pyConfig{StartTLS: true, User: testUser, Password: testPass, Transactions: []pyTx{{
				From: "alice@example.test", To: []string{"bob@example.test"},
				Msg:         testMessage("<log@client.test>", "Sat, 1 Aug 2026 12:00:00 +0000"),
				MailOptions: []string{"ENVID=env-log", "MTRK=" + cert.String() + ":100000", "HOLDFOR=3600"},
			}}})
			require.True(t, res.Transactions[0].OK, "%+v", res.Transactions[0])
			msgs := h.be.messages()
			require.Len(t, msgs, 1)
			require.NotNil(t, msgs[0].Tracking)

			recs := logs.records(t, "gosmtp: message accepted")
			require.Len(t, recs, 1, "one line per accepted message")
			r := recs[0]
			assert.Equal(t, "INFO", r["level"])
			assert.Equal(t, msgs[0].Tracking.QueueID, r["queue"])
			assert.Equal(t, "alice@example.test", r["from"])
			assert.Equal(t, "env-log", r["envid"])
			mt, hasMT := r["mt"]
			fr, hasFR := r["fr"]
			assert.Equal(t, tc.wantMT, hasMT, "mt in %v", r)
			assert.Equal(t, tc.wantFR, hasFR, "fr in %v", r)
			if tc.wantMT {
				assert.Equal(t, cert.String()+":100000", mt)
			}
			if tc.wantFR {
				assert.Equal(t, "3600", fr)
			}
		})
	}
}
