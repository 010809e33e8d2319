package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/mtqp"
)

// TestDemo runs the tour and checks what it claims: the recalled message is
// reported recalled and never reaches the Maildir, the other one is
// delivered and is there.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	got, err := run(ctx, &out, Options{Dir: t.TempDir(), Hold: time.Second})
	require.NoError(t, err, out.String())

	assert.Equal(t, mtqp.RecallRecalled, got.RecallStatus)
	assert.Equal(t, mtqp.ActionFailed, got.FinalActions[got.Recalled], "a recalled recipient reads as failed in RFC 3886 terms")
	assert.Equal(t, mtqp.ActionDelivered, got.FinalActions[got.Delivered])

	require.Len(t, got.Files, 1, out.String())
	body, err := os.ReadFile(got.Files[0])
	require.NoError(t, err)
	assert.Contains(t, string(body), "Subject: "+got.Delivered)
	assert.NotContains(t, string(body), got.Recalled)
	assert.Contains(t, string(body), "Received: from", "the MTA prepends a trace field")

	assert.Contains(t, out.String(), "X-Recall-Status: recalled")
}
