package mta_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/msgtrack/msgtrack/examples/refmta/mta"
)

// Example starts a reference MTA on free loopback ports with the in-memory
// store and stops it again.
func Example() {
	dir, _ := os.MkdirTemp("", "refmta-example-")
	defer os.RemoveAll(dir)
	m, err := mta.New(context.Background(), mta.Config{
		MXAddr: "127.0.0.1:0", SubmissionAddr: "127.0.0.1:0", MTQPAddr: "127.0.0.1:0",
		Hostname: "mx.example.test", Store: "memory",
		SpoolDir: filepath.Join(dir, "spool"), MaildirRoot: filepath.Join(dir, "maildir"),
		LocalDomains: []string{"example.test"},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	m.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(m.Hostname(), m.Addrs().MTQP != "", m.Shutdown(ctx))
	// Output: mx.example.test true <nil>
}
