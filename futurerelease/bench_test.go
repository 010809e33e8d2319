package futurerelease

import (
	"testing"
	"time"
)

func BenchmarkParseAdvertisement(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAdvertisement("FUTURERELEASE 86400 2026-08-03T00:00:00Z"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAdvertisementString(b *testing.B) {
	a := Advertisement{MaxInterval: 86400 * time.Second, MaxDateTime: maxDT}
	b.ReportAllocs()
	for b.Loop() {
		_ = a.String()
	}
}

func BenchmarkParseHoldFor(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHoldFor("86400"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHoldUntil(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHoldUntil("2026-08-03T00:00:00.5+02:00"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTimeParseRFC3339(b *testing.B) {
	// The standard library, for comparison.
	b.ReportAllocs()
	for b.Loop() {
		if _, err := time.Parse(time.RFC3339Nano, "2026-08-03T00:00:00.5+02:00"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatDateTime(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = FormatDateTime(maxDT)
	}
}

func BenchmarkValidate(b *testing.B) {
	params := []MailParam{{"BODY", "8BITMIME"}, {"ENVID", "x"}, {"MTRK", "y"}, {"HOLDUNTIL", "2026-08-02T18:00:00Z"}}
	l := Limits{MaxInterval: 24 * time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Validate(params, l, now); err != nil {
			b.Fatal(err)
		}
	}
}
