package mtqp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// srvZone is a loopback DNS server answering SRV queries from a map
// (lower-case FQDN -> records); every other name is NXDOMAIN.
type srvZone struct {
	mu      sync.Mutex
	records map[string][]*net.SRV
	asked   []string
}

func (z *srvZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	z.mu.Lock()
	defer z.mu.Unlock()
	found := false
	for _, q := range req.Question {
		name := strings.ToLower(q.Name)
		z.asked = append(z.asked, name)
		recs, ok := z.records[name]
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

// startDNS serves z on a loopback UDP port and returns a Resolver using it.
func startDNS(t testing.TB, z *srvZone) *net.Resolver {
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

func portOf(t testing.TB, addr string) uint16 {
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return uint16(n)
}

func TestDialDomainSRV(t *testing.T) {
	_, _, addr := newTestServer(t, nil)
	dead := testenv.FreePort(t) // nothing listens there
	z := &srvZone{records: map[string][]*net.SRV{
		"_mtqp._tcp.example.test.": {
			{Target: "localhost.", Port: portOf(t, addr), Priority: 20, Weight: 1},
			{Target: "localhost.", Port: uint16(dead), Priority: 10, Weight: 5},
		},
		"_mtqp._tcp.none.test.": {{Target: ".", Port: 0}},
	}}
	res := startDNS(t, z)
	ctx := ctxT(t)
	var dialed []string
	var mu sync.Mutex
	d := &Dialer{Resolver: res, DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, a)
		mu.Unlock()
		var nd net.Dialer
		return nd.DialContext(ctx, network, a)
	}}
	c, err := d.DialDomain(ctx, "example.test")
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "example.test", c.Host(), "TLS name is the domain asked for")
	_, err = c.Track(ctx, "env-1", testSecret)
	require.NoError(t, err)
	assert.Equal(t, []string{"localhost:" + strconv.Itoa(dead), "localhost:" + strconv.Itoa(int(portOf(t, addr)))}, dialed,
		"priority 10 first, then priority 20")

	_, err = d.DialDomain(ctx, "none.test")
	assert.ErrorContains(t, err, "no MTQP service")
}

func TestDialDomainFallback(t *testing.T) {
	_, _, addr := newTestServer(t, nil)
	res := startDNS(t, &srvZone{records: map[string][]*net.SRV{}})
	var dialed string
	d := &Dialer{Resolver: res, DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		dialed = a
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr) // stand-in for port 1038
	}}
	c, err := d.DialDomain(ctxT(t), "nosrv.test.")
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "nosrv.test:1038", dialed)
}

// failingResolver returns a lookup error that is not "not found".
type failingResolver struct{}

func (failingResolver) LookupSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	return "", nil, &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}
}

func TestDialDomainLookupError(t *testing.T) {
	d := &Dialer{Resolver: failingResolver{}}
	_, err := d.DialDomain(ctxT(t), "example.test")
	var de *net.DNSError
	assert.ErrorAs(t, err, &de)
}

// A chain of TLS servers on loopback, named through the loopback DNS
// server: mta1 -> mta2 -> mta3, with a loop back to mta1, a referral to a
// host the policy refuses and one to a host without STARTTLS.
func TestTrackPathReferrals(t *testing.T) {
	srvTLS, cliTLS := testTLS(t, "mta1.test", "mta2.test", "mta3.test", "mta4.test", "evil.test")
	mk := func(name string, withTLS bool, recips ...Recipient) (*mapBackend, string) {
		b := newMapBackend()
		rep := &Report{EnvelopeID: "env-1", ReportingMTA: DNS(name), Recipients: recips}
		b.add("env-1", testSecret, rep)
		s := &Server{Backend: b, Domain: name}
		if withTLS {
			s.TLSConfig = srvTLS
		}
		return b, startServer(t, s)
	}
	tr := func(addr, next string) Recipient {
		return Recipient{FinalRecipient: RFC822(addr), Action: ActionTransferred, Status: Status{2, 0, 0}, RemoteMTA: DNS(next)}
	}
	dl := func(addr string) Recipient {
		return Recipient{FinalRecipient: RFC822(addr), Action: ActionDelivered, Status: Status{2, 0, 0}}
	}
	_, a1 := mk("mta1.test", true, dl("a@x"), tr("b@x", "mta2.test"), tr("c@x", "evil.test"), tr("d@x", "MTA4.test."))
	b2, a2 := mk("mta2.test", true, tr("b@x", "mta3.test"), tr("e@x", "mta1.test"))
	b3, a3 := mk("mta3.test", true, dl("b@x"))
	b4, a4 := mk("mta4.test", false, dl("d@x"))
	bEvil, aEvil := mk("evil.test", true, dl("c@x"))
	z := &srvZone{records: map[string][]*net.SRV{}}
	for name, a := range map[string]string{"mta1.test": a1, "mta2.test": a2, "mta3.test": a3, "mta4.test": a4, "evil.test": aEvil} {
		z.records["_mtqp._tcp."+name+"."] = []*net.SRV{{Target: "localhost.", Port: portOf(t, a)}}
	}
	res := startDNS(t, z)
	ctx := ctxT(t)

	cfg := cliTLS.Clone()
	cfg.ServerName = "mta1.test"
	c, err := (&Dialer{TLSConfig: cfg}).Dial(ctx, a1)
	require.NoError(t, err)
	defer c.Close()
	ref := Referrals{
		Allow:  func(h string) bool { return h != "evil.test" },
		Dialer: &Dialer{Resolver: res, TLSConfig: cliTLS},
	}
	p, err := c.TrackPath(ctx, "env-1", testSecret, ref)
	require.NoError(t, err)
	var hosts []string
	for _, h := range p.Hops {
		hosts = append(hosts, h.Host)
	}
	assert.Equal(t, []string{"127.0.0.1", "mta2.test", "evil.test", "mta4.test", "mta3.test"}, hosts, "breadth first, loop to mta1 not followed")
	assert.ErrorIs(t, p.Hops[2].Err, ErrReferralRefused, "policy")
	assert.ErrorIs(t, p.Hops[3].Err, ErrReferralRefused, "no STARTTLS")
	assert.NoError(t, p.Hops[1].Err)
	assert.NoError(t, p.Hops[4].Err)
	assert.Equal(t, 2, p.Hops[4].Depth)
	assert.Equal(t, "mta2.test", p.Hops[4].Referrer)
	assert.Empty(t, bEvil.queries(), "the refused host never got the secret")
	assert.Empty(t, b4.queries(), "the host without TLS never got the secret")
	assert.Len(t, b2.queries(), 1)
	assert.Len(t, b3.queries(), 1)

	var merged []string
	for _, r := range p.Recipients() {
		merged = append(merged, r.Host+":"+r.FinalRecipient.Value+":"+string(r.Action))
	}
	assert.Equal(t, []string{
		"127.0.0.1:a@x:delivered",
		"127.0.0.1:c@x:transferred",
		"127.0.0.1:d@x:transferred",
		"mta2.test:e@x:transferred",
		"mta3.test:b@x:delivered",
	}, merged)

	// Hop limit.
	ref.MaxHops = 1
	p, err = c.TrackPath(ctx, "env-1", testSecret, ref)
	require.NoError(t, err)
	require.Len(t, p.Hops, 5)
	assert.ErrorIs(t, p.Hops[4].Err, ErrReferralRefused)
	assert.ErrorContains(t, p.Hops[4].Err, "hop limit")

	// Unverified TLS is refused outright.
	n2 := len(b2.queries())
	ref.MaxHops = 0
	ref.Dialer = &Dialer{Resolver: res, TLSConfig: &tls.Config{InsecureSkipVerify: true}}
	p, err = c.TrackPath(ctx, "env-1", testSecret, ref)
	require.NoError(t, err)
	assert.ErrorIs(t, p.Hops[1].Err, ErrReferralRefused)
	assert.Len(t, b2.queries(), n2, "no new query reached mta2")

	// A certificate that does not verify (wrong roots) is refused too.
	ref.Dialer = &Dialer{Resolver: res, TLSConfig: &tls.Config{}}
	p, err = c.TrackPath(ctx, "env-1", testSecret, ref)
	require.NoError(t, err)
	assert.True(t, errors.Is(p.Hops[1].Err, ErrReferralRefused))
	assert.Len(t, b2.queries(), n2)

	// No policy: nothing followed.
	p, err = c.TrackPath(ctx, "env-1", testSecret, Referrals{Dialer: &Dialer{Resolver: res, TLSConfig: cliTLS}})
	require.NoError(t, err)
	for _, h := range p.Hops[1:] {
		assert.ErrorIs(t, h.Err, ErrReferralRefused)
	}
}
