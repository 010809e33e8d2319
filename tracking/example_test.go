package tracking_test

import (
	"context"
	"fmt"
	"time"

	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// spool is a minimal queue: it removes recipients that are still queued.
type spool map[string]bool // recipient -> already sent

func (s spool) Remove(_ context.Context, _ string, rcpts []string) ([]string, error) {
	var out []string
	for _, r := range rcpts {
		if !s[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

func Example() {
	ctx := context.Background()
	secret := mtrk.Secret("an example secret, use mtrk.NewSecret")
	e := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: "mx1.example.org"})
	ref := tracking.Ref{Certifier: secret.Certifier(), QueueID: "Q1"}

	_ = e.Accepted(ctx, tracking.Accept{Ref: ref, EventID: "Q1-accepted", EnvelopeID: "ENV1",
		Recipients: []tracking.AcceptedRecipient{{Address: "bob@example.net"}}})
	claims, _ := e.BeginDelivery(ctx, ref, []string{"bob@example.net"})
	fmt.Println("claim:", claims[0])
	_ = e.Delivered(ctx, ref, "Q1-delivered-1", tracking.Outcome{Recipient: "bob@example.net", RemoteMTA: "dns; mx.example.net"})

	rec, _ := e.Track(ctx, "ENV1", secret)
	r := rec.Recipients[0]
	fmt.Println(rec.OriginalEnvelopeID, r.FinalRecipient, r.Action, r.Status, r.RemoteMTA)
	// Output:
	// claim: proceed
	// ENV1 bob@example.net delivered 2.0.0 dns; mx.example.net
}

func ExampleEngine_Recall() {
	ctx := context.Background()
	secret := mtrk.Secret("another example secret")
	q := spool{"sent@example.net": true}
	e := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: "msa.example.org", Queue: q})
	ref := tracking.Ref{Certifier: secret.Certifier(), QueueID: "Q7"}
	_ = e.Accepted(ctx, tracking.Accept{Ref: ref, EventID: "Q7-accepted", EnvelopeID: "ENV7",
		HoldUntil:  time.Now().Add(time.Hour),
		Recipients: []tracking.AcceptedRecipient{{Address: "held@example.net"}, {Address: "sent@example.net"}}})
	// One recipient was sent before the recall (say, a second copy).
	_, _ = e.BeginDelivery(ctx, ref, []string{"sent@example.net"})
	_ = e.Delivered(ctx, ref, "Q7-d", tracking.Outcome{Recipient: "sent@example.net"})

	rep, _ := e.Recall(ctx, "ENV7", secret)
	for _, r := range rep.Results {
		fmt.Println(r.Recipient, r.Outcome)
	}
	// Output:
	// held@example.net recalled
	// sent@example.net too-late
}

func ExampleEngine_Track_wrongSecret() {
	ctx := context.Background()
	secret := mtrk.Secret("the real secret")
	e := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: "mx1"})
	_ = e.Accepted(ctx, tracking.Accept{Ref: tracking.Ref{Certifier: secret.Certifier(), QueueID: "Q"}, EnvelopeID: "ENV",
		Recipients: []tracking.AcceptedRecipient{{Address: "a@example.net"}}})
	_, err1 := e.Track(ctx, "ENV", mtrk.Secret("a guess"))
	_, err2 := e.Track(ctx, "OTHER", secret)
	fmt.Println(err1 == tracking.ErrNotFound, err2 == tracking.ErrNotFound)
	// Output: true true
}

func ExampleLogConfig_Fields() {
	cfg := tracking.LogConfig{Tracking: tracking.LogTransaction, FutureRelease: tracking.LogTransaction}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	info := tracking.LogInfo{Certifier: mtrk.Certifier("0123456789abcdefghij"), Timeout: 86400 * time.Second,
		ReleaseAt: now.Add(2 * time.Hour), Now: now}
	// Fields of a transaction log entry: envelope ID at 1, mailbox UID at 3.
	fmt.Println(cfg.Fields(tracking.PlaceTransaction, []string{"E", "ENV1", "deferred", "uid-42"}, 1, 3, info))
	// Output: [E ENV1 MDEyMzQ1Njc4OWFiY2RlZmdoaWo:86400 deferred uid-42 7200]
}
