package mtqp

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Command kinds counted in Metrics.
var metricCommands = [...]string{CmdTrack, CmdRecall, CmdStartTLS, CmdComment, CmdQuit, "UNKNOWN"}

func cmdIndex(verb string) int {
	for i, c := range metricCommands[:len(metricCommands)-1] {
		if c == verb {
			return i
		}
	}
	return len(metricCommands) - 1
}

type cmdStats struct {
	count, failures atomic.Uint64
	total, max      atomic.Int64 // nanoseconds
}

// metrics is the server's own counters: a field of Server, never
// registered anywhere, so two servers in one process never share them.
type metrics struct {
	cmds [len(metricCommands)]cmdStats

	accepted, rejected, open            atomic.Int64
	rateLimited, notFound, lineTooLong  atomic.Uint64
	timeouts, tlsFailures, plainDropped atomic.Uint64
	badLines, shutdownClosed            atomic.Uint64
}

func (m *metrics) observe(verb string, d time.Duration, failed bool) {
	s := &m.cmds[cmdIndex(verb)]
	s.count.Add(1)
	if failed {
		s.failures.Add(1)
	}
	s.total.Add(int64(d))
	for {
		old := s.max.Load()
		if int64(d) <= old || s.max.CompareAndSwap(old, int64(d)) {
			break
		}
	}
}

// CommandMetrics are the counters of one command.
type CommandMetrics struct {
	// Count is how many were answered; Failures how many got a 4xx or 5xx.
	Count, Failures uint64
	// Total and Max are the summed and the longest time from reading the
	// command line to having its reply ready to write (the counters are
	// updated before the reply is sent, so a client holding a reply sees
	// it counted).
	Total, Max time.Duration
}

// Mean returns Total/Count.
func (c CommandMetrics) Mean() time.Duration {
	if c.Count == 0 {
		return 0
	}
	return c.Total / time.Duration(c.Count)
}

// Metrics is a snapshot of a server's counters, taken by Server.Metrics.
// The caller reads it or publishes it (expvar, Prometheus, logs); mtqp
// registers nothing itself.
type Metrics struct {
	// Commands maps TRACK, RECALL, STARTTLS, COMMENT, QUIT and UNKNOWN (any
	// other line, garbage and over-long lines included) to their counters.
	Commands map[string]CommandMetrics
	// ConnectionsAccepted counts connections served; ConnectionsRejected
	// those turned away with 421 at MaxConnections; ConnectionsOpen those
	// open now.
	ConnectionsAccepted, ConnectionsRejected, ConnectionsOpen int64
	// RateLimited counts TRACK/RECALL refused with 450 because the client's
	// address had used up its failure budget; NotFound counts 550 answers.
	RateLimited, NotFound uint64
	// LineTooLong counts lines over 998 characters, BadLines lines that were
	// not commands (garbage, control bytes, empty), Timeouts connections
	// closed by the idle or total deadline, TLSFailures failed handshakes,
	// PlaintextDiscarded STARTTLS commands that had plaintext pipelined
	// behind them (dropped), ShutdownClosed connections ended by Shutdown.
	LineTooLong, BadLines, Timeouts, TLSFailures, PlaintextDiscarded, ShutdownClosed uint64
}

func (m *metrics) snapshot() Metrics {
	s := Metrics{Commands: make(map[string]CommandMetrics, len(metricCommands))}
	for i, name := range metricCommands {
		c := &m.cmds[i]
		s.Commands[name] = CommandMetrics{
			Count: c.count.Load(), Failures: c.failures.Load(),
			Total: time.Duration(c.total.Load()), Max: time.Duration(c.max.Load()),
		}
	}
	s.ConnectionsAccepted = m.accepted.Load()
	s.ConnectionsRejected = m.rejected.Load()
	s.ConnectionsOpen = m.open.Load()
	s.RateLimited = m.rateLimited.Load()
	s.NotFound = m.notFound.Load()
	s.LineTooLong = m.lineTooLong.Load()
	s.BadLines = m.badLines.Load()
	s.Timeouts = m.timeouts.Load()
	s.TLSFailures = m.tlsFailures.Load()
	s.PlaintextDiscarded = m.plainDropped.Load()
	s.ShutdownClosed = m.shutdownClosed.Load()
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
