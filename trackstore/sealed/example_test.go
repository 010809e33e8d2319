package sealed_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"

	"github.com/msgtrack/msgtrack/trackstore/memstore"
	"github.com/msgtrack/msgtrack/trackstore/sealed"
)

func ExampleNew() {
	// In a deployment the secrets come from configuration, the same on
	// every MTA; here they are random.
	newKey, oldKey := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(newKey)
	_, _ = rand.Read(oldKey)
	s, err := sealed.New(memstore.New(memstore.Options{}),
		sealed.Key{ID: 2, Secret: newKey}, // seals
		sealed.Key{ID: 1, Secret: oldKey}, // still opens older records
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	_ = s.Set(ctx, "mt1:abc", []byte("recipients..."), 0)
	it, _ := s.Get(ctx, "mt1:abc")
	fmt.Println(string(it.Value))
	// Output: recipients...
}
