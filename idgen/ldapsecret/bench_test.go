package ldapsecret

import (
	"context"
	"testing"
)

// BenchmarkLookupCold sends every lookup to slapd (cache disabled) over a
// reused connection.
func BenchmarkLookupCold(b *testing.B) {
	s := startSlapd(b, false)
	cfg := config(s)
	cfg.CacheSize = -1
	src := newSource(b, cfg)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.RecallSecret(ctx, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookupCached(b *testing.B) {
	s := startSlapd(b, false)
	src := newSource(b, config(s))
	ctx := context.Background()
	if _, err := src.RecallSecret(ctx, "alice"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.RecallSecret(ctx, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}
