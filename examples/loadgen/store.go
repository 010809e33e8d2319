package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
)

// childEnv set to "writer" makes the program a contended-writer child.
const childEnv = "LOADGEN_CHILD"

const (
	benchMTA   = "loadgen.test"
	benchQueue = "Q1@loadgen.test"
	benchEnvID = "loadgen-env"
)

func rcpts(n int) []tracking.AcceptedRecipient {
	rs := make([]tracking.AcceptedRecipient, n)
	for i := range rs {
		rs[i].Address = fmt.Sprintf("user%d@example.org", i)
	}
	return rs
}

// record is a tracked message written by the engine for the benchmarks.
type record struct {
	eng    *tracking.Engine
	secret mtrk.Secret
	ref    tracking.Ref
	n      int
	seq    int64
}

func newMemcacheStore(addr string, conns int) (*memcachestore.Store, error) {
	return memcachestore.New(memcachestore.Options{Servers: []string{addr}, MaxIdleConns: conns, Timeout: 5 * time.Second, MaxValueSize: memcachestore.DefaultMaxValueSize})
}

func newRecord(ctx context.Context, st trackstore.Store, n int) (*record, error) {
	secret, err := mtrk.NewSecret()
	if err != nil {
		return nil, err
	}
	r := &record{eng: tracking.New(st, tracking.Options{ReportingMTA: benchMTA}), secret: secret, n: n}
	r.ref = tracking.Ref{Certifier: secret.Certifier(), QueueID: benchQueue}
	err = r.eng.Accepted(ctx, tracking.Accept{Ref: r.ref, EventID: "accept", EnvelopeID: benchEnvID, Sender: "alice@example.test", Recipients: rcpts(n)})
	return r, err
}

// event records one Delayed event for user0 with a new next-attempt time,
// so that every event changes the record.
func (r *record) event(ctx context.Context) error {
	r.seq++
	return r.eng.Delayed(ctx, r.ref, "", tracking.Outcome{Recipient: "user0@example.org", NextAttempt: time.Unix(1_800_000_000+r.seq, 0)})
}

// loop runs op until d has passed (at least once) and returns ops/s.
func loop(d time.Duration, op func() error) (float64, error) {
	start := time.Now()
	deadline := start.Add(d)
	n := 0
	for {
		if err := op(); err != nil {
			return 0, err
		}
		n++
		if !time.Now().Before(deadline) {
			break
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// parallel runs op on conns goroutines until d has passed and returns ops/s.
func parallel(conns int, d time.Duration, op func(worker int) error) (float64, error) {
	start := time.Now()
	deadline := start.Add(d)
	var mu sync.Mutex
	var total int
	var firstErr error
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			var err error
			for {
				if err = op(w); err != nil {
					break
				}
				n++
				if !time.Now().Before(deadline) {
					break
				}
			}
			mu.Lock()
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

func (e *env) storeVariants() []variant {
	const sec = "store (memcached, 1 connection)"
	var (
		setup   sync.Once
		err     error
		raw     *memcache.Client
		rec     *record
		writers *writerPool
	)
	ready := func(ctx context.Context) error {
		setup.Do(func() {
			var st *memcachestore.Store
			if st, err = newMemcacheStore(e.mcAddr, 4); err != nil {
				return
			}
			if rec, err = newRecord(ctx, st, 1); err != nil {
				return
			}
			// A raw item as large as the one an event on user0 rewrites:
			// its shard, or the head when the record keeps its recipients
			// there.
			var it trackstore.Item
			it, err = st.Get(ctx, tracking.ShardKey(rec.ref.Certifier, tracking.ShardOf("user0@example.org")))
			if errors.Is(err, trackstore.ErrNotFound) {
				it, err = st.Get(ctx, tracking.HeadKey(rec.ref.Certifier))
			}
			if err != nil {
				return
			}
			raw = memcache.New(e.mcAddr)
			raw.MaxIdleConns, raw.Timeout = 4, 5*time.Second
			if err = raw.Set(&memcache.Item{Key: "loadgen-raw", Value: it.Value}); err != nil {
				return
			}
			// The writers get a record of their own: a record another
			// Engine writes counts as contended for the uncontended one.
			var shared *record
			if shared, err = newRecord(ctx, st, 1); err != nil {
				return
			}
			writers, err = startWriters(ctx, e.cfg.Writers, e.mcAddr, shared.ref.Certifier)
			if err != nil {
				return
			}
			e.onClose(writers.Close)
			eng := rec.eng
			e.note(func() string {
				st := eng.Stats()
				return fmt.Sprintf("store / uncontended engine: %d events, %d rounds, %d conflicts, %d failures", st.Events, st.Rounds, st.Conflicts, st.Failures)
			})
			e.note(writers.summary)
		})
		return err
	}
	mk := func(name, base string, run func(ctx context.Context, d time.Duration) (float64, error)) variant {
		return variant{Section: sec, Name: name, Unit: "ops/s", Baseline: base, Run: func(ctx context.Context, d time.Duration) (float64, error) {
			if err := ready(ctx); err != nil {
				return 0, err
			}
			return run(ctx, d)
		}}
	}
	return []variant{
		mk("raw gomemcache get", "", func(ctx context.Context, d time.Duration) (float64, error) {
			return loop(d, func() error { _, err := raw.Get("loadgen-raw"); return err })
		}),
		mk("raw gomemcache set", "raw gomemcache get", func(ctx context.Context, d time.Duration) (float64, error) {
			it, err := raw.Get("loadgen-raw")
			if err != nil {
				return 0, err
			}
			return loop(d, func() error { return raw.Set(&memcache.Item{Key: "loadgen-raw", Value: it.Value}) })
		}),
		mk("raw gomemcache get+CAS", "raw gomemcache get", func(ctx context.Context, d time.Duration) (float64, error) {
			return loop(d, func() error {
				it, err := raw.Get("loadgen-raw")
				if err != nil {
					return err
				}
				return raw.CompareAndSwap(it)
			})
		}),
		mk("engine event, 1 writer", "raw gomemcache get+CAS", func(ctx context.Context, d time.Duration) (float64, error) {
			return loop(d, func() error { return rec.event(ctx) })
		}),
		mk(fmt.Sprintf("engine event, %d writer processes, 1 record (sum)", e.cfg.Writers), "raw gomemcache get+CAS", func(ctx context.Context, d time.Duration) (float64, error) {
			return writers.run(d)
		}),
		mk("engine query (Track)", "raw gomemcache get", func(ctx context.Context, d time.Duration) (float64, error) {
			return loop(d, func() error { _, err := rec.eng.Track(ctx, benchEnvID, rec.secret); return err })
		}),
	}
}

// writerPool is a set of child processes, each with its own tracking.Engine,
// updating the same recipient of one record on command.
type writerPool struct {
	cmds              []*exec.Cmd
	in                []io.WriteCloser
	out               []*bufio.Reader
	events, failures  int64
	mu                sync.Mutex
	conflicts, rounds int64
}

func startWriters(ctx context.Context, n int, mcAddr string, cert mtrk.Certifier) (*writerPool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &writerPool{}
	for i := range n {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=writer",
			"LOADGEN_MEMCACHED="+mcAddr,
			"LOADGEN_CERT="+base64.RawStdEncoding.EncodeToString(cert),
			"LOADGEN_WRITER="+strconv.Itoa(i))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			p.Close()
			return nil, err
		}
		p.cmds, p.in, p.out = append(p.cmds, cmd), append(p.in, in), append(p.out, bufio.NewReader(out))
	}
	for _, r := range p.out {
		ln, err := r.ReadString('\n')
		if err != nil || strings.TrimSpace(ln) != "ready" {
			p.Close()
			return nil, fmt.Errorf("writer child did not start: %q %v", ln, err)
		}
	}
	return p, nil
}

// run lets every child write for d at the same time and returns the sum of
// their event rates.
func (p *writerPool) run(d time.Duration) (float64, error) {
	for _, in := range p.in {
		if _, err := fmt.Fprintf(in, "run %d\n", d.Nanoseconds()); err != nil {
			return 0, err
		}
	}
	var rate float64
	for _, r := range p.out {
		ln, err := r.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("writer child: %w", err)
		}
		var ev, fail, conf, rounds int64
		var el float64
		if _, err := fmt.Sscanf(ln, "ok %d %d %d %d %g", &ev, &fail, &conf, &rounds, &el); err != nil {
			return 0, fmt.Errorf("writer child said %q", ln)
		}
		rate += float64(ev) / el
		p.mu.Lock()
		p.events += ev
		p.failures += fail
		p.conflicts += conf
		p.rounds += rounds
		p.mu.Unlock()
	}
	return rate, nil
}

func (p *writerPool) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("store / %d writer processes: %d events written, %d failed after the last retry, %d lost compare-and-swaps in %d rounds",
		len(p.cmds), p.events, p.failures, p.conflicts, p.rounds)
}

// Close ends the children (closing stdin makes them exit).
func (p *writerPool) Close() {
	for _, in := range p.in {
		in.Close()
	}
	for _, c := range p.cmds {
		_ = c.Wait()
	}
}

// writerMain is the child: it reads "run <ns>" lines and answers
// "ok <events> <failures> <conflicts> <rounds> <seconds>".
func writerMain(in io.Reader, out io.Writer) error {
	cert, err := base64.RawStdEncoding.DecodeString(os.Getenv("LOADGEN_CERT"))
	if err != nil {
		return err
	}
	st, err := newMemcacheStore(os.Getenv("LOADGEN_MEMCACHED"), 2)
	if err != nil {
		return err
	}
	eng := tracking.New(st, tracking.Options{ReportingMTA: benchMTA})
	ref := tracking.Ref{Certifier: mtrk.Certifier(cert), QueueID: benchQueue}
	id, _ := strconv.Atoi(os.Getenv("LOADGEN_WRITER"))
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	ctx := context.Background()
	seq := int64(id) << 40
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[0] != "run" {
			return fmt.Errorf("writer: bad command %q", sc.Text())
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return err
		}
		before := eng.Stats()
		start := time.Now()
		deadline := start.Add(time.Duration(ns))
		var ev, fail int64
		for {
			seq++
			err := eng.Delayed(ctx, ref, "", tracking.Outcome{Recipient: "user0@example.org", NextAttempt: time.Unix(1_900_000_000+seq, 0)})
			switch {
			case err == nil:
				ev++
			case errors.Is(err, trackstore.ErrConflict) || errors.Is(err, trackstore.ErrUnavailable):
				fail++
			default:
				return err
			}
			if !time.Now().Before(deadline) {
				break
			}
		}
		after := eng.Stats()
		fmt.Fprintf(out, "ok %d %d %d %d %g\n", ev, fail, after.Conflicts-before.Conflicts, after.Rounds-before.Rounds, time.Since(start).Seconds())
	}
	return sc.Err()
}
