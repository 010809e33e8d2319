package smtpext

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Run side by side with:
//
//	go test -run '^$' -bench . -count 10 ./smtpext | go tool benchstat -

type discardBackend struct{}

func (discardBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }

type discardSession struct{}

func (discardSession) Mail(string, *smtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (discardSession) Reset()        {}
func (discardSession) Logout() error { return nil }

// benchServer starts plain go-smtp or go-smtp behind the layer.
func benchServer(b *testing.B, layered bool) string {
	b.Helper()
	s := smtp.NewServer(discardBackend{})
	s.Domain = "bench.test"
	s.ErrorLog = discardLogger{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if layered {
		srv, err := NewServer(s, Config{Extensions: testExtensions()})
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve(l)
		b.Cleanup(func() { srv.Close() })
	} else {
		go s.Serve(l)
		b.Cleanup(func() { s.Close() })
	}
	return l.Addr().String()
}

func sendOne(b *testing.B, c *smtp.Client, body []byte) {
	if err := c.Mail("a@example.org", nil); err != nil {
		b.Fatal(err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		b.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func benchBody(size int) []byte {
	line := "The quick brown fox jumps over the lazy dog. .dot MAIL FROM:<x@y> 0123456\r\n"
	var buf bytes.Buffer
	buf.WriteString("Subject: bench\r\n\r\n")
	for buf.Len() < size {
		buf.WriteString(line)
	}
	return buf.Bytes()[: size-2 : size-2]
}

func dialBench(b *testing.B, addr string) *smtp.Client {
	c, err := smtp.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Hello("bench.example"); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkSmallMessages: 1 KiB messages over 8 parallel connections.
func BenchmarkSmallMessages(b *testing.B) {
	body := append(benchBody(1024), '\r', '\n')
	for _, tc := range []struct {
		name    string
		layered bool
	}{{"plain", false}, {"smtpext", true}} {
		b.Run(tc.name, func(b *testing.B) {
			addr := benchServer(b, tc.layered)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.SetParallelism(max(1, 8/runtimeGOMAXPROCS()))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				c := dialBench(b, addr)
				defer c.Close()
				for pb.Next() {
					sendOne(b, c, body)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkLargeMessages: 1 MiB messages over one connection.
func BenchmarkLargeMessages(b *testing.B) {
	body := append(benchBody(1<<20), '\r', '\n')
	for _, tc := range []struct {
		name    string
		layered bool
	}{{"plain", false}, {"smtpext", true}} {
		b.Run(tc.name, func(b *testing.B) {
			addr := benchServer(b, tc.layered)
			c := dialBench(b, addr)
			defer c.Close()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for range b.N {
				sendOne(b, c, body)
			}
		})
	}
}

func BenchmarkParseCommand(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		_, _, _ = parseCommand("MAIL FROM:<someone@example.org> BODY=8BITMIME XT=42\r")
	}
}

func BenchmarkParseEnvelope(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		_, _ = parseEnvelope("FROM:<someone@example.org> BODY=8BITMIME XT=42 SIZE=1000", false)
	}
}

func BenchmarkDotScan(b *testing.B) {
	buf := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog, 0123456789 abcdefghijklm\r\n", 56))
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for range b.N {
		var d dotState
		d.scan(buf)
	}
}

func runtimeGOMAXPROCS() int { return runtime.GOMAXPROCS(0) }
