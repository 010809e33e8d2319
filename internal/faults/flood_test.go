package faults

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
)

// dialFrom connects to an MTQP server from the given loopback source
// address (Linux routes the whole of 127/8 to the loopback interface).
func dialFrom(ctx context.Context, src, addr string) (*mtqp.Client, error) {
	d := &mtqp.Dialer{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}
	return d.Dial(ctx, addr)
}

// TestMTQPFloodOfWrongSecretsIsRateLimitedWhileOtherAddressIsAnswered floods
// the server from 127.0.0.1 over 16 connections with TRACK queries carrying
// wrong secrets while a legitimate client on 127.0.0.2 keeps asking with the
// right one. The flood uses up 127.0.0.1's failure budget and gets 450; the
// legitimate client gets every report; Metrics show the 550s and the 450s.
func TestMTQPFloodOfWrongSecretsIsRateLimitedWhileOtherAddressIsAnswered(t *testing.T) {
	mc := testenv.StartMemcached(t)
	st := startStack(t, stackOptions{store: memcacheStore(t, mc.Addr, time.Second)})
	srv := &mtqp.Server{FailureRate: 0.1, FailureBurst: 5, MaxErrors: 1000}
	addr := startMTQP(t, srv, st.eng)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	m := newTrackedMessage(t, 1)
	require.NoError(t, send(ctx, st.addr, m))
	legit, err := dialFrom(ctx, "127.0.0.2", addr)
	require.NoError(t, err, "dialling from 127.0.0.2")
	defer legit.Close()

	const floodConns, perConn = 16, 10
	var limited, notFound, other atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < floodConns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialFrom(ctx, "127.0.0.1", addr)
			if err != nil {
				other.Add(1)
				return
			}
			defer c.Close()
			<-start
			for j := 0; j < perConn; j++ {
				wrong, _ := mtrk.NewSecret()
				_, err := c.Track(ctx, m.envID, wrong)
				var re *mtqp.ReplyError
				switch {
				case errors.Is(err, mtqp.ErrNotFound):
					notFound.Add(1)
				case errors.As(err, &re) && re.Code == mtqp.CodeRateLimited:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	close(start)
	legitOK := 0
	for i := 0; i < 20; i++ {
		res, err := legit.Track(ctx, m.envID, m.secret)
		if assert.NoError(t, err, "legitimate query %d from another address", i) {
			assert.Equal(t, m.envID, res.Report.EnvelopeID)
			legitOK++
		}
	}
	wg.Wait()
	// And after the flood, still.
	_, err = legit.Track(ctx, m.envID, m.secret)
	assert.NoError(t, err)

	assert.Equal(t, 20, legitOK)
	assert.Zero(t, other.Load(), "every flood query got 550 or 450")
	assert.Equal(t, int64(floodConns*perConn), notFound.Load()+limited.Load())
	// The server checks the budget before the backend call and charges it
	// after the 550 (mtqp/server.go, allowed then fail), so queries in
	// flight on other connections of the same address pass the check
	// before the first charge: at most the burst plus one per connection
	// (plus refill) reach the backend.
	assert.LessOrEqual(t, notFound.Load(), int64(5+floodConns+1), "the flood's guesses are bounded by the burst and the connections")
	assert.Greater(t, limited.Load(), int64(floodConns*perConn/2), "most of the flood is refused by the limiter")
	met := srv.Metrics()
	assert.Equal(t, uint64(limited.Load()), met.RateLimited, "rate limiting is visible in the metrics")
	assert.Equal(t, uint64(notFound.Load()), met.NotFound)
	t.Logf("flood: %d not found, %d rate limited; metrics RateLimited=%d NotFound=%d", notFound.Load(), limited.Load(), met.RateLimited, met.NotFound)
}
