package mtrk

import "time"

// Limits are a server's tracking timeout rules: the timeout applied when
// MTRK= has none, and the range others are clamped into. These are the
// product's trackingtimeoutdefault, trackingtimeoutmin and
// trackingtimeoutmax channel options.
type Limits struct {
	Default time.Duration
	Min     time.Duration
	Max     time.Duration
}

// DefaultLimits are the product's defaults: 3 days, 1 day, 14 days.
var DefaultLimits = Limits{
	Default: 259200 * time.Second,
	Min:     86400 * time.Second,
	Max:     1209600 * time.Second,
}

// Clamp returns the timeout to apply: l.Default when given is false, then
// silently raised to l.Min and lowered to l.Max (the product's semantics;
// RFC 3885 leaves the policy to the server). Zero fields of l mean the
// corresponding DefaultLimits value.
func (l Limits) Clamp(timeout time.Duration, given bool) time.Duration {
	l = l.withDefaults()
	if !given {
		timeout = l.Default
	}
	if timeout < l.Min {
		timeout = l.Min
	}
	if timeout > l.Max {
		timeout = l.Max
	}
	return timeout
}

func (l Limits) withDefaults() Limits {
	if l.Default == 0 {
		l.Default = DefaultLimits.Default
	}
	if l.Min == 0 {
		l.Min = DefaultLimits.Min
	}
	if l.Max == 0 {
		l.Max = DefaultLimits.Max
	}
	return l
}

// Remaining returns the timeout to pass to the next hop after spent time
// here, in whole seconds rounded down. ok is false when nothing is left: the
// relay must then not send MTRK at all (never MTRK=...:0).
func Remaining(timeout, spent time.Duration) (left time.Duration, ok bool) {
	if spent < 0 {
		spent = 0
	}
	left = (timeout - spent).Truncate(time.Second)
	if left < time.Second {
		return 0, false
	}
	return left, true
}
