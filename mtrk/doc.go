// Package mtrk is the wire codec and arithmetic of the SMTP Service
// Extension for Message Tracking, RFC 3885.
//
// # What travels where
//
// A submitting client draws a random secret A (NewSecret), keeps it, and
// sends the certifier B = SHA1(A) as the MAIL parameter
//
//	MAIL FROM:<sender> ENVID=... MTRK=<base64 B>[:<timeout seconds>]
//
// (RFC 3885 section 3). Servers store only B; a later MTQP query (RFC 3887)
// presents A, and Certifier.Verify checks SHA1(A) == B in constant time.
// Secret and Certifier are distinct types so one cannot be passed for the
// other.
//
// # Syntax
//
// RFC 3885 section 1 imports the base64 token from MIME (RFC 2045 section
// 6.8) as
//
//	base64 = %x2b / %x2f / %x30-39 / %x41-5a / %x61-7a   ; + / 0-9 A-Z a-z
//
// which leaves out "=", and section 3 defines the parameter as
//
//	mtrk-parameter = "MTRK=" certifier [":" timeout]
//	certifier      = 1*base64
//	timeout        = 1*9DIGIT
//
// RFC 5321 section 4.1.2's esmtp-value excludes "=" as well, so padding
// cannot appear on the wire: ParseParam and ParseCertifier reject it and
// String never writes it.
//
// Rules this package adds, and why:
//
//   - The certifier must be canonical base64 (RFC 4648 section 3.5): a final
//     character whose unused low bits are not zero is rejected, and so is a
//     length of 1 mod 4 characters, which no byte string encodes to. This
//     makes the textual form unique, so two certifiers are equal exactly
//     when their strings are, and parse, format, parse is stable.
//   - The decoded certifier must be MinCertifierSize (16) to MaxCertifierSize
//     (64) bytes. RFC 3885 section 3 makes B a SHA-1 hash (20 bytes); the
//     product's MD4 generation path makes 16-byte identifiers
//     (MD4CertifierSize), which other MTAs of a deployment relay. Rejecting
//     a MAIL command refuses the whole message, so a certifier made by a
//     different hash (up to SHA-512's 64 bytes) is accepted and stored
//     rather than bouncing mail; it simply never verifies against a SHA-1
//     secret. Below 16 bytes (128 bits) an identifier is guessable, and
//     above 64 it is not a hash of anything the RFC describes; both are
//     refused.
//   - A timeout of 0 is syntactically valid (1*9DIGIT) and is accepted; the
//     server's Limits then raise it. A relay never sends one: Remaining
//     reports "nothing left" instead.
//
// Invalid parameters produce an *Error whose SMTPReply is 501 5.5.4
// (RFC 5321 section 4.2.3 "syntax error in parameters", RFC 3463 X.5.4
// "invalid command arguments"). Whether RFC 3885 defines reply codes of its
// own is UNVERIFIED: its section text could not be read (see below).
//
// # EHLO
//
// The EHLO keyword is Keyword ("MTRK", RFC 3885 section 3, no parameters).
// Offered tells from a peer's EHLO extension lines whether it offers MTRK; a
// relay passes MTRK= on only to a next hop that does (RFC 3885's relaying
// rules; a next hop without MTRK ends tracking at this MTA).
//
// # What was checked against the RFC
//
// The ABNF above was checked against RFC 3885's own text in an earlier
// session. Its header (checked) says it updates RFC 3461, the DSN
// extension whose ENVID parameter tracking relies on. The rest of its
// section text (what a server must do with MTRK and no ENVID, the
// relaying rules, the alias and list rules, reply codes) was out of reach
// of this project's tools, which return only each document's first page;
// those points follow the project's digest and the reference product and
// are UNVERIFIED.
//
// # Timeouts
//
// Limits.Clamp applies a server's default, minimum and maximum tracking
// timeout (the product's trackingtimeoutdefault/min/max: silently raised or
// lowered). Remaining computes the timeout to pass to the next hop and says
// when none is left, in which case MTRK must not be sent at all.
package mtrk
