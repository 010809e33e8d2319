package memcachestore_test

import (
	"context"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
)

// BenchmarkMemcached runs raw gomemcache and the Store side by side on
// one real memcached, with the same 1 KiB value and connection settings,
// so that store/raw is the cost of the wrapper. "store" passes
// context.Background(); "store-ctx" a context with a deadline later than
// the call's bound (the usual case, run on the caller's goroutine);
// "store-async" one with a deadline inside the bound, which takes the
// goroutine path that lets a call return when its context ends.
func BenchmarkMemcached(b *testing.B) {
	m := testenv.StartMemcached(b)
	raw := memcache.New(m.Addr)
	raw.Timeout = 5 * time.Second
	raw.MaxIdleConns = memcachestore.DefaultMaxIdleConns
	s, err := memcachestore.New(memcachestore.Options{Servers: []string{m.Addr}, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	// Its bound (2 h) is after dctx's deadline: every call goes async.
	slow, err := memcachestore.New(memcachestore.Options{Servers: []string{m.Addr}, Timeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(); _ = slow.Close(); _ = raw.Close() })
	value := make([]byte, 1024)
	key := trackstore.SafeKey("mt1", "bench-record")
	if err := s.Set(context.Background(), key, value, time.Hour); err != nil {
		b.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	type variant struct {
		s   *memcachestore.Store
		ctx context.Context
	}
	variants := map[string]variant{
		"store":       {s, context.Background()},
		"store-ctx":   {s, dctx},
		"store-async": {slow, dctx},
	}
	names := []string{"store", "store-ctx", "store-async"}

	b.Run("Get/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := raw.Get(key); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, name := range names {
		s, ctx := variants[name].s, variants[name].ctx
		b.Run("Get/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("Set/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := raw.Set(&memcache.Item{Key: key, Value: value, Expiration: 3600}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, name := range names {
		s, ctx := variants[name].s, variants[name].ctx
		b.Run("Set/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Set(ctx, key, value, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("GetCAS/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			it, err := raw.Get(key)
			if err == nil {
				it.Expiration = 3600
				err = raw.CompareAndSwap(it)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, name := range names {
		s, ctx := variants[name].s, variants[name].ctx
		b.Run("GetCAS/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				it, err := s.Get(ctx, key)
				if err == nil {
					err = s.CompareAndSwap(ctx, it, time.Hour)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
