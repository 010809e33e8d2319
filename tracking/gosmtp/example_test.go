package gosmtp_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/gosmtp"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// spool is a wrapped backend that keeps what the middleware tells it.
type spool struct{ last *gosmtp.Tracking }

func (b *spool) NewSession(*smtp.Conn) (smtp.Session, error) { return &spoolSession{b: b}, nil }

type spoolSession struct {
	b *spool
	t *gosmtp.Tracking
}

func (s *spoolSession) SetTracking(t *gosmtp.Tracking)       { s.t = t }
func (s *spoolSession) Reset()                               {}
func (s *spoolSession) Logout() error                        { return nil }
func (s *spoolSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *spoolSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *spoolSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.b.last = s.t // a real MTA spools the message with this
	return nil
}

// serve starts a tracking go-smtp server on loopback.
func serve(eng *tracking.Engine, be smtp.Backend) (addr string, stop func()) {
	mw, err := gosmtp.New(be, channelopts.Channel{TrackingServer: true}, gosmtp.Options{Engine: eng})
	if err != nil {
		panic(err)
	}
	srv := smtp.NewServer(nil)
	srv.Domain = "mx.example"
	ext, err := mw.NewServer(srv, smtpext.Config{})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go ext.Serve(l)
	return l.Addr().String(), func() { ext.Close() }
}

// Example wires the middleware in front of a backend, submits a message with
// MTRK= and ENVID through smtpext's client, and tracks it with the secret.
func Example() {
	eng := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: "mx.example"})
	be := &spool{}
	addr, stop := serve(eng, be)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	secret, _ := mtrk.NewSecret()
	c, err := smtpext.Dial(ctx, addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	mt := mtrk.Param{Certifier: secret.Certifier(), Timeout: 2 * 24 * time.Hour, TimeoutGiven: true}
	if err := c.Mail(ctx, "alice@example.org",
		smtpext.MailParam{Name: "ENVID", Value: smtpext.XText("order-42"), Keyword: "DSN"},
		smtpext.MailParam{Name: "MTRK", Value: mt.String(), Keyword: "MTRK"}); err != nil {
		panic(err)
	}
	if _, err := c.Rcpt(ctx, "bob@example.net"); err != nil {
		panic(err)
	}
	w, err := c.Data(ctx)
	if err != nil {
		panic(err)
	}
	io.WriteString(w, "Message-ID: <42@example.org>\r\nSubject: hi\r\n\r\nHello\r\n")
	if err := w.Close(); err != nil {
		panic(err)
	}

	fmt.Println("backend got:", be.last.Source, be.last.Timeout, be.last.EnvelopeID)
	rec, err := eng.Track(ctx, "order-42", secret)
	if err != nil {
		panic(err)
	}
	for _, r := range rec.Recipients {
		fmt.Println(r.FinalRecipient, r.Action)
	}
	// Output:
	// backend got: client 48h0m0s order-42
	// bob@example.net queued
}

// ExampleRelay_Send relays a tracked message to a peer offering MTRK: the
// peer receives MTRK= with the timeout reduced by the time spent here, and
// the first MTA records the recipient as transferred.
func ExampleRelay_Send() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peerEng := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: "mx.example"})
	peer := &spool{}
	addr, stop := serve(peerEng, peer)
	defer stop()

	here := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: "relay.example"})
	secret, _ := mtrk.NewSecret()
	arrival := time.Now().Add(-time.Hour)
	msg := gosmtp.Message{
		Certifier: secret.Certifier(), Timeout: 86400 * time.Second, Arrival: arrival,
		QueueID: "Q1@relay.example", EnvelopeID: "order-43", From: "alice@example.org",
		WithCertifier: []string{"bob@example.net"},
		Body: func() (io.Reader, error) {
			return strings.NewReader("Message-ID: <43@example.org>\r\n\r\nHi\r\n"), nil
		},
		EventID: "Q1-attempt-1",
	}
	_ = here.Accepted(ctx, tracking.Accept{Ref: tracking.Ref{Certifier: msg.Certifier, QueueID: msg.QueueID},
		EventID: "Q1-accepted", EnvelopeID: msg.EnvelopeID, Sender: msg.From, Timeout: msg.Timeout, Arrival: arrival,
		Recipients: []tracking.AcceptedRecipient{{Address: "bob@example.net"}}})

	c, err := smtpext.Dial(ctx, addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if err := c.Hello(ctx, "relay.example"); err != nil {
		panic(err)
	}
	relay := &gosmtp.Relay{Engine: here, Channel: channelopts.Channel{TrackingClient: true, Disposition: channelopts.Relayed}}
	res, err := relay.Send(ctx, c, "mx.example", msg)
	if err != nil {
		panic(err)
	}
	fmt.Println("peer offered MTRK:", res.PeerMTRK, "sent timeout under 23h:", res.Timeout <= 23*time.Hour)
	fmt.Println("peer got:", peer.last.Source, peer.last.EnvelopeID)
	rec, _ := here.Track(ctx, "order-43", secret)
	fmt.Println(rec.Recipients[0].FinalRecipient, rec.Recipients[0].Action, rec.Recipients[0].RemoteMTA)
	// Output:
	// peer offered MTRK: true sent timeout under 23h: true
	// peer got: client order-43
	// bob@example.net transferred mx.example
}
