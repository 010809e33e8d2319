package smtpext

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// Read modes of a conn.
const (
	modeCommand = iota // one command line per Read
	modeData           // DATA body, up to go-smtp's end-of-data marker
	modeChunk          // BDAT chunk, by byte count
	modeEOF            // handed off after STARTTLS
)

// What the command go-smtp is processing was, so that its reply can be
// interpreted.
type pendKind uint8

const (
	pNone pendKind = iota
	pMail
	pRcpt
	pData
	pDataBody
	pBDAT
	pRset
	pHelo
	pEhlo
	pAuth
)

// What the write side is holding back.
const (
	holdNone     = iota
	holdGreeting // post-STARTTLS greeting of the new go-smtp conn: dropped
	holdEHLO     // EHLO/LHLO reply: buffered until its final line, then rewritten
)

const maxHeldReply = 64 << 10

// conn is the net.Conn go-smtp sees. Read hands go-smtp one command line
// at a time (or DATA/BDAT bytes), Write watches go-smtp's replies.
//
// Read is only called by one goroutine at a time (go-smtp's connection
// goroutine, or the goroutine of an LMTP DATA reader); Write may run
// concurrently with Read (LMTP per-recipient replies), so everything the
// two share is under mu.
type conn struct {
	s   *Server
	l   *listener
	k   *socket
	nc  net.Conn // what the layer reads and writes: the socket or a *tls.Conn over it
	br  *bufio.Reader
	tls *tls.ConnectionState

	// Read side.
	mode     int
	left     int64 // bytes of the current BDAT chunk still to pass on
	dot      dotState
	out      []byte // bytes ready for go-smtp
	seenLine bool   // a command line was read on this go-smtp connection
	rerr     error  // sticky read error
	lineBuf  []byte // a command line rewritten for go-smtp (out points into it)

	mu        sync.Mutex
	pend      pendKind
	pendLast  bool // the pending BDAT is BDAT LAST
	enterData bool // go-smtp answered 354: the next Read starts data mode
	sasl      bool // go-smtp answered 334: the next line is SASL data
	authed    bool
	hold      int
	held      []byte
	wpre      [4]byte // first bytes of the reply line being written
	wn        int
	closed    bool
	handedOff bool
	// isClosed mirrors closed for Read: once go-smtp closed the
	// connection (QUIT, too many errors), bytes the layer still has
	// buffered must not reach it.
	isClosed atomic.Bool

	// Extension state, under mu.
	cur     Params // parameters of the MAIL/RCPT go-smtp is processing
	curAddr string
	tx      Transaction
}

func newConn(l *listener, k *socket, nc net.Conn, st *tls.ConnectionState, dropGreeting bool) *conn {
	s := l.s
	size := max(32<<10, s.cfg.MaxLineLength+64)
	c := &conn{s: s, l: l, k: k, nc: nc, tls: st}
	c.br = bufio.NewReaderSize(deadlineReader{c: nc, d: s.cfg.ReadTimeout}, size)
	if dropGreeting {
		c.hold = holdGreeting
	}
	return c
}

// deadlineReader sets a fresh read deadline before every read from the
// socket, so an idle or stalled client times out (the error reports
// Timeout(), and go-smtp answers 421 4.4.2).
type deadlineReader struct {
	c net.Conn
	d time.Duration
}

func (r deadlineReader) Read(p []byte) (int, error) {
	if r.d > 0 {
		if err := r.c.SetReadDeadline(time.Now().Add(r.d)); err != nil {
			return 0, err
		}
	}
	return r.c.Read(p)
}

// Read implements net.Conn for go-smtp.
func (c *conn) Read(b []byte) (int, error) {
	if c.isClosed.Load() {
		return 0, net.ErrClosed
	}
	for {
		if len(c.out) > 0 {
			n := copy(b, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		switch c.mode {
		case modeData:
			return c.readData(b)
		case modeChunk:
			if c.left == 0 {
				c.mode = modeCommand
				continue
			}
			return c.readChunk(b)
		case modeEOF:
			return 0, io.EOF
		}
		if err := c.nextCommand(); err != nil {
			c.rerr = err
		}
	}
}

// readData passes DATA bytes up to go-smtp's end-of-data marker. It hands
// over whole lines only, so that go-smtp's line limit (which drops a whole
// Read holding an over-long line) fails at the same line as it would with
// one line per Read: a line over the limit arrives alone.
func (c *conn) readData(b []byte) (int, error) {
	limit := c.s.cfg.MaxLineLength
	for {
		avail := c.br.Buffered()
		if avail == 0 {
			if _, err := c.br.Peek(1); err != nil {
				c.rerr = err
				return 0, err
			}
			continue
		}
		buf, _ := c.br.Peek(avail)
		if len(buf) > len(b) {
			buf = buf[:len(b)]
		}
		cut, long := wholeLines(buf, limit)
		if cut == 0 {
			if !long && len(buf)+1 <= limit && len(buf) == avail {
				// An incomplete line within the limit: wait for its end.
				if p, err := c.br.Peek(avail + 1); err != nil && len(p) <= avail {
					// EOF or error: hand over what there is; the next
					// Read reports the error. The Peek may have moved
					// the buffered bytes (bufio slides them to the
					// front before reading), so buf is stale: use p.
					buf, cut = p, len(p)
				} else {
					continue
				}
			} else {
				// The line is too long: give it to go-smtp, which
				// fails the message and closes the connection.
				cut = len(buf)
				c.rerr = smtp.ErrTooLongLine
			}
		}
		n, end := c.dot.scan(buf[:cut])
		copy(b, buf[:n])
		c.br.Discard(n)
		if end {
			c.mode = modeCommand
		}
		return n, nil
	}
}

// wholeLines returns the end of the last whole line of buf such that every
// line before it is within limit, with go-smtp's accounting (it counts the
// previous LF, so a line's LF may be at offset limit-1 from its start at
// most). long reports that the line at cut is over the limit as far as buf
// shows (limit bytes without LF); otherwise the line at cut is incomplete.
//
// From a line start, the last LF in the next limit bytes ends a run of
// lines that are all within the limit: one search per window rather than
// one per line.
func wholeLines(buf []byte, limit int) (cut int, long bool) {
	for cut < len(buf) {
		win := buf[cut:min(len(buf), cut+limit)]
		j := bytes.LastIndexByte(win, '\n')
		if j < 0 {
			return cut, len(win) == limit
		}
		cut += j + 1
	}
	return cut, false
}

func (c *conn) readChunk(b []byte) (int, error) {
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.br.Read(b)
	c.left -= int64(n)
	if c.left == 0 {
		c.mode = modeCommand
	}
	if err != nil {
		c.rerr = err
	}
	return n, err
}

// readLine reads one command line including its LF (a final line without
// LF at EOF counts, as it does for go-smtp). tooLong reports a line over
// the limit, with go-smtp's accounting.
func (c *conn) readLine() (line []byte, tooLong bool, err error) {
	line, err = c.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, true, nil
	case err == io.EOF && len(line) > 0:
		err = nil
	case err != nil:
		return nil, false, err
	}
	n := len(line)
	if line[n-1] == '\n' {
		n--
	}
	prev := 1 // go-smtp counts the LF of the last line it was given
	if !c.seenLine {
		prev = 0
	}
	return line, n+prev > c.s.cfg.MaxLineLength, nil
}

// nextCommand reads the next line in command mode and either queues it
// (possibly rewritten) for go-smtp, or answers it itself and reads on.
func (c *conn) nextCommand() error {
	c.mu.Lock()
	enter, sasl := c.enterData, c.sasl
	c.enterData, c.sasl = false, false
	c.mu.Unlock()
	if enter {
		c.mode = modeData
		c.dot = dotState{}
		return nil
	}
	for {
		line, tooLong, err := c.readLine()
		if err != nil {
			return err
		}
		if tooLong {
			// go-smtp answers "500 5.4.0 Too long line" and closes.
			return smtp.ErrTooLongLine
		}
		if sasl {
			// RFC 4954 section 4: a line after 334 is SASL data, whatever
			// it spells.
			c.out = line
			return nil
		}
		if c.s.cfg.BareLF == BareLFReject && line[len(line)-1] == '\n' && (len(line) < 2 || line[len(line)-2] != '\r') {
			return c.fail(&ReplyError{Code: 500, Enhanced: [3]int{5, 5, 2}, Message: "Bare LF not allowed, use CRLF"})
		}
		queued, err := c.command(line)
		if err != nil || queued {
			return err
		}
	}
}

// pass queues line for go-smtp as it is, and records what kind of
// command it is.
func (c *conn) pass(line []byte, k pendKind) (bool, error) {
	c.mu.Lock()
	c.pend = k
	c.mu.Unlock()
	c.out = line
	c.seenLine = true
	return true, nil
}

func (c *conn) command(line []byte) (bool, error) {
	text := bytes.TrimSuffix(line, []byte{'\n'})
	// A short line's verb is found on a string that does not escape (no
	// allocation); the argument, which the layer keeps parts of, is then
	// made only for the commands that need it. A long line (MAIL FROM with
	// parameters) is converted once.
	var (
		verb, longArg string
		err           error
	)
	const short = 32 // the compiler's stack buffer for string(b)
	if len(text) <= short {
		verb, _, err = parseCommand(string(text))
	} else {
		verb, longArg, err = parseCommand(string(text))
	}
	if err != nil {
		return c.pass(line, pNone)
	}
	arg := func() string {
		if len(text) > short {
			return longArg
		}
		_, a, _ := parseCommand(string(text))
		return a
	}
	switch verb {
	case "STARTTLS":
		return c.startTLS(line)
	case "AUTH":
		if c.tls == nil && !c.s.cfg.AllowInsecureAuth {
			return false, c.reply(&ReplyError{Code: 538, Enhanced: [3]int{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"})
		}
		return c.pass(line, pAuth)
	case "MAIL":
		return c.envelope(line, arg(), false)
	case "RCPT":
		return c.envelope(line, arg(), true)
	case "EHLO", "LHLO":
		return c.pass(line, pEhlo)
	case "HELO":
		return c.pass(line, pHelo)
	case "DATA":
		return c.pass(line, pData)
	case "RSET":
		return c.pass(line, pRset)
	case "BDAT":
		size, last, ok := bdatArgs(arg())
		if !ok {
			return c.pass(line, pNone) // 501, no chunk follows for go-smtp
		}
		c.mu.Lock()
		c.pendLast = last
		c.mu.Unlock()
		c.mode, c.left = modeChunk, size
		return c.pass(line, pBDAT)
	}
	return c.pass(line, pNone)
}

// envelope handles MAIL FROM and RCPT TO: registered parameters are
// validated and removed before go-smtp sees the command.
func (c *conn) envelope(line []byte, arg string, rcpt bool) (bool, error) {
	kind, reg := pMail, c.s.reg.mail
	if rcpt {
		kind, reg = pRcpt, c.s.reg.rcpt
	}
	env, ok := parseEnvelope(arg, rcpt)
	if !ok {
		// go-smtp refuses it (501); if it did not, nothing registered
		// reached it in a form it accepts.
		c.setCurrent(nil, "")
		return c.pass(line, kind)
	}
	var params Params
	strip := false
	if len(reg) > 0 {
		var ci ConnInfo
		haveCI := false
		for f := range strings.FieldsSeq(env.params) {
			name, val, hasVal := splitParam(f)
			e, ok := reg[name]
			if !ok {
				continue
			}
			if _, dup := params.Get(name); dup {
				return false, c.reply(&ReplyError{Code: 501, Enhanced: [3]int{5, 5, 4}, Message: "Duplicate " + name + " parameter"})
			}
			if !haveCI {
				ci, haveCI = c.connInfo(), true
			}
			if !e.ext.enabled(ci) {
				return false, c.reply(&ReplyError{Code: 555, Enhanced: [3]int{5, 5, 4}, Message: name + " parameter not supported here"})
			}
			var v any
			if e.spec.Parse != nil {
				var err error
				if v, err = e.spec.Parse(ci, val, hasVal); err != nil {
					return false, c.reply(replyFor(err))
				}
			} else {
				v = val
			}
			params = append(params, Param{Name: name, Raw: val, HasValue: hasVal, Value: v})
			strip = strip || !e.spec.PassThrough
		}
	}
	if !strip {
		c.setCurrent(params, env.addr)
		return c.pass(line, kind)
	}
	if r, _ := utf8.DecodeLastRuneInString(env.path); unicode.IsSpace(r) {
		// go-smtp would trim this character once the parameters behind it
		// are gone and see another address: refuse rather than guess.
		return false, c.reply(&ReplyError{Code: 501, Enhanced: [3]int{5, 5, 2}, Message: "Syntax error in address"})
	}
	c.setCurrent(params, env.addr)
	// The shortened line is built in a buffer of the conn: go-smtp reads
	// all of c.out before the next command is read, so it can be reused.
	nb := c.lineBuf[:0]
	if rcpt {
		nb = append(nb, "RCPT TO:"...)
	} else {
		nb = append(nb, "MAIL FROM:"...)
	}
	nb = append(nb, env.path...)
	for f := range strings.FieldsSeq(env.params) {
		if name, _, _ := splitParam(f); isStripped(reg, name) {
			continue
		}
		nb = append(nb, ' ')
		nb = append(nb, f...)
	}
	nb = append(nb, "\r\n"...)
	c.lineBuf = nb
	return c.pass(nb, kind)
}

// isStripped reports whether a parameter is removed before go-smtp sees
// the command: registered, and not PassThrough.
func isStripped(reg map[string]paramEntry, name string) bool {
	e, ok := reg[name]
	return ok && !e.spec.PassThrough
}

func (c *conn) setCurrent(p Params, addr string) {
	c.mu.Lock()
	c.cur, c.curAddr = p, addr
	c.mu.Unlock()
}

// startTLS performs STARTTLS for go-smtp (RFC 3207 section 4).
func (c *conn) startTLS(line []byte) (bool, error) {
	if c.s.cfg.TLSConfig == nil || c.l.cfg.ImplicitTLS && c.tls == nil {
		return c.pass(line, pNone) // go-smtp: 502 5.5.1 TLS not supported
	}
	if c.tls != nil {
		return false, c.reply(&ReplyError{Code: 502, Enhanced: [3]int{5, 5, 1}, Message: "Already running in TLS"})
	}
	if err := c.reply(&ReplyError{Code: 220, Enhanced: [3]int{2, 0, 0}, Message: "Ready to start TLS"}); err != nil {
		return false, err
	}
	// Plaintext pipelined behind STARTTLS must not be taken as sent
	// under TLS (the command injection of CVE-2011-0411).
	if n := c.br.Buffered(); n > 0 {
		c.br.Discard(n)
		if c.s.log.Enabled(context.Background(), slog.LevelInfo) {
			c.s.log.Info("smtpext: discarded plaintext after STARTTLS", "remote", c.RemoteAddr().String(), "bytes", n)
		}
	}
	tc, err := c.s.handshake(c.k.raw)
	if err != nil {
		c.k.close(nil)
		return false, fmt.Errorf("%w: %w", net.ErrClosed, err)
	}
	st := tc.ConnectionState()
	next := newConn(c.l, c.k, tc, &st, true)
	c.mu.Lock()
	c.handedOff = true
	c.mu.Unlock()
	c.mode = modeEOF
	// go-smtp logs this session out on EOF and serves a fresh one over
	// TLS; its greeting is dropped (the client got 220 already).
	if !c.l.deliver(next) {
		c.k.close(tc)
	}
	return false, io.EOF
}

// reply writes the layer's own reply.
func (c *conn) reply(r *ReplyError) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.handedOff {
		return net.ErrClosed
	}
	_, err := c.writeRaw(r.format())
	return err
}

// fail sends a final reply and closes the connection.
func (c *conn) fail(r *ReplyError) error {
	_ = c.reply(r)
	c.Close()
	return net.ErrClosed
}

func (c *conn) writeRaw(p []byte) (int, error) {
	if d := c.s.cfg.WriteTimeout; d > 0 {
		if err := c.nc.SetWriteDeadline(time.Now().Add(d)); err != nil {
			return 0, err
		}
	}
	return c.nc.Write(p)
}

// Write implements net.Conn for go-smtp: it watches the replies to
// update the layer's state, rewrites EHLO replies and drops the greeting
// of a post-STARTTLS connection.
func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.handedOff {
		return 0, net.ErrClosed
	}
	if c.hold == holdNone && c.wn == 0 && c.pend == pEhlo && bytes.HasPrefix(p, []byte("250")) {
		c.hold = holdEHLO
	}
	if c.hold != holdNone {
		c.held = append(c.held, p...)
		end := finalLineEnd(c.held)
		if end < 0 {
			if len(c.held) > maxHeldReply {
				return 0, errors.New("smtpext: reply too long")
			}
			return len(p), nil
		}
		held, rest := c.held[:end], c.held[end:]
		hold := c.hold
		c.hold, c.held = holdNone, nil
		if hold == holdEHLO {
			out := c.rewriteEHLO(held)
			c.finalReply(250)
			if _, err := c.writeRaw(out); err != nil {
				return 0, err
			}
		}
		if len(rest) > 0 {
			c.track(rest)
			if _, err := c.writeRaw(rest); err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
	c.track(p)
	if _, err := c.writeRaw(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// finalLineEnd returns the offset just after the first final reply line
// ("ddd " or "ddd\r\n") in b, or -1.
func finalLineEnd(b []byte) int {
	off := 0
	for {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return -1
		}
		ln := b[off : off+i+1]
		if len(ln) < 4 || ln[3] != '-' {
			return off + i + 1
		}
		off += i + 1
	}
}

// track follows reply lines in p and acts on each final one.
func (c *conn) track(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		for j := 0; j < len(seg) && c.wn < len(c.wpre); j++ {
			c.wpre[c.wn] = seg[j]
			c.wn++
		}
		if i < 0 {
			return
		}
		if c.wn < 4 || c.wpre[3] != '-' {
			code := 0
			for j := 0; j < 3 && j < c.wn; j++ {
				code = code*10 + int(c.wpre[j]-'0')
			}
			c.finalReply(code)
		}
		c.wn = 0
		p = p[i+1:]
	}
}

// finalReply updates the state after go-smtp's reply to the pending
// command, following go-smtp's transaction rules. Called with mu held.
func (c *conn) finalReply(code int) {
	k := c.pend
	c.pend = pNone
	switch k {
	case pMail:
		if code == 250 {
			c.tx.HasMail, c.tx.From, c.tx.MailParams = true, c.curAddr, c.cur
		}
		c.cur, c.curAddr = nil, ""
	case pRcpt:
		if code == 250 {
			c.tx.Rcpts = append(c.tx.Rcpts, Recipient{To: c.curAddr, Params: c.cur})
		}
		c.cur, c.curAddr = nil, ""
	case pData:
		if code == 354 {
			c.enterData = true
			c.pend = pDataBody
		}
	case pDataBody:
		c.tx = Transaction{}
	case pBDAT:
		// 250 to a non-LAST chunk continues; 502 (no transaction) changes
		// nothing; everything else (LAST, 552, backend error) resets.
		if !(code == 250 && !c.pendLast) && code != 502 {
			c.tx = Transaction{}
		}
	case pRset, pHelo, pEhlo:
		if code == 250 {
			c.tx = Transaction{}
		}
	case pAuth:
		switch code {
		case 334:
			c.sasl = true
			c.pend = pAuth
		case 235:
			c.authed = true
		}
	}
}

// rewriteEHLO edits go-smtp's EHLO/LHLO reply: AUTH is removed while it
// is gated, STARTTLS, REQUIRETLS and the enabled extensions' keywords are
// added. Called with mu held.
func (c *conn) rewriteEHLO(reply []byte) []byte {
	text := string(reply)
	if !strings.HasSuffix(text, "\r\n") {
		return reply
	}
	lines := strings.Split(strings.TrimSuffix(text, "\r\n"), "\r\n")
	items := make([]string, 0, len(lines)+len(c.s.reg.exts)+2)
	gateAuth := c.tls == nil && !c.s.cfg.AllowInsecureAuth
	for i, ln := range lines {
		if len(ln) < 4 || !strings.HasPrefix(ln, "250") {
			return reply
		}
		item := ln[4:]
		if i > 0 && gateAuth && (strings.EqualFold(item, "AUTH") || len(item) > 5 && strings.EqualFold(item[:5], "AUTH ")) {
			continue
		}
		items = append(items, item)
	}
	if c.tls == nil && c.s.cfg.TLSConfig != nil && !c.l.cfg.ImplicitTLS {
		items = append(items, "STARTTLS")
	}
	if c.tls != nil && c.s.srv.EnableREQUIRETLS {
		items = append(items, "REQUIRETLS")
	}
	ci := c.connInfoLocked()
	for _, e := range c.s.reg.exts {
		if e.Keyword == "" || !e.enabled(ci) {
			continue
		}
		item := e.Keyword
		if e.KeywordArgs != nil {
			for _, a := range e.KeywordArgs(ci) {
				item += " " + a
			}
		}
		items = append(items, noCtl(item))
	}
	var b bytes.Buffer
	for i, it := range items {
		sep := "-"
		if i == len(items)-1 {
			sep = " "
		}
		b.WriteString("250" + sep + it + "\r\n")
	}
	return b.Bytes()
}

// noCtl replaces control bytes so that text of the layer's own can never
// split or end a reply line. Other bytes are left alone.
func noCtl(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}

// Close implements net.Conn. After a STARTTLS handoff it leaves the
// socket open for the new go-smtp connection.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.isClosed.Store(true)
	handedOff := c.handedOff
	c.mu.Unlock()
	if handedOff {
		return nil
	}
	if c.tls != nil {
		return c.k.close(c.nc)
	}
	return c.k.close(nil)
}

// LocalAddr implements net.Conn.
func (c *conn) LocalAddr() net.Addr { return c.k.raw.LocalAddr() }

// RemoteAddr implements net.Conn: the client's real address.
func (c *conn) RemoteAddr() net.Addr { return c.k.raw.RemoteAddr() }

// SetDeadline implements net.Conn. The layer sets its own deadline before
// every socket read and write (Config.ReadTimeout, WriteTimeout), which
// replaces one set here.
func (c *conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline implements net.Conn; see SetDeadline.
func (c *conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn; see SetDeadline.
func (c *conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

func (c *conn) connInfo() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connInfoLocked()
}

func (c *conn) connInfoLocked() ConnInfo {
	return ConnInfo{
		Listener:      c.l.cfg.Name,
		RemoteAddr:    c.k.raw.RemoteAddr(),
		LocalAddr:     c.k.raw.LocalAddr(),
		TLS:           c.tls,
		Authenticated: c.authed,
		LMTP:          c.s.srv.LMTP,
	}
}
