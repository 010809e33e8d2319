package gosmtp

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// nopBackend accepts everything and discards the content.
type nopBackend struct{}

func (nopBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return nopSession{}, nil }

type nopSession struct{}

func (nopSession) Reset()                               {}
func (nopSession) Logout() error                        { return nil }
func (nopSession) Mail(string, *smtp.MailOptions) error { return nil }
func (nopSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (nopSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

// benchServer starts one of the variants and returns its address and
// whether it takes MTRK.
func benchServer(b *testing.B, variant string) (addr string, withMTRK bool) {
	srv := smtp.NewServer(nopBackend{})
	srv.Domain = "bench.test"
	srv.EnableDSN = true
	srv.MaxRecipients = 100
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var serve func() error
	var closeFn func()
	switch variant {
	case "plain":
		srv.AllowInsecureAuth = true
		serve, closeFn = func() error { return srv.Serve(l) }, func() { srv.Close() }
	case "smtpext":
		s, err := smtpext.NewServer(srv, smtpext.Config{})
		if err != nil {
			b.Fatal(err)
		}
		serve, closeFn = func() error { return s.Serve(l) }, func() { s.Close() }
	default:
		var st trackstore.Store
		if variant == "memcached" {
			mc := testenv.StartMemcached(b)
			st, err = memcachestore.New(memcachestore.Options{Servers: []string{mc.Addr}, MaxIdleConns: 16})
			if err != nil {
				b.Fatal(err)
			}
		} else {
			st = memstore.New(memstore.Options{})
		}
		eng := tracking.New(st, tracking.Options{ReportingMTA: "bench.test"})
		mw, err := New(nopBackend{}, channelopts.Channel{TrackingServer: true}, Options{Engine: eng})
		if err != nil {
			b.Fatal(err)
		}
		srv.Backend = nil
		s, err := mw.NewServer(srv, smtpext.Config{})
		if err != nil {
			b.Fatal(err)
		}
		serve, closeFn, withMTRK = func() error { return s.Serve(l) }, func() { s.Close() }, true
	}
	done := make(chan struct{})
	go func() { _ = serve(); close(done) }()
	b.Cleanup(func() { closeFn(); <-done })
	return l.Addr().String(), withMTRK
}

// benchConn is a pipelining client: MAIL, RCPT and DATA in one write.
type benchConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func dialBench(b *testing.B, addr string) *benchConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	bc := &benchConn{c: c, br: bufio.NewReader(c), bw: bufio.NewWriterSize(c, 64<<10)}
	bc.expect(b, 220)
	fmt.Fprintf(bc.bw, "EHLO client.test\r\n")
	bc.bw.Flush()
	bc.expect(b, 250)
	return bc
}

func (bc *benchConn) expect(b *testing.B, code int) {
	for {
		ln, err := bc.br.ReadString('\n')
		if err != nil {
			b.Error(err)
			return
		}
		if len(ln) >= 4 && ln[3] == '-' {
			continue
		}
		if !strings.HasPrefix(ln, fmt.Sprint(code)) {
			b.Errorf("want %d, got %q", code, ln)
		}
		return
	}
}

var certSeq atomic.Uint64

func (bc *benchConn) send(b *testing.B, body []byte, withMTRK bool) {
	bc.bw.WriteString("MAIL FROM:<alice@example.test> ENVID=bench")
	if withMTRK {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], certSeq.Add(1))
		sum := sha1.Sum(n[:])
		bc.bw.WriteString(" MTRK=" + mtrk.Certifier(sum[:]).String())
	}
	bc.bw.WriteString("\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	bc.bw.Flush()
	bc.expect(b, 250)
	bc.expect(b, 250)
	bc.expect(b, 354)
	bc.bw.Write(body)
	bc.bw.WriteString(".\r\n")
	bc.bw.Flush()
	bc.expect(b, 250)
}

func benchBody(size int) []byte {
	var buf bytes.Buffer
	buf.WriteString("Message-ID: <bench@client.test>\r\nDate: Sat, 1 Aug 2026 12:34:56 +0200\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("x", 76) + "\r\n"
	for buf.Len() < size {
		buf.WriteString(line)
	}
	return buf.Bytes()[: size-2 : size-2]
}

var variants = []string{"plain", "smtpext", "middleware-memstore", "middleware-memcached"}

// BenchmarkServer compares, in one run, plain go-smtp, go-smtp behind
// smtpext and the full middleware (memstore and a real memcached), all with
// a backend that discards the message: 1 KiB messages over 8 connections
// (msgs/s) and 1 MiB messages over one (MB/s).
func BenchmarkServer(b *testing.B) {
	small := append(benchBody(1024), "\r\n"...)
	large := append(benchBody(1<<20), "\r\n"...)
	for _, v := range variants {
		b.Run("1KiB-8conn/"+v, func(b *testing.B) {
			addr, withMTRK := benchServer(b, v)
			const conns = 8
			cs := make([]*benchConn, conns)
			for i := range cs {
				cs[i] = dialBench(b, addr)
				defer cs[i].c.Close()
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(small)))
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range cs {
				wg.Add(1)
				go func(bc *benchConn) {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						bc.send(b, small, withMTRK)
					}
				}(cs[i])
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
		})
		b.Run("1MiB/"+v, func(b *testing.B) {
			addr, withMTRK := benchServer(b, v)
			bc := dialBench(b, addr)
			defer bc.c.Close()
			b.ReportAllocs()
			b.SetBytes(int64(len(large)))
			b.ResetTimer()
			for range b.N {
				bc.send(b, large, withMTRK)
			}
		})
	}
}

// BenchmarkHeaderRead is the read-ahead of the header at DATA.
func BenchmarkHeaderRead(b *testing.B) {
	body := benchBody(1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for range b.N {
		h := &headerReader{r: bytes.NewReader(body)}
		h.readHeader(DefaultMaxHeaderBytes)
		if _, err := io.Copy(io.Discard, h); err != nil {
			b.Fatal(err)
		}
	}
}
