// Package futurerelease is the codec and hold arithmetic of the SMTP
// Submission Service Extension for Future Message Release, RFC 4865.
//
// # Wire syntax (RFC 4865 section 3)
//
// A submission server (RFC 6409) advertises
//
//	FUTURERELEASE <max-future-release-interval> <max-future-release-date-time>
//
// for example "FUTURERELEASE 86400 2026-08-03T00:00:00Z": the longest hold in
// seconds and the latest release time. A client then adds exactly one of
//
//	HOLDFOR=<future-release-interval>       ; 1*9DIGIT seconds
//	HOLDUNTIL=<future-release-date-time>    ; RFC 3339 date-time
//
// to MAIL FROM. The RFC's ABNF names Internet-style-date-time-UTC, a
// production it never defines; verified erratum 2040 replaces it with the
// date-time of RFC 3339 section 5.6, which is what ParseDateTime reads
// (including lower-case "t"/"z", leap seconds and fractional seconds, which
// time.Parse does not all accept). HOLDUNTIL is a date-time, never an
// integer: ParseHoldUntil says so explicitly, and ParseAdvertisement
// reports a server that advertises Unix time there (ErrUnixDateTime)
// instead of misreading it.
//
// # Checking a request; replies (RFC 4865 section 4)
//
// Validate is what a server calls at MAIL time with the command's
// parameters, its Limits and the current time. It returns the Hold with
// its release time, or an *Error whose SMTPReply is the answer to send.
// RFC 4865 section 4 gives the server's obligations and replies; this
// package follows it as far as it could be checked, partly through an
// implementation that cites the RFC by line number:
//
//   - Both HOLDFOR and HOLDUNTIL in one command: refused with 501 5.5.4.
//     Section 3 (erratum 2040 quotes it) makes hold-param one parameter
//     spelt with either keyword; the citing implementation answers a
//     second one with 501 5.5.4 too.
//   - A hold beyond max-future-release-interval or
//     max-future-release-date-time: refused, never shortened, with
//     501 5.5.4. The citing implementation's comments show the RFC
//     requiring the refusal and advising that such semantic errors be
//     answered like syntax errors (it chose 554 instead); a second
//     implementation answers 501 as this package does.
//   - A malformed value: 501 5.5.4 (RFC 5321 section 4.2.3, RFC 3463
//     X.5.4).
//   - HOLDFOR=0 or a HOLDUNTIL in the past: accepted as "release at once"
//     (see Validate). UNVERIFIED: the RFC's text on this was not read, and
//     both implementations above refuse a HOLDUNTIL in the past.
//
// Only the ABNF of section 3 was read in the RFC's own words (through
// verified erratum 2040, which quotes it); section 4's exact reply and
// enhanced status codes remain UNVERIFIED against the RFC text, which the
// project's tools could not reach beyond each document's first page.
//
// A hold stores mail on the server for a client, so servers offer it to
// authenticated submitters only; because EHLO comes before AUTH, the check
// happens at MAIL time (NotAuthenticatedError, 530 5.7.0).
//
// The hold parameters are not relayed: the submission server keeps the
// message until the release time and then sends it on normally
// (UNVERIFIED against the RFC text; FUTURERELEASE is a submission
// extension, RFC 6409).
//
// # DSNs (RFC 4865's updates to RFC 3463 and RFC 3464)
//
// RFC 4865's header says it updates RFC 3463 and RFC 3464. For RFC 3464 it
// adds a per-message DSN field that repeats the hold request: DSNField
// ("Future-Release-Request") with the value Hold.DSNValue ("for;" seconds
// or "until;" date-time), a form seen in two independent implementations.
// For RFC 3463 it assigns enhanced status codes in the X.7 range (X.7.16
// and X.7.17, by an implementation's line citations); the IANA registry,
// created later by RFC 5248, gives those two numbers to RFC 6710 and
// RFC 7293 with other meanings, so this package never emits them. Whether
// a "delayed" DSN may be sent during a hold was not verified; the library
// sends none.
//
// # Arithmetic
//
// ReleaseTime, Remaining, Held and LogOffset (the seconds the reference
// product logs under log_futurerelease) take the current instant as an
// argument; nothing in this package reads the clock.
package futurerelease
