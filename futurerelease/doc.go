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
// # Checking a request
//
// Validate is what a server calls at MAIL time with the command's
// parameters, its Limits and the current time. It returns the Hold with
// its release time, or an *Error whose SMTPReply is the answer to send
// (501 5.5.4 for every refusal of the parameters; see Error.SMTPReply).
// Decisions documented there and on Validate: two hold parameters are
// refused, a hold beyond the limits is refused rather than shortened, and
// HOLDFOR=0 or a HOLDUNTIL in the past means "release at once".
//
// A hold stores mail on the server for a client, so servers offer it to
// authenticated submitters only; because EHLO comes before AUTH, the check
// happens at MAIL time (NotAuthenticatedError, 530 5.7.0).
//
// The hold parameters are not relayed: the submission server keeps the
// message until the release time and then sends it on normally.
//
// # Arithmetic
//
// ReleaseTime, Remaining, Held and LogOffset (the seconds the reference
// product logs under log_futurerelease) take the current instant as an
// argument; nothing in this package reads the clock.
package futurerelease
