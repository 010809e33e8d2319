package channelopts

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// TrackingMode is the tracking_mode MTA option: where tracking records are
// stored.
type TrackingMode int

// The tracking modes.
const (
	// ModeOff (0, the default) stores no tracking information.
	ModeOff TrackingMode = 0
	// ModeMemcached (1) stores it in memcached (or a compatible server)
	// shared across the deployment.
	ModeMemcached TrackingMode = 1
	// ModeInMemory (2) is this library's addition: an in-process store for
	// a single MTA or tests. It is not shared and does not survive a
	// restart.
	ModeInMemory TrackingMode = 2
)

// String returns "off", "memcached" or "in-memory".
func (m TrackingMode) String() string {
	switch m {
	case ModeOff:
		return "off"
	case ModeMemcached:
		return "memcached"
	case ModeInMemory:
		return "in-memory"
	}
	return fmt.Sprintf("TrackingMode(%d)", int(m))
}

// Valid reports whether m is 0, 1 or 2.
func (m TrackingMode) Valid() bool { return m >= ModeOff && m <= ModeInMemory }

// LogFlags are the bits of the log_tracking and log_futurerelease MTA
// options.
type LogFlags int

// The log bits.
const (
	// LogTransaction (bit 0, value 1) puts the value in transaction log
	// entries: for log_tracking the tracking ID and timeout as "id:timeout"
	// right after the envelope ID (attribute mt in the XML log format); for
	// log_futurerelease the release offset in seconds right after the
	// mailbox UID (attribute fr).
	LogTransaction LogFlags = 1 << 0
	// LogActionProbe (bit 1, value 2) puts the same value in the LOG_ACTION
	// mapping table probe.
	LogActionProbe LogFlags = 1 << 1

	// logAll is every defined bit.
	logAll = LogTransaction | LogActionProbe
)

// Has reports whether every bit of b is set in f.
func (f LogFlags) Has(b LogFlags) bool { return f&b == b }

// String lists the set bits, e.g. "transaction|probe", or "none".
func (f LogFlags) String() string {
	if f == 0 {
		return "none"
	}
	var parts []string
	if f.Has(LogTransaction) {
		parts = append(parts, "transaction")
	}
	if f.Has(LogActionProbe) {
		parts = append(parts, "probe")
	}
	if rest := f &^ logAll; rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", int(rest)))
	}
	return strings.Join(parts, "|")
}

// Centiseconds is the unit of tracking_retry_delay.
type Centiseconds int

// Duration converts c to a time.Duration.
func (c Centiseconds) Duration() time.Duration { return time.Duration(c) * 10 * time.Millisecond }

// The product's defaults, and this library's bounds.
const (
	DefaultTrackingRetries    = 5
	DefaultTrackingRetryDelay = Centiseconds(10)
	DefaultMemcachePort       = 11211

	// MaxTrackingRetries and MaxTrackingRetryDelay bound the retry options
	// (this library's limits: every retry holds up a message).
	MaxTrackingRetries    = 100
	MaxTrackingRetryDelay = Centiseconds(6000)
)

// The option names, as the product spells them (case is ignored on input).
const (
	OptTrackingMode             = "tracking_mode"
	OptTrackingRetries          = "tracking_retries"
	OptTrackingRetryDelay       = "tracking_retry_delay"
	OptTrackingDebug            = "tracking_debug"
	OptLogTracking              = "log_tracking"
	OptLogFutureRelease         = "log_futurerelease"
	OptLDAPAttrAuthRecallSecret = "ldap_attr_auth_recall_secret"
	OptMemcacheHost             = "memcache_host"
	OptMemcachePort             = "memcache_port"
)

var knownOptions = []string{
	OptTrackingMode, OptTrackingRetries, OptTrackingRetryDelay, OptTrackingDebug,
	OptLogTracking, OptLogFutureRelease, OptLDAPAttrAuthRecallSecret,
	OptMemcacheHost, OptMemcachePort,
}

func isKnownOption(name string) bool {
	for _, k := range knownOptions {
		if strings.EqualFold(name, k) {
			return true
		}
	}
	return false
}

// Option is an MTA option this package does not interpret.
type Option struct {
	Name, Value string
}

// MTA holds the MTA-wide tracking options. The zero MTA is the product's
// default configuration (tracking off).
type MTA struct {
	// TrackingMode is tracking_mode (default ModeOff).
	TrackingMode TrackingMode
	// TrackingRetries is tracking_retries: how many times to retry a
	// store update that lost a race; nil means 5. Read it with Retries.
	TrackingRetries *int
	// TrackingRetryDelay is tracking_retry_delay, the pause between
	// retries; nil means 10 centiseconds. Read it with RetryDelay.
	TrackingRetryDelay *Centiseconds
	// TrackingDebug is tracking_debug: 0 (default) no debug output, larger
	// values more.
	TrackingDebug int
	// LogTracking is log_tracking (default none).
	LogTracking LogFlags
	// LogFutureRelease is log_futurerelease (default none).
	LogFutureRelease LogFlags
	// LDAPAttrAuthRecallSecret is ldap_attr_auth_recall_secret, the LDAP
	// attribute holding a user's general recall secret. It has no
	// default; empty means none (trackinggenerate then always takes the
	// MD4 path).
	LDAPAttrAuthRecallSecret string
	// MemcacheHost is memcache_host: the memcached servers, each "host",
	// "host:port", "[ipv6]" or "[ipv6]:port". No default.
	MemcacheHost []string
	// MemcachePort is memcache_port, the port of servers listed without
	// one; 0 means 11211. Read it with Port.
	MemcachePort int
	// Other holds the options this package does not know, in file order.
	Other []Option
}

// Retries returns tracking_retries with its default applied.
func (m MTA) Retries() int {
	if m.TrackingRetries == nil {
		return DefaultTrackingRetries
	}
	return *m.TrackingRetries
}

// RetryDelayCentiseconds returns tracking_retry_delay with its default
// applied.
func (m MTA) RetryDelayCentiseconds() Centiseconds {
	if m.TrackingRetryDelay == nil {
		return DefaultTrackingRetryDelay
	}
	return *m.TrackingRetryDelay
}

// RetryDelay returns tracking_retry_delay as a time.Duration.
func (m MTA) RetryDelay() time.Duration { return m.RetryDelayCentiseconds().Duration() }

// Port returns memcache_port with its default applied.
func (m MTA) Port() int {
	if m.MemcachePort == 0 {
		return DefaultMemcachePort
	}
	return m.MemcachePort
}

// MemcacheServers returns memcache_host as "host:port" addresses, the
// port of each server defaulting to Port. Entries that do not parse are
// skipped (Validate reports them).
func (m MTA) MemcacheServers() []string {
	out := make([]string, 0, len(m.MemcacheHost))
	for _, h := range m.MemcacheHost {
		host, port, err := splitServer(h)
		if err != nil {
			continue
		}
		if port == 0 {
			port = m.Port()
		}
		out = append(out, net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return out
}

// splitServer splits one memcache_host entry; port is 0 when absent.
func splitServer(s string) (host string, port int, err error) {
	if s == "" {
		return "", 0, fmt.Errorf("%w: empty server", ErrSyntax)
	}
	if strings.ContainsAny(s, " \t\r\n,") {
		return "", 0, fmt.Errorf("%w: server %q contains a separator", ErrSyntax, s)
	}
	switch {
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("%w: server %q: missing ]", ErrSyntax, s)
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest == "" {
			break
		}
		p, ok := strings.CutPrefix(rest, ":")
		if !ok {
			return "", 0, fmt.Errorf("%w: server %q: junk after ]", ErrSyntax, s)
		}
		if port, err = parsePort(p); err != nil {
			return "", 0, fmt.Errorf("server %q: %w", s, err)
		}
	case strings.Count(s, ":") == 1:
		h, p, _ := strings.Cut(s, ":")
		host = h
		if port, err = parsePort(p); err != nil {
			return "", 0, fmt.Errorf("server %q: %w", s, err)
		}
	default:
		host = s // a name, an IPv4 address or a bare IPv6 address
	}
	if !validHost(host) {
		return "", 0, fmt.Errorf("%w: server %q: bad host", ErrSyntax, s)
	}
	return host, port, nil
}

// validHost accepts the characters of host names, IPv4 and IPv6
// addresses (with a zone).
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.IndexByte(".-_:%", c) >= 0) {
			return false
		}
	}
	return true
}

func parsePort(p string) (int, error) {
	v, ok := parseInt(p)
	if !ok {
		return 0, fmt.Errorf("%w: port %q is not a number", ErrSyntax, p)
	}
	if v < 1 || v > 65535 {
		return 0, fmt.Errorf("%w: port %d not in 1..65535", ErrRange, v)
	}
	return int(v), nil
}

// splitHosts splits a memcache_host value at commas and white space.
func splitHosts(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t'
	})
	if len(f) == 0 {
		return nil
	}
	return f
}

// validAttr reports whether s is an LDAP attribute description without
// options: a descr (a letter, then letters, digits or hyphens) or a
// numericoid (RFC 4512 section 1.4).
func validAttr(s string) bool {
	if s == "" {
		return false
	}
	if c := s[0]; (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
		for i := 1; i < len(s); i++ {
			c := s[i]
			if !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
				return false
			}
		}
		return true
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || !isInt(part) || part[0] == '+' || part[0] == '-' || (len(part) > 1 && part[0] == '0') {
			return false
		}
	}
	return strings.Contains(s, ".")
}

// Validate checks every option's range and syntax. Problems are *Error
// values (joined) naming the option.
func (m MTA) Validate() error {
	var l errList
	m.validate(&l, "", nil)
	return l.err()
}

// validate reports problems; lines maps an option name to its line.
func (m MTA) validate(l *errList, file string, lines map[string]int) {
	bad := func(opt string, sentinel error, format string, args ...any) {
		l.addf(file, lines[opt], "", opt, sentinel, format, args...)
	}
	if !m.TrackingMode.Valid() {
		bad(OptTrackingMode, ErrUnknownMode, "%d (0 off, 1 memcached, 2 in-memory)", int(m.TrackingMode))
	}
	if m.TrackingRetries != nil && (*m.TrackingRetries < 0 || *m.TrackingRetries > MaxTrackingRetries) {
		bad(OptTrackingRetries, ErrRange, "%d not in 0..%d", *m.TrackingRetries, MaxTrackingRetries)
	}
	if m.TrackingRetryDelay != nil && (*m.TrackingRetryDelay < 0 || *m.TrackingRetryDelay > MaxTrackingRetryDelay) {
		bad(OptTrackingRetryDelay, ErrRange, "%d centiseconds not in 0..%d", int(*m.TrackingRetryDelay), int(MaxTrackingRetryDelay))
	}
	if m.TrackingDebug < 0 {
		bad(OptTrackingDebug, ErrRange, "%d is negative", m.TrackingDebug)
	}
	if m.LogTracking < 0 || m.LogTracking&^logAll != 0 {
		bad(OptLogTracking, ErrRange, "%d: only bits 0 and 1 (values 0 to 3) are defined", int(m.LogTracking))
	}
	if m.LogFutureRelease < 0 || m.LogFutureRelease&^logAll != 0 {
		bad(OptLogFutureRelease, ErrRange, "%d: only bits 0 and 1 (values 0 to 3) are defined", int(m.LogFutureRelease))
	}
	if m.LDAPAttrAuthRecallSecret != "" && !validAttr(m.LDAPAttrAuthRecallSecret) {
		bad(OptLDAPAttrAuthRecallSecret, ErrSyntax, "%q is not an LDAP attribute name", m.LDAPAttrAuthRecallSecret)
	}
	for _, h := range m.MemcacheHost {
		if _, _, err := splitServer(h); err != nil {
			l.add(&Error{File: file, Line: lines[OptMemcacheHost], Keyword: OptMemcacheHost, Err: err})
		}
	}
	if m.MemcachePort < 0 || m.MemcachePort > 65535 {
		bad(OptMemcachePort, ErrRange, "%d not in 1..65535", m.MemcachePort)
	}
	if m.TrackingMode == ModeMemcached && len(m.MemcacheHost) == 0 {
		l.addf(file, lines[OptTrackingMode], "", OptMemcacheHost, ErrSyntax, "tracking_mode 1 needs memcache_host")
	}
	for _, o := range m.Other {
		if !validOptionName(o.Name) {
			l.addf(file, 0, "", o.Name, ErrSyntax, "bad option name")
		} else if isKnownOption(o.Name) {
			l.addf(file, 0, "", o.Name, ErrSyntax, "a known option does not belong in Other")
		}
		if !formattableValue(o.Value) {
			l.addf(file, 0, "", o.Name, ErrSyntax, "value %q cannot be written to an option file", o.Value)
		}
	}
}

func validOptionName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "= \t\r\n\\") && strings.IndexByte("!#;", s[0]) < 0
}

func formattableValue(s string) bool {
	return !strings.ContainsAny(s, "\r\n") && s == strings.TrimSpace(s) && !strings.HasSuffix(s, `\`)
}

// ParseMTA reads an MTA option file (option.dat format, see the package
// documentation). name is used in errors. Unknown options are kept in
// MTA.Other. The result is validated; on any problem ParseMTA returns nil
// and every problem found.
func ParseMTA(r io.Reader, name string) (*MTA, error) {
	lines, err := readLogical(r, "!;#")
	if err != nil {
		return nil, &Error{File: name, Err: fmt.Errorf("%w: %w", ErrSyntax, err)}
	}
	var (
		m     MTA
		l     errList
		where = map[string]int{}
	)
	for _, ln := range lines {
		if ln.blank {
			continue
		}
		k, v, ok := strings.Cut(ln.text, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			word, _, _ := strings.Cut(strings.TrimSpace(ln.text), " ")
			l.addf(name, ln.line, "", word, ErrSyntax, "expected NAME=value")
			continue
		}
		if !validOptionName(k) {
			l.addf(name, ln.line, "", k, ErrSyntax, "bad option name")
			continue
		}
		lk := strings.ToLower(k)
		if !isKnownOption(lk) {
			m.Other = append(m.Other, Option{Name: k, Value: v})
			continue
		}
		where[lk] = ln.line
		if lk == OptLDAPAttrAuthRecallSecret {
			m.LDAPAttrAuthRecallSecret = v
			continue
		}
		if lk == OptMemcacheHost {
			m.MemcacheHost = splitHosts(v)
			continue
		}
		n, ok := parseInt(v)
		if !ok {
			l.addf(name, ln.line, "", k, ErrSyntax, "%q is not a decimal integer", v)
			continue
		}
		if n < -1<<31 || n > 1<<31-1 {
			l.addf(name, ln.line, "", k, ErrRange, "%s is too large", v)
			continue
		}
		i := int(n)
		switch lk {
		case OptTrackingMode:
			m.TrackingMode = TrackingMode(i)
		case OptTrackingRetries:
			m.TrackingRetries = &i
		case OptTrackingRetryDelay:
			c := Centiseconds(i)
			m.TrackingRetryDelay = &c
		case OptTrackingDebug:
			m.TrackingDebug = i
		case OptLogTracking:
			m.LogTracking = LogFlags(i)
		case OptLogFutureRelease:
			m.LogFutureRelease = LogFlags(i)
		case OptMemcachePort:
			m.MemcachePort = i
			if i == 0 {
				l.addf(name, ln.line, "", k, ErrRange, "0 not in 1..65535")
			}
		}
	}
	m.validate(&l, name, where)
	// Line numbers of unknown-option problems: Validate reports them
	// without lines, and parsed Other entries are always valid.
	if err := l.err(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Format writes m in option-file form: the set options in the order of
// table 17-1 with upper-case names, then Other in order. Options at their
// zero value are omitted (they are the defaults); pointer options are
// written whenever set. It fails when m does not validate.
func (m MTA) Format() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	put := func(name string, v string) {
		b.WriteString(strings.ToUpper(name))
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	if m.TrackingMode != 0 {
		put(OptTrackingMode, strconv.Itoa(int(m.TrackingMode)))
	}
	if m.TrackingRetries != nil {
		put(OptTrackingRetries, strconv.Itoa(*m.TrackingRetries))
	}
	if m.TrackingRetryDelay != nil {
		put(OptTrackingRetryDelay, strconv.Itoa(int(*m.TrackingRetryDelay)))
	}
	if m.TrackingDebug != 0 {
		put(OptTrackingDebug, strconv.Itoa(m.TrackingDebug))
	}
	if m.LogTracking != 0 {
		put(OptLogTracking, strconv.Itoa(int(m.LogTracking)))
	}
	if m.LogFutureRelease != 0 {
		put(OptLogFutureRelease, strconv.Itoa(int(m.LogFutureRelease)))
	}
	if m.LDAPAttrAuthRecallSecret != "" {
		put(OptLDAPAttrAuthRecallSecret, m.LDAPAttrAuthRecallSecret)
	}
	if len(m.MemcacheHost) > 0 {
		put(OptMemcacheHost, strings.Join(m.MemcacheHost, ","))
	}
	if m.MemcachePort != 0 {
		put(OptMemcachePort, strconv.Itoa(m.MemcachePort))
	}
	for _, o := range m.Other {
		b.WriteString(o.Name)
		b.WriteByte('=')
		b.WriteString(o.Value)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}
