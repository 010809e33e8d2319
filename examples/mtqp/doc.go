// Command mtqp asks an MTQP server (RFC 3887) where a tracked message is
// (track) or withdraws it from the queue (recall, this library's
// non-standard vnd.msgtrack.recall extension), and prints the
// message/tracking-status report (RFC 3886) it answers with.
//
// Usage:
//
//	mtqp track  -server S -envid ID (-secret A | -secret-file F) [flags]
//	mtqp track  -server S [-envid ID] (-message-id M [-date D] | -message F)
//	            (-general-secret G | -general-secret-file F) [flags]
//	mtqp recall (the same flags, except -follow, -allow and -max-hops)
//	mtqp help
//
// Examples:
//
//	mtqp track -server mx.example.com:1038 -envid 20260801.A1B2 -secret-file ~/.mtqp/a
//	mtqp track -server example.com -message ~/Mail/sent/42 -general-secret-file ~/.mtqp/g -follow -allow '*.example.com'
//	mtqp recall -server 127.0.0.1:11038 -insecure -envid e1 -secret 4duffuQGNTzSaHqQRNq55Y74lro -json
//
// # The server
//
// -server is host:port, an IP address (port 1038, IANA's MTQP port, RFC
// 3887 section 9), or a domain. A domain is looked up as _mtqp._tcp SRV
// records (RFC 3887 section 5, RFC 2782 order), falling back to the domain
// itself on port 1038; the certificate must then be valid for the domain
// asked for, not the SRV target.
//
// # The secret
//
// A query is the pair (envelope ID, tracking secret A) of RFC 3885 section 3.
// A is given in base64, with -secret or, so that it does not show in the
// process list or shell history, with -secret-file (a file holding the
// base64 text; "-" reads standard input). Surrounding white space and "="
// padding are accepted.
//
// Or A is recomputed on the SHA-1 path of package idgen, for messages whose
// submission server generated the secret from the sender's general recall
// secret G: A = SHA1(canon(Message-ID) || canon(Date) || G), exactly as
// idgen.ComputeSecret defines it. The Message-ID and Date field bodies come
// from -message-id and -date (as they stand in the message, angle brackets
// included; omit -date when the message has no Date field) or from
// -message, a sent copy of the message (its first Message-ID and Date fields
// are read; the body is not). G comes from -general-secret (base64 of its
// octets) or -general-secret-file (the octets themselves, as stored in the
// directory attribute; one final LF or CRLF is dropped, so give a binary G
// that ends in a line feed with -general-secret instead). G must be at least
// 16 bytes (idgen.MinGeneralSecretSize). Without -envid, the envelope ID
// is the one idgen.DeriveEnvelopeID derives from the Message-ID, which is
// what a server running trackinggenerate gives a message that arrived
// without ENVID; give -envid when the message had one.
//
// # Transport security
//
// The secret is never sent in clear unless asked for. The command issues
// STARTTLS (TLS 1.2 at least, RFC 8996) and verifies the server's
// certificate against the system roots plus the certificates in -ca. A
// server that does not offer STARTTLS is not asked. -insecure keeps TLS but
// skips certificate verification, for the first server only. -plaintext
// skips STARTTLS altogether and is accepted only when the connection's
// remote address is a loopback address (a test server on this machine);
// the address is checked after connecting, so a name or SRV record that
// points elsewhere is refused too.
//
// # Referrals
//
// With -follow, track also asks the servers that recipients were
// transferred to (RFC 3886 action "transferred", Remote-MTA naming the next
// MTQP server), through mtqp.Client.TrackPath. This sends the secret to
// other hosts, so -follow requires -allow, a comma-separated list of hosts
// that may receive it: a host name (exact match), an IP address, or
// "*.example.com" (any name below example.com). A bare "*" is refused.
// Referred servers are always asked over TLS whose certificate verified
// for the name the report gave (system roots plus -ca), whatever -insecure
// and -plaintext say for the first server. -max-hops bounds the depth.
// Servers not asked (refused by the policy, the hop limit, failed TLS,
// not found there) are listed with the reason; they do not change the exit
// status. recall asks only the server given.
//
// # Output
//
// The default is a table: the per-message fields of each server's report,
// then one line per recipient with RECIPIENT, ACTION (with the server's
// finer X-Tracking-State in parentheses, e.g. "delayed (held)"), STATUS
// (RFC 3463), REMOTE-MTA, RECALL (the X-Recall-Status of a recall answer)
// and DIAGNOSTIC (X-Diagnostic or Diagnostic-Code). With -follow a SERVER
// column says which server reported each line. Values are shown with
// control characters replaced by "?".
//
// -raw writes the message/tracking-status body exactly as the server sent
// it (CRLF line endings) and nothing else; it is refused with -follow.
//
// -json writes one JSON object followed by a newline:
//
//	{
//	  "schema": 1,                 // JSONSchemaVersion
//	  "command": "track",          // or "recall"
//	  "envelope_id": "...",        // as queried
//	  "server": "...",             // -server as given
//	  "hops": [{                   // servers asked or refused, in order; the first is -server
//	    "host": "...", "referrer": "...", "depth": 0,
//	    "answered": true, "error": "...",          // error when not answered
//	    "reporting_mta": "...", "arrival_date": "RFC 3339",
//	    "extensions": [{"name": "...", "value": "..."}]
//	  }],
//	  "recipients": [{             // merged along the path (mtqp.Path.Recipients)
//	    "host": "...",             // server that reported it
//	    "original_recipient": "...", "final_recipient": "...",
//	    "action": "delivered",     // lower case, RFC 3886
//	    "status": "2.0.0",
//	    "remote_mta": "...",
//	    "last_attempt_date": "RFC 3339", "will_retry_until": "RFC 3339",
//	    "recall_status": "recalled", // recalled, in-progress, too-late, not-recallable, pending
//	    "tracking_state": "held",  // X-Tracking-State
//	    "diagnostic": "...",
//	    "extensions": [{"name": "...", "value": "..."}]  // every extension field, in order
//	  }]
//	}
//
// Typed values (recipients, MTAs) are given without their "rfc822;" or
// "dns;" type. Members that are empty are left out, except schema, command,
// envelope_id, server, hops, recipients, host, depth, answered,
// final_recipient, action and status. Values are the server's, unescaped.
//
// # Exit status
//
// 0 when the query was answered (for recall: whatever each recipient's
// recall status is; read the table or "recall_status"), 1 when it was not
// (not found or wrong secret, which servers do not tell apart; connection,
// SRV, TLS, server refusal, recall not offered, timeout), with a one-line
// reason on standard error, 2 for a usage mistake or unreadable input, in
// which case nothing was sent.
package main

// usageText is what -h prints: every flag, grouped, with examples.
const usageText = `Usage:
  mtqp track  -server S -envid ID (-secret A | -secret-file F) [flags]
  mtqp track  -server S [-envid ID] (-message-id M [-date D] | -message F)
              (-general-secret G | -general-secret-file F) [flags]
  mtqp recall ...the same flags, except -follow, -allow and -max-hops
  mtqp help

track asks an MTQP server (RFC 3887) for a message's tracking status;
recall withdraws it from the queue for every recipient still held
(non-standard vnd.msgtrack.recall extension).

Server:
  -server S          host:port, an IP address (port 1038), or a domain
                     resolved through _mtqp._tcp SRV records, falling back
                     to domain:1038. Required.
  -timeout D         time limit for the whole query (default 30s)

Message and secret (the secret comes from exactly one source):
  -envid ID          envelope ID (ENVID) of the message. Required with
                     -secret/-secret-file; otherwise derived from the
                     Message-ID as trackinggenerate does (idgen.DeriveEnvelopeID)
  -secret A          tracking secret A, base64 (visible in ps: prefer
                     -secret-file)
  -secret-file F     file holding A in base64; - reads standard input
  -message-id M      Message-ID field body, angle brackets included, to
                     recompute A = SHA1(Message-ID || Date || G)
  -date D            Date field body; omit when the message has none
  -message F         sent copy of the message; its Message-ID and Date are
                     used (instead of -message-id and -date); - is stdin
  -general-secret G  general recall secret G, base64 of its octets
  -general-secret-file F
                     file holding G's octets as stored in the directory
                     (one final newline dropped); - is stdin

TLS (STARTTLS is always used unless -plaintext):
  -ca F              PEM CA certificates to trust besides the system roots
  -insecure          encrypt but do not verify the first server's
                     certificate (referrals are always verified)
  -plaintext         skip STARTTLS: the secret travels in clear. Refused
                     unless the server's address is loopback (tests)

Referrals (track only):
  -follow            also ask the servers recipients were transferred to,
                     over verified TLS only
  -allow LIST        comma-separated hosts that may receive the secret:
                     mx.example.com, 192.0.2.1, *.example.com (names
                     below example.com). Required with -follow; "*" refused
  -max-hops N        deepest referral followed (default 5)

Output (default: a table of recipients):
  -json              one JSON object (schema 1, documented by
                     go doc github.com/msgtrack/msgtrack/examples/mtqp)
  -raw               the message/tracking-status body exactly as received

Exit status: 0 answered, 1 not answered (not found or wrong secret,
connection, TLS, refusal, timeout; one line on stderr), 2 usage.

Examples:
  mtqp track -server mx.example.com:1038 -envid 20260801.A1B2 -secret-file ~/.mtqp/a
  mtqp track -server example.com -message ~/Mail/sent/42 \
      -general-secret-file ~/.mtqp/g -follow -allow '*.example.com'
  mtqp recall -server 127.0.0.1:11038 -insecure -envid e1 -secret 4duffuQGNTzSaHqQRNq55Y74lro -json
`
