// Package faults holds the library's fault and load tests: whole stacks
// (go-smtp behind smtpext and the tracking middleware, the tracking engine
// on memcached, the MTQP server of RFC 3887 over it, trackinggenerate with
// an LDAP secret source) run against real memcached and slapd processes
// while those are killed, slowed down or fed hostile input.
//
// What the tests prove, each in its name:
//
//   - a memcached restart while mail flows loses no message answered 250
//     (the middleware is fail-open, tracking/gosmtp "Failure modes"), the gap
//     shows as warnings in the log, and messages after the restart are
//     tracked again;
//   - with slapd down, trackinggenerate falls back to the MD4 path (package
//     idgen, "Failure never stops mail") and mail flows;
//   - a store that answers too slowly makes the SMTP path give up at its
//     StoreTimeout (the message is still accepted) and the MTQP path at its
//     QueryTimeout (451), and nothing waits forever;
//   - an MTQP flood of wrong secrets is rate limited per client address
//     (visible in mtqp.Metrics) while another address is still answered;
//   - hostile inputs end to end: 10,000 recipients (RFC 5321 section
//     4.5.3.1.8 requires only 100; the test raises go-smtp's limit), MAIL
//     lines at the line limit, a tracking record overwritten with garbage
//     in memcached, and a 1 MB MTQP command line (RFC 3887 allows 998
//     characters).
//
// The package has no API; it exists for `go test`. Every test is bounded in
// time by contexts and timeouts and asserts on replies, errors, counters and
// log records, never on elapsed time.
package faults
