package mtqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/stretchr/testify/require"
)

// mapBackend is an in-memory Backend for tests: envelope ID -> certifier
// and report. It checks secrets as a real one must: constant-time compare,
// and ErrNotFound for unknown ID and wrong secret alike.
type mapBackend struct {
	mu      sync.Mutex
	entries map[string]*mapEntry
	calls   []Query
	// block, when set, makes Track wait for it to be closed after sending
	// on entered.
	block   chan struct{}
	entered chan struct{}
}

type mapEntry struct {
	cert   mtrk.Certifier
	report *Report
	recall *Report
}

var dummyCert = mtrk.Secret("no such secret, but the work is the same").Certifier()

func newMapBackend() *mapBackend { return &mapBackend{entries: map[string]*mapEntry{}} }

func (b *mapBackend) add(envid string, secret mtrk.Secret, rep *Report) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rc := *rep
	rc.Recipients = append([]Recipient(nil), rep.Recipients...)
	for i := range rc.Recipients {
		rc.Recipients[i].Extensions = append([]Field(nil), rc.Recipients[i].Extensions...)
		rc.Recipients[i].SetRecallStatus(RecallRecalled)
	}
	b.entries[envid] = &mapEntry{cert: secret.Certifier(), report: rep, recall: &rc}
}

func (b *mapBackend) lookup(q Query) (*mapEntry, error) {
	b.mu.Lock()
	e := b.entries[q.EnvID]
	b.calls = append(b.calls, Query{Command: q.Command, EnvID: q.EnvID})
	blk, ent := b.block, b.entered
	b.mu.Unlock()
	if blk != nil {
		ent <- struct{}{}
		<-blk
	}
	cert := dummyCert
	if e != nil {
		cert = e.cert
	}
	ok := cert.Verify(mtrk.Secret(q.Secret))
	if e == nil || !ok {
		return nil, ErrNotFound
	}
	return e, nil
}

func (b *mapBackend) Track(ctx context.Context, q Query) (*Report, error) {
	e, err := b.lookup(q)
	if err != nil {
		return nil, err
	}
	return e.report, nil
}

func (b *mapBackend) Recall(ctx context.Context, q Query) (*Report, error) {
	e, err := b.lookup(q)
	if err != nil {
		return nil, err
	}
	return e.recall, nil
}

func (b *mapBackend) queries() []Query {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Query(nil), b.calls...)
}

// sampleReport is a report with every known field and extensions.
func sampleReport(envid, host string) *Report {
	t := time.Date(2026, 12, 4, 9, 30, 0, 0, time.FixedZone("", 3600))
	return &Report{
		EnvelopeID:   envid,
		ReportingMTA: DNS(host),
		ArrivalDate:  t,
		Extensions:   []Field{{Name: "X-Queue-Id", Value: "Q123"}},
		Recipients: []Recipient{
			{
				OriginalRecipient: RFC822("list@example.com"),
				FinalRecipient:    RFC822("alice@example.com"),
				Action:            ActionDelivered,
				Status:            Status{2, 0, 0},
				RemoteMTA:         DNS("mx.example.com"),
				LastAttemptDate:   t.Add(time.Minute),
			},
			{
				FinalRecipient: RFC822("bob@example.net"),
				Action:         ActionDelayed,
				Status:         Status{4, 4, 1},
				WillRetryUntil: t.Add(72 * time.Hour),
				Extensions:     []Field{{Name: "Diagnostic-Code", Value: "smtp; 421 try later"}},
			},
		},
	}
}

var testSecret = mtrk.Secret("0123456789abcdef0123")

// startServer serves s on a loopback port and returns its address.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		err := <-done
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return l.Addr().String()
}

// testTLS returns a server config and a client config trusting it, for the
// given names.
func testTLS(t testing.TB, hosts ...string) (*tls.Config, *tls.Config) {
	cert, _, _ := testenv.SelfSignedCert(t, hosts...)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: pool}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
