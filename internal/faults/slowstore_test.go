package faults

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtqp"
)

// The store answers after slowDelay; the paths under test give up after
// pathTimeout. memcachestore's own per-call timeout is longer than both, so
// only the callers' contexts can end the wait.
const (
	slowDelay   = 2 * time.Second
	pathTimeout = 300 * time.Millisecond
)

// TestSlowStoreSMTPGivesUpAtStoreTimeoutAndAcceptsFailOpen puts a proxy that
// delays every memcached reply between the engine and memcached. The end of
// DATA waits for the record no longer than the middleware's StoreTimeout:
// the message is still answered 250 and delivered (fail-open), the failure
// is counted and logged with the context's deadline error.
func TestSlowStoreSMTPGivesUpAtStoreTimeoutAndAcceptsFailOpen(t *testing.T) {
	mc := testenv.StartMemcached(t)
	px := startDelayProxy(t, mc.Addr)
	st := startStack(t, stackOptions{store: memcacheStore(t, px.Addr, 10*time.Second), storeTimeout: pathTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	fast := newTrackedMessage(t, 1)
	require.NoError(t, send(ctx, st.addr, fast))
	_, err := st.eng.Track(ctx, fast.envID, fast.secret)
	require.NoError(t, err, "with a prompt store the message is tracked")

	px.SetDelay(slowDelay)
	slow := newTrackedMessage(t, 2)
	require.NoError(t, send(ctx, st.addr, slow), "the message is accepted although the store does not answer in time")
	_, ok := st.inbox.get(slow.msgID)
	assert.True(t, ok, "and delivered to the backend")
	assert.Equal(t, uint64(1), st.mw.Stats().StoreFailures)
	warns := st.logs.warnings("tracking record not written")
	if assert.Len(t, warns, 1) {
		assert.Contains(t, warns[0], context.DeadlineExceeded.Error(), "the store call ended because the context expired")
		assert.Contains(t, warns[0], slow.secret.Certifier().String())
	}

	px.SetDelay(0)
	again := newTrackedMessage(t, 3)
	require.NoError(t, send(ctx, st.addr, again))
	_, err = st.eng.Track(ctx, again.envID, again.secret)
	assert.NoError(t, err, "tracking works again once the store is prompt")
}

// TestSlowStoreMTQPAnswers451AtQueryTimeoutAndKeepsServing: TRACK over a
// store that does not answer in time gets 451 when the server's
// QueryTimeout expires, on a connection that stays usable, and the same
// query is answered once the store is prompt again.
func TestSlowStoreMTQPAnswers451AtQueryTimeoutAndKeepsServing(t *testing.T) {
	mc := testenv.StartMemcached(t)
	px := startDelayProxy(t, mc.Addr)
	st := startStack(t, stackOptions{store: memcacheStore(t, px.Addr, 10*time.Second)})
	srv := &mtqp.Server{QueryTimeout: pathTimeout}
	addr := startMTQP(t, srv, st.eng)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	m := newTrackedMessage(t, 1)
	require.NoError(t, send(ctx, st.addr, m))
	c, err := mtqp.Dial(ctx, addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Track(ctx, m.envID, m.secret)
	require.NoError(t, err)

	px.SetDelay(slowDelay)
	_, err = c.Track(ctx, m.envID, m.secret)
	var re *mtqp.ReplyError
	require.True(t, errors.As(err, &re), "TRACK on a slow store fails with a reply, got %v", err)
	assert.Equal(t, mtqp.CodeLocalError, re.Code)
	assert.NoError(t, ctx.Err(), "the client did not have to give up: the server answered")
	assert.False(t, errors.Is(err, mtqp.ErrNotFound), "a slow store is not reported as an unknown message")

	px.SetDelay(0)
	res, err := c.Track(ctx, m.envID, m.secret)
	require.NoError(t, err, "the same connection is answered once the store is prompt")
	assert.Len(t, res.Report.Recipients, 1)
	met := srv.Metrics()
	assert.Equal(t, uint64(1), met.Commands[mtqp.CmdTrack].Failures)
	assert.Equal(t, uint64(3), met.Commands[mtqp.CmdTrack].Count)
}
