// Package mtqp implements the Message Tracking Query Protocol (RFC 3887),
// client and server, the message/tracking-status report format it carries
// (RFC 3886), and a non-standard recall extension.
//
// # Reports (RFC 3886)
//
// Report is a message/tracking-status body: the per-message group
// (Original-Envelope-Id, Reporting-MTA, Arrival-Date, extension fields) and
// one Recipient group per recipient (Original-Recipient, Final-Recipient,
// Action, Status, Remote-MTA, Last-Attempt-Date, Will-Retry-Until,
// extension fields kept in order). ParseReport is tolerant of what real
// writers produce; Report.Format writes one canonical form, so that
// parsing a formatted report gives it back and formatting a parsed
// canonical body gives back the same bytes. Typed values ("dns; host",
// "rfc822; addr") follow RFC 3464 section 2.1.2, dates RFC 5322 section
// 3.3 (obsolete forms of section 4.3 accepted), status codes RFC 3463
// section 2 (plus X.1.9, "message relayed to non-compliant mailer", which
// RFC 3886 adds), folding RFC 5322 section 2.2.3.
//
// # Protocol (RFC 3887)
//
// The whole wire grammar is in grammar.go, each piece beside the section
// it follows: the greeting and option list, SMTP-style reply lines and
// multi-line replies, command lines (case-insensitive, SP/HTAB separated,
// at most 998 characters before CRLF), TRACK's envelope ID (xtext) and
// secret (base64), and STARTTLS (RFC 3207's 220 / handshake, TLS 1.2 at
// least per RFC 8996). Plaintext pipelined behind STARTTLS is discarded.
// Servers are found through _mtqp._tcp SRV records (RFC 3887 section 5,
// names per RFC 8553), falling back to the domain on port 1038.
//
// Verification status: only the first page of RFC 3887 (abstract,
// sections 1 and 1.1) could be read from any stored copy, plus
// keyword-index quotations of later sections; grammar.go lists what each
// confirmed. Confirmed: port 1038 (IANA), the four commands TRACK,
// STARTTLS, COMMENT and QUIT, case-insensitive commands, SP/HTAB
// separators, the 998-character limit, a line-oriented protocol over a
// client-opened TCP connection, request and chaining referrals, TLS
// certificates covering virtually hosted domains; RFC 3887 is updated by
// RFC 8553 and RFC 8996; RFC 3886 updates RFC 3463. Still UNVERIFIED,
// because sections 2 to 9 were not retrievable: the reply codes, the
// greeting's code and shape, the framing of the report inside the TRACK
// reply, the re-sent greeting after STARTTLS, the COMMENT and QUIT
// replies, the vnd. option naming rule, and the RFC section numbers cited
// beside the code. These follow SPEC.md and the SMTP conventions section
// 1.1 points to. The RFC 3886 field sets and the seven Action values were
// checked against an independent implementation's header table.
//
// # The recall extension (not standard)
//
// A server whose Backend supports recall advertises the option
// "vnd.msgtrack.recall" (OptionRecall) in its greeting. It adds one
// command, RECALL, with exactly TRACK's arguments and security. The
// answer is a message/tracking-status report whose recipient groups each
// carry an extension field X-Recall-Status with one of recalled,
// in-progress, too-late, not-recallable, pending (RecallStatus). Action
// and Status keep their RFC 3886 meaning. Neither the option, the command
// nor the field is registered with IANA.
//
// # Security
//
// A Backend compares secrets in constant time and answers ErrNotFound
// alike for an unknown envelope ID and a wrong secret; the server turns
// both into the same reply bytes. Failed queries are charged to the
// client's IP address in a token bucket (golang.org/x/time/rate; a
// bounded map that forgets refilled buckets first); an address that has
// used its budget gets 450 without reaching the Backend. RequireTLS
// refuses TRACK and RECALL before STARTTLS. Over-long lines, unknown
// commands, garbage and out-of-sequence commands get 500/501/503 and the
// connection stays in step; too many errors in a row, the idle deadline,
// the total connection deadline, MaxConnections and Shutdown end
// connections with 421. The query log (log/slog) never contains a secret.
//
// The client follows referrals (Client.TrackPath): a recipient with
// Action "transferred" and a Remote-MTA names the next MTQP server. The
// secret goes to it only if the caller's policy allows the host, and only
// over TLS whose certificate verified for that host name.
//
// # Metrics
//
// Server.Metrics returns the server's own counters (per command count,
// failures, total and maximum duration; connections; rate limiting;
// timeouts). Nothing is registered globally: two servers in one process
// keep separate counts.
package mtqp
