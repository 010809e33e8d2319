package mtqp

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

func benchServer(b *testing.B, be Backend) string {
	s := &Server{Backend: be, Domain: "bench.test", FailureRate: rate.Inf}
	return startServer(b, s)
}

func benchTrack(b *testing.B, addr string, conns int) {
	ctx := context.Background()
	clients := make(chan *Client, conns)
	for i := 0; i < conns; i++ {
		c, err := Dial(ctx, addr)
		require.NoError(b, err)
		b.Cleanup(func() { c.Close() })
		clients <- c
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if conns == 1 {
		c := <-clients
		for i := 0; i < b.N; i++ {
			if _, err := c.Track(ctx, "env-1", testSecret); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		var wg sync.WaitGroup
		work := make(chan struct{}, b.N)
		for i := 0; i < b.N; i++ {
			work <- struct{}{}
		}
		close(work)
		for i := 0; i < conns; i++ {
			wg.Add(1)
			go func(c *Client) {
				defer wg.Done()
				for range work {
					if _, err := c.Track(ctx, "env-1", testSecret); err != nil {
						b.Error(err)
						return
					}
				}
			}(<-clients)
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tracks/s")
}

// TRACK round trips on one connection, in-memory backend.
func BenchmarkTrackOneConn(b *testing.B) {
	be := newMapBackend()
	be.add("env-1", testSecret, sampleReport("env-1", "bench.test"))
	benchTrack(b, benchServer(b, be), 1)
}

// TRACK round trips on 16 connections in parallel, in-memory backend.
func BenchmarkTrack16Conns(b *testing.B) {
	be := newMapBackend()
	be.add("env-1", testSecret, sampleReport("env-1", "bench.test"))
	benchTrack(b, benchServer(b, be), 16)
}

// memcacheBackend stores certifier || report body under the envelope ID in
// a real memcached, as a tracking engine over memcached would, and decodes
// it on every query.
type memcacheBackend struct{ mc *memcache.Client }

func (m *memcacheBackend) Track(ctx context.Context, q Query) (*Report, error) {
	it, err := m.mc.Get(q.EnvID)
	if err == memcache.ErrCacheMiss {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if len(it.Value) < mtrk.CertifierSize || !mtrk.Certifier(it.Value[:mtrk.CertifierSize]).Verify(mtrk.Secret(q.Secret)) {
		return nil, ErrNotFound
	}
	return ParseReport(it.Value[mtrk.CertifierSize:])
}

func (m *memcacheBackend) Recall(ctx context.Context, q Query) (*Report, error) {
	return m.Track(ctx, q)
}

func startBenchMemcached(b *testing.B, conns int) *memcache.Client {
	mcd := testenv.StartMemcached(b)
	mc := memcache.New(mcd.Addr)
	mc.MaxIdleConns = conns + 2
	mc.Timeout = 5 * time.Second
	body, err := sampleReport("env-1", "bench.test").Format()
	require.NoError(b, err)
	val := append(append([]byte(nil), testSecret.Certifier()...), body...)
	require.NoError(b, mc.Set(&memcache.Item{Key: "env-1", Value: val}))
	return mc
}

// TRACK round trips against a memcached-backed engine; compare with
// BenchmarkMemcacheGet* in the same run for the ratio.
func BenchmarkTrackMemcachedOneConn(b *testing.B) {
	benchTrack(b, benchServer(b, &memcacheBackend{startBenchMemcached(b, 1)}), 1)
}

func BenchmarkTrackMemcached16Conns(b *testing.B) {
	benchTrack(b, benchServer(b, &memcacheBackend{startBenchMemcached(b, 16)}), 16)
}

func benchGet(b *testing.B, conns int) {
	mc := startBenchMemcached(b, conns)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if _, err := mc.Get("env-1"); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "gets/s")
}

// Raw gomemcache Get of the same item, one and 16 at a time.
func BenchmarkMemcacheGetOneConn(b *testing.B) { benchGet(b, 1) }
func BenchmarkMemcacheGet16Conns(b *testing.B) { benchGet(b, 16) }

func BenchmarkParseReport(b *testing.B) {
	body := []byte(canonicalSample)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, err := ParseReport(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatReport(b *testing.B) {
	r := sampleReport("env-1", "bench.test")
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = r.AppendFormat(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadCommand(b *testing.B) {
	line := FormatTrack(CmdTrack, "env-1", testSecret) + "\r\n"
	in := strings.NewReader("")
	r := bufio.NewReader(in)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		in.Reset(line)
		r.Reset(in)
		l, err := ReadLine(r, MaxLineLength)
		if err != nil {
			b.Fatal(err)
		}
		cmd, err := ParseCommand(l)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseTrackArgs(cmd.Args); err != nil {
			b.Fatal(err)
		}
	}
}

// The client's side of a TRACK answer: read the reply, split and parse it.
func BenchmarkReadReportReply(b *testing.B) {
	body, err := sampleReport("env-1", "bench.test").Format()
	require.NoError(b, err)
	wire := AppendReply(nil, CodeOK, reportLines(body, "End of report")...)
	in := bytes.NewReader(nil)
	r := bufio.NewReader(in)
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for i := 0; i < b.N; i++ {
		in.Reset(wire)
		r.Reset(in)
		rep, err := ReadReply(r, maxReplyLines)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := splitReportReply(rep)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseReport(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDate(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseDate("Fri, 4 Dec 2026 09:30:00 +0100"); err != nil {
			b.Fatal(err)
		}
	}
}
