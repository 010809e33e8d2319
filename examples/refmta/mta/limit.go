package mta

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the per-address session rate limit.
const (
	DefaultSessionRate  = 10 // sessions per second per client address
	DefaultSessionBurst = 20
	maxLimiters         = 10000
)

// limiter bounds the rate of new SMTP sessions per client IP address, so
// that one client cannot monopolise the listeners (the connection cap of
// smtpext bounds the total). The map is bounded: when it is full, buckets
// that have refilled completely (idle clients) are forgotten first, and if
// none has, the whole map is reset.
type limiter struct {
	mu     sync.Mutex
	every  rate.Limit
	burst  int
	byAddr map[string]*rate.Limiter
}

func newLimiter(perSecond float64, burst int) *limiter {
	if perSecond == 0 {
		perSecond = DefaultSessionRate
	}
	if burst == 0 {
		burst = DefaultSessionBurst
	}
	l := rate.Limit(perSecond)
	if perSecond < 0 {
		l = rate.Inf
	}
	return &limiter{every: l, burst: burst, byAddr: map[string]*rate.Limiter{}}
}

// allow reports whether a new session from addr may start now.
func (l *limiter) allow(addr net.Addr) bool {
	if l == nil || l.every == rate.Inf || addr == nil {
		return true
	}
	host := addr.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byAddr[host]
	if !ok {
		if len(l.byAddr) >= maxLimiters {
			now := time.Now()
			for k, v := range l.byAddr {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.byAddr, k)
				}
			}
			if len(l.byAddr) >= maxLimiters {
				l.byAddr = map[string]*rate.Limiter{}
			}
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.byAddr[host] = lim
	}
	return lim.Allow()
}
