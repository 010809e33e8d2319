package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/spool"
)

// BenchmarkScan1000 measures one wake-up's scan over 1000 held messages
// (the scheduler's per-wake cost, see the package doc).
func BenchmarkScan1000(b *testing.B) {
	clock := NewFakeClock(t0)
	sp, err := spool.Open(context.Background(), b.TempDir(), spool.Options{Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		env := &spool.Envelope{HoldUntil: t0.Add(time.Duration(i+1) * time.Minute), Recipients: []spool.Recipient{{Addr: "a@x"}, {Addr: "b@x"}}}
		if _, err := sp.Put(context.Background(), env, strings.NewReader("m")); err != nil {
			b.Fatal(err)
		}
	}
	s, err := New(Options{Spool: sp, Clock: clock, Deliver: func(context.Context, *spool.Envelope, []string) []Result { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	s.deliverCtx = context.Background()
	b.ReportAllocs()
	for b.Loop() {
		next, due := s.scan(t0)
		if len(due) != 0 || !next.Equal(t0.Add(time.Minute)) {
			b.Fatal("wrong scan", next, len(due))
		}
	}
}
