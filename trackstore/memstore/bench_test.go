package memstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

var record = make([]byte, 1024)

func BenchmarkGetParallel(b *testing.B) {
	s := memstore.New(memstore.Options{})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("mt1:%d", i)
		if err := s.Set(ctx, keys[i], record, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1)) * 97
		for pb.Next() {
			if _, err := s.Get(ctx, keys[i%len(keys)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkCASParallel is one uncontended read-modify-write per iteration
// (each goroutine its own key): the engine's update path.
func BenchmarkCASParallel(b *testing.B) {
	s := memstore.New(memstore.Options{})
	var n atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprintf("mt1:g%d", n.Add(1))
		if err := s.Set(ctx, key, record, time.Hour); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			it, err := s.Get(ctx, key)
			if err == nil {
				err = s.CompareAndSwap(ctx, it, time.Hour)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCASContended: every goroutine updates one hot key, retrying
// on conflict.
func BenchmarkCASContended(b *testing.B) {
	s := memstore.New(memstore.Options{})
	const key = "mt1:hot"
	if err := s.Set(ctx, key, record, time.Hour); err != nil {
		b.Fatal(err)
	}
	var conflicts atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for {
				it, err := s.Get(ctx, key)
				if err != nil {
					b.Error(err)
					return
				}
				err = s.CompareAndSwap(ctx, it, time.Hour)
				if err == nil {
					break
				}
				conflicts.Add(1)
			}
		}
	})
	b.ReportMetric(float64(conflicts.Load())/float64(b.N), "conflicts/op")
}

func BenchmarkSetEvicting(b *testing.B) {
	// A full store: every Set evicts.
	s := memstore.New(memstore.Options{MaxBytes: 1 << 20, MaxValueSize: 4 << 10})
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = trackstore.SafeKey("mt1", fmt.Sprint(i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Set(ctx, keys[i%len(keys)], record, time.Hour); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
