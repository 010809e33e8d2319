package tracking

import (
	"encoding/xml"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/msgtrack/msgtrack/mtrk"
)

func TestLogFields(t *testing.T) {
	cert := mtrk.Certifier([]byte("0123456789abcdefghij"))
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	info := LogInfo{Certifier: cert, Timeout: 259200 * time.Second, ReleaseAt: now.Add(90*time.Minute + 500*time.Millisecond), Now: now}
	mt := cert.String() + ":259200"
	line := []string{"date", "channel", "envid", "deferred", "uid", "next"}
	tests := []struct {
		name   string
		cfg    LogConfig
		place  LogPlace
		fields []string
	}{
		{"off", LogConfig{}, PlaceTransaction, line},
		{"tracking bit 0 in transaction", LogConfig{Tracking: LogTransaction}, PlaceTransaction,
			[]string{"date", "channel", "envid", mt, "deferred", "uid", "next"}},
		{"tracking bit 0 not in probe", LogConfig{Tracking: LogTransaction}, PlaceProbe, line},
		{"tracking bit 1 in probe", LogConfig{Tracking: LogProbe}, PlaceProbe,
			[]string{"date", "channel", "envid", mt, "deferred", "uid", "next"}},
		{"future release bit 0", LogConfig{FutureRelease: LogTransaction}, PlaceTransaction,
			[]string{"date", "channel", "envid", "deferred", "uid", "5400", "next"}},
		{"both, both places", LogConfig{Tracking: 3, FutureRelease: 3}, PlaceProbe,
			[]string{"date", "channel", "envid", mt, "deferred", "uid", "5400", "next"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.fields, tc.cfg.Fields(tc.place, line, 2, 4, info))
		})
	}
	all := LogConfig{Tracking: LogTransaction, FutureRelease: LogTransaction}
	assert.Equal(t, []xml.Attr{{Name: xml.Name{Local: "mt"}, Value: mt}, {Name: xml.Name{Local: "fr"}, Value: "5400"}}, all.XMLAttrs(info))
	assert.Equal(t, []slog.Attr{slog.String("mt", mt), slog.String("fr", "5400")}, all.SlogAttrs(info))
	assert.Empty(t, all.XMLAttrs(LogInfo{}), "untracked, no hold: no attributes")
	assert.Equal(t, "0", FutureReleaseField(now.Add(-time.Hour), now))
	assert.Equal(t, []string{"a"}, all.Fields(PlaceTransaction, []string{"a"}, 5, -1, info), "out-of-range index: nothing inserted")
}

func BenchmarkLogFields(b *testing.B) {
	cert := mtrk.Certifier([]byte("0123456789abcdefghij"))
	cfg := LogConfig{Tracking: 3, FutureRelease: 3}
	now := time.Now()
	info := LogInfo{Certifier: cert, Timeout: time.Hour, ReleaseAt: now.Add(time.Hour), Now: now}
	line := []string{"date", "channel", "envid", "deferred", "uid", "next"}
	b.ReportAllocs()
	for b.Loop() {
		_ = cfg.Fields(PlaceTransaction, line, 2, 4, info)
	}
}
