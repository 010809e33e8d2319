package received_test

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/received"
)

func ExampleField() {
	f := received.Field(received.Info{
		Helo: "client.example.org", RemoteIP: netip.MustParseAddr("192.0.2.7"),
		By: "mx.example.net", ESMTP: true, TLS: true, Auth: true,
		ID: "0123abcd", Rcpts: []string{"bob@example.net"},
		Time: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC),
	})
	fmt.Print(strings.ReplaceAll(f, "\r\n", "\n"))
	// Output:
	// Received: from client.example.org ([192.0.2.7]) by mx.example.net with ESMTPSA
	// 	id 0123abcd for <bob@example.net>; Sat, 01 Aug 2026 12:00:00 +0000
}

func ExampleCount() {
	msg := "Received: from a by b; Sat, 01 Aug 2026 12:00:00 +0000\r\n" +
		"Received: from c by a; Sat, 01 Aug 2026 11:59:00 +0000\r\n" +
		"Subject: hi\r\n\r\nbody\r\n"
	n, _ := received.Count(strings.NewReader(msg))
	fmt.Println(n, received.Check(n, 0))
	// Output: 2 <nil>
}
