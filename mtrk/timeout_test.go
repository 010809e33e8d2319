package mtrk

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestClamp(t *testing.T) {
	const s = time.Second
	custom := Limits{Default: 100 * s, Min: 50 * s, Max: 200 * s}
	tests := []struct {
		name    string
		l       Limits
		timeout time.Duration
		given   bool
		want    time.Duration
	}{
		{"absent gets default", DefaultLimits, 0, false, 259200 * s},
		{"absent ignores value", DefaultLimits, 5 * s, false, 259200 * s},
		{"below min raised", DefaultLimits, 60 * s, true, 86400 * s},
		{"zero raised", DefaultLimits, 0, true, 86400 * s},
		{"above max lowered", DefaultLimits, 999999999 * s, true, 1209600 * s},
		{"inside kept", DefaultLimits, 100000 * s, true, 100000 * s},
		{"at min kept", DefaultLimits, 86400 * s, true, 86400 * s},
		{"at max kept", DefaultLimits, 1209600 * s, true, 1209600 * s},
		{"zero limits mean defaults", Limits{}, 0, false, 259200 * s},
		{"custom default", custom, 0, false, 100 * s},
		{"custom min", custom, 10 * s, true, 50 * s},
		{"custom max", custom, 500 * s, true, 200 * s},
		{"partial limits", Limits{Max: 90000 * s}, 0, false, 90000 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.l.Clamp(tt.timeout, tt.given))
		})
	}
}

func TestRemaining(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name           string
		timeout, spent time.Duration
		want           time.Duration
		ok             bool
	}{
		{"nothing spent", 3600 * s, 0, 3600 * s, true},
		{"some spent", 3600 * s, 600 * s, 3000 * s, true},
		{"rounded down", 3600 * s, 1500 * time.Millisecond, 3598 * s, true},
		{"one second left", 3600 * s, 3599 * s, s, true},
		{"under a second left", 3600 * s, 3599*s + time.Millisecond, 0, false},
		{"exactly used up", 3600 * s, 3600 * s, 0, false},
		{"overspent", 3600 * s, 7200 * s, 0, false},
		{"negative spent counts as zero", 60 * s, -10 * s, 60 * s, true},
		{"zero timeout", 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Remaining(tt.timeout, tt.spent)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.ok, ok)
			if ok {
				// Whatever Remaining allows is a valid wire timeout.
				p := Param{Certifier: make(Certifier, 20), Timeout: got, TimeoutGiven: true}
				back, err := ParseParam(p.String())
				assert.NoError(t, err)
				assert.Equal(t, got, back.Timeout)
			}
		})
	}
}
