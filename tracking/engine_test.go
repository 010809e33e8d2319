package tracking

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/trackstore"
)

var bg = context.Background()

func TestAcceptedThenTrack(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1.example.org")
	hold := f.clock.Now().Add(2 * time.Hour)
	f.accept(e, "Q1", []AcceptedRecipient{{Address: "a@x.org", Original: "rfc822;A@x.org"}, {Address: "b@x.org"}},
		func(a *Accept) { a.HoldUntil = hold })
	rec := f.track(e)
	assert.Equal(t, f.envid, rec.OriginalEnvelopeID)
	assert.True(t, rec.Certifier.Equal(f.cert))
	assert.Equal(t, "sender@example.com", rec.Sender)
	assert.Equal(t, "mta1.example.org", rec.ReportingMTA)
	assert.Equal(t, f.clock.Now().Unix(), rec.ArrivalDate.Unix())
	assert.True(t, rec.Held)
	assert.Equal(t, hold.Unix(), rec.HoldUntil.Unix())
	assert.Equal(t, hold.Add(mtrk.DefaultLimits.Default).Unix(), rec.Expires.Unix())
	require.Len(t, rec.Hops, 1)
	assert.Equal(t, Hop{ReportingMTA: "mta1.example.org", QueueID: "Q1", ArrivalDate: rec.ArrivalDate}, rec.Hops[0])
	require.Len(t, rec.Recipients, 2)
	a := rec.Recipients[0]
	assert.Equal(t, "a@x.org", a.FinalRecipient)
	assert.Equal(t, "rfc822;A@x.org", a.OriginalRecipient)
	assert.Equal(t, StateQueued, a.Action)
	assert.Equal(t, ActionDelayed, a.Action.RFCAction())
	assert.Equal(t, "mta1.example.org", a.OwnerMTA)
	assert.Equal(t, "Q1", a.QueueID)
	assert.False(t, rec.Incomplete)
}

func TestQueryWrongSecretAndWrongEnvelopeIDAreIndistinguishable(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	f.accept(e, "Q1", rcpts(2))
	other, err := mtrk.NewSecret()
	require.NoError(t, err)
	tests := []struct {
		name  string
		envid string
		sec   mtrk.Secret
	}{
		{"wrong secret", f.envid, other},
		{"wrong envelope id", f.envid + "x", f.secret},
		{"prefix of envelope id", f.envid[:3], f.secret},
		{"empty envelope id", "", f.secret},
		{"certifier presented as secret", f.envid, mtrk.Secret(f.cert)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := e.Track(bg, tc.envid, tc.sec)
			assert.Nil(t, rec)
			assert.Same(t, ErrNotFound, err) //nolint:testifylint // the very same value
			_, err = e.Recall(bg, tc.envid, tc.sec)
			assert.Same(t, ErrNotFound, err)
		})
	}
	// The record is untouched by the failed recalls.
	for _, r := range f.track(e).Recipients {
		assert.Equal(t, StateQueued, r.Action)
	}
}

func TestLookupByCertifier(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	f.accept(e, "Q1", rcpts(3))
	rec, err := e.Lookup(bg, f.cert)
	require.NoError(t, err)
	assert.Equal(t, f.envid, rec.OriginalEnvelopeID)
	assert.Len(t, rec.Recipients, 3)
	_, err = e.Lookup(bg, mtrk.Certifier("nothing-stored-here!"))
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestRecipientLifecycle(t *testing.T) {
	type step func(e *Engine, ref Ref) error
	out := func(s string) Outcome {
		return Outcome{Recipient: "r@x.org", Status: s, RemoteMTA: "dns; mx.x.org", Diagnostic: "smtp; 250 ok"}
	}
	begin := func(e *Engine, ref Ref) error { _, err := e.BeginDelivery(bg, ref, []string{"r@x.org"}); return err }
	tests := []struct {
		name     string
		steps    []step
		action   Action
		status   string
		internal bool
	}{
		{"delivered", []step{begin, func(e *Engine, r Ref) error { return e.Delivered(bg, r, "e1", out("")) }}, ActionDelivered, "2.0.0", false},
		{"failed", []step{begin, func(e *Engine, r Ref) error { return e.Failed(bg, r, "e1", out("5.1.1")) }}, ActionFailed, "5.1.1", false},
		{"relayed", []step{begin, func(e *Engine, r Ref) error { return e.Relayed(bg, r, "e1", out("")) }}, ActionRelayed, "2.1.9", false},
		{"transferred external", []step{begin, func(e *Engine, r Ref) error { return e.Transferred(bg, r, "e1", false, out("")) }}, ActionTransferred, "2.0.0", false},
		{"transferred internal", []step{begin, func(e *Engine, r Ref) error { return e.Transferred(bg, r, "e1", true, out("")) }}, ActionTransferred, "2.0.0", true},
		{"delayed", []step{begin, func(e *Engine, r Ref) error { return e.Delayed(bg, r, "e1", out("4.4.1")) }}, ActionDelayed, "4.4.1", false},
		{"delayed then delivered", []step{begin,
			func(e *Engine, r Ref) error { return e.Delayed(bg, r, "e1", out("4.4.1")) }, begin,
			func(e *Engine, r Ref) error { return e.Delivered(bg, r, "e2", out("")) }}, ActionDelivered, "2.0.0", false},
		{"stale delayed after delivered changes nothing", []step{begin,
			func(e *Engine, r Ref) error { return e.Delivered(bg, r, "e2", out("")) },
			func(e *Engine, r Ref) error { return e.Delayed(bg, r, "e1", out("4.4.1")) }}, ActionDelivered, "2.0.0", false},
		{"second final outcome ignored", []step{begin,
			func(e *Engine, r Ref) error { return e.Delivered(bg, r, "e1", out("")) },
			func(e *Engine, r Ref) error { return e.Failed(bg, r, "e2", out("5.0.0")) }}, ActionDelivered, "2.0.0", false},
		{"dequeued internal with mtrk", []step{begin, func(e *Engine, r Ref) error {
			return e.Dequeued(bg, r, "e1", DispositionInternal, true, out(""))
		}}, ActionTransferred, "2.0.0", true},
		{"dequeued internal without mtrk", []step{begin, func(e *Engine, r Ref) error {
			return e.Dequeued(bg, r, "e1", DispositionInternal, false, out(""))
		}}, ActionRelayed, "2.1.9", false},
		{"dequeued relayed with mtrk", []step{begin, func(e *Engine, r Ref) error {
			return e.Dequeued(bg, r, "e1", DispositionRelayed, true, out(""))
		}}, ActionTransferred, "2.0.0", false},
		{"dequeued delivered", []step{begin, func(e *Engine, r Ref) error {
			return e.Dequeued(bg, r, "e1", DispositionDelivered, true, out(""))
		}}, ActionDelivered, "2.0.0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			e := f.engine("mta1")
			ref := f.accept(e, "Q1", []AcceptedRecipient{{Address: "r@x.org"}})
			for _, s := range tc.steps {
				require.NoError(t, s(e, ref))
			}
			r := f.track(e).Recipients[0]
			assert.Equal(t, tc.action, r.Action)
			assert.Equal(t, tc.status, r.Status)
			assert.Equal(t, tc.internal, r.TransferredInternal)
			assert.Equal(t, "dns; mx.x.org", r.RemoteMTA)
			assert.Equal(t, "smtp; 250 ok", r.Diagnostic)
			assert.Equal(t, f.clock.Now().Unix(), r.LastAttemptDate.Unix())
		})
	}
}

func TestDelayedRecordsRetryTimes(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	ref := f.accept(e, "Q1", rcpts(1))
	next, until := f.clock.Now().Add(time.Hour), f.clock.Now().Add(72*time.Hour)
	require.NoError(t, e.Delayed(bg, ref, "d1", Outcome{Recipient: "user0@example.org", NextAttempt: next, WillRetryUntil: until}))
	r := f.track(e).Recipients[0]
	assert.Equal(t, next.Unix(), r.NextAttempt.Unix())
	assert.Equal(t, until.Unix(), r.WillRetryUntil.Unix())
	claims, err := e.BeginDelivery(bg, ref, []string{"user0@example.org"})
	require.NoError(t, err)
	assert.Equal(t, []Claim{ClaimProceed}, claims, "a delayed recipient is claimable again")
}

func TestIdempotentEvents(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	ref := f.accept(e, "Q1", rcpts(2))
	// Replaying Accepted (a spool replay) changes nothing.
	key := f.itemKey("user0@example.org")
	before, err := f.store.Get(bg, key)
	require.NoError(t, err)
	f.accept(e, "Q1", rcpts(2))
	after, err := f.store.Get(bg, key)
	require.NoError(t, err)
	assert.Equal(t, before.Version, after.Version, "replayed Accepted must not write")
	// Nor for a sharded record (head and shards).
	big := newFixture(t)
	be := big.engine("mta1")
	big.accept(be, "Q1", rcpts(InlineRecipients+10))
	var versions []trackstore.Version
	for _, k := range recordKeys(big.cert) {
		if it, err := big.store.Get(bg, k); err == nil {
			versions = append(versions, it.Version)
		}
	}
	big.accept(be, "Q1", rcpts(InlineRecipients+10))
	var replayed []trackstore.Version
	for _, k := range recordKeys(big.cert) {
		if it, err := big.store.Get(bg, k); err == nil {
			replayed = append(replayed, it.Version)
		}
	}
	assert.Equal(t, versions, replayed, "replayed Accepted of a sharded record must not write")

	o := Outcome{Recipient: "user0@example.org", Status: "4.4.1"}
	require.NoError(t, e.Delayed(bg, ref, "ev-1", o))
	first := f.track(e)
	dups := e.Stats().Duplicates
	f.clock.Add(time.Minute)
	require.NoError(t, e.Delayed(bg, ref, "ev-1", o)) // same ID: skipped
	again := f.track(e)
	assert.Equal(t, first.Recipients, again.Recipients, "an event applied twice changes nothing")
	assert.Equal(t, dups+1, e.Stats().Duplicates)
	// The same transition under a new ID is applied (the attempt time moves).
	require.NoError(t, e.Delayed(bg, ref, "ev-2", o))
	assert.NotEqual(t, first.Recipients[0].LastAttemptDate, f.track(e).Recipients[0].LastAttemptDate)
}

func TestAppliedEventSetIsBounded(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	ref := f.accept(e, "Q1", rcpts(1))
	for i := 0; i < 3*MaxAppliedEvents; i++ {
		require.NoError(t, e.Delayed(bg, ref, fmt.Sprintf("ev-%d", i), Outcome{Recipient: "user0@example.org", NextAttempt: f.clock.Now().Add(time.Duration(i) * time.Second)}))
	}
	it, err := f.store.Get(bg, f.itemKey("user0@example.org"))
	require.NoError(t, err)
	h, err := decodeHead(it.Value, f.cert) // a one-recipient record is all head
	require.NoError(t, err)
	assert.Len(t, h.Events, MaxAppliedEvents)
	assert.Equal(t, fmt.Sprintf("ev-%d", 3*MaxAppliedEvents-1), h.Events[len(h.Events)-1])
}

func TestTTLCoversLongHold(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	hold := 30 * 24 * time.Hour // beyond trackingtimeoutmax (14 days)
	timeout := mtrk.DefaultLimits.Clamp(100*24*time.Hour, true)
	require.Equal(t, mtrk.DefaultLimits.Max, timeout)
	f.accept(e, "Q1", rcpts(20), func(a *Accept) { a.HoldUntil = f.clock.Now().Add(hold); a.Timeout = timeout })
	rec := f.track(e)
	assert.Equal(t, f.clock.Now().Add(hold+timeout).Unix(), rec.Expires.Unix())

	f.clock.Add(hold + timeout - time.Hour)
	rec = f.track(e)
	assert.Len(t, rec.Recipients, 20, "still stored an hour before hold + timeout")
	f.clock.Add(2 * time.Hour)
	_, err := e.Track(bg, f.envid, f.secret)
	assert.ErrorIs(t, err, ErrNotFound, "gone after hold + timeout")
}

func TestHeldExtendsExpiry(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	ref := f.accept(e, "Q1", rcpts(5))
	until := f.clock.Now().Add(40 * 24 * time.Hour)
	require.NoError(t, e.Held(bg, ref, "h1", until))
	rec := f.track(e)
	assert.True(t, rec.Held)
	assert.Equal(t, until.Add(mtrk.DefaultLimits.Default).Unix(), rec.Expires.Unix())
	f.clock.Add(39 * 24 * time.Hour)
	assert.Len(t, f.track(e).Recipients, 5, "shards were extended with the head")
	require.NoError(t, e.Released(bg, ref, "r1"))
	assert.False(t, f.track(e).Held)
}

func TestTwoHopsOneRecord(t *testing.T) {
	f := newFixture(t)
	m1, m2 := f.engine("mta1"), f.engine("mta2")
	ref1 := f.accept(m1, "Q1", rcpts(3))
	addrs := addrsOf(rcpts(3))
	claims, err := m1.BeginDelivery(bg, ref1, addrs)
	require.NoError(t, err)
	assert.Equal(t, []Claim{ClaimProceed, ClaimProceed, ClaimProceed}, claims)
	// Recipients 0 and 1 go to mta2 (internal), recipient 2 is delivered locally.
	require.NoError(t, m1.Delivered(bg, ref1, "d", Outcome{Recipient: addrs[2]}))
	require.NoError(t, m1.Transferred(bg, ref1, "t", true, Outcome{Recipient: addrs[0], RemoteMTA: "dns; mta2"}, Outcome{Recipient: addrs[1], RemoteMTA: "dns; mta2"}))
	ref2 := f.accept(m2, "Q2", rcpts(2), func(a *Accept) { a.Internal = true; a.EventID = "acc2" })
	require.NoError(t, m2.Delivered(bg, ref2, "d2", Outcome{Recipient: addrs[0]}))

	rec := f.track(m2)
	require.Len(t, rec.Hops, 2)
	assert.Equal(t, "mta1", rec.Hops[0].ReportingMTA)
	assert.Equal(t, "mta2", rec.Hops[1].ReportingMTA)
	assert.True(t, rec.Hops[1].Internal)
	assert.Equal(t, "mta1", rec.ReportingMTA, "the first hop stays the record's reporting MTA")
	got := byAddr(rec)
	assert.Equal(t, ActionDelivered, got[addrs[0]].Action)
	assert.Equal(t, "mta2", got[addrs[0]].OwnerMTA)
	assert.Equal(t, 1, got[addrs[0]].Hop)
	assert.Equal(t, StateQueued, got[addrs[1]].Action)
	assert.Equal(t, "mta2", got[addrs[1]].OwnerMTA)
	assert.Equal(t, ActionDelivered, got[addrs[2]].Action)
	assert.Equal(t, "mta1", got[addrs[2]].OwnerMTA)

	// A late event from mta1 about a recipient mta2 now owns changes nothing.
	require.NoError(t, m1.Failed(bg, ref1, "late", Outcome{Recipient: addrs[1]}))
	assert.Equal(t, StateQueued, byAddr(f.track(m1))[addrs[1]].Action)
}

func TestExternalArrivalDoesNotWriteIntoForeignRecord(t *testing.T) {
	f := newFixture(t)
	m1, m2 := f.engine("mta1"), f.engine("mta2")
	f.accept(m1, "Q1", rcpts(2))
	before := f.track(m1)

	// Someone who saw the certifier on the wire sends a message with it to
	// mta2 over an external channel.
	err := m2.Accepted(bg, Accept{Ref: Ref{Certifier: f.cert, QueueID: "EVIL"}, EventID: "x", EnvelopeID: "attacker",
		Recipients: []AcceptedRecipient{{Address: "user0@example.org"}, {Address: "victim@evil.example"}}})
	require.ErrorIs(t, err, ErrForeignRecord)
	evil := Ref{Certifier: f.cert, QueueID: "EVIL"}
	require.NoError(t, m2.Delivered(bg, evil, "x2", Outcome{Recipient: "user0@example.org"}))
	claims, err := m2.BeginDelivery(bg, evil, []string{"user0@example.org"})
	require.NoError(t, err)
	assert.Equal(t, []Claim{ClaimUnknown}, claims)

	after := f.track(m1)
	assert.Equal(t, before, after, "the record is unchanged")
	assert.GreaterOrEqual(t, m2.Stats().Untracked, uint64(1))
}

func TestExpandedAliasAndList(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	ref := f.accept(e, "Q1", []AcceptedRecipient{{Address: "alias@x.org"}, {Address: "list@x.org"}})
	require.NoError(t, e.Expanded(bg, ref, "x1", "alias@x.org", false, []Child{{"c1@x.org", true}, {"c2@x.org", true}, {"c3@x.org", false}}))
	require.NoError(t, e.Expanded(bg, ref, "x2", "list@x.org", true, []Child{{"m1@y.org", true}, {"m2@y.org", false}}))
	got := byAddr(f.track(e))
	require.Len(t, got, 4, "alias, list and the two tracked alias children")
	assert.Equal(t, ActionExpanded, got["alias@x.org"].Action)
	assert.Equal(t, []string{"c1@x.org", "c2@x.org", "c3@x.org"}, got["alias@x.org"].Children)
	assert.Equal(t, []string{"c3@x.org"}, got["alias@x.org"].UntrackedChildren)
	assert.True(t, got["list@x.org"].List)
	assert.Equal(t, []string{"m1@y.org", "m2@y.org"}, got["list@x.org"].UntrackedChildren)
	assert.Equal(t, "alias@x.org", got["c1@x.org"].ExpandedFrom)
	assert.Equal(t, "alias@x.org", got["c1@x.org"].OriginalRecipient)
	assert.Equal(t, StateQueued, got["c2@x.org"].Action)
	// The head lists the children's shards, so losing one is detected.
	rec, err := e.Lookup(bg, f.cert)
	require.NoError(t, err)
	assert.False(t, rec.Incomplete)
}

func TestTenThousandRecipients(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	rs := make([]AcceptedRecipient, 10000)
	for i := range rs {
		rs[i] = AcceptedRecipient{Address: fmt.Sprintf("some.rather.long.local.part.%05d@subdomain.example.org", i), Original: fmt.Sprintf("rfc822;Some.Rather.Long.Local.Part.%05d@Example.org", i)}
	}
	ref := f.accept(e, "Q1", rs)
	biggest := 0
	for i := 0; i < ShardCount; i++ {
		it, err := f.store.Get(bg, ShardKey(f.cert, i))
		require.NoError(t, err)
		biggest = max(biggest, len(it.Value))
	}
	t.Logf("largest shard of a 10,000-recipient record: %d bytes", biggest)
	// Headroom for every recipient being delivered with a status, remote
	// MTA and diagnostic.
	outs := make([]Outcome, len(rs))
	for i, r := range rs {
		outs[i] = Outcome{Recipient: r.Address, RemoteMTA: "dns; mx1.subdomain.example.org", Diagnostic: "smtp; 250 2.0.0 Ok: queued as ABCDEF0123"}
	}
	_, err := e.BeginDelivery(bg, ref, addrsOf(rs))
	require.NoError(t, err)
	require.NoError(t, e.Delivered(bg, ref, "all", outs...))
	for i := 0; i < ShardCount; i++ {
		it, err := f.store.Get(bg, ShardKey(f.cert, i))
		require.NoError(t, err)
		assert.Less(t, len(it.Value), 1<<20/2, "shard %d must fit memcached's 1 MiB item with room to spare", i)
	}
	rec := f.track(e)
	require.Len(t, rec.Recipients, 10000)
	for _, r := range rec.Recipients {
		require.Equal(t, ActionDelivered, r.Action)
	}
}

func TestPartialRecords(t *testing.T) {
	f := newFixture(t)
	m1, m2 := f.engine("mta1"), f.engine("mta2")
	rs := rcpts(200)
	ref := f.accept(m1, "Q1", rs)
	lost := ShardOf(rs[0].Address)
	var inLost, elsewhere []string
	for _, r := range rs {
		if ShardOf(r.Address) == lost {
			inLost = append(inLost, r.Address)
		} else {
			elsewhere = append(elsewhere, r.Address)
		}
	}
	require.NotEmpty(t, elsewhere)

	t.Run("shard evicted", func(t *testing.T) {
		require.NoError(t, f.store.Delete(bg, ShardKey(f.cert, lost)))
		rec := f.track(m1)
		assert.True(t, rec.Incomplete)
		assert.Equal(t, []int{lost}, rec.MissingShards)
		assert.Len(t, rec.Recipients, len(elsewhere))
		// The queue gets no claim for a forgotten recipient: its spool decides.
		claims, err := m1.BeginDelivery(bg, ref, []string{inLost[0], elsewhere[0]})
		require.NoError(t, err)
		assert.Equal(t, []Claim{ClaimUnknown, ClaimProceed}, claims)
		// Events for forgotten recipients do not resurrect the shard.
		require.NoError(t, m1.Delivered(bg, ref, "d", Outcome{Recipient: inLost[0]}))
		_, err = f.store.Get(bg, ShardKey(f.cert, lost))
		assert.ErrorIs(t, err, trackstore.ErrNotFound)
	})
	t.Run("head evicted", func(t *testing.T) {
		require.NoError(t, f.store.Delete(bg, HeadKey(f.cert)))
		_, err := m1.Track(bg, f.envid, f.secret)
		assert.ErrorIs(t, err, ErrNotFound, "without the head the envelope ID cannot be checked")
		rec, err := m1.Lookup(bg, f.cert)
		require.NoError(t, err)
		assert.True(t, rec.HeadMissing)
		assert.Empty(t, rec.OriginalEnvelopeID)
		assert.Len(t, rec.Recipients, len(elsewhere))
		// Events on surviving shards still apply.
		require.NoError(t, m1.Delivered(bg, ref, "d2", Outcome{Recipient: elsewhere[0]}))
		// An internal next hop recreates the head and the record is readable again.
		f.accept(m2, "Q2", []AcceptedRecipient{{Address: elsewhere[1]}}, func(a *Accept) { a.Internal = true })
		rec = f.track(m2)
		require.Len(t, rec.Hops, 1, "the first hop is lost with the head")
		assert.True(t, rec.Incomplete, "a recreated head cannot vouch for completeness")
		assert.Equal(t, "mta2", rec.Hops[0].ReportingMTA)
		got := byAddr(rec)
		assert.Equal(t, ActionDelivered, got[elsewhere[0]].Action)
		assert.Equal(t, "mta2", got[elsewhere[1]].OwnerMTA)
	})
}

func TestCorruptItems(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	ref := f.accept(e, "Q1", rcpts(InlineRecipients+1)) // sharded
	key := f.itemKey("user0@example.org")
	require.Equal(t, ShardKey(f.cert, ShardOf("user0@example.org")), key)
	require.NoError(t, f.store.Set(bg, key, []byte("not a tracking record"), 0))
	err := e.Delivered(bg, ref, "d", Outcome{Recipient: "user0@example.org"})
	require.ErrorIs(t, err, trackstore.ErrCorrupt)
	rec := f.track(e)
	assert.True(t, rec.Incomplete, "an undecodable shard reads as missing")

	require.NoError(t, f.store.Set(bg, HeadKey(f.cert), []byte{'M', 'T', 'H', 9, '{'}, 0))
	_, err = e.Track(bg, f.envid, f.secret)
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestRetriesExhausted(t *testing.T) {
	f := newFixture(t)
	fs := &faultStore{Store: f.store}
	e := New(fs, Options{ReportingMTA: "mta1", Now: f.clock.Now, RetryDelay: time.Millisecond, Retries: 3,
		Logger: f.engine("x").log})
	ref := f.accept(e, "Q1", rcpts(1))
	fs.conflict.Store(true)
	fs.cas.Store(0)
	err := e.Delivered(bg, ref, "ev-42", Outcome{Recipient: "user0@example.org"})
	require.ErrorIs(t, err, trackstore.ErrConflict)
	assert.Equal(t, int64(4), fs.cas.Load(), "one attempt plus Retries retries")
	assert.Equal(t, uint64(1), e.Stats().Failures)
	assert.Contains(t, f.logs.String(), "level=WARN")
	assert.Contains(t, f.logs.String(), "event_id=ev-42")
	// The event is lost from the store (fail-open): the record still says queued,
	// and a replay with the same ID once the store recovers applies it.
	fs.conflict.Store(false)
	assert.Equal(t, StateQueued, f.track(e).Recipients[0].Action)
	require.NoError(t, e.Delivered(bg, ref, "ev-42", Outcome{Recipient: "user0@example.org"}))
	assert.Equal(t, ActionDelivered, f.track(e).Recipients[0].Action)
}

func TestStoreDown(t *testing.T) {
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("failclosed=%v", closed), func(t *testing.T) {
			f := newFixture(t)
			fs := &faultStore{Store: f.store}
			e := New(fs, Options{ReportingMTA: "mta1", Now: f.clock.Now, RetryDelay: time.Millisecond, Retries: 1, FailClosed: closed})
			ref := f.accept(e, "Q1", rcpts(2))
			fs.down.Store(true)
			claims, err := e.BeginDelivery(bg, ref, []string{"user0@example.org", "user1@example.org"})
			require.ErrorIs(t, err, trackstore.ErrUnavailable)
			want := ClaimUnknown
			if closed {
				want = ClaimDefer
			}
			assert.Equal(t, []Claim{want, want}, claims)
			err = e.Delivered(bg, ref, "d", Outcome{Recipient: "user0@example.org"})
			require.ErrorIs(t, err, trackstore.ErrUnavailable)
			_, err = e.Track(bg, f.envid, f.secret)
			require.ErrorIs(t, err, trackstore.ErrUnavailable)
			assert.NotErrorIs(t, err, ErrNotFound, "an outage is not reported as an unknown message")
			err = e.Accepted(bg, Accept{Ref: Ref{Certifier: mtrk.Certifier("other-certifier-0000"), QueueID: "Q9"}, Recipients: rcpts(1)})
			require.ErrorIs(t, err, trackstore.ErrUnavailable)
			// Recovery: once the store answers, later events apply again.
			fs.down.Store(false)
			require.NoError(t, e.Delivered(bg, ref, "d", Outcome{Recipient: "user0@example.org"}))
			assert.Equal(t, ActionDelivered, byAddr(f.track(e))["user0@example.org"].Action)
		})
	}
}

func TestContextCancelledDuringRetry(t *testing.T) {
	f := newFixture(t)
	fs := &faultStore{Store: f.store}
	e := New(fs, Options{ReportingMTA: "mta1", Now: f.clock.Now, RetryDelay: time.Hour})
	ref := f.accept(e, "Q1", rcpts(1))
	fs.conflict.Store(true)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	err := e.Delivered(ctx, ref, "d", Outcome{Recipient: "user0@example.org"})
	require.ErrorIs(t, err, trackstore.ErrUnavailable)
	assert.ErrorIs(t, err, context.Canceled)
}

// TestGroupCommit holds the first writer inside its read, lets 20 more
// events for the same shard queue up, and checks that they ride along in
// one write.
func TestGroupCommit(t *testing.T) {
	f := newFixture(t)
	fs := &faultStore{Store: f.store, gate: make(chan struct{}), inGet: make(chan struct{})}
	e := New(fs, Options{ReportingMTA: "mta1", Now: f.clock.Now})
	// 21 recipients in one shard.
	var same []AcceptedRecipient
	for i := 0; len(same) < 21; i++ {
		a := fmt.Sprintf("u%d@x.org", i)
		if ShardOf(a) == 5 {
			same = append(same, AcceptedRecipient{Address: a})
		}
	}
	ref := f.accept(e, "Q1", same)
	before := e.Stats()
	fs.gateArmed.Store(true)
	var wg sync.WaitGroup
	errs := make(chan error, len(same))
	run := func(a string) {
		defer wg.Done()
		errs <- e.Delayed(bg, ref, "d-"+a, Outcome{Recipient: a})
	}
	wg.Add(1)
	go run(same[0].Address)
	<-fs.inGet // the leader is reading
	for _, r := range same[1:] {
		wg.Add(1)
		go run(r.Address)
	}
	key := ShardKey(f.cert, 5)
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		q := e.queues[key]
		return q != nil && len(q.pending) == len(same)-1
	}, 10*time.Second, time.Millisecond)
	close(fs.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	st := e.Stats()
	assert.Equal(t, uint64(2), st.Writes-before.Writes, "the leader's write and one write for the 20 that waited")
	assert.Equal(t, uint64(len(same)-2), st.Merged-before.Merged)
	for _, r := range f.track(e).Recipients {
		assert.Equal(t, ActionDelayed, r.Action, r.FinalRecipient)
	}
}

func TestConcurrentEventsOneProcess(t *testing.T) {
	f := newFixture(t)
	e := f.engine("mta1")
	rs := rcpts(400)
	ref := f.accept(e, "Q1", rs)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(rs); i += 16 {
				a := rs[i].Address
				claims, err := e.BeginDelivery(bg, ref, []string{a})
				if !assert.NoError(t, err) || !assert.Equal(t, ClaimProceed, claims[0]) {
					return
				}
				assert.NoError(t, e.Delivered(bg, ref, "d-"+a, Outcome{Recipient: a}))
			}
		}()
	}
	wg.Wait()
	for _, r := range f.track(e).Recipients {
		assert.Equal(t, ActionDelivered, r.Action)
	}
	assert.Zero(t, e.Stats().Failures)
}

func TestErrorValues(t *testing.T) {
	assert.False(t, errors.Is(ErrNotFound, trackstore.ErrNotFound), "the query answer is the engine's own value")
	assert.Equal(t, "proceed", ClaimProceed.String())
	assert.Equal(t, "Claim(99)", Claim(99).String())
}

// TestRetrySchedule pins the documented schedule: the first retry after
// a lost compare-and-swap is immediate, the others back off
// exponentially from RetryDelay, capped at 8 × RetryDelay.
func TestRetrySchedule(t *testing.T) {
	e := New(nil, Options{RetryDelay: 100 * time.Millisecond, Jitter: -1})
	tests := []struct {
		retry    int
		conflict bool
		want     time.Duration
	}{
		{1, true, 0},
		{1, false, 100 * time.Millisecond},
		{2, true, 100 * time.Millisecond},
		{3, true, 200 * time.Millisecond},
		{4, false, 400 * time.Millisecond},
		{5, true, 800 * time.Millisecond},
		{6, true, 800 * time.Millisecond},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, e.backoff(tc.retry, tc.conflict), "retry %d conflict %v", tc.retry, tc.conflict)
	}
	j := New(nil, Options{RetryDelay: 100 * time.Millisecond})
	for i := 0; i < 100; i++ {
		d := j.backoff(3, true)
		require.GreaterOrEqual(t, d, 100*time.Millisecond)
		require.Less(t, d, 300*time.Millisecond)
	}
}

// TestEventsJoiningARetriedRoundKeepTheirAttempts: an event that arrives
// while another event's round is being retried joins the next attempt and
// still gets 1+Retries attempts of its own.
func TestEventsJoiningARetriedRoundKeepTheirAttempts(t *testing.T) {
	f := newFixture(t)
	fs := &faultStore{Store: f.store}
	e := New(fs, Options{ReportingMTA: "mta1", Now: f.clock.Now, RetryDelay: time.Millisecond, Retries: 2})
	// Two recipients in one item.
	var same []AcceptedRecipient
	for i := 0; len(same) < 2; i++ {
		if a := fmt.Sprintf("u%d@x.org", i); ShardOf(a) == 7 {
			same = append(same, AcceptedRecipient{Address: a})
		}
	}
	ref := f.accept(e, "Q1", same)
	fs.cas.Store(0)
	second := make(chan error, 1)
	var key string
	fs.hook = func(n int64) error {
		switch n {
		case 1: // the first event's first attempt
			return trackstore.ErrConflict
		case 2: // its immediate retry: meanwhile the second event queues up
			go func() { second <- e.Delayed(bg, ref, "b", Outcome{Recipient: same[1].Address}) }()
			for {
				e.mu.Lock()
				queued := false
				for k, q := range e.queues {
					if len(q.pending) > 0 {
						queued, key = true, k
					}
				}
				e.mu.Unlock()
				if queued {
					return trackstore.ErrConflict
				}
				time.Sleep(time.Millisecond)
			}
		case 3: // third and last attempt of the first, first of the second
			return trackstore.ErrConflict
		}
		return nil // the second event's next attempt goes through
	}
	err := e.Delayed(bg, ref, "a", Outcome{Recipient: same[0].Address})
	require.ErrorIs(t, err, trackstore.ErrConflict)
	assert.Contains(t, err.Error(), "after 3 attempts")
	require.NoError(t, <-second)
	assert.Equal(t, int64(4), fs.cas.Load())
	assert.NotEmpty(t, key)
	got := byAddr(f.track(e))
	assert.Equal(t, StateQueued, got[same[0].Address].Action, "the first event ran out of attempts")
	assert.Equal(t, ActionDelayed, got[same[1].Address].Action, "the second rode along, then succeeded on its own attempts")
	assert.Equal(t, uint64(3), e.Stats().MostAttempts)
}

// countingStore counts the calls the engine makes.
type countingStore struct {
	trackstore.Store
	gets, adds, cas atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (trackstore.Item, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, key)
}

func (s *countingStore) Add(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	s.adds.Add(1)
	return s.Store.Add(ctx, key, v, ttl)
}

func (s *countingStore) CompareAndSwap(ctx context.Context, it trackstore.Item, ttl time.Duration) error {
	s.cas.Add(1)
	return s.Store.CompareAndSwap(ctx, it, ttl)
}

func (s *countingStore) reset() { s.gets.Store(0); s.adds.Store(0); s.cas.Store(0) }

// TestAcceptedAddsWithoutReading: a message's first arrival writes its
// record with one add and no read, for an inline record and a sharded one
// (head and each shard); a replay, a later internal hop and an external
// arrival on an existing record find the item there and go on from a
// read, with the outcomes the other tests check.
func TestAcceptedAddsWithoutReading(t *testing.T) {
	f := newFixture(t)
	cs := &countingStore{Store: f.store}
	opts := Options{ReportingMTA: "mta1", Now: f.clock.Now, RetryDelay: time.Millisecond}
	m1 := New(cs, opts)
	opts.ReportingMTA = "mta2"
	m2 := New(cs, opts)

	ref := f.accept(m1, "Q1", rcpts(2))
	assert.Equal(t, int64(0), cs.gets.Load(), "no read for a new record")
	assert.Equal(t, int64(1), cs.adds.Load())
	assert.Len(t, f.track(m1).Recipients, 2)

	cs.reset()
	f.accept(m1, "Q1", rcpts(2)) // the spool replays the arrival
	assert.Equal(t, int64(1), cs.adds.Load(), "one add, which finds the item")
	assert.Positive(t, cs.gets.Load(), "then reads")
	assert.Equal(t, int64(0), cs.cas.Load(), "a replay changes nothing")

	cs.reset()
	require.NoError(t, m1.Transferred(bg, ref, "t", true, Outcome{Recipient: "user0@example.org", RemoteMTA: "dns; mta2"}))
	f.accept(m2, "Q2", rcpts(1), func(a *Accept) { a.Internal = true; a.EventID = "acc2" })
	assert.Equal(t, int64(0), cs.adds.Load(), "an internal hop expects the record and reads first")
	assert.Len(t, f.track(m2).Hops, 2)

	err := m2.Accepted(bg, Accept{Ref: Ref{Certifier: f.cert, QueueID: "EVIL"}, EventID: "x", Recipients: rcpts(1)})
	require.ErrorIs(t, err, ErrForeignRecord, "an external arrival that finds a record falls back to the read that detects it")

	// A sharded record: the head and every shard are added, none read.
	g := newFixture(t)
	gs := &countingStore{Store: g.store}
	e := New(gs, Options{ReportingMTA: "mta1", Now: g.clock.Now})
	n := InlineRecipients + 50
	g.accept(e, "Q1", rcpts(n))
	assert.Equal(t, int64(0), gs.gets.Load())
	assert.Greater(t, gs.adds.Load(), int64(1))
	assert.Len(t, g.track(e).Recipients, n)
}
