package spool_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/spool"
)

// A message is accepted (Put returns: reply 250), one recipient is
// recalled, the other is claimed for delivery; a recall then comes too
// late for it.
func Example() {
	dir, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := spool.Open(ctx, dir, spool.Options{})
	if err != nil {
		panic(err)
	}
	id, err := s.Put(ctx, &spool.Envelope{
		From:       "alice@example.org",
		Recipients: []spool.Recipient{{Addr: "bob@example.net"}, {Addr: "carol@example.net"}},
	}, strings.NewReader("Subject: hello\r\n\r\nHi.\r\n"))
	if err != nil {
		panic(err)
	}
	recalled, _ := s.Recall(ctx, id, []string{"bob@example.net"})
	fmt.Println("recalled:", recalled)
	ok, _ := s.Claim(ctx, id, "carol@example.net")
	fmt.Println("claimed carol:", ok)
	recalled, _ = s.Recall(ctx, id, []string{"carol@example.net"})
	fmt.Println("recalled carol:", recalled)
	env, _ := s.Get(id)
	for _, r := range env.Recipients {
		fmt.Println(r.Addr, r.State)
	}
	// Output:
	// recalled: [bob@example.net]
	// claimed carol: true
	// recalled carol: []
	// bob@example.net recalled
	// carol@example.net delivering
}
