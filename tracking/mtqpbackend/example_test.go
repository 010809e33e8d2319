package mtqpbackend_test

import (
	"fmt"

	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/mtqpbackend"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// Serving an engine's records over MTQP: the adapter is the server's
// Backend. Call srv.ListenAndServe (port 1038) or srv.Serve(listener).
func ExampleNew() {
	engine := tracking.New(memstore.New(memstore.Options{}), tracking.Options{ReportingMTA: "mx.example.com"})
	srv := &mtqp.Server{
		Backend: mtqpbackend.New(engine, mtqpbackend.Options{ReportingMTA: "mx.example.com"}),
		Addr:    ":1038",
		Domain:  "mx.example.com",
	}
	fmt.Println(srv.Addr)
	// Output: :1038
}

// DefaultStatus gives the RFC 3463 code a report shows when a recipient's
// record has none.
func ExampleDefaultStatus() {
	fmt.Println(mtqpbackend.DefaultStatus(tracking.ActionRelayed))
	fmt.Println(mtqpbackend.DefaultStatus(tracking.StateQueued))
	// Output:
	// 2.1.9
	// 4.0.0
}
