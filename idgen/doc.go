// Package idgen makes tracking identifiers (RFC 3885 certifiers) and
// secrets: random ones for clients, and the two generated ones of the
// reference product's trackinggenerate channel option, for messages that
// arrive without MTRK.
//
// # Random secrets
//
// A tracking client draws a random secret A and sends B = SHA1(A) as the
// MTRK certifier (RFC 3885 section 3) and presents A in tracking queries
// (RFC 3887). [Random] does this through package mtrk, which is the
// one place where certifier arithmetic lives.
//
// # The SHA-1 path: secrets a client can recompute
//
// When the sender authenticated and the account has a general recall
// secret G (held in the directory attribute named by the product's
// ldap_attr_auth_recall_secret option, see [SecretSource]), the
// submission server makes the per-message secret
//
//	A = SHA1( canon(Message-ID) || canon(Date) || G )
//	B = SHA1(A)                       the certifier sent as MTRK=B
//
// where || is plain concatenation, with no separators or terminators, and
// canon is the following function of a header field body (the bytes
// after the colon of the field, RFC 5322 section 2.2):
//
//  1. Unfold (RFC 5322 section 2.2.3): remove every CRLF that is
//     immediately followed by a space or horizontal tab. A lone LF
//     followed by white space is removed too, because sent copies on disk
//     (mbox, Maildir) usually have LF line endings.
//  2. Replace every run of spaces and horizontal tabs by one space.
//  3. Remove white space at the start and the end, and a final CRLF or
//     LF if the caller passed the line terminator.
//  4. If a CR or LF is left, the field is malformed ([ErrMalformedHeader]).
//
// Steps 1 to 3 are the "relaxed" header canonicalisation of DKIM
// (RFC 6376 section 3.4.2) applied to the field body. The value is
// otherwise hashed byte for byte: angle brackets, comments and any 8-bit
// (RFC 6532 UTF-8) octets are kept, letter case is preserved, and no
// RFC 2047 decoding is done. Keeping the brackets is deliberate: the
// product hashes "the content of the Message-ID: header field", which
// includes them, and a client then needs no msg-id parser (stripping
// brackets raises questions about comments and the obsolete msg-id forms
// of RFC 5322 section 4.5.4 that two clients could answer differently).
// Collapsing white space makes the result survive refolding by any agent
// that folds as RFC 5322 section 2.2.3 allows.
//
// The Date field is optional: when it is absent or its canonical form is
// empty it contributes no bytes. The Message-ID is required: with no
// Message-ID there is nothing a client could recompute, so the server
// uses the MD4 path instead. A submission server that adds a Message-ID
// (RFC 6409 section 8.3) must add it before calling the [Generator]; the
// secret is always computed over the Message-ID and Date exactly as they
// stand in the delivered message (and so in the sender's sent copy, when
// the client stores what the server added; a client that stores its own
// copy before submission has no Message-ID to recompute from, so the
// user must track with the Message-ID of a delivered copy). When a field
// occurs more than once, the first occurrence counts.
//
// G must be at least [MinGeneralSecretSize] (16) bytes. B, the Message-ID
// and the Date all travel in the clear, so anyone who sees a message can
// test guesses of G offline at the speed of SHA-1; a secret shorter than
// 128 bits is refused and the message takes the MD4 path, with a warning
// logged. [ComputeSecret] is the same computation for tracking clients.
//
// Test vectors (G1 is the 32 ASCII bytes "0123456789abcdef0123456789abcdef",
// G2 the 16 bytes 0x00 to 0x0f; M is <20260801123456.A1B2C3@mail.example.com>,
// D is "Sat, 1 Aug 2026 12:34:56 +0200"; hex, then the unpadded base64
// that MTRK= and tracking clients use):
//
//	M, D, G1:  A = e1db9f7ee406353cd2687a9044dab9e58ef896ba  4duffuQGNTzSaHqQRNq55Y74lro
//	           B = 380efc9e25538af80d64f86896fa6e0f65ba58d5  OA78niVTivgNZPholvpuD2W6WNU
//	M, no D, G1: A = 1cd8ca2300b3154dd913614b11e16eab23b17d6d
//	M, D, G2:  A = 845170c95e3679a5b38c9cecc9ba3d7e35733278
//	           B = cfb2f0b5414d1820464b23312db5090076b2db98
//
// The folded fields "\r\n <20260801123456.A1B2C3@mail.example.com>  " and
// " Sat, 1 Aug 2026\r\n\t12:34:56   +0200" canonicalise to M and D and give
// the first vector. Each can be checked with the shell, for example
//
//	printf '%s%s%s' "$M" "$D" 0123456789abcdef0123456789abcdef | sha1sum
//
// # Envelope ID
//
// A query is made with the pair (ENVID, A) (RFC 3885, RFC 3887), so a
// message tracked on the SHA-1 path must carry an envelope ID the sender
// can find too. When the message arrived without ENVID, [DeriveEnvelopeID]
// gives it one from the Message-ID: the text between the first "<" and
// the following ">" of the canonical Message-ID (the whole canonical value
// when there are no brackets), for example
// 20260801123456.A1B2C3@mail.example.com. RFC 3461 section 4.4 requires
// the decoded ENVID to be printable US-ASCII and limits the parameter to
// 100 characters; this package keeps the xtext-encoded parameter,
// "ENVID=" included, within 100 characters (the strict reading), and
// admits only the graphic characters %x21-7E. When the extracted text is
// empty, contains anything else or would be too long, the envelope ID is
// instead the lower-case hex SHA-1 of the canonical Message-ID (40
// characters), which a client can compute just as well. The value
// returned is the decoded ENVID; the SMTP layer xtext-encodes it
// (RFC 3461 section 4) when it relays the message.
//
// # The MD4 path: identifiers nobody can track
//
// Otherwise (no authentication, no source, no or unusable secret, no
// Message-ID, a source error) the certifier is MD4(U) for a unique
// identifier U, such as the queue ID (golang.org/x/crypto/md4, RFC 1320),
// 16 bytes long ([mtrk.MD4CertifierSize]). A tracking query must present
// an A with SHA1(A) = B; SHA-1 outputs 20 bytes, so no A matches a
// 16-byte B and no user can track or recall such a message. Neither the
// randomness of U nor the weakness of MD4 matters for that. What the
// identifier is still good for: it is a stable key, carried to every
// tracking-capable hop in MTRK=, that ties log lines and tracking records
// of one message together across systems (which envelope IDs and
// Message-IDs cannot do reliably), and privileged tools that look records
// up by certifier can still read its history. Because it is a store key,
// U must be unique across the deployment, not just on one host: qualify
// a queue ID with the host name (for example "4F3a9Zq1@mx1.example.com").
//
// # Failure never stops mail
//
// The [Generator] always produces a certifier. A secret source that is
// down, slow (bounded by [Options].SourceTimeout), does not know the user,
// or holds no, an empty, a short or several secrets makes it use the MD4
// path and report why in [Result].Reason and [Result].Err.
package idgen
