package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
)

// mapBackend is a small in-test mtqp.Backend: reports by envelope ID,
// guarded by the certifier of their secret. It counts the queries that
// reached it, so tests can prove that a refused invocation sent nothing.
type mapBackend struct {
	mu      sync.Mutex
	entries map[string]mapEntry
	queries atomic.Int64
}

type mapEntry struct {
	cert   mtrk.Certifier
	report *mtqp.Report
	recall map[string]mtqp.RecallStatus // per final recipient
}

func newMapBackend() *mapBackend { return &mapBackend{entries: map[string]mapEntry{}} }

func (b *mapBackend) add(envid string, secret mtrk.Secret, rep *mtqp.Report, recall map[string]mtqp.RecallStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries[envid] = mapEntry{cert: secret.Certifier(), report: rep, recall: recall}
}

func (b *mapBackend) find(q mtqp.Query) (mapEntry, error) {
	b.queries.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[q.EnvID]
	if !ok || !e.cert.Verify(q.Secret) {
		return mapEntry{}, mtqp.ErrNotFound
	}
	return e, nil
}

func copyReport(r *mtqp.Report) *mtqp.Report {
	c := *r
	c.Extensions = append([]mtqp.Field(nil), r.Extensions...)
	c.Recipients = nil
	for _, rc := range r.Recipients {
		rc.Extensions = append([]mtqp.Field(nil), rc.Extensions...)
		c.Recipients = append(c.Recipients, rc)
	}
	return &c
}

func (b *mapBackend) Track(_ context.Context, q mtqp.Query) (*mtqp.Report, error) {
	e, err := b.find(q)
	if err != nil {
		return nil, err
	}
	return copyReport(e.report), nil
}

func (b *mapBackend) Recall(_ context.Context, q mtqp.Query) (*mtqp.Report, error) {
	e, err := b.find(q)
	if err != nil {
		return nil, err
	}
	r := copyReport(e.report)
	for i := range r.Recipients {
		r.Recipients[i].SetRecallStatus(e.recall[r.Recipients[i].FinalRecipient.Value])
	}
	return r, nil
}

// server is an mtqp.Server on loopback.
type server struct {
	srv    *mtqp.Server
	addr   string
	caFile string // PEM of its self-signed certificate ("" without TLS)
	caPEM  []byte
}

type serverOpts struct {
	domain     string
	tls        bool
	certHosts  []string
	requireTLS bool
}

func startServer(t *testing.T, be mtqp.Backend, o serverOpts) *server {
	t.Helper()
	if o.domain == "" {
		o.domain = "mx1.example.test"
	}
	s := &server{srv: &mtqp.Server{Backend: be, Domain: o.domain, RequireTLS: o.requireTLS}}
	if o.tls {
		hosts := o.certHosts
		if len(hosts) == 0 {
			hosts = []string{"127.0.0.1", "localhost"}
		}
		cert, certPEM, _ := testenv.SelfSignedCert(t, hosts...)
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.caPEM = certPEM
		s.caFile = writeFile(t, "ca-"+o.domain+".pem", certPEM)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = l.Addr().String()
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, c *cli, args ...string) result {
	t.Helper()
	if c == nil {
		c = &cli{stdin: strings.NewReader("")}
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := c.run(ctx, args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// requireOneLine checks the failure contract: a single line on stderr,
// nothing on stdout.
func requireOneLine(t *testing.T, r result) {
	t.Helper()
	require.Empty(t, r.stdout, "stdout of a failed run")
	require.NotEmpty(t, r.stderr)
	require.True(t, strings.HasSuffix(r.stderr, "\n"), "stderr ends with a newline: %q", r.stderr)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), "exactly one line on stderr: %q", r.stderr)
}

func newSecret(t testing.TB) mtrk.Secret {
	s, err := mtrk.NewSecret()
	require.NoError(t, err)
	return s
}

// sampleReport is a report with one recipient per interesting case.
func sampleReport(envid string) *mtqp.Report {
	arrival := time.Date(2026, 8, 1, 12, 34, 56, 0, time.FixedZone("", 2*3600))
	return &mtqp.Report{
		EnvelopeID:   envid,
		ReportingMTA: mtqp.DNS("mx1.example.test"),
		ArrivalDate:  arrival,
		Extensions:   []mtqp.Field{{Name: "X-Hold-Until", Value: "Sat, 1 Aug 2026 14:00:00 +0200"}},
		Recipients: []mtqp.Recipient{
			{FinalRecipient: mtqp.RFC822("bob@example.test"), Action: mtqp.ActionDelivered, Status: mtqp.StatusDelivered,
				RemoteMTA: mtqp.DNS("mail.example.test"), LastAttemptDate: arrival.Add(time.Minute),
				Extensions: []mtqp.Field{{Name: "X-Diagnostic", Value: "250 2.0.0 queued as 42"}}},
			{OriginalRecipient: mtqp.RFC822("list@example.test"), FinalRecipient: mtqp.RFC822("carol@example.test"),
				Action: mtqp.ActionFailed, Status: mtqp.Status{Class: 5, Subject: 1, Detail: 1},
				Extensions: []mtqp.Field{{Name: "Diagnostic-Code", Value: "smtp; 550 5.1.1 no such user"}}},
			{FinalRecipient: mtqp.RFC822("dave@example.test"), Action: mtqp.ActionDelayed, Status: mtqp.StatusDelayed,
				WillRetryUntil: arrival.Add(72 * time.Hour),
				Extensions:     []mtqp.Field{{Name: "X-Tracking-State", Value: "held"}}},
		},
	}
}

// srvZone is a loopback DNS server answering SRV queries from a map
// (lower-case FQDN -> records); every other name is NXDOMAIN.
type srvZone struct {
	mu      sync.Mutex
	records map[string][]*net.SRV
}

func (z *srvZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	z.mu.Lock()
	defer z.mu.Unlock()
	found := false
	for _, q := range req.Question {
		recs, ok := z.records[strings.ToLower(q.Name)]
		if !ok {
			continue
		}
		found = true
		if q.Qtype != dns.TypeSRV {
			continue
		}
		for _, r := range recs {
			m.Answer = append(m.Answer, &dns.SRV{
				Hdr:      dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 60},
				Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: r.Target,
			})
		}
	}
	if !found {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

// startDNS serves z on a loopback UDP port and returns a resolver using it.
func startDNS(t *testing.T, z *srvZone) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// srvTo is the SRV record pointing at a loopback server.
func srvTo(t *testing.T, addr string) []*net.SRV {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return []*net.SRV{{Target: "localhost.", Port: uint16(n), Priority: 10, Weight: 1}}
}
