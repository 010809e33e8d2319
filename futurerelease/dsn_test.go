package futurerelease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHoldDSNValue(t *testing.T) {
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	l := Limits{MaxInterval: 48 * time.Hour}
	for _, tc := range []struct {
		name  string
		param MailParam
		want  string
	}{
		{"holdfor", MailParam{Name: "holdfor", Value: "3600"}, "for;3600"},
		{"holdfor zero", MailParam{Name: HoldFor, Value: "0"}, "for;0"},
		{"holduntil", MailParam{Name: HoldUntil, Value: "2026-08-02T00:00:00Z"}, "until;2026-08-02T00:00:00Z"},
		{"holduntil offset is written in UTC", MailParam{Name: HoldUntil, Value: "2026-08-02T02:00:00+02:00"}, "until;2026-08-02T00:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, present, err := Validate([]MailParam{tc.param}, l, now)
			require.NoError(t, err)
			require.True(t, present)
			assert.Equal(t, tc.want, h.DSNValue())
		})
	}
	assert.Equal(t, "", Hold{}.DSNValue(), "no hold, no field")
	assert.Equal(t, "Future-Release-Request", DSNField)
}
