package faults

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
)

// TestMemcachedRestartLosesNoAcceptedMessageAndTrackingResumes kills
// memcached while a client keeps sending tracked messages through go-smtp,
// smtpext and the tracking middleware, then starts it again. Every message
// answered 250 reached the wrapped backend; messages during the outage were
// accepted untracked (fail-open) and the gap is in the log as warnings;
// messages after the restart are tracked again.
func TestMemcachedRestartLosesNoAcceptedMessageAndTrackingResumes(t *testing.T) {
	mc := testenv.StartMemcached(t)
	st := startStack(t, stackOptions{store: memcacheStore(t, mc.Addr, 300*time.Millisecond), storeTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type sent struct {
		m     message
		phase string
		err   error
	}
	var (
		mu    sync.Mutex
		phase = "before"
		log   []sent
	)
	setPhase := func(p string) { mu.Lock(); phase = p; mu.Unlock() }
	countIn := func(p string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range log {
			if s.phase == p && s.err == nil {
				n++
			}
		}
		return n
	}
	waitFor := func(p string, n int) {
		t.Helper()
		for countIn(p) < n {
			require.NoError(t, ctx.Err(), "waiting for %d messages in phase %s", n, p)
			time.Sleep(5 * time.Millisecond)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := newTrackedMessage(t, w*100000+i)
				mu.Lock()
				p := phase
				mu.Unlock()
				err := send(ctx, st.addr, m)
				mu.Lock()
				// A message that started in one phase and ended in the
				// next belongs to neither for the tracking checks.
				if phase != p {
					p = "transition"
				}
				log = append(log, sent{m: m, phase: p, err: err})
				mu.Unlock()
			}
		}(w)
	}

	waitFor("before", 10)
	setPhase("transition")
	mc.Stop()
	setPhase("down")
	waitFor("down", 10)
	setPhase("transition")
	mc.Start()
	setPhase("after")
	waitFor("after", 10)
	close(stop)
	wg.Wait()

	byPhase := map[string]int{}
	for _, s := range log {
		if s.err != nil {
			// A refused message is fine as long as it was not answered 250;
			// the client saw the refusal. None is expected, though.
			t.Errorf("message %s (%s) refused: %v", s.m.msgID, s.phase, s.err)
			continue
		}
		byPhase[s.phase]++
		tr, ok := st.inbox.get(s.m.msgID)
		if !assert.True(t, ok, "message %s answered 250 in phase %s never reached the backend", s.m.msgID, s.phase) {
			continue
		}
		assert.Equal(t, s.m.secret.Certifier(), tr.Certifier, "the backend got the message's certifier")
		switch s.phase {
		case "down":
			_, err := st.eng.Track(ctx, s.m.envID, s.m.secret)
			assert.Error(t, err, "message %s accepted during the outage cannot have a record", s.m.msgID)
		case "after":
			rec, err := st.eng.Track(ctx, s.m.envID, s.m.secret)
			if assert.NoError(t, err, "message %s accepted after the restart is tracked", s.m.msgID) {
				assert.Len(t, rec.Recipients, 1)
			}
		}
	}
	assert.Equal(t, int64(len(log)), st.inbox.n.Load(), "each message reached the backend exactly once")
	stats := st.mw.Stats()
	assert.GreaterOrEqual(t, stats.StoreFailures, uint64(byPhase["down"]), "every message during the outage is counted as a store failure")
	assert.Equal(t, uint64(len(log)), stats.Messages)

	warns := st.logs.warnings("tracking record not written")
	assert.GreaterOrEqual(t, len(warns), byPhase["down"], "the gap is visible in the log: one warning per untracked message")
	if assert.NotEmpty(t, warns) {
		assert.Contains(t, warns[0], "mt=", "the warning names the tracking ID")
		assert.Contains(t, warns[0], "err=", "the warning carries the store error")
	}
	t.Logf("messages by phase: %v; store failures %d; warnings %d", byPhase, stats.StoreFailures, len(warns))
}
