package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"golang.org/x/time/rate"

	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/mtqpbackend"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// startMTQP serves rec's engine over MTQP on a loopback port.
func (e *env) startMTQP(eng *tracking.Engine) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s := &mtqp.Server{Backend: mtqpbackend.New(eng, mtqpbackend.Options{ReportingMTA: benchMTA}), Domain: benchMTA,
		FailureRate: rate.Inf, MaxConnections: -1}
	done := make(chan struct{})
	go func() { _ = s.Serve(l); close(done) }()
	e.onClose(func() { s.Close(); <-done })
	return l.Addr().String(), nil
}

func dialMTQP(ctx context.Context, e *env, addr string, n int) ([]*mtqp.Client, error) {
	var cs []*mtqp.Client
	for range n {
		c, err := mtqp.Dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		e.onClose(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs, nil
}

func (e *env) mtqpVariants() []variant {
	var vs []variant
	for _, conns := range []int{1, 16} {
		sec := fmt.Sprintf("MTQP TRACK, %d connection%s", conns, map[bool]string{true: "s", false: ""}[conns > 1])
		base := fmt.Sprintf("raw gomemcache get (%d goroutine%s)", conns, map[bool]string{true: "s", false: ""}[conns > 1])
		var (
			setup sync.Once
			err   error
			raw   *memcache.Client
			recs  = map[string]*record{}
			cls   = map[string][]*mtqp.Client{}
		)
		conns := conns
		ready := func(ctx context.Context) error {
			setup.Do(func() {
				for _, kind := range []string{"memstore", "memcached"} {
					var st trackstore.Store
					if kind == "memcached" {
						if st, err = newMemcacheStore(e.mcAddr, conns+2); err != nil {
							return
						}
					} else {
						st = memstore.New(memstore.Options{})
					}
					var r *record
					if r, err = newRecord(ctx, st, 1); err != nil {
						return
					}
					var addr string
					if addr, err = e.startMTQP(r.eng); err != nil {
						return
					}
					recs[kind] = r
					if cls[kind], err = dialMTQP(ctx, e, addr, conns); err != nil {
						return
					}
				}
				raw = memcache.New(e.mcAddr)
				raw.MaxIdleConns, raw.Timeout = conns+2, 5*time.Second
				// The head item of the memcached record: what TRACK must read at least.
				if _, err = raw.Get(tracking.HeadKey(recs["memcached"].ref.Certifier)); err != nil {
					return
				}
			})
			return err
		}
		vs = append(vs, variant{Section: sec, Name: base, Unit: "queries/s", Run: func(ctx context.Context, d time.Duration) (float64, error) {
			if err := ready(ctx); err != nil {
				return 0, err
			}
			key := tracking.HeadKey(recs["memcached"].ref.Certifier)
			return parallel(conns, d, func(int) error { _, err := raw.Get(key); return err })
		}})
		for _, kind := range []string{"memstore", "memcached"} {
			kind := kind
			vs = append(vs, variant{Section: sec, Name: "TRACK, engine on " + kind, Unit: "queries/s", Baseline: base, Run: func(ctx context.Context, d time.Duration) (float64, error) {
				if err := ready(ctx); err != nil {
					return 0, err
				}
				r, cs := recs[kind], cls[kind]
				return parallel(conns, d, func(w int) error {
					_, err := cs[w].Track(ctx, benchEnvID, r.secret)
					return err
				})
			}})
		}
	}
	return vs
}

// growthVariants measure an event and a TRACK on memcached records of
// 1 to 10,000 recipients.
func (e *env) growthVariants() []variant {
	sizes := []int{1, 100, 1000, 10000}
	var (
		setup sync.Once
		err   error
		recs  = map[int]*record{}
		cl    *mtqp.Client
		size  = map[int]int{}
		mu    sync.Mutex
	)
	ready := func(ctx context.Context) error {
		setup.Do(func() {
			var st trackstore.Store
			if st, err = newMemcacheStore(e.mcAddr, 4); err != nil {
				return
			}
			eng := tracking.New(st, tracking.Options{ReportingMTA: benchMTA})
			for _, n := range sizes {
				var r *record
				if r, err = newRecord(ctx, st, n); err != nil {
					return
				}
				r.eng = eng
				recs[n] = r
			}
			var addr string
			if addr, err = e.startMTQP(eng); err != nil {
				return
			}
			var cs []*mtqp.Client
			if cs, err = dialMTQP(ctx, e, addr, 1); err != nil {
				return
			}
			cl = cs[0]
		})
		return err
	}
	var vs []variant
	for _, n := range sizes {
		n := n
		name := fmt.Sprintf("%d recipient%s", n, map[bool]string{true: "s", false: ""}[n > 1])
		base := ""
		if n != 1 {
			base = "1 recipient"
		}
		vs = append(vs, variant{Section: "growth: event cost (memcached)", Name: name, Unit: "µs/event", Baseline: base, Run: func(ctx context.Context, d time.Duration) (float64, error) {
			if err := ready(ctx); err != nil {
				return 0, err
			}
			r, err := loop(d, func() error { return recs[n].event(ctx) })
			return 1e6 / r, err
		}})
	}
	for _, n := range sizes {
		n := n
		name := fmt.Sprintf("%d recipient%s", n, map[bool]string{true: "s", false: ""}[n > 1])
		base := ""
		if n != 1 {
			base = "1 recipient"
		}
		vs = append(vs, variant{Section: "growth: MTQP TRACK time (memcached, 1 connection)", Name: name, Unit: "µs/query", Baseline: base, Run: func(ctx context.Context, d time.Duration) (float64, error) {
			if err := ready(ctx); err != nil {
				return 0, err
			}
			r, err := loop(d, func() error {
				res, err := cl.Track(ctx, benchEnvID, recs[n].secret)
				if err != nil {
					return err
				}
				if len(res.Report.Recipients) != n {
					return fmt.Errorf("report has %d recipients, want %d", len(res.Report.Recipients), n)
				}
				mu.Lock()
				size[n] = len(res.Raw)
				mu.Unlock()
				return nil
			})
			return 1e6 / r, err
		}})
	}
	for _, n := range sizes {
		n := n
		name := fmt.Sprintf("%d recipient%s", n, map[bool]string{true: "s", false: ""}[n > 1])
		base := ""
		if n != 1 {
			base = "1 recipient"
		}
		vs = append(vs, variant{Section: "growth: MTQP report size", Name: name, Unit: "bytes", Baseline: base, Run: func(ctx context.Context, d time.Duration) (float64, error) {
			if err := ready(ctx); err != nil {
				return 0, err
			}
			mu.Lock()
			s := size[n]
			mu.Unlock()
			if s == 0 { // not measured yet in this run (rotation order)
				res, err := cl.Track(ctx, benchEnvID, recs[n].secret)
				if err != nil {
					return 0, err
				}
				s = len(res.Raw)
			}
			return float64(s), nil
		}})
	}
	return vs
}
