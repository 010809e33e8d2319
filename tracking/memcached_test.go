package tracking

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
)

// Environment of the re-executed test binary in TestContentionProcesses.
const (
	helperEnv     = "MSGTRACK_TRACKING_HELPER"
	helperAddrEnv = "MSGTRACK_TRACKING_MEMCACHED"
	helperCertEnv = "MSGTRACK_TRACKING_CERT"
	helperProcEnv = "MSGTRACK_TRACKING_PROC"
)

const (
	contentionProcs      = 2
	contentionGoroutines = 16
	contentionEvents     = 100
)

func contentionAddr(proc, g, i int) string {
	return fmt.Sprintf("p%d-g%02d-e%03d@example.org", proc, g, i)
}

func memcachedStore(t testing.TB, addr string) *memcachestore.Store {
	t.Helper()
	s, err := memcachestore.New(memcachestore.Options{Servers: []string{addr}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestContentionProcesses: two OS processes, each with 16 goroutines
// recording 100 events on one shared record in a real memcached, with the
// default retry settings. Every event must be in the record at the end.
func TestContentionProcesses(t *testing.T) {
	mc := testenv.StartMemcached(t)
	store := memcachedStore(t, mc.Addr)
	secret, err := mtrk.NewSecret()
	require.NoError(t, err)
	cert := secret.Certifier()
	parent := New(store, Options{ReportingMTA: "mta"})
	var rs []AcceptedRecipient
	for p := 0; p < contentionProcs; p++ {
		for g := 0; g < contentionGoroutines; g++ {
			for i := 0; i < contentionEvents; i++ {
				rs = append(rs, AcceptedRecipient{Address: contentionAddr(p, g, i)})
			}
		}
	}
	require.NoError(t, parent.Accepted(bg, Accept{Ref: Ref{Certifier: cert, QueueID: "Q"}, EventID: "acc", EnvelopeID: "env", Recipients: rs}))

	cmds := make([]*exec.Cmd, contentionProcs)
	outs := make([]*syncBuf, contentionProcs)
	for p := range cmds {
		outs[p] = &syncBuf{}
		cmds[p] = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmds[p].Env = append(os.Environ(), helperEnv+"=contention", helperAddrEnv+"="+mc.Addr,
			helperCertEnv+"="+cert.String(), helperProcEnv+"="+strconv.Itoa(p))
		cmds[p].Stdout, cmds[p].Stderr = outs[p], outs[p]
		require.NoError(t, cmds[p].Start())
	}
	for p, c := range cmds {
		require.NoError(t, c.Wait(), "helper %d:\n%s", p, outs[p].String())
		t.Logf("helper %d: %s", p, lastLine(outs[p].String()))
	}
	rec, err := parent.Track(bg, "env", secret)
	require.NoError(t, err)
	require.False(t, rec.Incomplete)
	got := byAddr(rec)
	require.Len(t, got, len(rs))
	missing := 0
	for _, r := range rs {
		if got[r.Address].Action != ActionDelivered || got[r.Address].Diagnostic != "event "+r.Address {
			missing++
		}
	}
	assert.Zero(t, missing, "events lost under contention")
}

// lastLine returns the helper's statistics line.
func lastLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "events=") {
			return l
		}
	}
	return s
}

// TestHelperProcess is the child side of TestContentionProcesses.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "contention" {
		return // not a helper run: nothing to do
	}
	store := memcachedStore(t, os.Getenv(helperAddrEnv))
	proc, err := strconv.Atoi(os.Getenv(helperProcEnv))
	require.NoError(t, err)
	cert, err := decodeCert(os.Getenv(helperCertEnv))
	require.NoError(t, err)
	e := New(store, Options{ReportingMTA: "mta"}) // default retry settings
	ref := Ref{Certifier: cert, QueueID: "Q"}
	var wg sync.WaitGroup
	for g := 0; g < contentionGoroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < contentionEvents; i++ {
				a := contentionAddr(proc, g, i)
				assert.NoError(t, e.Delivered(context.Background(), ref, "ev-"+a, Outcome{Recipient: a, Diagnostic: "event " + a}))
			}
		}()
	}
	wg.Wait()
	st := e.Stats()
	fmt.Printf("events=%d rounds=%d writes=%d merged=%d conflicts=%d retried=%d most-attempts=%d failures=%d\n",
		st.Events, st.Rounds, st.Writes, st.Merged, st.Conflicts, st.Retried, st.MostAttempts, st.Failures)
}

func decodeCert(s string) (mtrk.Certifier, error) {
	b, err := base64.RawStdEncoding.DecodeString(s)
	return mtrk.Certifier(b), err
}

// TestMemcachedRestart: a record survives nothing when memcached restarts
// (it has no persistence); the engine reports the outage, fails open, and
// works again once memcached is back.
func TestMemcachedRestart(t *testing.T) {
	mc := testenv.StartMemcached(t)
	store := memcachedStore(t, mc.Addr)
	secret, err := mtrk.NewSecret()
	require.NoError(t, err)
	e := New(store, Options{ReportingMTA: "mta", RetryDelay: 10 * time.Millisecond, Retries: 2})
	ref := Ref{Certifier: secret.Certifier(), QueueID: "Q"}
	require.NoError(t, e.Accepted(bg, Accept{Ref: ref, EventID: "a", EnvelopeID: "env", Recipients: rcpts(3)}))
	mc.Stop()
	claims, err := e.BeginDelivery(bg, ref, []string{"user0@example.org"})
	require.Error(t, err)
	assert.Equal(t, []Claim{ClaimUnknown}, claims, "fail-open: the queue decides")
	mc.Start()
	_, err = e.Track(bg, "env", secret)
	assert.ErrorIs(t, err, ErrNotFound, "memcached lost the record in the restart")
	require.NoError(t, e.Accepted(bg, Accept{Ref: ref, EventID: "a2", EnvelopeID: "env", Recipients: rcpts(3)}))
	claims, err = e.BeginDelivery(bg, ref, []string{"user0@example.org"})
	require.NoError(t, err)
	assert.Equal(t, []Claim{ClaimProceed}, claims)
}

// Benchmarks against a real memcached, side by side with raw gomemcache
// doing the physical floor of the same work on the same server.
func BenchmarkMemcached(b *testing.B) {
	mc := testenv.StartMemcached(b)
	store := memcachedStore(b, mc.Addr)
	raw := memcache.New(mc.Addr)
	raw.MaxIdleConns = memcachestore.DefaultMaxIdleConns
	raw.Timeout = memcachestore.DefaultTimeout
	secret, _ := mtrk.NewSecret()
	e := New(store, Options{ReportingMTA: "mta"})
	ref := Ref{Certifier: secret.Certifier(), QueueID: "Q"}
	if err := e.Accepted(bg, Accept{Ref: ref, EventID: "a", EnvelopeID: "env", Recipients: rcpts(1)}); err != nil {
		b.Fatal(err)
	}
	// A raw item of the same size as the record's (one item: its head,
	// which keeps the recipient inline).
	item, err := store.Get(bg, HeadKey(ref.Certifier))
	if err != nil {
		b.Fatal(err)
	}
	if err := raw.Set(&memcache.Item{Key: "raw-bench", Value: item.Value}); err != nil {
		b.Fatal(err)
	}
	b.Run("raw-get-cas", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			it, err := raw.Get("raw-bench")
			if err != nil {
				b.Fatal(err)
			}
			if err := raw.CompareAndSwap(it); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("event", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if err := e.Delayed(bg, ref, "", Outcome{Recipient: "user0@example.org", NextAttempt: time.Unix(int64(i), 0)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := raw.Get("raw-bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-getmulti-17", func(b *testing.B) {
		keys := recordKeys(ref.Certifier)
		keys[0] = "raw-bench"
		b.ReportAllocs()
		for b.Loop() {
			if _, err := raw.GetMulti(keys); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Track(bg, "env", secret); err != nil {
				b.Fatal(err)
			}
		}
	})
}
