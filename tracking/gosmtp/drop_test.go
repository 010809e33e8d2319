package gosmtp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/tracking"
)

// TestConnectionDroppedInData: a client that goes away in the middle of
// DATA (before the end of the header, which the middleware reads ahead, or
// while the wrapped session streams the body) leaves no tracking record,
// not even a generated one, and the wrapped backend accepts no message.
func TestConnectionDroppedInData(t *testing.T) {
	body := strings.Repeat("a body line that is long enough to need several reads\r\n", 4000)
	for _, tc := range []struct {
		name, partial string
	}{
		{"in header", "Message-ID: <drop@client.test>\r\nSubject: dro"},
		{"in body", "Message-ID: <drop@client.test>\r\nSubject: drop\r\n\r\n" + body},
		{"before end marker", "Message-ID: <drop@client.test>\r\nSubject: drop\r\n\r\nlast line\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true, TrackingGenerate: 86400 * time.Second}})
			_, cert := newCert(t)
			rc := dialRaw(t, h.addr)
			rc.send("EHLO client.test\r\n")
			rc.reply()
			rc.send("MAIL FROM:<alice@example.test> ENVID=drop-1 MTRK=" + cert.String() + "\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
			require.Equal(t, 250, rc.code())
			require.Equal(t, 250, rc.code())
			require.Equal(t, 354, rc.code())
			rc.send(tc.partial)
			require.NoError(t, rc.c.Close())

			// Wait until go-smtp has finished with the connection (the
			// session's Data has returned and the socket is closed).
			deadline := time.Now().Add(10 * time.Second)
			for (h.mw.Stats().Rejected == 0 || h.srv.Stats().Active > 0) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			require.Zero(t, h.srv.Stats().Active, "the server closed the connection")
			st := h.mw.Stats()
			assert.Equal(t, uint64(1), st.Rejected, "the broken transfer is counted as refused")
			assert.Equal(t, uint64(0), st.Messages)
			assert.Equal(t, uint64(0), st.Recorded)
			assert.Empty(t, h.be.messages(), "the wrapped backend accepted nothing")
			_, err := h.eng.Lookup(context.Background(), cert)
			assert.ErrorIs(t, err, tracking.ErrNotFound)
			assert.Equal(t, uint64(0), h.eng.Stats().Writes, "nothing written to the store")
		})
	}
}
