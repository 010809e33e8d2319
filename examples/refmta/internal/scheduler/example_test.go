package scheduler_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/scheduler"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/spool"
)

// A message held until noon (RFC 4865 HOLDUNTIL) is delivered when the
// clock reaches noon.
func Example() {
	dir, _ := os.MkdirTemp("", "sched")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	start := time.Date(2026, 8, 1, 11, 0, 0, 0, time.UTC)
	clock := scheduler.NewFakeClock(start)
	sp, _ := spool.Open(ctx, dir, spool.Options{Now: clock.Now})

	done := make(chan struct{})
	s, _ := scheduler.New(scheduler.Options{
		Spool: sp,
		Clock: clock,
		Deliver: func(ctx context.Context, env *spool.Envelope, rcpts []string) []scheduler.Result {
			fmt.Println("delivering to", rcpts, "at", clock.Now().Format(time.Kitchen))
			return []scheduler.Result{{Rcpt: rcpts[0], Outcome: scheduler.Delivered, Reason: "250 2.0.0 ok"}}
		},
		OnResult: func(ctx context.Context, env *spool.Envelope, res []scheduler.Result) {
			fmt.Println(res[0].Rcpt, res[0].Outcome)
			close(done)
		},
	})
	noon := start.Add(time.Hour)
	_, _ = sp.Put(ctx, &spool.Envelope{From: "alice@example.org", HoldUntil: noon,
		Recipients: []spool.Recipient{{Addr: "bob@example.net"}}}, strings.NewReader("Subject: later\r\n\r\n"))
	s.Start(ctx)
	clock.WaitForTimer(noon, 10*time.Second)
	clock.Set(noon)
	<-done
	_ = s.Stop(ctx)
	// Output:
	// delivering to [bob@example.net] at 12:00PM
	// bob@example.net delivered
}
