package tracking

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type spoolState int

const (
	spQueued spoolState = iota
	spDelivering
	spDelivered
	spRemoved
)

// fakeQueue is an MTA queue's spool: the authority on what may still go
// out. Remove withdraws only recipients that are not being or been sent.
type fakeQueue struct {
	mu    sync.Mutex
	spool map[string]map[string]spoolState
}

func newQueue(msgID string, addrs []string) *fakeQueue {
	q := &fakeQueue{spool: map[string]map[string]spoolState{msgID: {}}}
	for _, a := range addrs {
		q.spool[msgID][a] = spQueued
	}
	return q
}

func (q *fakeQueue) Remove(_ context.Context, msgID string, rcpts []string) ([]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, r := range rcpts {
		switch q.spool[msgID][r] {
		case spQueued, spRemoved:
			q.spool[msgID][r] = spRemoved
			out = append(out, r)
		}
	}
	return out, nil
}

func (q *fakeQueue) set(msgID, r string, s spoolState) {
	q.mu.Lock()
	q.spool[msgID][r] = s
	q.mu.Unlock()
}

// startDelivery moves a recipient to delivering in the spool unless the
// spool says it was removed.
func (q *fakeQueue) startDelivery(msgID, r string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.spool[msgID][r] != spQueued {
		return false
	}
	q.spool[msgID][r] = spDelivering
	return true
}

func (q *fakeQueue) state(msgID, r string) spoolState {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.spool[msgID][r]
}

func results(rep *RecallReport) map[string]RecallOutcome {
	m := make(map[string]RecallOutcome)
	for _, r := range rep.Results {
		m[r.Recipient] = r.Outcome
	}
	return m
}

func TestRecallHeldMessage(t *testing.T) {
	f := newFixture(t)
	rs := rcpts(30)
	q := newQueue("Q1", addrsOf(rs))
	e := f.engine("mta1", func(o *Options) { o.Queue = q })
	ref := f.accept(e, "Q1", rs, func(a *Accept) { a.HoldUntil = f.clock.Now().Add(3600e9) })
	rep, err := e.Recall(bg, f.envid, f.secret)
	require.NoError(t, err)
	assert.Equal(t, map[RecallOutcome]int{RecallRecalled: 30}, rep.Outcomes())
	for _, a := range addrsOf(rs) {
		assert.Equal(t, spRemoved, q.state("Q1", a))
	}
	rec := f.track(e)
	assert.False(t, rec.RecallRequested.IsZero())
	for _, r := range rec.Recipients {
		assert.Equal(t, StateRecalled, r.Action)
		assert.Equal(t, ActionFailed, r.Action.RFCAction())
	}
	// After release the queue asks before delivering and is told no.
	claims, err := e.BeginDelivery(bg, ref, addrsOf(rs)[:2])
	require.NoError(t, err)
	assert.Equal(t, []Claim{ClaimRecalled, ClaimRecalled}, claims)
	// Recalling again reports the same.
	rep, err = e.Recall(bg, f.envid, f.secret)
	require.NoError(t, err)
	assert.Equal(t, map[RecallOutcome]int{RecallRecalled: 30}, rep.Outcomes())
}

func TestRecallOutcomesPerState(t *testing.T) {
	f := newFixture(t)
	names := []string{"queued", "delivering", "delivered", "failed", "relayed", "xfer-ext", "xfer-int", "list", "alias"}
	var rs []AcceptedRecipient
	for _, n := range names {
		rs = append(rs, AcceptedRecipient{Address: n + "@x.org"})
	}
	q := newQueue("Q1", addrsOf(rs))
	e := f.engine("mta1", func(o *Options) { o.Queue = q })
	ref := f.accept(e, "Q1", rs)
	a := func(n string) string { return n + "@x.org" }
	_, err := e.BeginDelivery(bg, ref, []string{a("delivering"), a("delivered"), a("failed"), a("relayed"), a("xfer-ext"), a("xfer-int")})
	require.NoError(t, err)
	for _, n := range []string{"delivering", "delivered", "failed", "relayed", "xfer-ext", "xfer-int"} {
		q.set("Q1", a(n), spDelivering)
	}
	require.NoError(t, e.Delivered(bg, ref, "1", Outcome{Recipient: a("delivered")}))
	require.NoError(t, e.Failed(bg, ref, "2", Outcome{Recipient: a("failed")}))
	require.NoError(t, e.Relayed(bg, ref, "3", Outcome{Recipient: a("relayed")}))
	require.NoError(t, e.Transferred(bg, ref, "4", false, Outcome{Recipient: a("xfer-ext")}))
	require.NoError(t, e.Transferred(bg, ref, "5", true, Outcome{Recipient: a("xfer-int")}))
	require.NoError(t, e.Expanded(bg, ref, "6", a("list"), true, []Child{{"m@y.org", true}}))
	require.NoError(t, e.Expanded(bg, ref, "7", a("alias"), false, []Child{{"c1@x.org", true}, {"c2@x.org", false}}))
	q.set("Q1", "c1@x.org", spQueued)

	rep, err := e.Recall(bg, f.envid, f.secret)
	require.NoError(t, err)
	assert.Equal(t, map[string]RecallOutcome{
		a("queued"):     RecallRecalled,
		a("delivering"): RecallInProgress,
		a("delivered"):  RecallTooLate,
		a("failed"):     RecallTooLate,
		a("relayed"):    RecallTooLate,
		a("xfer-ext"):   RecallTooLate,
		a("xfer-int"):   RecallPending, // waiting for the next internal hop
		a("list"):       RecallNotRecallable,
		"c1@x.org":      RecallRecalled,
		"c2@x.org":      RecallNotRecallable,
	}, results(rep))
}

func TestRecallFollowsInternalHop(t *testing.T) {
	f := newFixture(t)
	m1 := f.engine("mta1")
	q2 := newQueue("Q2", []string{"r@x.org"})
	m2 := f.engine("mta2", func(o *Options) { o.Queue = q2 })
	ref1 := f.accept(m1, "Q1", []AcceptedRecipient{{Address: "r@x.org"}})
	_, err := m1.BeginDelivery(bg, ref1, []string{"r@x.org"})
	require.NoError(t, err)
	require.NoError(t, m1.Transferred(bg, ref1, "t", true, Outcome{Recipient: "r@x.org", RemoteMTA: "dns; mta2"}))
	// The recall arrives while the message is between the two MTAs.
	rep, err := m1.Recall(bg, f.envid, f.secret)
	require.NoError(t, err)
	assert.Equal(t, RecallPending, results(rep)["r@x.org"])
	// mta2 accepts it: it takes the recipient over already claimed for recall.
	ref2 := f.accept(m2, "Q2", []AcceptedRecipient{{Address: "r@x.org"}}, func(a *Accept) { a.Internal = true })
	claims, err := m2.BeginDelivery(bg, ref2, []string{"r@x.org"})
	require.NoError(t, err)
	assert.Equal(t, []Claim{ClaimRecalled}, claims)
	removed, err := q2.Remove(bg, "Q2", []string{"r@x.org"})
	require.NoError(t, err)
	require.NoError(t, m2.Recalled(bg, ref2, "rc", removed...))
	rep, err = m1.Recall(bg, f.envid, f.secret)
	require.NoError(t, err)
	assert.Equal(t, RecallRecalled, results(rep)["r@x.org"])
}

func TestRecallCrossMTAPending(t *testing.T) {
	f := newFixture(t)
	rs := rcpts(5)
	qa := newQueue("QA", addrsOf(rs))
	owner := f.engine("mta-a", func(o *Options) { o.Queue = qa })
	other := f.engine("mtqp-host") // runs the MTQP server, owns no queue
	ref := f.accept(owner, "QA", rs, func(a *Accept) { a.HoldUntil = f.clock.Now().Add(86400e9) })

	rep, err := other.Recall(bg, f.envid, f.secret)
	require.NoError(t, err)
	assert.Equal(t, map[RecallOutcome]int{RecallPending: 5}, rep.Outcomes(), "nothing is recalled until the owner removes it")
	for _, a := range addrsOf(rs) {
		assert.Equal(t, spQueued, qa.state("QA", a))
	}
	// The owner polls its held messages.
	pending, err := owner.PendingRecall(bg, ref)
	require.NoError(t, err)
	assert.ElementsMatch(t, addrsOf(rs), pending)
	removed, err := qa.Remove(bg, "QA", pending)
	require.NoError(t, err)
	require.NoError(t, owner.Recalled(bg, ref, "rc-1", removed...))
	rep, err = other.Recall(bg, f.envid, f.secret)
	require.NoError(t, err)
	assert.Equal(t, map[RecallOutcome]int{RecallRecalled: 5}, rep.Outcomes())
	pending, err = owner.PendingRecall(bg, ref)
	require.NoError(t, err)
	assert.Empty(t, pending)
}

// TestRecallQueueIsAuthority: the store forgot a delivery (fail-open), so
// the record says queued while the spool is sending it. The recall must
// not report it recalled, and gives its claim back.
func TestRecallQueueIsAuthority(t *testing.T) {
	f := newFixture(t)
	q := newQueue("Q1", []string{"r@x.org"})
	e := f.engine("mta1", func(o *Options) { o.Queue = q })
	ref := f.accept(e, "Q1", []AcceptedRecipient{{Address: "r@x.org"}})
	q.set("Q1", "r@x.org", spDelivering)
	rep, err := e.Recall(bg, f.envid, f.secret)
	require.NoError(t, err)
	assert.Equal(t, RecallInProgress, results(rep)["r@x.org"])
	assert.Equal(t, StateQueued, f.track(e).Recipients[0].Action)
	claims, err := e.BeginDelivery(bg, ref, []string{"r@x.org"})
	require.NoError(t, err)
	assert.Equal(t, []Claim{ClaimProceed}, claims)
}

// TestRecallRacesDelivery delivers many recipients from several workers
// while recalls run from this MTA and from another one, and checks that no
// recipient is both delivered and reported recalled.
// TestRecallRacesDelivery runs deliveries and three recalls (two through
// the owning MTA's engine, one through another) against each other and
// checks that no recipient is both delivered and reported recalled. So
// that a run proves something, both outcomes must occur, without timed
// assertions: the first third of the recipients is delivered before any
// recall starts; the middle third is handed to the delivery workers
// while the recalls run (all released together by a barrier); the last
// third only after a recall has returned, by which time it has claimed
// them, so the workers must find them recalled.
func TestRecallRacesDelivery(t *testing.T) {
	for round := 0; round < 5; round++ {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			f := newFixture(t)
			rs := rcpts(300)
			addrs := addrsOf(rs)
			early, middle, late := addrs[:100], addrs[100:200], addrs[200:]
			q := newQueue("Q1", addrs)
			local := f.engine("mta1", func(o *Options) { o.Queue = q })
			remote := f.engine("mtqp")
			ref := f.accept(local, "Q1", rs)

			var mu sync.Mutex
			delivered := map[string]bool{}
			claimedRecalled := map[string]bool{}
			violations := 0
			type job struct {
				addr string
				done *sync.WaitGroup
			}
			work := make(chan job)
			var wg sync.WaitGroup
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range work {
						a := j.addr
						claims, err := local.BeginDelivery(bg, ref, []string{a})
						if assert.NoError(t, err) {
							switch claims[0] {
							case ClaimProceed:
								if !q.startDelivery("Q1", a) {
									mu.Lock()
									violations++ // claimed for delivery but the spool says removed
									mu.Unlock()
									break
								}
								mu.Lock()
								delivered[a] = true
								mu.Unlock()
								q.set("Q1", a, spDelivered)
								assert.NoError(t, local.Delivered(bg, ref, "d-"+a, Outcome{Recipient: a}))
							case ClaimRecalled:
								mu.Lock()
								claimedRecalled[a] = true
								mu.Unlock()
								removed, _ := q.Remove(bg, "Q1", []string{a})
								assert.NoError(t, local.Recalled(bg, ref, "r-"+a, removed...))
							default:
								t.Errorf("unexpected claim %v for %s", claims[0], a)
							}
						}
						j.done.Done()
					}
				}()
			}
			feed := func(as []string) *sync.WaitGroup {
				var done sync.WaitGroup
				done.Add(len(as))
				for _, a := range as {
					work <- job{a, &done}
				}
				return &done
			}

			// Phase 1: no recall yet, so these are delivered.
			feed(early).Wait()

			// Phase 2: the recalls and the middle third start together.
			start := make(chan struct{})
			oneRecalled := make(chan struct{})
			var once sync.Once
			reports := make(chan *RecallReport, 3)
			var rwg sync.WaitGroup
			for _, e := range []*Engine{local, remote, local} {
				rwg.Add(1)
				go func() {
					defer rwg.Done()
					<-start
					rep, err := e.Recall(bg, f.envid, f.secret)
					if assert.NoError(t, err) {
						reports <- rep
					}
					once.Do(func() { close(oneRecalled) })
				}()
			}
			close(start)
			middleDone := feed(middle)

			// Phase 3: a recall has claimed every recipient still queued,
			// so the late third must come back recalled.
			<-oneRecalled
			lateDone := feed(late)
			middleDone.Wait()
			lateDone.Wait()
			close(work)
			wg.Wait()
			rwg.Wait()
			close(reports)
			// A final recall after everything settled.
			final, err := local.Recall(bg, f.envid, f.secret)
			require.NoError(t, err)
			all := []*RecallReport{final}
			for r := range reports {
				all = append(all, r)
			}
			assert.Zero(t, violations)
			nDelivered, nRecalled := 0, 0
			for _, rep := range all {
				for _, res := range rep.Results {
					if res.Outcome == RecallRecalled {
						assert.False(t, delivered[res.Recipient], "%s delivered and reported recalled", res.Recipient)
						assert.Equal(t, spRemoved, q.state("Q1", res.Recipient))
					}
				}
			}
			for _, res := range final.Results {
				switch res.Outcome {
				case RecallRecalled:
					nRecalled++
				case RecallTooLate:
					nDelivered++
					assert.True(t, delivered[res.Recipient])
				default:
					t.Errorf("after settling, %s is %s", res.Recipient, res.Outcome)
				}
			}
			assert.Equal(t, len(addrs), nDelivered+nRecalled)
			// Both outcomes occurred, each where the schedule forces it.
			for _, a := range early {
				assert.True(t, delivered[a], "%s was delivered before any recall", a)
			}
			for _, a := range late {
				assert.False(t, delivered[a], "%s was handed to delivery after a recall", a)
				assert.True(t, claimedRecalled[a], "%s: BeginDelivery did not say recalled", a)
			}
			assert.GreaterOrEqual(t, nDelivered, len(early))
			assert.GreaterOrEqual(t, nRecalled, len(late))
			t.Logf("delivered %d, recalled %d (middle third: %d delivered)", nDelivered, nRecalled, nDelivered-len(early))
		})
	}
}
