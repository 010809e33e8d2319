package tracking

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/trackstore"
)

// shardItems returns the shard numbers that have an item in the store.
func (f *fixture) shardItems() []int {
	f.t.Helper()
	var out []int
	for i := 0; i < ShardCount; i++ {
		if _, err := f.store.Get(bg, ShardKey(f.cert, i)); err == nil {
			out = append(out, i)
		}
	}
	return out
}

func (f *fixture) head() *wireHead {
	f.t.Helper()
	it, err := f.store.Get(bg, HeadKey(f.cert))
	require.NoError(f.t, err)
	h, err := decodeHead(it.Value, f.cert)
	require.NoError(f.t, err)
	return h
}

func TestSmallRecordIsOneItem(t *testing.T) {
	for _, n := range []int{1, InlineRecipients} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFixture(t)
			e := f.engine("mta1")
			ref := f.accept(e, "Q1", rcpts(n))
			assert.Empty(t, f.shardItems(), "recipients kept in the head")
			h := f.head()
			assert.False(t, h.Sharded)
			assert.Len(t, h.Rcpts, n)
			claims, err := e.BeginDelivery(bg, ref, []string{"user0@example.org"})
			require.NoError(t, err)
			assert.Equal(t, []Claim{ClaimProceed}, claims)
			require.NoError(t, e.Delivered(bg, ref, "d", Outcome{Recipient: "user0@example.org"}))
			assert.Empty(t, f.shardItems())
			rec := f.track(e)
			assert.Len(t, rec.Recipients, n)
			assert.Equal(t, ActionDelivered, byAddr(rec)["user0@example.org"].Action)
		})
	}
	f := newFixture(t)
	f.accept(f.engine("mta1"), "Q1", rcpts(InlineRecipients+1))
	assert.True(t, f.head().Sharded, "one recipient more: sharded")
	assert.Empty(t, f.head().Rcpts)
	assert.NotEmpty(t, f.shardItems())
}

// TestRecordGrowsIntoShards: a small record that a later internal hop
// makes bigger than InlineRecipients keeps its first recipients inline
// and puts the new ones in shards; events reach both, also from an
// Engine that has never seen the record (no layout cached).
func TestRecordGrowsIntoShards(t *testing.T) {
	f := newFixture(t)
	m1, m2 := f.engine("mta1"), f.engine("mta2")
	first := rcpts(InlineRecipients - 2)
	ref1 := f.accept(m1, "Q1", first)
	moved := []string{first[0].Address, first[1].Address}
	_, err := m1.BeginDelivery(bg, ref1, moved)
	require.NoError(t, err)
	require.NoError(t, m1.Transferred(bg, ref1, "t", true, Outcome{Recipient: moved[0]}, Outcome{Recipient: moved[1]}))
	var next []AcceptedRecipient
	for _, a := range moved {
		next = append(next, AcceptedRecipient{Address: a})
	}
	for i := 0; i < 10; i++ {
		next = append(next, AcceptedRecipient{Address: fmt.Sprintf("new%d@example.net", i)})
	}
	ref2 := f.accept(m2, "Q2", next, func(a *Accept) { a.Internal = true; a.EventID = "acc2" })

	h := f.head()
	assert.True(t, h.Sharded)
	assert.Len(t, h.Rcpts, len(first), "the first recipients stay inline; none move")
	assert.NotEmpty(t, f.shardItems())
	assert.Equal(t, HeadKey(f.cert), f.itemKey(moved[0]))
	assert.Equal(t, ShardKey(f.cert, ShardOf("new0@example.net")), f.itemKey("new0@example.net"))

	// A fresh engine of mta2 (another process: no layout cached).
	fresh := f.engine("mta2")
	claims, err := fresh.BeginDelivery(bg, ref2, []string{moved[0], "new0@example.net", "nobody@example.net"})
	require.NoError(t, err)
	assert.Equal(t, []Claim{ClaimProceed, ClaimProceed, ClaimUnknown}, claims)
	require.NoError(t, fresh.Delivered(bg, ref2, "d1", Outcome{Recipient: moved[0]}, Outcome{Recipient: "new0@example.net"}))
	// mta1 still owns its other inline recipients.
	require.NoError(t, m1.Failed(bg, ref1, "f1", Outcome{Recipient: first[2].Address}))

	rec := f.track(f.engine("reader"))
	assert.False(t, rec.Incomplete)
	got := byAddr(rec)
	require.Len(t, got, len(first)+10)
	assert.Equal(t, ActionDelivered, got[moved[0]].Action)
	assert.Equal(t, "mta2", got[moved[0]].OwnerMTA)
	assert.Equal(t, StateQueued, got[moved[1]].Action)
	assert.Equal(t, ActionDelivered, got["new0@example.net"].Action)
	assert.Equal(t, StateQueued, got["new1@example.net"].Action)
	assert.Equal(t, ActionFailed, got[first[2].Address].Action)
	assert.Equal(t, 1, got["new1@example.net"].Hop)
}

// TestExpandedPlacement: tracked children go inline while the record is
// small, to shards otherwise; every child gets its entry, including those
// that hash to the parent's own item.
func TestExpandedPlacement(t *testing.T) {
	children := func(n int) []Child {
		out := make([]Child, n)
		for i := range out {
			out[i] = Child{Address: fmt.Sprintf("child%d@x.org", i), Tracked: true}
		}
		return out
	}
	tests := []struct {
		name    string
		rcpts   int
		kids    int
		sharded bool
	}{
		{"small stays inline", 2, 3, false},
		{"inline parent, too many children", 2, 20, true},
		{"sharded parent", InlineRecipients + 1, 40, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			e := f.engine("mta1")
			ref := f.accept(e, "Q1", rcpts(tc.rcpts))
			require.NoError(t, e.Expanded(bg, ref, "x1", "user0@example.org", false, children(tc.kids)))
			assert.Equal(t, tc.sharded, f.head().Sharded)
			rec := f.track(f.engine("reader"))
			assert.False(t, rec.Incomplete)
			got := byAddr(rec)
			require.Len(t, got, tc.rcpts+tc.kids)
			for _, c := range children(tc.kids) {
				assert.Equal(t, StateQueued, got[c.Address].Action, c.Address)
				assert.Equal(t, "user0@example.org", got[c.Address].ExpandedFrom)
			}
			assert.Equal(t, ActionExpanded, got["user0@example.org"].Action)
			// Replaying the expansion changes nothing.
			require.NoError(t, e.Expanded(bg, ref, "x1", "user0@example.org", false, children(tc.kids)))
			assert.Equal(t, rec, f.track(f.engine("reader")))
		})
	}
}

// TestVersion1RecordsStillRead writes a record the way format version 1
// did (JSON, every recipient in a shard) and checks that it reads and
// updates.
func TestVersion1RecordsStillRead(t *testing.T) {
	f := newFixture(t)
	exp := f.clock.Now().Unix() + 86400
	addrs := []string{"a@x.org", "b@x.org", "c@x.org"}
	h := &wireHead{Cert: f.cert, EnvID: f.envid, Timeout: 86400, Expires: exp, Sender: "s@x.org",
		Arrival: f.clock.Now().Unix(), MTA: "mta1", Hops: []wireHop{{MTA: "mta1", Queue: "Q1", Arrival: f.clock.Now().Unix()}}, ShardCount: ShardCount}
	shards := map[int]*wireShard{}
	for _, a := range addrs {
		n := ShardOf(a)
		h.ShardMask |= 1 << n
		if shards[n] == nil {
			shards[n] = &wireShard{Cert: f.cert, N: n, Expires: exp}
		}
		shards[n].Rcpts = append(shards[n].Rcpts, wireRcpt{Final: a, Action: StateQueued, OwnerMTA: "mta1", Queue: "Q1"})
	}
	require.NoError(t, f.store.Set(bg, HeadKey(f.cert), mustEncodeV1(t, kindHead, h), 0))
	for n, s := range shards {
		require.NoError(t, f.store.Set(bg, ShardKey(f.cert, n), mustEncodeV1(t, kindShard, s), 0))
	}
	e := f.engine("mta1")
	rec := f.track(e)
	assert.Equal(t, "s@x.org", rec.Sender)
	assert.Len(t, rec.Recipients, 3)
	assert.False(t, rec.Incomplete)

	ref := Ref{Certifier: f.cert, QueueID: "Q1"}
	require.NoError(t, e.Delivered(bg, ref, "d", Outcome{Recipient: "b@x.org"}))
	it, err := f.store.Get(bg, ShardKey(f.cert, ShardOf("b@x.org")))
	require.NoError(t, err)
	assert.Equal(t, byte(FormatVersion), it.Value[3], "rewritten in the current format")
	got := byAddr(f.track(f.engine("reader")))
	assert.Equal(t, ActionDelivered, got["b@x.org"].Action)
	assert.Equal(t, StateQueued, got["a@x.org"].Action)
	// A version 1 head is sharded: a new internal hop's recipients go to shards.
	f.accept(f.engine("mta2"), "Q2", []AcceptedRecipient{{Address: "d@x.org"}}, func(a *Accept) { a.Internal = true })
	assert.Empty(t, f.head().Rcpts)
	assert.Len(t, f.track(e).Recipients, 4)
}

// TestPartialInlineRecords: what a reader sees when items of a record
// with inline recipients are lost.
func TestPartialInlineRecords(t *testing.T) {
	t.Run("small record, head evicted", func(t *testing.T) {
		f := newFixture(t)
		e := f.engine("mta1")
		ref := f.accept(e, "Q1", rcpts(3))
		require.NoError(t, f.store.Delete(bg, HeadKey(f.cert)))
		_, err := e.Track(bg, f.envid, f.secret)
		assert.ErrorIs(t, err, ErrNotFound)
		_, err = e.Lookup(bg, f.cert)
		assert.ErrorIs(t, err, ErrNotFound, "the head was the whole record")
		claims, err := e.BeginDelivery(bg, ref, []string{"user0@example.org"})
		require.NoError(t, err)
		assert.Equal(t, []Claim{ClaimUnknown}, claims, "the spool decides")
		require.NoError(t, e.Delivered(bg, ref, "d", Outcome{Recipient: "user0@example.org"}))
		_, err = f.store.Get(bg, HeadKey(f.cert))
		assert.ErrorIs(t, err, trackstore.ErrNotFound, "events do not resurrect the record")
		assert.Empty(t, f.shardItems())
	})
	t.Run("grown record, shard evicted", func(t *testing.T) {
		f := newFixture(t)
		m1 := f.engine("mta1")
		first := rcpts(InlineRecipients)
		f.accept(m1, "Q1", first)
		var more []AcceptedRecipient
		for i := 0; i < 40; i++ {
			more = append(more, AcceptedRecipient{Address: fmt.Sprintf("more%d@x.org", i)})
		}
		f.accept(f.engine("mta2"), "Q2", more, func(a *Accept) { a.Internal = true })
		lost := ShardOf(more[0].Address)
		require.NoError(t, f.store.Delete(bg, ShardKey(f.cert, lost)))
		rec := f.track(f.engine("reader"))
		assert.True(t, rec.Incomplete)
		assert.Equal(t, []int{lost}, rec.MissingShards)
		got := byAddr(rec)
		for _, r := range first {
			assert.Contains(t, got, r.Address, "inline recipients are in the head")
		}
		for _, r := range more {
			if ShardOf(r.Address) == lost {
				assert.NotContains(t, got, r.Address)
			} else {
				assert.Contains(t, got, r.Address)
			}
		}
	})
}
