package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/tracking/gosmtp"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// discard is a go-smtp backend that accepts every message and drops it.
type discard struct{}

func (discard) NewSession(*smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }

type discardSession struct{}

func (discardSession) Reset()                               {}
func (discardSession) Logout() error                        { return nil }
func (discardSession) Mail(string, *smtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// smtpTarget is one running SMTP server variant.
type smtpTarget struct {
	addr     string
	withMTRK bool
	mw       *gosmtp.Middleware
}

func (e *env) startSMTP(kind string) (*smtpTarget, error) {
	srv := smtp.NewServer(discard{})
	srv.Domain = "loadgen.test"
	srv.EnableDSN = true
	srv.MaxMessageBytes = 4 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &smtpTarget{addr: l.Addr().String()}
	var serve func() error
	var stop func()
	switch kind {
	case "plain":
		serve, stop = func() error { return srv.Serve(l) }, func() { srv.Close() }
	case "smtpext":
		s, err := smtpext.NewServer(srv, smtpext.Config{})
		if err != nil {
			return nil, err
		}
		serve, stop = func() error { return s.Serve(l) }, func() { s.Close() }
	case "memstore", "memcached":
		var st trackstore.Store
		if kind == "memcached" {
			st, err = memcachestore.New(memcachestore.Options{Servers: []string{e.mcAddr}, MaxIdleConns: 16})
			if err != nil {
				return nil, err
			}
		} else {
			st = memstore.New(memstore.Options{MaxBytes: 512 << 20})
		}
		eng := tracking.New(st, tracking.Options{ReportingMTA: "loadgen.test"})
		mw, err := gosmtp.New(discard{}, channelopts.Channel{TrackingServer: true}, gosmtp.Options{Engine: eng, Hostname: "loadgen.test"})
		if err != nil {
			return nil, err
		}
		srv.Backend = nil
		s, err := mw.NewServer(srv, smtpext.Config{})
		if err != nil {
			return nil, err
		}
		t.withMTRK, t.mw = true, mw
		serve, stop = func() error { return s.Serve(l) }, func() { s.Close() }
	default:
		return nil, fmt.Errorf("unknown SMTP variant %q", kind)
	}
	done := make(chan struct{})
	go func() { _ = serve(); close(done) }()
	e.onClose(func() { stop(); <-done })
	return t, nil
}

// smtpConn is a pipelining SMTP client: MAIL, RCPT and DATA go in one write.
type smtpConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func dialSMTP(addr string) (*smtpConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	sc := &smtpConn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 64<<10)}
	if err := sc.expect(220); err != nil {
		c.Close()
		return nil, err
	}
	sc.bw.WriteString("EHLO client.loadgen.test\r\n")
	if err := sc.bw.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	if err := sc.expect(250); err != nil {
		c.Close()
		return nil, err
	}
	return sc, nil
}

func (sc *smtpConn) expect(code int) error {
	want := fmt.Sprint(code)
	for {
		ln, err := sc.br.ReadString('\n')
		if err != nil {
			return err
		}
		if len(ln) >= 4 && ln[3] == '-' {
			continue
		}
		if !strings.HasPrefix(ln, want) {
			return fmt.Errorf("want %d, got %q", code, strings.TrimSpace(ln))
		}
		return nil
	}
}

var certSeq atomic.Uint64

// freshCertifier returns a certifier no other message of this run has.
func freshCertifier() string {
	var n [16]byte
	binary.BigEndian.PutUint64(n[:8], certSeq.Add(1))
	binary.BigEndian.PutUint64(n[8:], uint64(time.Now().UnixNano()))
	sum := sha1.Sum(n[:])
	return mtrk.Certifier(sum[:]).String()
}

func (sc *smtpConn) send(body []byte, withMTRK bool) error {
	sc.bw.WriteString("MAIL FROM:<alice@example.test> ENVID=loadgen")
	if withMTRK {
		sc.bw.WriteString(" MTRK=" + freshCertifier())
	}
	sc.bw.WriteString("\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	if err := sc.bw.Flush(); err != nil {
		return err
	}
	for _, code := range []int{250, 250, 354} {
		if err := sc.expect(code); err != nil {
			return err
		}
	}
	sc.bw.Write(body)
	sc.bw.WriteString(".\r\n")
	if err := sc.bw.Flush(); err != nil {
		return err
	}
	return sc.expect(250)
}

// messageBody returns a message of exactly size bytes before the end marker,
// ending in CRLF, with no line starting with a dot.
func messageBody(size int) []byte {
	var buf bytes.Buffer
	buf.WriteString("Message-ID: <loadgen@client.test>\r\nDate: Sat, 1 Aug 2026 12:34:56 +0200\r\nSubject: loadgen\r\n\r\n")
	line := strings.Repeat("x", 76) + "\r\n"
	for buf.Len() < size {
		buf.WriteString(line)
	}
	b := buf.Bytes()[:size]
	copy(b[size-2:], "\r\n")
	return b
}

// smtpRun sends messages over conns connections in parallel for about d and
// returns the messages per second (or MB/s when mbps).
func smtpRun(conns []*smtpConn, body []byte, withMTRK bool, d time.Duration, mbps bool) (float64, error) {
	var sent atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *smtpConn) {
			defer wg.Done()
			for {
				if err := c.send(body, withMTRK); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				sent.Add(1)
				if !time.Now().Before(deadline) {
					return
				}
			}
		}(c)
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	if firstErr != nil {
		return 0, firstErr
	}
	if mbps {
		return float64(sent.Load()) * float64(len(body)) / 1e6 / el, nil
	}
	return float64(sent.Load()) / el, nil
}

func (e *env) smtpVariants() []variant {
	kinds := []struct{ kind, name string }{
		{"plain", "go-smtp, no-op backend"},
		{"smtpext", "through smtpext"},
		{"memstore", "middleware + memstore"},
		{"memcached", "middleware + memcached"},
	}
	small := messageBody(1024)
	large := messageBody(1 << 20)
	var vs []variant
	for _, sec := range []struct {
		title string
		conns int
		body  []byte
		mbps  bool
	}{
		{"SMTP 1 KiB, 8 connections", 8, small, false},
		{"SMTP 1 MiB, 1 connection", 1, large, true},
	} {
		for i, k := range kinds {
			var (
				setup sync.Once
				err   error
				t     *smtpTarget
				conns []*smtpConn
			)
			sec, k := sec, k
			v := variant{Section: sec.title, Name: k.name, Unit: map[bool]string{true: "MB/s", false: "msgs/s"}[sec.mbps]}
			if i > 0 {
				v.Baseline = kinds[0].name
			}
			v.Run = func(ctx context.Context, d time.Duration) (float64, error) {
				setup.Do(func() {
					t, err = e.startSMTP(k.kind)
					if err != nil {
						return
					}
					if t.mw != nil {
						mw := t.mw
						e.note(func() string {
							st := mw.Stats()
							return fmt.Sprintf("%s / %s: %d messages, %d records written, %d store failures, %d foreign",
								sec.title, k.name, st.Messages, st.Recorded, st.StoreFailures, st.Foreign)
						})
					}
					for range sec.conns {
						var c *smtpConn
						c, err = dialSMTP(t.addr)
						if err != nil {
							return
						}
						conns = append(conns, c)
						e.onClose(func() { c.c.Close() })
					}
				})
				if err != nil {
					return 0, err
				}
				return smtpRun(conns, sec.body, t.withMTRK, d, sec.mbps)
			}
			vs = append(vs, v)
		}
	}
	return vs
}
