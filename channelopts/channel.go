package channelopts

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/msgtrack/msgtrack/aliasing"
	"github.com/msgtrack/msgtrack/mtrk"
)

// Disposition is what a successful dequeue from a channel means for
// tracking (trackinginternal, trackingrelayed, trackingdelivered).
type Disposition int

// The dispositions. The zero value is Internal, the product's default.
const (
	// Internal: the message moves on inside the deployment
	// (trackinginternal, the default).
	Internal Disposition = iota
	// Relayed: the channel hands messages to an external system, where
	// tracking ends (trackingrelayed).
	Relayed
	// Delivered: the channel performs final delivery (trackingdelivered).
	Delivered
)

var dispositionKeywords = [...]string{Internal: KwTrackingInternal, Relayed: KwTrackingRelayed, Delivered: KwTrackingDelivered}

// String returns the disposition's keyword.
func (d Disposition) String() string {
	if d.Valid() {
		return dispositionKeywords[d]
	}
	return fmt.Sprintf("Disposition(%d)", int(d))
}

// Valid reports whether d is one of the three dispositions.
func (d Disposition) Valid() bool { return d >= Internal && d <= Delivered }

// The channel keywords, as the product spells them (case is ignored on
// input).
const (
	KwTrackingServer         = "trackingserver"
	KwNoTrackingServer       = "notrackingserver"
	KwTrackingClient         = "trackingclient"
	KwNoTrackingClient       = "notrackingclient"
	KwTrackingInternal       = "trackinginternal"
	KwTrackingRelayed        = "trackingrelayed"
	KwTrackingDelivered      = "trackingdelivered"
	KwTrackingGenerate       = "trackinggenerate"
	KwTrackingTimeoutDefault = "trackingtimeoutdefault"
	KwTrackingTimeoutMin     = "trackingtimeoutmin"
	KwTrackingTimeoutMax     = "trackingtimeoutmax"

	// kwTrackingRelay is the spelling the product's chapter also uses in
	// its prose for trackingrelayed; accepted on input as a synonym.
	kwTrackingRelay = "trackingrelay"
)

// MaxTimeout is the largest timeout a keyword accepts: RFC 3885 timeouts
// have at most nine digits.
const MaxTimeout = 999999999 * time.Second

// Keyword is a channel keyword this package does not interpret, with the
// integer arguments that followed it.
type Keyword struct {
	Name string
	Args []string
}

// Channel holds one channel's tracking options. The zero Channel has the
// product's defaults: no MTRK offered or used, internal disposition,
// trackingmultiple, no generated identifiers, default timeouts.
type Channel struct {
	// Name is the channel name (e.g. tcp_local).
	Name string
	// Hosts are the lines after the keyword line: the channel tag
	// (official host name) first.
	Hosts []string

	// TrackingServer is trackingserver (offer MTRK on this source
	// channel); false is notrackingserver, the default.
	TrackingServer bool
	// TrackingClient is trackingclient (use MTRK towards the next hop);
	// false is notrackingclient, the default.
	TrackingClient bool
	// Disposition is trackinginternal (default), trackingrelayed or
	// trackingdelivered.
	Disposition Disposition
	// AliasPolicy is trackingmultiple (default), trackingsingle,
	// trackingfirst or this library's trackingstrict.
	AliasPolicy aliasing.Policy
	// TrackingGenerate is trackinggenerate n: generate a tracking
	// identifier for messages that arrive without one, with this timeout.
	// Zero means the keyword is absent. Whole seconds.
	TrackingGenerate time.Duration
	// TrackingTimeoutDefault, TrackingTimeoutMin and TrackingTimeoutMax
	// are trackingtimeoutdefault, trackingtimeoutmin and
	// trackingtimeoutmax; zero means the product's default (3 days, 1
	// day, 14 days). Whole seconds. Read them with TrackingLimits.
	TrackingTimeoutDefault time.Duration
	TrackingTimeoutMin     time.Duration
	TrackingTimeoutMax     time.Duration

	// Other holds the keywords this package does not know, in order.
	Other []Keyword
}

// TrackingLimits returns the channel's timeout rule with the defaults
// filled in.
func (c Channel) TrackingLimits() mtrk.Limits {
	l := mtrk.Limits{Default: c.TrackingTimeoutDefault, Min: c.TrackingTimeoutMin, Max: c.TrackingTimeoutMax}
	if l.Default == 0 {
		l.Default = mtrk.DefaultLimits.Default
	}
	if l.Min == 0 {
		l.Min = mtrk.DefaultLimits.Min
	}
	if l.Max == 0 {
		l.Max = mtrk.DefaultLimits.Max
	}
	return l
}

// Timeout applies the channel's timeout rule to the timeout of an MTRK=
// parameter received on this channel: trackingtimeoutdefault when given
// is false (MTRK= without a timeout), then silently raised to
// trackingtimeoutmin and lowered to trackingtimeoutmax. It is
// TrackingLimits().Clamp.
func (c Channel) Timeout(timeout time.Duration, given bool) time.Duration {
	return c.TrackingLimits().Clamp(timeout, given)
}

// Generate reports whether the channel has trackinggenerate and the
// timeout it gives generated identifiers. The value is used as
// configured, not clamped to the channel's limits.
func (c Channel) Generate() (timeout time.Duration, ok bool) {
	return c.TrackingGenerate, c.TrackingGenerate > 0
}

var knownKeywords = map[string]bool{
	KwTrackingServer: true, KwNoTrackingServer: true, KwTrackingClient: true, KwNoTrackingClient: true,
	KwTrackingInternal: true, KwTrackingRelayed: true, kwTrackingRelay: true, KwTrackingDelivered: true,
	"trackingmultiple": true, "trackingsingle": true, "trackingfirst": true, "trackingstrict": true,
	KwTrackingGenerate: true, KwTrackingTimeoutDefault: true, KwTrackingTimeoutMin: true, KwTrackingTimeoutMax: true,
}

// Validate checks the channel's values: ranges, whole seconds, min not
// above max (after defaults), and that names, hosts and unknown keywords
// can be written back to a channel file. Problems are *Error values
// (joined).
func (c Channel) Validate() error {
	var l errList
	c.validate(&l, "", 0)
	return l.err()
}

func (c Channel) validate(l *errList, file string, line int) {
	bad := func(kw string, sentinel error, format string, args ...any) {
		l.addf(file, line, c.Name, kw, sentinel, format, args...)
	}
	if c.Name != "" && !validToken(c.Name) {
		bad("", ErrSyntax, "bad channel name %q", c.Name)
	}
	for _, h := range c.Hosts {
		if !validHostLine(h) {
			bad("", ErrSyntax, "bad host line %q", h)
		}
	}
	if !c.Disposition.Valid() {
		bad("", ErrRange, "unknown disposition %d", int(c.Disposition))
	}
	if !c.AliasPolicy.Valid() {
		bad("", ErrRange, "unknown alias policy %d", int(c.AliasPolicy))
	}
	checkTimeout := func(kw string, d time.Duration) {
		switch {
		case d < 0:
			bad(kw, ErrRange, "%v is negative", d)
		case d > MaxTimeout:
			bad(kw, ErrRange, "%d seconds is above %d", int64(d/time.Second), int64(MaxTimeout/time.Second))
		case d%time.Second != 0:
			bad(kw, ErrRange, "%v is not a whole number of seconds", d)
		}
	}
	checkTimeout(KwTrackingGenerate, c.TrackingGenerate)
	checkTimeout(KwTrackingTimeoutDefault, c.TrackingTimeoutDefault)
	checkTimeout(KwTrackingTimeoutMin, c.TrackingTimeoutMin)
	checkTimeout(KwTrackingTimeoutMax, c.TrackingTimeoutMax)
	if lim := c.TrackingLimits(); lim.Min > lim.Max {
		bad(KwTrackingTimeoutMin, ErrRange, "minimum %d seconds is above maximum %d seconds",
			int64(lim.Min/time.Second), int64(lim.Max/time.Second))
	}
	for _, k := range c.Other {
		if !validWord(k.Name) || isInt(k.Name) || knownKeywords[strings.ToLower(k.Name)] {
			bad(k.Name, ErrSyntax, "bad unknown keyword")
		}
		for _, a := range k.Args {
			if !isInt(a) {
				bad(k.Name, ErrSyntax, "argument %q is not an integer", a)
			}
		}
	}
}

// validWord: a word of the keyword line as the parser splits it.
func validWord(s string) bool {
	return s != "" && strings.IndexFunc(s, unicode.IsSpace) < 0 && !strings.HasSuffix(s, `\`)
}

// validToken: a word that can start a line (a channel name).
func validToken(s string) bool {
	return validWord(s) && strings.IndexByte("!;<", s[0]) < 0
}

func validHostLine(s string) bool {
	return s != "" && s == strings.TrimSpace(s) && !strings.ContainsAny(s, "\r\n") &&
		!strings.HasSuffix(s, `\`) && strings.IndexByte("!;<", s[0]) < 0
}

// ParseChannels reads a channel table: channel blocks separated by blank
// lines (see the package documentation). name is used in errors. On any
// problem it returns nil and every problem found.
func ParseChannels(r io.Reader, name string) ([]Channel, error) {
	return parseChannels(r, name, false)
}

// ParseIMTAConfig reads a whole imta.cnf: it skips the rewrite rules (the
// lines before the first blank line) and parses the channel table that
// follows, like ParseChannels.
func ParseIMTAConfig(r io.Reader, name string) ([]Channel, error) {
	return parseChannels(r, name, true)
}

func parseChannels(r io.Reader, name string, skipRules bool) ([]Channel, error) {
	lines, err := readLogical(r, "!;")
	if err != nil {
		return nil, &Error{File: name, Err: fmt.Errorf("%w: %w", ErrSyntax, err)}
	}
	if skipRules {
		i := 0
		for i < len(lines) && !lines[i].blank {
			i++
		}
		lines = lines[i:]
	}
	var (
		l     errList
		out   []Channel
		block []logicalLine
		names = map[string]int{}
	)
	end := func() {
		if len(block) == 0 {
			return
		}
		c, ok := parseBlock(&l, name, block)
		if ok {
			if prev, dup := names[c.Name]; dup && c.Name != "defaults" {
				l.addf(name, block[0].line, c.Name, "", ErrContradiction, "channel already defined on line %d", prev)
			}
			names[c.Name] = block[0].line
			out = append(out, c)
		}
		block = block[:0]
	}
	for _, ln := range lines {
		if ln.blank {
			end()
			continue
		}
		if ln.text[0] == '<' {
			l.addf(name, ln.line, "", "", ErrInclude, "%s", strings.TrimSpace(ln.text[1:]))
			continue
		}
		block = append(block, ln)
	}
	end()
	if err := l.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// group tracks which keyword set one exclusive setting.
type group struct {
	kw    string // as written
	value int64
	set   bool
}

func (g *group) set1(l *errList, file string, line int, ch, kw string, value int64) {
	if g.set && g.value != value {
		l.addf(file, line, ch, kw, ErrContradiction, "contradicts %s", g.kw)
		return
	}
	if !g.set {
		*g = group{kw: kw, value: value, set: true}
	}
}

func parseBlock(l *errList, file string, block []logicalLine) (Channel, bool) {
	before := len(l.errs)
	first := block[0]
	toks := strings.Fields(first.text)
	c := Channel{Name: toks[0]}
	for _, h := range block[1:] {
		c.Hosts = append(c.Hosts, strings.TrimSpace(h.text))
	}
	var server, client, disp, policy, gen, tdef, tmin, tmax group
	seconds := func(i int, kw string) (time.Duration, bool) {
		if i+1 >= len(toks) || !isInt(toks[i+1]) {
			l.addf(file, first.line, c.Name, kw, ErrMissingArgument, "needs a number of seconds")
			return 0, false
		}
		v, _ := parseInt(toks[i+1])
		if v < 1 || v > int64(MaxTimeout/time.Second) {
			l.addf(file, first.line, c.Name, kw, ErrRange, "%s not in 1..%d seconds", toks[i+1], int64(MaxTimeout/time.Second))
			return 0, true
		}
		return time.Duration(v) * time.Second, true
	}
	for i := 1; i < len(toks); i++ {
		tok := toks[i]
		kw := strings.ToLower(tok)
		switch kw {
		case KwTrackingServer, KwNoTrackingServer:
			server.set1(l, file, first.line, c.Name, tok, b2i(kw == KwTrackingServer))
			c.TrackingServer = server.value == 1
		case KwTrackingClient, KwNoTrackingClient:
			client.set1(l, file, first.line, c.Name, tok, b2i(kw == KwTrackingClient))
			c.TrackingClient = client.value == 1
		case KwTrackingInternal, KwTrackingRelayed, kwTrackingRelay, KwTrackingDelivered:
			d := Internal
			switch kw {
			case KwTrackingRelayed, kwTrackingRelay:
				d = Relayed
			case KwTrackingDelivered:
				d = Delivered
			}
			disp.set1(l, file, first.line, c.Name, tok, int64(d))
			c.Disposition = Disposition(disp.value)
		case "trackingmultiple", "trackingsingle", "trackingfirst", "trackingstrict":
			p, _ := aliasing.ParsePolicy(kw)
			policy.set1(l, file, first.line, c.Name, tok, int64(p))
			c.AliasPolicy = aliasing.Policy(policy.value)
		case KwTrackingGenerate, KwTrackingTimeoutDefault, KwTrackingTimeoutMin, KwTrackingTimeoutMax:
			d, consumed := seconds(i, tok)
			if !consumed {
				continue
			}
			i++
			if d == 0 {
				continue // range error reported
			}
			g, field := &gen, &c.TrackingGenerate
			switch kw {
			case KwTrackingTimeoutDefault:
				g, field = &tdef, &c.TrackingTimeoutDefault
			case KwTrackingTimeoutMin:
				g, field = &tmin, &c.TrackingTimeoutMin
			case KwTrackingTimeoutMax:
				g, field = &tmax, &c.TrackingTimeoutMax
			}
			g.set1(l, file, first.line, c.Name, tok, int64(d))
			*field = time.Duration(g.value)
		default:
			if isInt(tok) {
				prev := c.Name
				if i > 1 {
					prev = toks[i-1]
				}
				l.addf(file, first.line, c.Name, tok, ErrSyntax, "unexpected number after %s", prev)
				continue
			}
			k := Keyword{Name: tok}
			for i+1 < len(toks) && isInt(toks[i+1]) {
				k.Args = append(k.Args, toks[i+1])
				i++
			}
			c.Other = append(c.Other, k)
		}
	}
	if len(l.errs) == before {
		c.validate(l, file, first.line)
	}
	return c, len(l.errs) == before
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Format writes the channel as a channel block: the name, the unknown
// keywords in order, then the tracking keywords that differ from the
// defaults, on one line; then one line per host. It fails when the
// channel does not validate or has no name.
func (c Channel) Format() ([]byte, error) {
	var b bytes.Buffer
	if err := c.appendFormat(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (c Channel) appendFormat(b *bytes.Buffer) error {
	if c.Name == "" {
		return &Error{Err: fmt.Errorf("%w: channel without a name", ErrSyntax)}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	b.WriteString(c.Name)
	word := func(s string) {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	for _, k := range c.Other {
		word(k.Name)
		for _, a := range k.Args {
			word(a)
		}
	}
	if c.TrackingServer {
		word(KwTrackingServer)
	}
	if c.TrackingClient {
		word(KwTrackingClient)
	}
	if c.Disposition != Internal {
		word(c.Disposition.String())
	}
	if c.AliasPolicy != aliasing.Multiple {
		word(c.AliasPolicy.String())
	}
	secs := func(kw string, d time.Duration) {
		if d != 0 {
			word(kw)
			word(strconv.FormatInt(int64(d/time.Second), 10))
		}
	}
	secs(KwTrackingGenerate, c.TrackingGenerate)
	secs(KwTrackingTimeoutDefault, c.TrackingTimeoutDefault)
	secs(KwTrackingTimeoutMin, c.TrackingTimeoutMin)
	secs(KwTrackingTimeoutMax, c.TrackingTimeoutMax)
	b.WriteByte('\n')
	for _, h := range c.Hosts {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	return nil
}

// FormatChannels writes channels as a channel table, blocks separated by
// blank lines.
func FormatChannels(chs []Channel) ([]byte, error) {
	var b bytes.Buffer
	for i, c := range chs {
		if i > 0 {
			b.WriteByte('\n')
		}
		if err := c.appendFormat(&b); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}
