package mtqp

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter keeps one token bucket per client address. A failed query
// (ErrNotFound) takes a token; a query is refused while the bucket is
// empty. Successful queries cost nothing, so legitimate users are not
// slowed, while guessing secrets is held to the refill rate.
//
// The map is bounded: when it is full, entries whose bucket has refilled
// completely (they hold no information) are dropped, and if none has, the
// least recently failed entry is.
type failureLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	entries map[string]*limEntry
}

type limEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func newFailureLimiter(limit rate.Limit, burst, max int) *failureLimiter {
	return &failureLimiter{limit: limit, burst: burst, max: max, entries: make(map[string]*limEntry)}
}

// allowed reports whether the address may query now.
func (f *failureLimiter) allowed(addr string, now time.Time) bool {
	if f == nil {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entries[addr]
	return e == nil || e.lim.TokensAt(now) >= 1
}

// fail records a failed query from the address.
func (f *failureLimiter) fail(addr string, now time.Time) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entries[addr]
	if e == nil {
		if len(f.entries) >= f.max {
			f.evict(now)
		}
		e = &limEntry{lim: rate.NewLimiter(f.limit, f.burst)}
		f.entries[addr] = e
	}
	e.last = now
	e.lim.AllowN(now, 1)
}

// evict frees room; called with mu held.
func (f *failureLimiter) evict(now time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, e := range f.entries {
		if e.lim.TokensAt(now) >= float64(f.burst) {
			delete(f.entries, k)
			continue
		}
		if oldestKey == "" || e.last.Before(oldest) {
			oldestKey, oldest = k, e.last
		}
	}
	if len(f.entries) >= f.max && oldestKey != "" {
		delete(f.entries, oldestKey)
	}
}

func (f *failureLimiter) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}
