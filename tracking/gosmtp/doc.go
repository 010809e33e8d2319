// Package gosmtp is the message-tracking middleware for go-smtp servers: it
// wraps any smtp.Backend for one channel, offers the MTRK (RFC 3885) and
// FUTURERELEASE (RFC 4865) extensions through package smtpext, hands the
// wrapped sessions the tracking and hold information of every message, and
// writes the tracking record (package tracking) once the wrapped session has
// accepted the message. Relay is the other half: it sends a tracked message
// onward with smtpext's Client and records what became of each recipient.
//
// # Wiring
//
//	mw, err := gosmtp.New(myBackend, channel, gosmtp.Options{Engine: engine, ...})
//	srv := smtp.NewServer(nil)            // Backend is set by NewServer
//	ext, err := mw.NewServer(srv, smtpext.Config{TLSConfig: tlsConf})
//	go ext.Serve(listener)
//
// Middleware.NewServer sets srv.Backend to the middleware, turns on go-smtp's
// DSN support (ENVID travels with MTRK) and registers Middleware.Extensions
// with smtpext; a program that builds its smtpext.Config itself appends
// Extensions and sets EnableDSN on its own. channel is a channelopts.Channel:
// trackingserver, trackinggenerate, trackingtimeoutdefault/min/max are read
// here; Options.MTA carries log_tracking and log_futurerelease.
//
// # What is offered, and the replies
//
//   - MTRK is advertised only when the channel has trackingserver. MTRK= is
//     parsed by mtrk.ParseParam: a malformed value gets 501 5.5.4; MTRK= on a
//     channel without trackingserver gets 555 5.5.4 (RFC 5321 section
//     4.1.1.11: a parameter that is not recognised or not enabled), from
//     smtpext, before go-smtp sees the command. The timeout is clamped
//     silently into the channel's trackingtimeoutmin..max, and MTRK= without
//     a timeout gets trackingtimeoutdefault (channelopts.Channel.Timeout).
//   - FUTURERELEASE is advertised only when Options.Submission is set (RFC
//     4865 section 1: it is a submission extension, RFC 6409), the hold
//     policy Options.FutureRelease has a MaxInterval, and the connection
//     runs over TLS. Its parameters are "<max-future-release-interval>
//     <max-future-release-date-time>" (RFC 4865 section 3), computed at each
//     EHLO from Options.Now. HOLDFOR= and HOLDUNTIL= where it is not offered
//     get 555 5.5.4; from a session that has not authenticated, 530 5.7.0
//     (EHLO comes before AUTH, so the check is at MAIL time); a malformed
//     value, both parameters, the same one twice, or a hold beyond the
//     advertised limits get 501 5.5.4 (futurerelease.Validate: refused, not
//     shortened). After any of these refusals the session continues; nothing
//     reaches the wrapped session and nothing is recorded.
//
// # Envelope ID
//
// A tracking query is made with the pair (envelope ID, secret) (RFC 3885
// section 3, RFC 3887 section 3.2), so a tracked message needs an ENVID
// (RFC 3461 section 4.4). When a client sends MTRK= without ENVID, the
// middleware gives the message an envelope ID the client can compute as
// well: the one idgen.DeriveEnvelopeID makes from the Message-ID, or the hex
// form of the certifier when there is no usable Message-ID
// (Tracking.EnvelopeIDGenerated is then set; a relay sends it as ENVID). With
// Options.RequireEnvelopeID, MTRK= without ENVID is refused with 501 5.5.4
// instead. Generated identifiers (trackinggenerate) get theirs from
// idgen.Generator in the same way.
//
// # trackinggenerate
//
// On a channel with trackinggenerate, a message without MTRK= gets an
// identifier from Options.Generator, with the trackinggenerate timeout:
// the SHA-1 path when the sender authenticated and has a general recall
// secret (the user name comes from a wrapped session implementing
// AuthUserSession, or from the PLAIN exchange), the MD4 path otherwise (see
// package idgen for the bytes hashed). The Message-ID and Date field bodies
// are read from the message header at DATA: the middleware reads the header
// ahead (up to Options.MaxHeaderBytes) before the wrapped session's Data
// starts and then streams the whole message, unchanged, to it. With
// Options.AddMessageID a message without Message-ID gets one inserted as its
// first header field (RFC 6409 section 8.3) before the wrapped session sees
// it, and the identifier is computed over that field, so the secret can be
// recomputed from the delivered message.
//
// # What the wrapped session gets
//
// A wrapped session that implements TrackedSession receives a *Tracking
// (source of the identifier, certifier, clamped timeout, envelope ID, the
// hold, the header fields, the queue ID) right before its Data or LMTPData.
// RollbackSession and AuthUserSession are the other optional interfaces.
// smtpext.FromConn still works in the wrapped backend's NewSession.
//
// # What is recorded, and when
//
// Nothing is written before the end of DATA. When the wrapped session's Data
// returns nil, one tracking.Engine.Accepted call records the message: its
// certifier, envelope ID, sender, every recipient (with its ORCPT), the
// clamped timeout, the hold's release time, and this MTA's queue ID
// (Tracking.QueueID, which the session may set during Data). A message the
// session refuses, or one whose transfer breaks off, leaves no record. In
// LMTP mode the per-recipient statuses the session sets through go-smtp's
// StatusCollector are held back until the record of the accepted recipients
// is written, and only those are recorded. Untracked messages are never
// recorded. Options.Internal marks a channel from other MTAs of the
// deployment (tracking.Accept.Internal).
//
// Then one log line is written at Info through Options.Logger, with the
// attributes mt (log_tracking bit 0: "id:timeout") and fr
// (log_futurerelease bit 0: release offset in seconds) made by
// tracking.LogConfig; Tracking.LogInfo gives an MTA the same values for its
// own transaction log.
//
// # Failure modes
//
//   - Store failure at the end of DATA: fail-open by default (the message
//     is accepted, the failure logged at Warn and counted in
//     Stats.StoreFailures; the record stays missing, as after an eviction).
//     With Options.FailClosed the client gets 451 4.3.0 and the wrapped
//     session's Rollback is called, so the client's retry is not a
//     duplicate.
//   - A record under the same certifier made by someone else, on a channel
//     that is not internal (tracking.ErrForeignRecord): the message is
//     accepted and carries on untracked here (Stats.Foreign).
//   - An identifier that cannot be generated: untracked
//     (Stats.GenerateErrors). A secret source that is down gives the MD4
//     path (idgen), not a failure.
//
// # Relaying
//
// Relay.Send passes MTRK=<certifier>:<remaining> on only to a peer that
// offers MTRK and DSN, on a trackingclient channel, with the timeout reduced
// by the time spent here (mtrk.Remaining; MTRK is dropped rather than sent
// with nothing left) and ENVID with it. Because MTRK belongs to the
// transaction, recipients with and without the certifier (an aliasing.Plan's
// two lists) go in separate transactions when MTRK is sent. Relay.Plan uses
// aliasing.Strict (RFC 3885's own alias rule) towards hops outside the
// deployment (trackingrelayed). Each recipient's outcome is then recorded
// with tracking.Engine.Dequeued under the channel's disposition:
// transferred (MTRK went along; Remote-MTA names the peer), relayed (it did
// not: tracking ends here, status 2.1.9 of RFC 3886 section 4) or delivered
// (trackingdelivered); refused recipients as failed (5yz) or delayed (4yz),
// with the peer's reply as the diagnostic.
//
// What this package does not do: FUTURERELEASE parameters are never relayed
// (RFC 4865: the submission server holds the message); the queue that holds
// the message until its release time and asks tracking.Engine.BeginDelivery
// before each attempt belongs to the MTA.
package gosmtp
