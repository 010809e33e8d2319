package idgen

import (
	"context"
	"testing"
)

func BenchmarkGenerateSHA1(b *testing.B) {
	g := New(Options{Source: StaticSource{"alice": []byte(vecGeneral)}})
	in := Input{User: "alice", MessageID: " " + vecMID, Date: " " + vecDate}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := g.Generate(ctx, in)
		if err != nil || res.Path != PathSHA1 {
			b.Fatal(res, err)
		}
	}
}

func BenchmarkGenerateMD4(b *testing.B) {
	g := New(Options{})
	in := Input{MessageID: " " + vecMID, Date: " " + vecDate, UniqueID: "4F3a9Zq1@mx1.example.com"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := g.Generate(ctx, in)
		if err != nil || res.Path != PathMD4 {
			b.Fatal(res, err)
		}
	}
}

func BenchmarkGenerateMD4RandomID(b *testing.B) {
	g := New(Options{})
	in := Input{MessageID: " " + vecMID}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Generate(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalFolded(b *testing.B) {
	v := " Sat, 1 Aug 2026\r\n\t12:34:56   +0200\r\n"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonical(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkComputeSecret(b *testing.B) {
	g := []byte(vecGeneral)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ComputeSecret(vecMID, vecDate, g); err != nil {
			b.Fatal(err)
		}
	}
}
