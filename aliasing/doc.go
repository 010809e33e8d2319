// Package aliasing decides which recipients of an alias, forward or
// mailing-list expansion receive the RFC 3885 tracking certifier (MTRK=),
// and plans nested expansions for the tracking engine and the relay.
//
// # The standard and the product
//
// RFC 3885 (the aliasing paragraph quoted in the reference product's
// chapter "Message Tracking and Recall", table 17-1, entry
// trackingmultiple/trackingsingle/trackingfirst) says that an MTA must not
// copy MTRK certifiers when a recipient is aliased, forwarded or otherwise
// redirected and the redirection results in more than one recipient; it may
// designate one of them as the "primary" recipient, and the others must not
// receive certifiers; and it must not forward certifiers when doing
// mailing-list expansion. The section number of that paragraph could not be
// checked against the RFC text from this work tree; the wording followed is
// the quotation in the reference chapter.
//
// The product relaxes the alias rule for recall with three source-channel
// options, which this package implements as Policy values:
//
//   - Multiple (trackingmultiple, the default and the zero Policy): every
//     recipient of an alias or forward expansion carries the certifier.
//   - Single (trackingsingle): the certifier passes only when the expansion
//     results in exactly one recipient.
//   - First (trackingfirst): the certifier passes to the first recipient of
//     the expansion.
//   - Strict (trackingstrict, this library's addition, no product keyword):
//     RFC 3885 read literally. An expansion with exactly one recipient
//     passes it on; an expansion with several passes it only to the primary
//     the expander designates (Expansion.Primary), and to nobody when none
//     is designated. This is the mode to use towards hops outside the
//     deployment, where recall is not offered and the RFC's rule applies.
//
// Mailing-list expansion never propagates the certifier, under every
// policy, including a list reached through aliases, and nothing below a
// list (aliases of list members, nested lists) carries it: a list "owns"
// its copy of the message once it expands it.
//
// # Counting "the recipients of an expansion"
//
// Single and Strict count the distinct members of one expansion, as the
// expander returned them, before global duplicate removal and loop
// detection. An expansion [b, c] where c was already delivered elsewhere
// still has two recipients, so under Single it grants the certifier to
// neither (c may still carry through another path, see below). This is the
// conservative reading: whether the certifier is copied depends only on
// the expansion itself, not on which other recipients the message had.
//
// Under First the carrier is the first member of the expansion as the
// expander returned it, whatever becomes of it elsewhere in the plan (if it
// is a duplicate it carries where it survives; if it loops back to an
// address above, that address carries already and nobody else in the
// expansion gets a copy). The member order is part of what the expander
// defines, so it is the one order the decision depends on.
//
// # One mailbox, several paths
//
// A mailbox appears once in the plan, but it may be reached by several
// paths: through a list and through an alias, under two aliases, as an
// original recipient and as a member. Each path either grants it the
// certifier or not, by the rules above applied to each expansion on the
// path. The rule: an address carries the certifier when at least one path
// from a tracked original recipient grants it, that is, when every
// expansion on that path is an alias or forward that passes the
// certifier on to the next address under the policy. Formally it is the
// least set containing the tracked original recipients and closed under
// "a carrying expansion grants a member". So:
//
//   - the decision depends on the expansion graph only, never on the order
//     in which the walk meets the paths (original recipients and members
//     may be reordered; under First the first member must stay first);
//   - a path through a list grants nothing, so no address carries only
//     through a list; but a list path does not take away what an alias
//     path gives: a copy that travels with MTRK is recallable, and the
//     mailbox receives one copy, not one per path;
//   - under Multiple every address reached by a tracked path without a
//     list carries;
//   - under Single, Strict and First each expansion grants at most one
//     address, and in the plan's tree each expansion has at most one
//     carrying child: an address that carries survives (as a Final or
//     Expanded node) at an occurrence whose expansion granted it, and its
//     other occurrences, including earlier ones, are Duplicate nodes. An
//     address that does not carry survives at its first occurrence in the
//     walk.
//
// Strict's "one designated primary per expansion" is kept: a mailbox that
// is the primary of one expansion and an ordinary member of another
// carries, and it is the first expansion's one copy; the second expansion
// copied nothing. Only the tree's shape (which occurrence survives, where
// loops are cut) and the order of the Plan's lists follow the walk order.
//
// # Nesting, duplicates and loops
//
// A Planner first looks every reachable address up once, breadth first
// (MaxDepth bounds the length of an address's shortest path from an
// original recipient, MaxNodes the number of nodes of the plan), then
// decides who carries, then builds the tree depth first in the expander's
// order. An address that occurs again (as a final recipient or as an
// expanded address, anywhere in the plan, including under another
// original recipient) becomes a Duplicate node and is neither delivered
// nor expanded again; which occurrence survives is said above. Addresses
// are compared with the domain folded to lower case and the local part
// exact (RFC 5321 section 2.4), unless the Planner has its own Key
// function; an address is looked up once, under the first spelling the
// breadth-first walk meets, so the Expander should answer all spellings
// with the same key alike.
//
// A member equal to the address being expanded (a forward that keeps a
// copy: "a -> a, b") is a final delivery to that mailbox, not a loop. Any
// other member that names an address on the path from the root is marked
// Loop and dropped; planning continues, and Plan.Loops counts them. A plan
// can therefore end with no final recipient at all (every path looped);
// the caller decides what to do (typically fail the original recipient
// with 5.4.6, see LoopError). Runaway expansions are bounded by
// Planner.MaxDepth and Planner.MaxNodes and end with an error.
//
// # Result
//
// A Plan holds one Node tree per original recipient, ready to be recorded
// as RFC 3886 "expanded" actions with their children, and two flat lists
// of final recipients: those that travel in a transaction with MTRK (they
// carry the certifier) and those that travel without it. Because MTRK is a
// MAIL FROM parameter, a relay sends the two lists in separate
// transactions. Every final recipient appears in exactly one of the lists,
// once.
package aliasing
