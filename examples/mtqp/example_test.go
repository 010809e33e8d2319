package main

import (
	"context"
	"fmt"
	"os"
)

// A usage mistake is reported on one line and ends with exit status 2,
// before anything is sent.
func Example() {
	code := run(context.Background(), []string{"track", "-server", "mx.example.com", "-envid", "e1"}, os.Stdout, os.Stdout)
	fmt.Println("exit status", code)
	// Output:
	// mtqp track: no secret: give -secret, -secret-file, or -message-id (or -message) with -general-secret (or -general-secret-file)
	// exit status 2
}

// The -allow policy of -follow: exact names, addresses and "*.domain"
// patterns, which match only names below the domain.
func Example_allow() {
	a, err := parseAllow("mx2.example.com,*.example.net")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range []string{"MX2.example.com.", "relay.example.net", "example.net", "mx2.example.com.evil.test"} {
		fmt.Println(h, a.Allows(h))
	}
	// Output:
	// MX2.example.com. true
	// relay.example.net true
	// example.net false
	// mx2.example.com.evil.test false
}
