package dsn_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/dsn"
)

// A permanent failure produces a DSN to the sender with the null
// reverse-path; a message from the null sender never gets one.
func ExampleBuild() {
	report := dsn.Report{
		ReportingMTA: "mx.example.net",
		Sender:       "alice@example.org",
		EnvID:        "QQ314159",
		Ret:          "HDRS",
		Date:         time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC),
		Recipients: []dsn.Recipient{{
			Addr: "bob@example.net", ORcpt: "rfc822;bob@example.net", Notify: "FAILURE",
			Action: dsn.Failed, Diagnostic: "550 5.1.1 no such user",
		}},
	}
	d, err := dsn.Build(report, strings.NewReader("Subject: hi\r\n\r\nbody\r\n"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("MAIL FROM:<%s> RCPT TO:<%s> reported %v\n", d.From, d.To, d.Reported)
	for _, line := range strings.Split(string(d.Message), "\r\n") {
		if strings.HasPrefix(line, "Status:") || strings.HasPrefix(line, "Original-Envelope-Id:") {
			fmt.Println(line)
		}
	}
	report.Sender = ""
	_, err = dsn.Build(report, nil)
	fmt.Println(errors.Is(err, dsn.ErrNullSender))
	// Output:
	// MAIL FROM:<> RCPT TO:<alice@example.org> reported [bob@example.net]
	// Original-Envelope-Id: QQ314159
	// Status: 5.1.1
	// true
}
