package memcachestore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
)

func ExampleNew() {
	// Every MTA of the deployment lists the same servers in the same order.
	s, err := memcachestore.New(memcachestore.Options{
		Servers:      []string{"10.0.0.5:11211", "10.0.0.6:11211"},
		Timeout:      300 * time.Millisecond,
		MaxIdleConns: 32,
		// memcached runs with -I 2m here.
		MaxValueSize: memcachestore.ValueSizeFor(2 << 20),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	key := trackstore.SafeKey("mt1", "tracking-id")
	if err := s.Add(ctx, key, []byte("record"), 72*time.Hour); err != nil {
		// ErrUnavailable: the outcome is unknown; the MTA carries on.
		fmt.Println("store:", err)
	}
}

func ExampleExpiration() {
	now := time.Unix(1_800_000_000, 0)
	fmt.Println(memcachestore.Expiration(72*time.Hour, now))    // relative seconds
	fmt.Println(memcachestore.Expiration(31*24*time.Hour, now)) // absolute Unix time
	// Output:
	// 259200
	// 1802678400
}
