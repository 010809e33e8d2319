package tracking

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// BenchmarkEventRecipients measures one uncontended event (Delayed for one
// recipient) on records of 1 to 10,000 recipients in the in-memory store:
// the cost is decoding and re-encoding the recipient's shard.
func BenchmarkEventRecipients(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := New(memstore.New(memstore.Options{}), Options{ReportingMTA: "mta"})
			secret, _ := mtrk.NewSecret()
			ref := Ref{Certifier: secret.Certifier(), QueueID: "Q"}
			if err := e.Accepted(bg, Accept{Ref: ref, EventID: "a", EnvelopeID: "env", Recipients: rcpts(n)}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := e.Delayed(bg, ref, "", Outcome{Recipient: "user0@example.org", NextAttempt: time.Unix(int64(i), 0)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQueryRecipients measures Track on the same records.
func BenchmarkQueryRecipients(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := New(memstore.New(memstore.Options{}), Options{ReportingMTA: "mta"})
			secret, _ := mtrk.NewSecret()
			ref := Ref{Certifier: secret.Certifier(), QueueID: "Q"}
			if err := e.Accepted(bg, Accept{Ref: ref, EventID: "a", EnvelopeID: "env", Recipients: rcpts(n)}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Track(bg, "env", secret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBeginDelivery measures the claim before an attempt.
func BenchmarkBeginDelivery(b *testing.B) {
	e := New(memstore.New(memstore.Options{}), Options{ReportingMTA: "mta"})
	secret, _ := mtrk.NewSecret()
	ref := Ref{Certifier: secret.Certifier(), QueueID: "Q"}
	if err := e.Accepted(bg, Accept{Ref: ref, EventID: "a", EnvelopeID: "env", Recipients: rcpts(10)}); err != nil {
		b.Fatal(err)
	}
	addrs := addrsOf(rcpts(10))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.BeginDelivery(bg, ref, addrs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccepted measures recording a newly accepted one-recipient
// message in the in-memory store: the write every tracked message costs
// at the end of DATA. Each call is a new record: a distinct certifier (the
// counter in its first bytes) and queue ID.
func BenchmarkAccepted(b *testing.B) {
	e := New(memstore.New(memstore.Options{}), Options{ReportingMTA: "mta"})
	recipients := rcpts(1)
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		c := make(mtrk.Certifier, 20)
		binary.BigEndian.PutUint64(c, i)
		id := strconv.FormatUint(i, 10)
		if err := e.Accepted(bg, Accept{Ref: Ref{Certifier: c, QueueID: id}, EventID: id, EnvelopeID: "env", Sender: "s@example.org", Recipients: recipients}); err != nil {
			b.Fatal(err)
		}
	}
}
