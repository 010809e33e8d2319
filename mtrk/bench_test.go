package mtrk

import (
	"testing"
	"time"
)

func BenchmarkParseParam(b *testing.B) {
	v := sha1Cert + ":86400"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseParam(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseParamInvalid(b *testing.B) {
	v := sha1Cert + ":1234567890"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseParam(v); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkParseCertifier(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCertifier(sha1Cert); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSecret(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSecret(sha1Cert); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParamString(b *testing.B) {
	p := Param{Certifier: make(Certifier, 20), Timeout: 86400 * time.Second, TimeoutGiven: true}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.String()
	}
}

func BenchmarkVerify(b *testing.B) {
	s, err := NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	c := s.Certifier()
	b.ReportAllocs()
	for b.Loop() {
		if !c.Verify(s) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkOffered(b *testing.B) {
	ext := []string{"PIPELINING", "8BITMIME", "SIZE 10240000", "DSN", "ENHANCEDSTATUSCODES", "MTRK"}
	b.ReportAllocs()
	for b.Loop() {
		if !Offered(ext...) {
			b.Fatal("not offered")
		}
	}
}
