package scheduler

import (
	"sync"
	"time"
)

// Clock is the scheduler's source of time. Timers are set for an absolute
// instant, so a fake clock that moves between the scheduler reading Now and
// setting its timer cannot make the timer late.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// TimerAt returns a timer that fires once at or after t.
	TimerAt(t time.Time) Timer
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	// C delivers the time when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

// RealClock returns the Clock backed by package time.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) TimerAt(t time.Time) Timer { return realTimer{time.NewTimer(time.Until(t))} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// FakeClock is a manually advanced Clock for tests. Its zero value is not
// usable; call NewFakeClock.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*fakeTimer]bool
	changed chan struct{} // closed and replaced whenever timers change
}

// NewFakeClock returns a FakeClock showing t.
func NewFakeClock(t time.Time) *FakeClock {
	return &FakeClock{now: t, timers: map[*fakeTimer]bool{}, changed: make(chan struct{})}
}

type fakeTimer struct {
	c     chan time.Time
	at    time.Time
	clock *FakeClock
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	live := f.timers[t]
	delete(f.timers, t)
	f.signal()
	return live
}

// signal wakes WaitForTimer callers; f.mu must be held.
func (f *FakeClock) signal() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Now implements Clock.
func (f *FakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// TimerAt implements Clock. A timer for a time not after Now fires at once.
func (f *FakeClock) TimerAt(at time.Time) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: at, clock: f}
	if !at.After(f.now) {
		t.c <- f.now
	} else {
		f.timers[t] = true
	}
	f.signal()
	return t
}

// Advance moves the clock forward by d and fires the timers that are due.
func (f *FakeClock) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never backwards) and fires the timers that are
// due.
func (f *FakeClock) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.now) {
		f.now = t
	}
	for ft := range f.timers {
		if !ft.at.After(f.now) {
			ft.c <- f.now
			delete(f.timers, ft)
		}
	}
	f.signal()
}

// WaitForTimer blocks until a pending timer is set for exactly at, and
// reports whether one was; it gives up after limit (a guard against a hung
// test, not a measurement). A scheduler sets its timer only when it has
// nothing left to do before that instant, so this is how a test knows the
// scheduler is idle until then.
func (f *FakeClock) WaitForTimer(at time.Time, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		for ft := range f.timers {
			if ft.at.Equal(at) {
				f.mu.Unlock()
				return true
			}
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}
