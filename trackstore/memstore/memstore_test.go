package memstore_test

import (
	"testing"

	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
	"github.com/msgtrack/msgtrack/trackstore/trackstoretest"
)

func TestConformance(t *testing.T) {
	trackstoretest.Run(t, func(t *testing.T) trackstore.Store {
		return memstore.New(memstore.Options{})
	})
}

func TestConformanceSmall(t *testing.T) {
	// A small store with small values: one shard, eviction close by.
	trackstoretest.Run(t, func(t *testing.T) trackstore.Store {
		return memstore.New(memstore.Options{MaxBytes: 64 << 10, MaxValueSize: 4 << 10})
	})
}
