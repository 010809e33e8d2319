package gosmtp

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/aliasing"
	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// plainPeer is a go-smtp server without smtpext (it cannot offer MTRK).
func plainPeer(t *testing.T, be smtp.Backend) string {
	srv := smtp.NewServer(be)
	srv.Domain = "plain.test"
	srv.EnableDSN = true
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { _ = srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l.Addr().String()
}

func dialPeer(t *testing.T, addr string) *smtpext.Client {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := smtpext.Dial(ctx, addr)
	require.NoError(t, err)
	require.NoError(t, c.Hello(ctx, "relay.test"))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRelay: the first MTA's record is on a store shared with the next
// hop. Towards the MTRK peer (smtpext + middleware, an internal hop) the
// recipients with the certifier go in one transaction with MTRK= and the
// reduced timeout, the others in another without; towards a plain go-smtp
// peer no MTRK is sent and tracking ends there (relayed).
func TestRelay(t *testing.T) {
	store := memstore.New(memstore.Options{})
	first := tracking.New(store, tracking.Options{ReportingMTA: "mta1.test", Retries: -1})
	next := tracking.New(store, tracking.Options{ReportingMTA: "mx.test", Retries: -1})
	mtrkPeer := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true}, opts: Options{Engine: next, Internal: true}})
	plainBE := &recBackend{}
	plainAddr := plainPeer(t, plainBE)

	secret, cert := newCert(t)
	arrival := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return arrival.Add(1000 * time.Second) }
	rcpts := []string{"bob@example.test", "team@example.test", "dave@example.test"}
	ctx := context.Background()
	require.NoError(t, first.Accepted(ctx, tracking.Accept{
		Ref: tracking.Ref{Certifier: cert, QueueID: "q1"}, EventID: "acc-q1", EnvelopeID: "rel-1",
		Sender: "alice@example.test", Timeout: 100000 * time.Second, Arrival: arrival,
		Recipients: []tracking.AcceptedRecipient{{Address: "bob@example.test"}, {Address: "team@example.test"}, {Address: "dave@example.test"}},
	}))

	// team@ is a list: its members never carry the certifier.
	exp := aliasing.ExpanderFunc(func(_ context.Context, a string) (aliasing.Expansion, bool, error) {
		if a == "team@example.test" {
			return aliasing.Expansion{Kind: aliasing.List, Members: []string{"m1@example.test", "m2@example.test"}}, true, nil
		}
		return aliasing.Expansion{}, false, nil
	})
	body := func() (io.Reader, error) { return strings.NewReader(testMessage("<rel@x>", "")), nil }

	internal := &Relay{Engine: first, Channel: channelopts.Channel{TrackingClient: true}, Now: clock}
	plan, err := internal.Plan(ctx, exp, aliasing.Multiple, true, rcpts[:2]...)
	require.NoError(t, err)
	require.Equal(t, []string{"bob@example.test"}, plan.WithCertifier)
	require.Equal(t, []string{"m1@example.test", "m2@example.test"}, plan.WithoutCertifier)
	res, err := internal.Send(ctx, dialPeer(t, mtrkPeer.addr), "mx.test", Message{
		Certifier: cert, Timeout: 100000 * time.Second, Arrival: arrival, QueueID: "q1", EnvelopeID: "rel-1",
		From: "alice@example.test", WithCertifier: plan.WithCertifier, WithoutCertifier: plan.WithoutCertifier,
		Body: body, EventID: "q1-try1",
	})
	require.NoError(t, err)
	require.NoError(t, res.RecordErr)
	assert.True(t, res.PeerMTRK)
	assert.Equal(t, 2, res.Transactions)
	assert.Equal(t, 99000*time.Second, res.Timeout, "timeout reduced by the 1000 s spent here")
	msgs := mtrkPeer.be.messages()
	require.Len(t, msgs, 2)
	assert.Equal(t, []string{"bob@example.test"}, msgs[0].Rcpts)
	assert.Equal(t, "rel-1", msgs[0].MailOpts.EnvelopeID)
	require.Equal(t, FromClient, msgs[0].Tracking.Source, "MTRK= arrived")
	assert.True(t, cert.Equal(msgs[0].Tracking.Certifier))
	assert.Equal(t, 99000*time.Second, msgs[0].Tracking.Timeout)
	assert.Equal(t, []string{"m1@example.test", "m2@example.test"}, msgs[1].Rcpts)
	assert.Equal(t, Untracked, msgs[1].Tracking.Source, "no MTRK for list members")
	assert.Equal(t, "rel-1", msgs[1].MailOpts.EnvelopeID)

	// Towards the plain peer (trackingrelayed: outside the deployment).
	outside := &Relay{Engine: first, Channel: channelopts.Channel{TrackingClient: true, Disposition: channelopts.Relayed}, Now: clock}
	assert.Equal(t, aliasing.Strict, outside.Policy(aliasing.Multiple))
	res, err = outside.Send(ctx, dialPeer(t, plainAddr), "plain.test", Message{
		Certifier: cert, Timeout: 100000 * time.Second, Arrival: arrival, QueueID: "q1", EnvelopeID: "rel-1",
		From: "alice@example.test", WithCertifier: []string{"dave@example.test"}, Body: body, EventID: "q1-try2",
	})
	require.NoError(t, err)
	assert.False(t, res.PeerMTRK)
	assert.Equal(t, 1, res.Transactions)
	pm := plainBE.messages()
	require.Len(t, pm, 1)
	assert.Equal(t, "rel-1", pm[0].MailOpts.EnvelopeID, "ENVID still sent to a DSN peer")
	assert.Equal(t, []string{"dave@example.test"}, pm[0].Rcpts)

	rec, err := first.Track(ctx, "rel-1", secret)
	require.NoError(t, err)
	byAddr := map[string]tracking.Recipient{}
	for _, r := range rec.Recipients {
		byAddr[r.FinalRecipient] = r
	}
	bob := byAddr["bob@example.test"]
	// The internal next hop's Accepted (at its end of DATA) took bob over:
	// one record shows both hops, bob now queued at mx.test.
	assert.Equal(t, "mx.test", bob.OwnerMTA)
	assert.Equal(t, tracking.StateQueued, bob.Action)
	require.Len(t, rec.Hops, 2)
	assert.Equal(t, "mx.test", rec.Hops[1].ReportingMTA)
	dave := byAddr["dave@example.test"]
	assert.Equal(t, tracking.ActionRelayed, dave.Action)
	assert.Equal(t, "plain.test", dave.RemoteMTA)
	assert.Equal(t, "2.1.9", dave.Status)
}

// TestRelayNoTimeLeft: when the timeout is used up MTRK is dropped (never
// sent as 0) and the outcome is "relayed"; a refused recipient is
// recorded failed with the peer's reply.
func TestRelayNoTimeLeft(t *testing.T) {
	store := memstore.New(memstore.Options{})
	first := tracking.New(store, tracking.Options{ReportingMTA: "mta1.test", Retries: -1})
	peer := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true}})
	secret, cert := newCert(t)
	arrival := time.Now().Add(-48 * time.Hour)
	ctx := context.Background()
	require.NoError(t, first.Accepted(ctx, tracking.Accept{
		Ref: tracking.Ref{Certifier: cert, QueueID: "q2"}, EventID: "acc-q2", EnvelopeID: "rel-2",
		Sender: "a@example.test", Timeout: 86400 * time.Second, Arrival: arrival,
		Recipients: []tracking.AcceptedRecipient{{Address: "bob@example.test"}, {Address: "bad"}},
	}))
	r := &Relay{Engine: first, Channel: channelopts.Channel{TrackingClient: true, Disposition: channelopts.Delivered}}
	res, err := r.Send(ctx, dialPeer(t, peer.addr), "mx.test", Message{
		Certifier: cert, Timeout: 86400 * time.Second, Arrival: arrival, QueueID: "q2", EnvelopeID: "rel-2",
		From: "a@example.test", WithCertifier: []string{"bob@example.test", "bad"},
		Body: func() (io.Reader, error) { return strings.NewReader(testMessage("<nl@x>", "")), nil }, EventID: "q2-1",
	})
	require.NoError(t, err)
	assert.True(t, res.PeerMTRK)
	assert.Zero(t, res.Timeout)
	msgs := peer.be.messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, Untracked, msgs[0].Tracking.Source, "MTRK dropped")
	rec, err := first.Track(ctx, "rel-2", secret)
	require.NoError(t, err)
	for _, rc := range rec.Recipients {
		switch rc.FinalRecipient {
		case "bob@example.test":
			assert.Equal(t, tracking.ActionDelivered, rc.Action, "trackingdelivered")
		case "bad":
			assert.Equal(t, tracking.ActionFailed, rc.Action)
			assert.Contains(t, rc.Diagnostic, "smtp; 501")
		}
	}
}

// TestRelayTransferredOut: towards an MTRK peer outside the deployment
// (its own store), the recipient is recorded transferred, with Remote-MTA
// naming where to ask next.
func TestRelayTransferredOut(t *testing.T) {
	first := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: "mta1.test", Retries: -1})
	peer := newHarness(t, harnessConfig{ch: channelopts.Channel{TrackingServer: true}})
	secret, cert := newCert(t)
	now := time.Now()
	ctx := context.Background()
	require.NoError(t, first.Accepted(ctx, tracking.Accept{
		Ref: tracking.Ref{Certifier: cert, QueueID: "q3"}, EventID: "acc-q3", EnvelopeID: "rel-3",
		Sender: "a@example.test", Timeout: 86400 * time.Second, Arrival: now,
		Recipients: []tracking.AcceptedRecipient{{Address: "bob@example.test"}},
	}))
	r := &Relay{Engine: first, Channel: channelopts.Channel{TrackingClient: true, Disposition: channelopts.Relayed}}
	res, err := r.Send(ctx, dialPeer(t, peer.addr), "mx.test", Message{
		Certifier: cert, Timeout: 86400 * time.Second, Arrival: now, QueueID: "q3", EnvelopeID: "rel-3",
		From: "a@example.test", WithCertifier: []string{"bob@example.test"},
		Body: func() (io.Reader, error) { return strings.NewReader(testMessage("<out@x>", "")), nil }, EventID: "q3-1",
	})
	require.NoError(t, err)
	require.True(t, res.Recipients[0].MTRK)
	rec, err := first.Track(ctx, "rel-3", secret)
	require.NoError(t, err)
	assert.Equal(t, tracking.ActionTransferred, rec.Recipients[0].Action)
	assert.False(t, rec.Recipients[0].TransferredInternal)
	assert.Equal(t, "mx.test", rec.Recipients[0].RemoteMTA)
	// And the peer has its own record of the message under the same ID.
	prec, err := peer.eng.Track(ctx, "rel-3", secret)
	require.NoError(t, err)
	assert.Equal(t, "bob@example.test", prec.Recipients[0].FinalRecipient)

	// trackingclient off: no MTRK even to a peer offering it.
	_, cert2 := newCert(t)
	r.Channel.TrackingClient = false
	res, err = r.Send(ctx, dialPeer(t, peer.addr), "mx.test", Message{
		Certifier: cert2, Timeout: 86400 * time.Second, Arrival: now, QueueID: "q4", EnvelopeID: "rel-4",
		From: "a@example.test", WithCertifier: []string{"bob@example.test"},
		Body: func() (io.Reader, error) { return strings.NewReader(testMessage("<out2@x>", "")), nil }, EventID: "q4-1",
	})
	require.NoError(t, err)
	assert.False(t, res.Recipients[0].MTRK)
	assert.Equal(t, Untracked, peer.be.messages()[1].Tracking.Source)
}
