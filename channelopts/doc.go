// Package channelopts holds the reference product's message-tracking
// options as typed Go values, with the product's names and defaults, and
// reads and writes the product's own configuration files so that a site
// can bring its existing configuration.
//
// The options are those of table 17-1 of the product's chapter "Message
// Tracking and Recall" (Oracle Communications Messaging Server), which
// implements RFC 3885 (SMTP MTRK), RFC 3886, RFC 3887 (MTQP) and RFC 4865
// (FUTURERELEASE):
//
//   - MTA options (type MTA, file option.dat): tracking_mode,
//     tracking_retries, tracking_retry_delay, tracking_debug, log_tracking,
//     log_futurerelease, ldap_attr_auth_recall_secret, memcache_host and
//     memcache_port.
//   - Channel options (type Channel, the channel table of imta.cnf):
//     trackingserver/notrackingserver, trackingclient/notrackingclient,
//     trackinginternal/trackingrelayed/trackingdelivered,
//     trackingmultiple/trackingsingle/trackingfirst (plus this library's
//     trackingstrict, see package aliasing), trackinggenerate n,
//     trackingtimeoutdefault n, trackingtimeoutmin n and
//     trackingtimeoutmax n.
//
// # Zero values are the product's defaults
//
// A Go program builds the values as plain structs, and every field left
// at its zero value means the product's default, so
// channelopts.Channel{TrackingServer: true} is a channel that offers MTRK
// with the default timeouts (3 days, at least 1 day, at most 14 days),
// internal disposition and the trackingmultiple alias policy. Where zero
// is itself a meaningful setting (tracking_retries, tracking_retry_delay)
// the field is a pointer, nil meaning the default; with Go 1.26 write
// TrackingRetries: new(0). Read the effective values through the accessor
// methods (MTA.Retries, MTA.RetryDelay, MTA.Port, Channel.TrackingLimits,
// ...), never the raw fields.
//
// tracking_mode 2 (ModeInMemory) is this library's addition: the product
// restricts values other than 0 and 1; here 2 selects the in-process store
// (trackstore/memstore), which suits a single MTA and tests but shares
// nothing across a deployment and loses its data on restart.
//
// # The timeout rule
//
// Channel.Timeout applies the product's rule to the timeout of an incoming
// MTRK= parameter (RFC 3885 leaves the policy to the server):
// trackingtimeoutdefault when MTRK= has no timeout, values below
// trackingtimeoutmin silently raised, values above trackingtimeoutmax
// silently lowered. The arithmetic lives once, in mtrk.Limits.Clamp;
// Channel.TrackingLimits returns the channel's limits.
//
// # File formats
//
// What was verified, and where (Sun Java System Messaging Server 6.3 and
// 6 2005Q4 Administration Reference and Administration Guide, and the
// Messaging Server technical reference wiki):
//
//   - Both files are text, one logical line possibly split over several
//     physical lines with a trailing backslash (the backslash is removed
//     and the next physical line appended as it is, so put a space before
//     the backslash to separate keywords). The product also limits a
//     physical line to 252 characters; this package does not.
//   - The MTA option file (option.dat) has NAME=value lines. Its comment
//     characters are hard-coded: a line whose first column is "!", ";" or
//     "#" is a comment, even in the middle of a continued line. Blank lines
//     are ignored. Option names are case-insensitive; white space around
//     the name and the value is removed. When an option appears twice the
//     later line wins (this package's choice; not verified against the
//     product). Unknown options are kept, in order, in MTA.Other.
//     Integers are decimal.
//   - The channel table (the part of imta.cnf after the rewrite rules) is
//     a sequence of channel blocks separated by blank lines. Comment lines
//     ("!" or ";" in column one, the default comment_chars) may appear
//     inside a block and do not count as blank lines. A block's first
//     logical line is the channel name followed by its keywords
//     (case-insensitive); each further line is a host name, the first one
//     being the channel tag (official host name). Keywords this package
//     does not know are kept in Channel.Other, in order, each with the
//     integer arguments that follow it ("maxjobs 7", "notices 1 2 3").
//     The chapter spells trackingrelayed once as "trackingrelay" in its
//     prose; both spellings are accepted, trackingrelayed is written.
//     ParseIMTAConfig skips the rewrite-rule section that comes first in
//     imta.cnf. Include lines ("<" in column one) are reported as errors
//     (ErrInclude), not followed. The "defaults" pseudo-channel is returned
//     like any other block; this package does not merge it into the
//     channels that follow.
//
// memcache_host is documented as naming one host. This package accepts a
// list of servers separated by commas and/or white space, each "host",
// "host:port", "[ipv6]" or "[ipv6]:port"; servers without a port use
// memcache_port. MTA.MemcacheServers returns them as host:port strings.
//
// # Errors
//
// Parsers read an io.Reader and take the file name for messages. Every
// problem is an *Error naming the file, the line, the channel (for channel
// blocks) and the option or keyword, wrapping one of the sentinel errors
// (ErrSyntax, ErrMissingArgument, ErrRange, ErrContradiction,
// ErrUnknownMode, ErrInclude). A parser reports all problems it finds,
// joined with errors.Join (use errors.As to get the first *Error).
//
// Validation rejects: contradictory keywords on one channel (trackingserver
// with notrackingserver, two dispositions, two alias policies, one timeout
// keyword with two values), trackingtimeoutmin above trackingtimeoutmax
// (after defaults are applied), timeouts outside 1 to 999999999 seconds
// (the RFC 3885 timeout has at most 9 digits), a timeout keyword or
// trackinggenerate without its integer, negative or out-of-range MTA
// option values and unknown tracking_mode values. Channel.Validate and
// MTA.Validate apply the same rules to values built in Go.
package channelopts
