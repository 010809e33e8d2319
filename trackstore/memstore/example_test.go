package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

func ExampleNew() {
	s := memstore.New(memstore.Options{}) // 64 MiB, 1 MiB values
	ctx := context.Background()
	key := trackstore.SafeKey("mt1", "tracking-id")

	_ = s.Add(ctx, key, []byte("v1"), time.Hour)
	it, _ := s.Get(ctx, key)

	// Optimistic update: swap only if nobody wrote in between.
	it.Value = []byte("v2")
	fmt.Println(s.CompareAndSwap(ctx, it, time.Hour))
	it.Value = []byte("v3") // it.Version is stale now
	fmt.Println(errors.Is(s.CompareAndSwap(ctx, it, time.Hour), trackstore.ErrConflict))
	// Output:
	// <nil>
	// true
}
