package mtqp_test

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/msgtrack/msgtrack/mtqp"
)

// memBackend is a one-message Backend for the examples. A real one adapts
// the tracking engine and compares SHA1(secret) with the stored certifier
// in constant time.
type memBackend struct {
	envid  string
	secret []byte
	report *mtqp.Report
}

func (b *memBackend) Track(_ context.Context, q mtqp.Query) (*mtqp.Report, error) {
	idOK := subtle.ConstantTimeCompare([]byte(q.EnvID), []byte(b.envid))
	secretOK := subtle.ConstantTimeCompare(q.Secret, b.secret)
	if idOK&secretOK != 1 {
		return nil, mtqp.ErrNotFound // same answer for both causes
	}
	return b.report, nil
}

func (b *memBackend) Recall(ctx context.Context, q mtqp.Query) (*mtqp.Report, error) {
	r, err := b.Track(ctx, q)
	if err != nil {
		return nil, err
	}
	out := *r
	out.Recipients = nil
	for _, rc := range r.Recipients {
		rc.Extensions = append([]mtqp.Field(nil), rc.Extensions...)
		if rc.Action == mtqp.ActionDelayed {
			rc.SetRecallStatus(mtqp.RecallRecalled)
		} else {
			rc.SetRecallStatus(mtqp.RecallTooLate)
		}
		out.Recipients = append(out.Recipients, rc)
	}
	return &out, nil
}

func exampleReport() *mtqp.Report {
	t := time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)
	return &mtqp.Report{
		EnvelopeID:   "QQ314159",
		ReportingMTA: mtqp.DNS("mta.example.org"),
		ArrivalDate:  t,
		Recipients: []mtqp.Recipient{
			{FinalRecipient: mtqp.RFC822("alice@example.com"), Action: mtqp.ActionDelivered,
				Status: mtqp.StatusDelivered, RemoteMTA: mtqp.DNS("mx.example.com"), LastAttemptDate: t.Add(time.Minute)},
			{FinalRecipient: mtqp.RFC822("bob@example.net"), Action: mtqp.ActionDelayed,
				Status: mtqp.StatusDelayed, WillRetryUntil: t.Add(72 * time.Hour)},
		},
	}
}

// startExampleServer runs a Server on a loopback port.
func startExampleServer() (*mtqp.Server, string) {
	srv := &mtqp.Server{
		Backend: &memBackend{envid: "QQ314159", secret: []byte("the user's secret"), report: exampleReport()},
		Domain:  "mta.example.org",
		// TLSConfig: &tls.Config{Certificates: ...}, RequireTLS: true,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	return srv, l.Addr().String()
}

// A server answers TRACK (and RECALL) from a Backend, here a one-message
// map. Production servers set TLSConfig and RequireTLS and listen on port
// 1038 with ListenAndServe.
func ExampleServer() {
	srv, addr := startExampleServer()
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	c, err := mtqp.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Quit(ctx)
	fmt.Println("greeting from", c.Greeting().Domain, "options", c.Greeting().Options)
	_, err = c.Track(ctx, "QQ314159", []byte("a guess"))
	fmt.Println(err)
	fmt.Println("TRACK count:", srv.Metrics().Commands["TRACK"].Count)
	// Output:
	// greeting from mta.example.org options [vnd.msgtrack.recall]
	// mtqp: server replied 550 No such message, or wrong secret
	// TRACK count: 1
}

// A client dials a server (or a domain, through its _mtqp._tcp SRV
// records, with DialDomain), optionally starts TLS, and tracks a message
// with its envelope ID and secret.
func ExampleDial() {
	srv, addr := startExampleServer()
	defer srv.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mtqp.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Quit(ctx)
	// With a certificate: c.StartTLS(ctx, &tls.Config{ServerName: "mta.example.org"})
	res, err := c.Track(ctx, "QQ314159", []byte("the user's secret"))
	if err != nil {
		log.Fatal(err)
	}
	for _, rc := range res.Report.Recipients {
		fmt.Println(rc.FinalRecipient.Value, rc.Action, rc.Status)
	}
	// Output:
	// alice@example.com delivered 2.0.0
	// bob@example.net delayed 4.0.0
}

// Recall withdraws a held message; each recipient says what happened.
func ExampleClient_Recall() {
	srv, addr := startExampleServer()
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	c, err := mtqp.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Quit(ctx)
	res, err := c.Recall(ctx, "QQ314159", []byte("the user's secret"))
	if err != nil {
		log.Fatal(err)
	}
	for _, rc := range res.Report.Recipients {
		fmt.Println(rc.FinalRecipient.Value, rc.RecallStatus())
	}
	// Output:
	// alice@example.com too-late
	// bob@example.net recalled
}

// Following referrals sends the secret on to the MTAs the report names,
// only to hosts the policy allows and only over verified TLS.
func ExampleClient_TrackPath() {
	ctx := context.Background()
	c, err := mtqp.DialDomain(ctx, "example.org")
	if err != nil {
		fmt.Println("no server here")
		return
	}
	defer c.Close()
	path, err := c.TrackPath(ctx, "QQ314159", []byte("secret"), mtqp.Referrals{
		Allow:  func(host string) bool { return host == "mx2.example.org" },
		Dialer: &mtqp.Dialer{ /* TLSConfig: &tls.Config{RootCAs: ...} */ },
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range path.Recipients() {
		fmt.Println(r.Host, r.FinalRecipient.Value, r.Action)
	}
}

// Format writes the canonical message/tracking-status body.
func ExampleReport_Format() {
	b, err := exampleReport().Format()
	if err != nil {
		log.Fatal(err)
	}
	// The body uses CRLF line endings; shown here with LF.
	os.Stdout.WriteString(strings.ReplaceAll(string(b), "\r\n", "\n"))
	// Output:
	// Original-Envelope-Id: QQ314159
	// Reporting-MTA: dns; mta.example.org
	// Arrival-Date: Fri, 4 Dec 2026 09:30:00 +0000
	//
	// Final-Recipient: rfc822; alice@example.com
	// Action: delivered
	// Status: 2.0.0
	// Remote-MTA: dns; mx.example.com
	// Last-Attempt-Date: Fri, 4 Dec 2026 09:31:00 +0000
	//
	// Final-Recipient: rfc822; bob@example.net
	// Action: delayed
	// Status: 4.0.0
	// Will-Retry-Until: Mon, 7 Dec 2026 09:30:00 +0000
}

// ParseReport is tolerant: LF endings, folding, odd case, obsolete dates.
func ExampleParseReport() {
	r, err := mtqp.ParseReport([]byte("original-envelope-id: QQ1\n" +
		"Reporting-MTA: dns;\n mta.example.org\n\n" +
		"Final-Recipient: rfc822;bob@example.net\nAction: Transferred\nStatus: 2.0.0\n" +
		"Remote-MTA: dns; mx2.example.org\nLast-Attempt-Date: 4 Dec 26 09:30 EST\n"))
	if err != nil {
		log.Fatal(err)
	}
	rc := r.Recipients[0]
	fmt.Println(r.EnvelopeID, r.ReportingMTA)
	fmt.Println(rc.Action, rc.RemoteMTA.Value, rc.LastAttemptDate.UTC())
	// Output:
	// QQ1 dns; mta.example.org
	// transferred mx2.example.org 2026-12-04 14:30:00 +0000 UTC
}
