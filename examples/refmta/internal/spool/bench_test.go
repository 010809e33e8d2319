package spool

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkPut measures a durable Put of a 4 KiB message: three fsyncs
// (body, envelope, directory) dominate, so the figure is the disk's.
func BenchmarkPut(b *testing.B) {
	s := openT(b, b.TempDir())
	body := strings.Repeat("x", 4096)
	env := testEnv("a@x", "b@x")
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := s.Put(ctx, env, strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaim measures one durable envelope rewrite (two fsyncs).
func BenchmarkClaim(b *testing.B) {
	s := openT(b, b.TempDir())
	ctx := context.Background()
	id, err := s.Put(ctx, testEnv("a@x"), strings.NewReader("x"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Update(ctx, id, func(e *Envelope) error { e.Recipients[0].State = Queued; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet measures the in-memory envelope lookup and copy.
func BenchmarkGet(b *testing.B) {
	s := openT(b, b.TempDir())
	var rcpts []string
	for i := 0; i < 10; i++ {
		rcpts = append(rcpts, fmt.Sprintf("r%d@x", i))
	}
	id, err := s.Put(context.Background(), testEnv(rcpts...), strings.NewReader("x"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(id); err != nil {
			b.Fatal(err)
		}
	}
}
