package main

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/msgtrack/msgtrack/mtqp"
)

// bigAnswer is a report of n recipients: large recipient lists are what
// makes output cost anything.
func bigAnswer(n int) *answer {
	rep := sampleReport("env-big")
	rc := rep.Recipients[0]
	rep.Recipients = nil
	for i := range n {
		r := rc
		r.FinalRecipient = mtqp.RFC822(fmt.Sprintf("user%d@example.test", i))
		r.LastAttemptDate = time.Date(2026, 8, 1, 12, 0, i%60, 0, time.UTC)
		rep.Recipients = append(rep.Recipients, r)
	}
	return &answer{command: "track", envid: "env-big", server: "mx1.example.test",
		path: &mtqp.Path{Hops: []mtqp.Hop{{Host: "mx1.example.test", Result: &mtqp.Result{Report: rep}}}}}
}

func BenchmarkOutput(b *testing.B) {
	a := bigAnswer(1000)
	for _, o := range []struct {
		name  string
		write func(io.Writer) error
	}{{"table", a.writeTable}, {"json", a.writeJSON}} {
		b.Run(o.name+"/rcpts=1000", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := o.write(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
