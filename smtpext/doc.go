// Package smtpext adds ESMTP service extensions (RFC 5321 section 2.2) to
// a github.com/emersion/go-smtp server, and provides a small relay client
// that can send extension parameters.
//
// go-smtp (pinned at v0.26.0) builds its EHLO reply from fixed fields,
// answers any MAIL/RCPT parameter it does not know with 500, and its TLS
// checks are type assertions on *tls.Conn. smtpext sits between the
// net.Listener and the smtp.Server: it reads the client's bytes itself,
// strips and validates the registered parameters, rewrites the EHLO reply,
// owns TLS, and hands go-smtp a plaintext net.Conn. Generic ESMTP plumbing
// only: it knows nothing of tracking or holds.
//
// # Server side
//
// Build a Server with NewServer(srv, Config) and call Serve, ServeTLS or
// ServeListener. NewServer takes over srv's TLS, AUTH, line-limit and
// timeout settings (see its documentation), so a server cannot be wired
// up with go-smtp doing its own STARTTLS behind the layer, or with AUTH
// offered in plaintext by accident.
//
// An Extension has an EHLO keyword with parameters (RFC 5321 section
// 4.1.1.1), a Condition (e.g. AfterTLS, OnListeners) and MAIL FROM / RCPT
// TO parameters (esmtp-param, section 4.1.2) with a parse function. For a
// command with registered parameters the layer, before go-smtp sees it:
//
//   - answers a parameter whose extension is disabled for this connection
//     with 555 5.5.4 (section 4.1.1.11), a repeated one with 501 5.5.4, and
//     a value the parser refuses with the parser's reply (an error with
//     SMTPReply() (code, enhanced, message), or *smtp.SMTPError, else
//     501 5.5.4); go-smtp never sees such a command and the session goes
//     on. The first offending parameter in the client's order is reported;
//   - otherwise removes the parameters (unless ParamSpec.PassThrough) and
//     passes the shortened command on.
//
// A session reads the parameters with FromConn: Info.CommandParams inside
// Session.Mail and Session.Rcpt, and Info.Transaction (the MAIL FROM and
// the recipients go-smtp answered 250 to, with their parameters) in
// Session.Data. The transaction follows go-smtp's rules: a second MAIL
// replaces the sender and keeps the recipients; the reply to DATA, BDAT
// LAST, a BDAT 552 or backend error, RSET, HELO/EHLO/LHLO and STARTTLS
// clear it. Info also gives the TLS state (go-smtp's
// Conn.TLSConnectionState cannot see the layer's TLS), the listener name
// and the client's address (which is also (*smtp.Conn).Conn().RemoteAddr()).
//
// # Framing
//
// The layer must never disagree with go-smtp about where a command, a
// message or a chunk ends. It follows go-smtp v0.26.0 exactly:
//
//   - In command mode go-smtp gets one command line per Read, so its
//     buffered reader never holds bytes past a command whose meaning
//     depends on the reply (DATA, BDAT, AUTH, STARTTLS). PIPELINING
//     (RFC 2920) is therefore safe with any number of commands per packet.
//     A line ends at LF; the command is recognised with go-smtp's own
//     rules (a line starting with STARTTLS in any case is STARTTLS; the
//     verb is four bytes and a space).
//   - DATA: data mode starts only when go-smtp answers 354 and ends at
//     go-smtp's end-of-data marker as its own state machine sees it
//     (RFC 5321 sections 4.1.1.4 and 4.5.2, with go-smtp's quirks:
//     "\r\r\n.\r\n" does not end the data, ".\rX" drops the dot and the CR;
//     see dotState). Only whole lines are handed over, so go-smtp's line
//     limit fails at the same line as without the layer.
//   - BDAT (RFC 3030): after a well-formed BDAT line exactly the announced
//     number of bytes is passed through raw, whatever go-smtp answers
//     (250, 502 without a transaction, 552 too large, a backend error); a
//     malformed BDAT line (go-smtp's 501) is followed by no chunk.
//   - AUTH (RFC 4954 section 4): after go-smtp's 334 the next line is
//     SASL data and is passed through untouched, whatever it spells.
//   - Line limit: Config.MaxLineLength (default 2000, go-smtp's) with
//     go-smtp's accounting; a longer command line gets go-smtp's
//     "500 5.4.0 Too long line" and the connection closes. The limit
//     applies to the line as the client sent it, before parameters are
//     removed. Inside DATA go-smtp enforces the same limit itself.
//   - Bare LF (RFC 5321 section 2.3.8): by default (BareLFAccept) LF alone
//     ends a command line, as in go-smtp; BareLFReject answers such a line
//     with 500 5.5.2 and closes. Inside DATA a bare LF is message content
//     and never part of the end marker either way, so "\n.\n" and
//     "\n.\r\n" cannot smuggle a second message.
//   - When in doubt the layer closes the connection: on a read error, a
//     reply it cannot parse, or once go-smtp closed the connection (bytes
//     still buffered, e.g. pipelined after QUIT, are never delivered).
//
// The differential test (diff_test.go) checks all of this against plain
// go-smtp on generated sessions, and FuzzLayerRaw / FuzzLayerGenerated
// keep checking it on random input. A go-smtp upgrade must rerun them.
//
// # TLS
//
// STARTTLS (RFC 3207) and implicit TLS (RFC 8314, ServeTLS) are done by
// the layer, TLS 1.2 at least (RFC 8996). On STARTTLS the layer answers
// 220, discards any plaintext the client pipelined behind the command
// (the command injection of CVE-2011-0411), runs the handshake in the
// connection's goroutine under Config.HandshakeTimeout, ends go-smtp's
// plaintext connection with EOF without closing the socket, hands go-smtp
// a new connection over TLS through the listener and drops that
// connection's greeting: go-smtp then runs a fresh session, as RFC 3207
// section 4.2 requires. go-smtp runs with AllowInsecureAuth; the layer
// itself removes AUTH from the EHLO reply and answers AUTH with 538 5.7.11
// (RFC 4954 section 6) before TLS unless Config.AllowInsecureAuth. With
// smtp.Server.EnableREQUIRETLS the layer advertises REQUIRETLS after TLS
// only (RFC 8689 section 4) and answers the MAIL parameter before TLS with
// 555.
//
// # Lifecycle
//
// Every socket read and write has a deadline (Config.ReadTimeout,
// WriteTimeout; 5 minutes by default, RFC 5321 section 4.5.3.2); an idle
// client gets go-smtp's 421 4.4.2. Timeout errors report Timeout().
// Config.MaxConnections caps open sockets, including those in a TLS
// handshake (421 4.4.5 beyond). Close and Shutdown cover connections in a
// handshake or in the STARTTLS handoff. Stats returns counters.
//
// # Client side
//
// go-smtp's Client writes MAIL FROM itself from smtp.MailOptions and has
// no way to add a parameter such as MTRK=; smuggling one through the
// address argument would be an injection, and its StartTLS wraps the
// connection so that no layer below it can help. So Client is a small
// client of its own on net/textproto: Dial/DialTLS/NewClient, Hello
// (EHLO, HELO fallback), StartTLS (refuses a reply with data pipelined
// behind the 220, verifies the certificate, re-sends EHLO), Extension,
// Auth (go-sasl, TLS required unless AllowInsecureAuth), Mail and Rcpt
// with MailParam values that are sent only when the server advertised the
// named EHLO keyword (RFC 5321 section 2.2.1: a client must not use an
// extension the server did not offer), per-recipient replies, Data with
// dot-stuffing, Reset, Noop and Quit, all under context deadlines.
//
// # Out of scope
//
// New SMTP commands (e.g. MTQP-style verbs or XCLIENT), the PROXY
// protocol, LMTP and PIPELINING in the client. Parameters go-smtp does not
// know and nobody registered still get go-smtp's 500 5.5.4 (RFC 5321
// wants 555).
package smtpext
