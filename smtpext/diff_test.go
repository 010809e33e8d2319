package smtpext

// Differential test: go-smtp behind the layer against plain go-smtp.
//
// The reference is a plain go-smtp server fed by feedConn, one line per
// Read, with the generated session's own knowledge of which command lines
// carry registered parameters: when a line is read in command mode (the
// last reply go-smtp wrote was neither 354 nor 334), the feeder gives
// go-smtp the line with the valid registered parameters removed, or,
// for a line the layer must refuse, writes the layer's expected reply
// itself and gives go-smtp nothing. The feeder never parses SMTP: it
// relies on the generator's tags and on go-smtp's own replies, so it is
// independent of the layer's framing code.
//
// The layer side gets the same bytes in random-sized reads (all at once,
// or split anywhere) through an in-memory connection.
//
// Allowed differences, normalised before comparing:
//   - the layer's EHLO reply carries the registered keyword line
//     "XTEST 1 2" (removed, continuation marks fixed);
//   - replies the layer owns (bad / disabled / duplicate registered
//     parameters) are produced by the feeder in the reference;
//   - not generated here, covered by their own tests: STARTTLS with TLS
//     configured and AUTH before TLS (the layer runs with
//     AllowInsecureAuth and no TLS configuration, so both pass through);
//   - the line limit applies to the line as the client sent it: the
//     generator never puts registered parameters on over-long lines.
//
// Besides the reply streams, the messages the two backends received
// (sender, recipients, body bytes, data error) must be equal, and on the
// layer side the Transaction seen in Data must match what go-smtp handed
// the session (sender, recipients, the parameters seen in Mail/Rcpt).

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// seg is one piece of a generated session.
type seg struct {
	raw []byte // what the client sends
	// For tagged lines: ref is what go-smtp gets in command mode; when
	// reply is set the layer answers the line itself with reply.
	tagged bool
	ref    []byte
	reply  string
	chunk  bool // BDAT chunk bytes: never transformed
}

// ---- reference feeder ----

type feedConn struct {
	segs []seg
	i    int
	cur  []byte

	mu     sync.Mutex
	out    bytes.Buffer
	last   string // code of the last complete reply line
	lineSt int    // offset in out of the current reply line
	closed chan struct{}
	once   sync.Once
}

func newFeedConn(segs []seg) *feedConn {
	return &feedConn{segs: segs, closed: make(chan struct{})}
}

func (f *feedConn) commandMode() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last != "354" && f.last != "334"
}

func (f *feedConn) Read(b []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	for f.cur == nil {
		if f.i >= len(f.segs) {
			return 0, io.EOF
		}
		s := f.segs[f.i]
		f.i++
		f.cur = s.raw
		if s.tagged && !s.chunk && f.commandMode() {
			if s.reply != "" {
				f.mu.Lock()
				f.out.WriteString(s.reply)
				f.mu.Unlock()
				f.cur = nil
				continue
			}
			f.cur = s.ref
		}
		if len(f.cur) == 0 {
			f.cur = nil
		}
	}
	k := bytes.IndexByte(f.cur, '\n') + 1
	if k == 0 {
		k = len(f.cur)
	}
	n := copy(b, f.cur[:k])
	f.cur = f.cur[n:]
	if len(f.cur) == 0 {
		f.cur = nil
	}
	return n, nil
}

func (f *feedConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out.Write(p)
	for {
		buf := f.out.Bytes()[f.lineSt:]
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		ln := buf[:i]
		if len(ln) >= 3 && (len(ln) < 4 || ln[3] != '-') {
			f.last = string(ln[:3])
		}
		f.lineSt += i + 1
	}
	return len(p), nil
}

func (f *feedConn) Close() error        { f.once.Do(func() { close(f.closed) }); return nil }
func (f *feedConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (f *feedConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (f *feedConn) SetDeadline(t time.Time) error      { return nil }
func (f *feedConn) SetReadDeadline(t time.Time) error  { return nil }
func (f *feedConn) SetWriteDeadline(t time.Time) error { return nil }
func (f *feedConn) output() string                     { f.mu.Lock(); defer f.mu.Unlock(); return f.out.String() }

// ---- in-memory client connection for the layer ----

type memConn struct {
	in     []byte
	splits *rand.Rand // nil: everything in one read
	mu     sync.Mutex
	out    bytes.Buffer
	closed chan struct{}
	once   sync.Once
}

func (m *memConn) Read(b []byte) (int, error) {
	select {
	case <-m.closed:
		return 0, net.ErrClosed
	default:
	}
	if len(m.in) == 0 {
		return 0, io.EOF
	}
	n := len(b)
	if m.splits != nil {
		n = min(n, 1+m.splits.IntN(64))
	}
	n = copy(b, m.in[:min(n, len(m.in))])
	m.in = m.in[n:]
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.Write(p)
}

func (m *memConn) Close() error                       { m.once.Do(func() { close(m.closed) }); return nil }
func (m *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (m *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }
func (m *memConn) output() string                     { m.mu.Lock(); defer m.mu.Unlock(); return m.out.String() }

// chanListener hands out the connections sent on ch.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }

// ---- the pair of servers ----

type diffPair struct {
	refBE, layBE *recBackend
	refL, layL   *chanListener
	lay          *Server
	ref          *smtp.Server
	mu           sync.Mutex
}

func tuneDiff(s *smtp.Server) {
	s.Domain = "mx.test"
	s.ErrorLog = discardLogger{}
	s.MaxMessageBytes = 3000
	s.MaxRecipients = 3
	s.EnableDSN = true
	s.AllowInsecureAuth = true
}

func newDiffPair(t testing.TB) *diffPair { return newDiffPairExt(t, testExtensions()) }

func newDiffPairExt(t testing.TB, exts []Extension) *diffPair {
	p := &diffPair{
		refBE: &recBackend{rejectRcpt: map[string]bool{"bad@example.org": true}},
		layBE: &recBackend{rejectRcpt: map[string]bool{"bad@example.org": true}},
		refL:  newChanListener(), layL: newChanListener(),
	}
	p.ref = smtp.NewServer(p.refBE)
	tuneDiff(p.ref)
	ls := smtp.NewServer(p.layBE)
	tuneDiff(ls)
	var err error
	p.lay, err = NewServer(ls, Config{Extensions: exts, ReadTimeout: -1, WriteTimeout: -1})
	require.NoError(t, err)
	go p.ref.Serve(p.refL)
	go p.lay.Serve(p.layL)
	t.Cleanup(func() { p.ref.Close(); p.lay.Close() })
	return p
}

var xtestLine = regexp.MustCompile(`250-([^\r\n]*)\r\n250 XTEST 1 2\r\n`)

// run plays one session on both servers and returns a description of the
// first difference, or "".
func (p *diffPair) run(segs []seg, splits *rand.Rand) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var in []byte
	for _, s := range segs {
		in = append(in, s.raw...)
	}
	fc := newFeedConn(segs)
	p.refL.ch <- fc
	select {
	case <-fc.closed:
	case <-time.After(time.Minute):
		return fmt.Sprintf("reference session did not end\ninput: %q\nout: %s", in, fc.output())
	}
	mc := &memConn{in: in, splits: splits, closed: make(chan struct{})}
	p.layL.ch <- mc
	select {
	case <-mc.closed:
	case <-time.After(time.Minute):
		return fmt.Sprintf("layer session did not end\ninput: %q\nout: %s", in, mc.output())
	}
	refOut := fc.output()
	layOut := xtestLine.ReplaceAllString(mc.output(), "250 $1\r\n")
	refMsgs, layMsgs := p.refBE.take(), p.layBE.take()
	if refOut != layOut {
		return fmt.Sprintf("replies differ\ninput:\n%q\nreference:\n%s\nlayer:\n%s", in, refOut, layOut)
	}
	if len(refMsgs) != len(layMsgs) {
		return fmt.Sprintf("message count %d vs %d\ninput:\n%q\nref: %+v\nlayer: %+v\nout: %s", len(refMsgs), len(layMsgs), in, refMsgs, layMsgs, layOut)
	}
	for i := range refMsgs {
		r, l := refMsgs[i], layMsgs[i]
		if r.From != l.From || fmt.Sprint(r.Rcpts) != fmt.Sprint(l.Rcpts) || r.Body != l.Body || fmt.Sprint(r.DataErr) != fmt.Sprint(l.DataErr) {
			return fmt.Sprintf("message %d differs\ninput:\n%q\nref: %+v\nlayer: %+v", i, in, r, l)
		}
		if !l.HasInfo || l.Tx.From != l.From || len(l.Tx.Rcpts) != len(l.Rcpts) || fmt.Sprint(l.Tx.MailParams) != fmt.Sprint(l.MailCmd) {
			return fmt.Sprintf("layer transaction mismatch in message %d\ninput:\n%q\n%+v", i, in, l)
		}
		for j := range l.Rcpts {
			if l.Tx.Rcpts[j].To != l.Rcpts[j] || fmt.Sprint(l.Tx.Rcpts[j].Params) != fmt.Sprint(l.RcptCmd[j]) {
				return fmt.Sprintf("layer recipient %d mismatch in message %d\ninput:\n%q\n%+v", j, i, in, l)
			}
		}
	}
	return ""
}

func (b *recBackend) take() []message {
	b.mu.Lock()
	defer b.mu.Unlock()
	// A BDAT transfer aborted by the connection's end finishes in go-smtp's
	// Data goroutine after the connection closed, racing with this call:
	// such messages (ErrDataReset) are left out of the comparison.
	var m []message
	for _, x := range b.msgs {
		if !errors.Is(x.DataErr, smtp.ErrDataReset) {
			m = append(m, x)
		}
	}
	b.msgs = nil
	return m
}

// ---- session generator ----

type gen struct {
	r    *rand.Rand
	segs []seg
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) eol() string {
	switch g.r.IntN(12) {
	case 0:
		return "\n"
	case 1:
		return "\r\r\n"
	}
	return "\r\n"
}

func (g *gen) plain(s string) { g.segs = append(g.segs, seg{raw: []byte(s)}) }

// param kinds
const (
	pkOther     = iota // passed to go-smtp as is (valid or not for go-smtp)
	pkExtValid         // registered, valid: stripped
	pkExtBad           // registered, parse error
	pkExtOff           // registered, extension disabled (XTL: after TLS only)
	pkMalformed        // two '=': go-smtp refuses the whole command
)

type gparam struct {
	text string
	kind int
	name string
}

func (g *gen) mailParam() gparam {
	switch g.r.IntN(12) {
	case 0, 1:
		return gparam{fmt.Sprintf("%s=%d", g.pick("XT", "xt", "Xt"), g.r.IntN(1000)), pkExtValid, "XT"}
	case 2:
		return gparam{g.pick("XT=abc", "XT", "XT=", "XT=-1"), pkExtBad, "XT"}
	case 3:
		return gparam{g.pick("XTL=1", "xtl"), pkExtOff, "XTL"}
	case 4:
		return gparam{g.pick("A=B=C", "XT=1=2"), pkMalformed, ""}
	case 5:
		return gparam{g.pick("SIZE=100", "SIZE=99999", "SIZE=x"), pkOther, "SIZE"}
	case 6:
		return gparam{g.pick("ENVID=abc+2Bdef", "ENVID=", "RET=HDRS"), pkOther, "ENVID"}
	case 7:
		return gparam{g.pick("FOO=1", "SMTPUTF8", "BY=10;R"), pkOther, "FOO"}
	}
	return gparam{g.pick("BODY=8BITMIME", "BODY=7BIT", "body=8bitmime"), pkOther, "BODY"}
}

func (g *gen) rcptParam() gparam {
	switch g.r.IntN(8) {
	case 0, 1:
		return gparam{fmt.Sprintf("%s=%d", g.pick("XR", "xr"), g.r.IntN(1000)), pkExtValid, "XR"}
	case 2:
		return gparam{g.pick("XR=x", "XR"), pkExtBad, "XR"}
	case 3:
		return gparam{"XT=1", pkOther, "XT"} // a MAIL parameter: go-smtp's 500 on RCPT
	case 4:
		return gparam{"A=B=C", pkMalformed, ""}
	case 5:
		return gparam{g.pick("NOTIFY=SUCCESS,FAILURE", "NOTIFY=BOGUS"), pkOther, "NOTIFY"}
	}
	return gparam{"ORCPT=rfc822;a@example.org", pkOther, "ORCPT"}
}

// goSMTPRefuses are the generated parameters go-smtp (as configured in
// tuneDiff) answers with an error; go-smtp checks parameters in map order,
// so a command carries at most one bad parameter of any kind.
var goSMTPRefuses = map[string]bool{
	"FOO=1": true, "SIZE=x": true, "SIZE=99999": true, "ENVID=": true, "NOTIFY=BOGUS": true,
	"XT=1": true, "BY=10;R": true, "SMTPUTF8": true,
}

// envelopeLine makes a MAIL or RCPT line with its reference form.
func (g *gen) envelopeLine(rcpt bool) seg {
	verb, prefix, rebuilt := g.pick("MAIL FROM:", "mail from:", "MAIL FROM: "), "", "MAIL FROM:"
	paths := []string{"<a@example.org>", "<>", "a@example.org", "<@r.example:a@example.org>", `<"q u"@example.org>`}
	bad := []string{"<a b@example.org>", "<a@example.org", "", "<@nocolon>", "<a@>"}
	newParam := g.mailParam
	if rcpt {
		verb, rebuilt = g.pick("RCPT TO:", "rcpt to:", "RCPT TO: "), "RCPT TO:"
		paths = []string{"<b@example.org>", "<c@example.org>", "<Postmaster>", "d@example.org", "<bad@example.org>"}
		bad = []string{"<>", "<b c@example.org>", "<b@example.org", ""}
		newParam = g.rcptParam
	}
	_ = prefix
	path, valid := paths[g.r.IntN(len(paths))], true
	if g.r.IntN(8) == 0 {
		path, valid = bad[g.r.IntN(len(bad))], false
	}
	var ps []gparam
	nbad := 0
	for n := g.r.IntN(4); n > 0; n-- {
		p := newParam()
		if p.kind != pkExtValid && p.kind != pkOther || p.kind == pkOther && goSMTPRefuses[p.text] {
			if nbad > 0 {
				continue
			}
			nbad++
		}
		ps = append(ps, p)
	}
	var raw strings.Builder
	raw.WriteString(verb + path)
	for i, p := range ps {
		if i == 0 && strings.HasSuffix(path, ">") && g.r.IntN(6) == 0 {
			raw.WriteString(p.text)
			continue
		}
		raw.WriteString(g.pick(" ", " ", "  ", "\t") + p.text)
	}
	if g.r.IntN(10) == 0 {
		raw.WriteString(" ")
	}
	raw.WriteString(g.eol())
	s := seg{raw: []byte(raw.String()), tagged: true, ref: []byte(raw.String())}
	malformed := false
	for _, p := range ps {
		malformed = malformed || p.kind == pkMalformed
	}
	if !valid || malformed || path == "" && len(ps) == 0 {
		return s
	}
	seen := map[string]bool{}
	var kept []string
	for _, p := range ps {
		switch p.kind {
		case pkExtValid, pkExtBad, pkExtOff:
			switch {
			case seen[p.name]:
				s.reply = "501 5.5.4 Duplicate " + p.name + " parameter\r\n"
			case p.kind == pkExtOff:
				s.reply = "555 5.5.4 " + p.name + " parameter not supported here\r\n"
			case p.kind == pkExtBad:
				s.reply = "501 5.5.4 Malformed " + p.name + " value\r\n"
			}
			seen[p.name] = true
			if s.reply != "" {
				s.ref = nil
				return s
			}
		default:
			kept = append(kept, p.text)
		}
	}
	ref := rebuilt + path
	for _, k := range kept {
		ref += " " + k
	}
	s.ref = []byte(ref + "\r\n")
	return s
}

func (g *gen) bodyLine() {
	switch g.r.IntN(20) {
	case 0:
		g.segs = append(g.segs, g.envelopeLine(false))
		return
	case 1:
		g.segs = append(g.segs, g.envelopeLine(true))
		return
	case 2:
		g.plain(strings.Repeat("x", 1990+g.r.IntN(20)) + "\r\n")
		return
	}
	g.plain(g.pick(".", "..", "...", ".\rX", ".\r", "\r", "", "Subject: hi", "a\rb", "\r.", "X.", ".X",
		"RSET", "QUIT", "DATA", "BDAT 3\r\nab", "STARTTLS", "MAIL FROM:<x@y>", "NOOP") + g.eol())
}

func (g *gen) body() {
	for n := g.r.IntN(8); n > 0; n-- {
		g.bodyLine()
	}
	if g.r.IntN(8) != 0 {
		g.plain(g.pick(".\r\n", ".\r\n", "\r\n.\r\n", ".\n", "\r\r\n.\r\n"))
	}
}

func (g *gen) chunk(n int) {
	const alpha = "abc\r\n.DATQUI T"
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[g.r.IntN(len(alpha))]
	}
	if n > 0 {
		// Keep segment boundaries at line starts for the feeder's tags,
		// whether the chunk is read as a chunk or (after a malformed
		// BDAT) as command lines.
		b[n-1] = '\n'
	}
	g.segs = append(g.segs, seg{raw: b, chunk: true})
}

func (g *gen) command() {
	switch g.r.IntN(22) {
	case 0, 1:
		g.plain(g.pick("EHLO client", "ehlo client", "HELO client", "EHLO", "LHLO client", "EHLO  spaced") + g.eol())
	case 2, 3, 4:
		g.segs = append(g.segs, g.envelopeLine(false))
	case 5, 6, 7, 8:
		g.segs = append(g.segs, g.envelopeLine(true))
	case 9, 10:
		g.plain(g.pick("DATA", "DATA", "data", "DATA x") + g.eol())
		g.body()
	case 11, 12:
		n := g.r.IntN(40)
		if g.r.IntN(10) == 0 {
			n = 3100 // over MaxMessageBytes: 552
		}
		g.plain(fmt.Sprintf(g.pick("BDAT %d", "BDAT %d LAST", "bdat %d last", "BDAT  %d  LAST"), n) + g.eol())
		g.chunk(n)
	case 13:
		g.plain(g.pick("BDAT", "BDAT x", "BDAT 5 FIRST", "BDAT 5 LAST more", "BDAT -1", "BDAT\t5") + g.eol())
		if g.r.IntN(2) == 0 {
			g.chunk(g.r.IntN(10))
		}
	case 14:
		g.plain(g.pick("RSET", "NOOP", "VRFY x", "HELP", "rset") + g.eol())
	case 15:
		g.plain(g.pick("FOO", "AB", "", "MAILX", "EXPN x", "STARTTLS", "starttls now") + g.eol())
	case 16:
		ok := base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret"))
		switch g.r.IntN(3) {
		case 0:
			g.plain("AUTH PLAIN " + ok + "\r\n")
		default:
			g.plain("AUTH PLAIN\r\n")
			switch g.r.IntN(4) {
			case 0:
				g.plain(ok + "\r\n")
			case 1:
				g.plain(g.pick("STARTTLS", "RSET", "*", "DATA") + "\r\n")
			default:
				// A command-like SASL line with registered parameters:
				// it must reach go-smtp untouched.
				s := g.envelopeLine(false)
				g.segs = append(g.segs, s)
			}
		}
	default:
		g.segs = append(g.segs, g.envelopeLine(g.r.IntN(2) == 0))
	}
}

func genSession(r *rand.Rand) []seg {
	g := &gen{r: r}
	if r.IntN(10) != 0 {
		g.plain("EHLO client.example\r\n")
	}
	for n := 1 + r.IntN(25); n > 0; n-- {
		g.command()
	}
	if r.IntN(5) != 0 {
		g.plain("QUIT\r\n")
	}
	return g.segs
}

func TestDifferential(t *testing.T) {
	p := newDiffPair(t)
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("SMTPEXT_DIFF_N")); err == nil {
		n = v
	}
	if testing.Short() {
		n = 300
	}
	for i := range n {
		seed := uint64(i)
		segs := genSession(rand.New(rand.NewPCG(seed, 1)))
		var splits *rand.Rand
		if i%2 == 1 {
			splits = rand.New(rand.NewPCG(seed, 2))
		}
		if d := p.run(segs, splits); d != "" {
			t.Fatalf("seed %d: %s", seed, d)
		}
	}
}

// TestDifferentialCoverage checks that the generator reaches the cases
// the differential test is meant to cover, so that it cannot silently
// degrade into comparing trivial sessions.
func TestDifferentialCoverage(t *testing.T) {
	p := newDiffPair(t)
	want := map[string]*regexp.Regexp{
		"message queued via DATA": regexp.MustCompile(`(?m)^354 .*\r\n(?:[^\r\n]*\r\n)*?250 2\.0\.0 OK: queued`),
		"BDAT continue":           regexp.MustCompile(`250 2\.0\.0 Continue`),
		"BDAT 552":                regexp.MustCompile(`552 5\.3\.4 Max message size exceeded`),
		"layer 501 bad param":     regexp.MustCompile(`501 5\.5\.4 Malformed X[TR] value`),
		"layer 555":               regexp.MustCompile(`555 5\.5\.4 XTL`),
		"duplicate":               regexp.MustCompile(`Duplicate XT`),
		"SASL 334":                regexp.MustCompile(`(?m)^334 `),
		"auth ok":                 regexp.MustCompile(`235 2\.0\.0`),
		"too long line":           regexp.MustCompile(`500 5\.4\.0 Too long line`),
		"unknown param":           regexp.MustCompile(`Unknown MAIL FROM argument`),
		"max recipients":          regexp.MustCompile(`452 4\.5\.3`),
		"backend reject":          regexp.MustCompile(`550 5\.1\.1`),
		"data too large":          regexp.MustCompile(`552 5\.3\.4 Maximum message size exceeded`),
	}
	seen := map[string]bool{}
	for i := range 600 {
		segs := genSession(rand.New(rand.NewPCG(uint64(i), 1)))
		fc := newFeedConn(segs)
		p.refL.ch <- fc
		<-fc.closed
		p.refBE.take()
		out := fc.output()
		for k, re := range want {
			if re.MatchString(out) {
				seen[k] = true
			}
		}
	}
	for k := range want {
		require.True(t, seen[k], "generator never produced: %s", k)
	}
}

func TestDifferentialSeed(t *testing.T) {
	seed := uint64(0)
	if _, err := fmt.Sscan(os.Getenv("SMTPEXT_SEED"), &seed); err != nil {
		t.Skip("set SMTPEXT_SEED to replay one generated session")
	}
	p := newDiffPair(t)
	segs := genSession(rand.New(rand.NewPCG(seed, 1)))
	var splits *rand.Rand
	if os.Getenv("SMTPEXT_SPLIT") != "" {
		splits = rand.New(rand.NewPCG(seed, 2))
	}
	if d := p.run(segs, splits); d != "" {
		t.Fatal(d)
	}
}

// FuzzLayerRaw feeds arbitrary byte streams. The layer has an extension
// with a keyword but no parameters, so apart from the EHLO keyword it
// must be transparent: any difference from plain go-smtp (fed one line
// per read) is a framing desynchronisation.
func FuzzLayerRaw(f *testing.F) {
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nQUIT\r\n\r\r\n.\r\nRSET\r\n.\r\nQUIT\r\n"), false)
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 6\r\nQUIT\r\nBDAT 0 LAST\r\nNOOP\r\n"), true)
	f.Add([]byte("EHLO x\r\nAUTH PLAIN\r\nRSET\r\nAUTH PLAIN\r\nAHVzZXIAc2VjcmV0\r\nBDAT x\r\nabc\r\n"), false)
	f.Add([]byte("EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\n.\rX\n.\n\r\n.\r\nBDAT 3 LAST\nab\n"), true)
	f.Add([]byte("EHLO x\r\n"+strings.Repeat("y", 1999)+"\r\nNOOP\r\n"), false)
	p := newDiffPairExt(f, []Extension{{Keyword: "XTEST", KeywordArgs: func(ConnInfo) []string { return []string{"1", "2"} }}})
	f.Fuzz(func(t *testing.T, in []byte, split bool) {
		var splits *rand.Rand
		if split {
			splits = rand.New(rand.NewPCG(uint64(len(in)), 7))
		}
		segs := []seg{{raw: in}}
		if d := p.run(segs, splits); d != "" {
			t.Fatal(d)
		}
	})
}

// FuzzLayerGenerated drives the session generator (registered parameters,
// bodies full of command-like lines and dot-stuffing edge cases, BDAT,
// SASL) from the fuzzer's seeds, with reads split anywhere.
func FuzzLayerGenerated(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i%2 == 0)
	}
	p := newDiffPair(f)
	f.Fuzz(func(t *testing.T, seed uint64, split bool) {
		var splits *rand.Rand
		if split {
			splits = rand.New(rand.NewPCG(seed, 2))
		}
		if d := p.run(genSession(rand.New(rand.NewPCG(seed, 1))), splits); d != "" {
			t.Fatal(d)
		}
	})
}
