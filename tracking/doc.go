// Package tracking is the message tracking engine: the per-message
// tracking record shared by the MTAs of a deployment through a
// trackstore.Store, the events an MTA records as a message moves, tracking
// queries, and recall.
//
// Standards: RFC 3885 (SMTP MTRK: certifier B = SHA1(secret A), timeout,
// the rules for aliases and lists in section 7), RFC 3886 (the
// message/tracking-status fields the Record mirrors: per-message fields in
// section 3.2, per-recipient fields and action values in section 3.3),
// RFC 3887 (MTQP, whose TRACK command Track answers), RFC 3463 (status
// codes), RFC 4865 (FUTURERELEASE holds). Recall is the reference
// product's non-standard extension.
//
// # Record model
//
// A Record has the per-message fields (Original-Envelope-Id, the
// certifier, timeout and expiry, sender, Arrival-Date, Reporting-MTA,
// hold, recall time, hops) and one Recipient per recipient
// (Original-Recipient, Final-Recipient, Action, Status, Remote-MTA,
// Last-Attempt-Date, Will-Retry-Until, a diagnostic carried as an
// extension field, expansion children, and the queue that owns it). The
// secret is never stored. Action holds the RFC 3886 action values and the
// engine's own queue states (queued, delivering, recalling, recalled);
// Action.RFCAction maps the latter for reports. An MTQP adapter turns a
// Record into a message/tracking-status body.
//
// # Expiry
//
// The record expires at max(acceptance, hold end) + timeout: the hold is
// added on top of the (clamped) tracking timeout, so a hold longer than
// trackingtimeoutmax is still covered. Held moves the expiry later.
//
// A queue may also keep a message longer than the timeout by retrying
// it. A Delayed event whose Will-Retry-Until would outlive the record
// extends the expiry to min(Will-Retry-Until, now + MaxRetryHorizon) +
// timeout, the same rule as for a hold: the timeout counts from the last
// moment this MTA may still hold the message, so the record exists (and
// the message can be tracked and recalled) while the queue retries, and
// the final outcome (failed, when the queue gives up) stays queryable for
// the timeout the sender asked for. The head is extended first, then
// every shard, so no part of the record expires before another; the
// expiry never moves earlier, and only a queue that is one of the
// record's hops extends it. This costs one extra Get of the head per
// Delayed call that carries a Will-Retry-Until, and a write only when the
// expiry moves.
//
// The bound, Options.MaxRetryHorizon (default DefaultMaxRetryHorizon, 14
// days, the product's trackingtimeoutmax default), is counted from the
// event, not from acceptance: a queue that really keeps retrying keeps
// extending its record, one event at a time, while a bogus far-future
// Will-Retry-Until (a queue bug, a zero-value turned year 9999) cannot
// pin an item in a shared, size-limited store for years. Real queue
// lifetimes are well inside it (RFC 5321 section 4.5.4.1 suggests giving
// up after 4 to 5 days).
//
// # Storage layout
//
// A record is one head item and, when it is big, up to ShardCount (16)
// shard items:
//
//	head   trackstore.SafeKey("mt",   certifier bytes)   per-message fields, hops, shard mask, inline recipients
//	shard  trackstore.SafeKey("mtsN", certifier bytes)   N = hex shard number 0..f; recipients
//
// A small record keeps its recipients in the head ("inline"): a message
// accepted with at most InlineRecipients (16) recipients is one item, so
// a query is one Get and an event one Get and one CAS, the physical
// floor. Its events all write the head, which is fine for so few
// recipients.
//
// A bigger record is sharded: a recipient lives in shard ShardOf(address)
// = FNV-1a(address) mod 16, so an event finds its item from the address
// alone (one Get and one CAS), and events for recipients in different
// shards never collide. A 10,000 recipient message puts about 625
// recipients in each shard (some 80 KB with 55-character addresses and
// their originals), well inside memcached's 1 MiB
// item. The head's shard mask lists the shards created (at acceptance and
// by expansions); a shard is listed in the head before it is written.
//
// A record grows (a later internal hop's Accepted, an expansion's tracked
// children): new recipients go inline while the head is not sharded and
// stays within InlineRecipients, otherwise to their shards, and the head
// is marked sharded for good. Recipients never move between items, so no
// write has to change two items at once; a sharded record may still keep
// its first recipients inline (a set that no longer changes). Each Engine
// caches every record's layout (sharded or not, shard mask, the inline
// addresses), to send an event straight to the right item; a record it
// has not seen costs one extra Get of the head on the first event, and a
// stale entry one extra round trip, never a wrong update.
//
// Every item starts with the bytes 'M' 'T', a kind ('H' head, 'S' shard)
// and a format version. Version 2 (FormatVersion, written by this
// package) is a compact tagged binary encoding: uvarint tags (field
// number and wire type), uvarint numbers, length-prefixed strings and
// nested messages for hops and recipients. Readers skip fields they do
// not know, so a later version can add fields and still be read by this
// one. Version 1 (JSON, every recipient in a shard) is still read, and
// rewritten as version 2 on its next update; an MTA running the version 1
// code sees version 2 items as corrupt, so upgrade the MTAs that share a
// store together. Any other bytes, another version, a certifier or shard
// number that does not match the key, or an invalid field decode to an
// error wrapping trackstore.ErrCorrupt, never a panic (FuzzDecode).
//
// Items are not updated atomically together, and a store may evict one and
// not another. What a reader sees:
//
//   - Head and all listed shards present: the full record.
//   - A listed shard missing (evicted) or undecodable: Track returns the
//     other recipients (inline ones included) with Record.Incomplete and
//     Record.MissingShards. BeginDelivery answers ClaimUnknown for its
//     recipients (the queue's spool decides) and later events for them
//     change nothing: a shard is only ever created by Accepted or
//     Expanded, so stray events can never write into a record they do not
//     belong to. That shard's recipients stay untracked.
//   - Head missing: Track and Recall return ErrNotFound, since the
//     envelope ID cannot be checked. For a small record the head was the
//     whole record: Lookup too returns ErrNotFound, BeginDelivery answers
//     ClaimUnknown and events change nothing. For a sharded one Lookup
//     returns the surviving shards with Record.HeadMissing (inline
//     recipients are lost with the head), and events on surviving shards
//     still apply. An internal next hop's Accepted writes a new head
//     (listing only its own hop, and every shard slot, since which existed
//     is unknown; its recipients go to their shards), after which the
//     record is readable again, marked Incomplete.
//   - A shard present that the head does not list: this version never
//     leaves one (the head lists a shard before it is created), but a
//     version 1 writer interrupted between its two writes of an expansion
//     could. Track does not read it; Lookup reads every slot when the head
//     is missing.
//
// # Writes, retries, group commit
//
// Updates are optimistic read-modify-write with compare-and-swap: one
// attempt is a Get, the change, and a CompareAndSwap (Add for a new
// item). A message's first arrival (Accepted from a channel that is not
// internal) expects no record: its first attempt skips the Get and Adds
// the new item (head, then shards) at once, and only when an item is
// there after all (a spool replay, another sender's record) does it read
// and go on as above; this saves a store round trip per message. Every
// event gets at most 1+Options.Retries attempts
// (tracking_retries, default 5: six attempts). The pause before retry k,
// with d = Options.RetryDelay (tracking_retry_delay, default 100 ms) and
// each pause varied by ±Options.Jitter (default 50%):
//
//	retry 1   0 after a lost compare-and-swap (re-read at once: the winner
//	          has just written); d after an unreachable store
//	retry k   d × 2^(k-2), at most 8d, for k >= 2
//
// With the defaults that is 0, 100, 200, 400 and 800 ms: at most about
// 1.5 s (2.25 s with full jitter) of waiting before an event fails. The
// product's "tracking_retry_delay apart" is thus the base of the schedule,
// not a fixed spacing. A corrupt item or a value too large is not retried.
//
// Inside one Engine, events for the same item queue up: the caller that
// finds the queue idle reads the item, applies every waiting event, writes
// once and hands over to the first caller that arrived meanwhile, so
// concurrent events are merged into one write. Events that arrive while a
// round is being retried join its next attempt (keeping attempts of their
// own: they may wait on the older event's longer pauses, never get fewer
// attempts).
//
// Fairness between processes: every item records a random tag of the
// Engine that last wrote it. An Engine treats a key as contended for a
// while (twice the whole retry schedule, at least a second) after it lost
// a compare-and-swap on it or read it as written by another Engine. On a
// contended key, a round that comes right after this Engine's own
// successful write first waits one to two rounds' worth of time
// (jittered; doubled for each further write in a row this Engine made
// while the other stayed out, up to 8 times; at most 2d). The losing
// writer, which re-reads at once, so gets a gap to complete its
// read-modify-write instead of being starved by back-to-back rounds of
// the winner; the events waiting here meanwhile ride along in one write.
// Uncontended keys never wait. Stats.Conflicts, Retried and MostAttempts
// show how close contention comes to the limit.
//
// Each event carries an ID; each item remembers the last MaxAppliedEvents
// IDs applied to it and skips them, and transitions never regress (a final
// outcome is never replaced by a delay), so replays from a spool or after
// an ambiguous memcached timeout change nothing.
//
// When the last retry fails, the event method returns the error (wrapping
// the store's: trackstore.ErrConflict, ErrUnavailable, ErrTooLarge...),
// logs it at warn with its event ID, and counts it in Stats.Failures. The
// event is then lost from the store; mail is not affected (fail-open). The
// record catches up when later events arrive, or when the MTA replays the
// event with the same ID. BeginDelivery on an unreachable store answers
// ClaimUnknown (deliver unless the spool says recalled), or ClaimDefer with
// Options.FailClosed. What is lost in an outage: the state changes made
// during it, and with a memcached restart the whole record (memcached does
// not persist); tracking of messages accepted afterwards is normal.
//
// # Hops
//
// Each MTA names itself (Options.ReportingMTA) and identifies its copy of
// the message by its queue ID; every recipient records its owner (MTA and
// queue), and events change only recipients the calling queue owns. When
// a message passes to another MTA of the deployment over an internal
// channel (Transferred with internal true, then Accepted with Internal
// true at the next MTA), the next MTA is appended to the record's hops and
// takes the recipients over: one record shows both hops.
//
// An arrival over a channel that is not internal never writes into an
// existing record created by someone else: Accepted returns
// ErrForeignRecord and the MTA carries on with the message untracked (a
// replay by the record's own MTA and queue is recognised and is not
// foreign). So someone who saw a certifier on the wire cannot add to or
// take over another sender's record. The price: such an attacker, arriving
// first, can keep the genuine message from being tracked (its Accepted is
// refused); it cannot read, change or recall anything.
//
// # Recall
//
// Recall, authorised like Track, claims every queued recipient by
// compare-and-swap, queued to recalling; the queue claims a recipient
// queued to delivering in BeginDelivery before each attempt. Exactly one
// wins, with no check-then-act window. A recipient is reported recalled
// only after the queue that owns it removed it durably through the Queue
// interface:
//
//   - owned by this MTA (Options.Queue set): Recall calls Queue.Remove and
//     reports recalled what it removed; what it refuses (its spool says
//     the recipient is being or has been sent, which the store may have
//     forgotten) is given back and reported in progress;
//   - owned by another MTA: the claim stays pending until the owner sees
//     it, at its next BeginDelivery (ClaimRecalled) or, for a held
//     message that sees no delivery attempt until released, by polling
//     PendingRecall; the owner removes the recipients and confirms with
//     Recalled. A later Recall then reports them recalled;
//   - transferred to an internal next hop not yet accepted there: marked,
//     so the next hop's Accepted takes it over already claimed: pending.
//
// A delivery under way is reported in progress; delivered, failed, relayed
// or transferred out of the deployment is too late; a mailing list
// expansion (and an alias child that did not get the certifier) is not
// recallable. The queue's spool is the authority: if the store forgot a
// record, BeginDelivery answers ClaimUnknown and the queue delivers unless
// its own spool says recalled, so a recall is never undone by eviction.
//
// # Queries
//
// Track takes the envelope ID and the secret A, reads the record under
// SHA1(A) and compares envelope IDs in constant time (SHA-256 of both).
// An unknown envelope ID and a wrong secret give the same ErrNotFound
// value after the same comparison. Lookup is the privileged lookup by
// certifier for administrators.
//
// # Logging
//
// Logs go to Options.Logger (log/slog); Options.DebugLevel is
// tracking_debug. LogConfig produces the log_tracking field ("id:timeout",
// XML attribute mt) and the log_futurerelease field (release offset in
// seconds, attribute fr) for transaction log entries (bit 0) and the
// LOG_ACTION probe (bit 1).
package tracking
