package ldapsecret

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/internal/testenv"
)

// Test users. weirdUID holds every filter metacharacter of RFC 4515.
const weirdUID = `we*ird(x)\y`

var (
	aliceSecret = seq(0x80, 32) // good: 32 binary bytes
	carolSecret = seq(0x41, 8)  // weak: 8 bytes
	weirdSecret = seq(0x10, 20)
	daveSecrets = [][]byte{seq(0x20, 16), seq(0x30, 16)}
)

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func person(dn, uid string, secrets ...[]byte) string {
	s := "dn: " + dn + "\nobjectClass: inetOrgPerson\nobjectClass: " + testenv.RecallSecretClass +
		"\nuid: " + uid + "\ncn: " + uid + "\nsn: test\n"
	for _, v := range secrets {
		if len(v) == 0 {
			s += testenv.RecallSecretAttr + ":\n"
			continue
		}
		s += testenv.RecallSecretAttr + ":: " + base64.StdEncoding.EncodeToString(v) + "\n"
	}
	return s + "\n"
}

var testLDIF = person("uid=alice,"+testenv.SlapdPeople, "alice", aliceSecret) +
	person("uid=bob,"+testenv.SlapdPeople, "bob") +
	person("uid=carol,"+testenv.SlapdPeople, "carol", carolSecret) +
	person(`uid=we*ird(x)\\y,`+testenv.SlapdPeople, weirdUID, weirdSecret) +
	person("uid=dave,"+testenv.SlapdPeople, "dave", daveSecrets...) +
	person("uid=eve,"+testenv.SlapdPeople, "eve", []byte{}) +
	person("uid=dup,"+testenv.SlapdPeople, "dup", seq(1, 16)) +
	person("cn=dup two,"+testenv.SlapdPeople, "dup", seq(2, 16)) +
	person("uid=alicia,"+testenv.SlapdPeople, "alicia", seq(3, 16))

func startSlapd(t testing.TB, tls bool) *testenv.Slapd {
	return testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: testLDIF, TLS: tls})
}

func config(s *testenv.Slapd) Config {
	return Config{
		URL: s.URL, BindDN: s.BindDN, BindPassword: s.BindPassword,
		BaseDN: testenv.SlapdPeople, Attribute: testenv.RecallSecretAttr,
		Filter: "(&(objectClass=inetOrgPerson)(uid=%s))",
	}
}

func newSource(t testing.TB, cfg Config) *Source {
	src, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return src
}

func TestOutcomes(t *testing.T) {
	s := startSlapd(t, false)
	src := newSource(t, config(s))
	for _, tc := range []struct {
		user string
		want []byte
		err  error
		msg  string // tells the cases that share a sentinel apart
	}{
		{"alice", aliceSecret, nil, ""},
		{"ALICE", aliceSecret, nil, ""}, // uid matches case-insensitively (caseIgnoreMatch)
		{"carol", carolSecret, nil, ""}, // weak, but that is the Generator's decision
		{weirdUID, weirdSecret, nil, ""},
		{"bob", nil, idgen.ErrNoSecret, "has no " + testenv.RecallSecretAttr},
		{"eve", nil, idgen.ErrNoSecret, "has an empty " + testenv.RecallSecretAttr},
		{"dave", nil, idgen.ErrAmbiguous, "has 2 values"},
		{"dup", nil, idgen.ErrAmbiguous, "2 entries match"},
		{"nobody", nil, idgen.ErrUnknownUser, `"nobody"`},
		{"", nil, idgen.ErrUnknownUser, "empty user name"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			for range 2 { // second time from the cache
				got, err := src.RecallSecret(context.Background(), tc.user)
				if tc.err != nil {
					require.ErrorIs(t, err, tc.err)
					assert.ErrorContains(t, err, tc.msg)
					assert.Nil(t, got)
					continue
				}
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			}
		})
	}
	st := src.Stats()
	assert.Equal(t, uint64(20), st.Lookups)
	assert.Equal(t, uint64(9), st.CacheHits, "every outcome but the empty name is cached")
	assert.Equal(t, uint64(0), st.Failures)
	assert.Equal(t, uint64(1), st.Dials, "one connection serves every lookup")
}

func TestFilterInjection(t *testing.T) {
	s := startSlapd(t, false)
	cfg := config(s)
	cfg.CacheSize = -1
	src := newSource(t, cfg)

	// The names really are dangerous: pasted into the filter unescaped,
	// they match entries.
	l, err := ldap.DialURL(s.URL)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Bind(s.BindDN, s.BindPassword))
	for _, raw := range []string{"*", "al*", "alice)(uid=*", `*)(|(uid=*`} {
		res, err := l.Search(ldap.NewSearchRequest(testenv.SlapdPeople, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, "(&(objectClass=inetOrgPerson)(uid="+raw+"))", []string{"uid"}, nil))
		if err == nil {
			assert.NotEmpty(t, res.Entries, "unescaped %q", raw)
		}
	}

	for _, user := range []string{
		"*", "al*", "*ice", "alice)(uid=*", "alice)(|(uid=*)", `*)(|(uid=*`, "alice\x00", "alice\x00)(uid=*",
		`\2a`, `we\2aird(x)\5cy`, `we*ird(x)\5cy`, "we*", "(", ")", `\`, "\x00", "ü*",
	} {
		t.Run(fmt.Sprintf("%q", user), func(t *testing.T) {
			got, err := src.RecallSecret(context.Background(), user)
			require.ErrorIs(t, err, idgen.ErrUnknownUser, "got %x", got)
		})
	}
	got, err := src.RecallSecret(context.Background(), weirdUID)
	require.NoError(t, err)
	assert.Equal(t, weirdSecret, got)
	assert.Equal(t, uint64(0), src.Stats().Failures)
}

func TestCache(t *testing.T) {
	s := startSlapd(t, false)
	cfg := config(s)
	cfg.CacheTTL, cfg.NegativeTTL, cfg.CacheSize = time.Minute, 5*time.Second, 2
	src := newSource(t, cfg)
	now := time.Unix(1_800_000_000, 0)
	src.now = func() time.Time { return now }
	ctx := context.Background()
	searches := func() uint64 { return src.Stats().Searches }

	v, err := src.RecallSecret(ctx, "alice")
	require.NoError(t, err)
	v[0] ^= 0xff // the caller's copy
	v, err = src.RecallSecret(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, aliceSecret, v, "cache hands out copies")
	assert.Equal(t, uint64(1), searches())

	_, err = src.RecallSecret(ctx, "nobody")
	require.ErrorIs(t, err, idgen.ErrUnknownUser)
	_, err = src.RecallSecret(ctx, "nobody")
	require.ErrorIs(t, err, idgen.ErrUnknownUser)
	assert.Equal(t, uint64(2), searches(), "negative answers are cached")

	now = now.Add(6 * time.Second) // past NegativeTTL, within CacheTTL
	_, err = src.RecallSecret(ctx, "nobody")
	require.ErrorIs(t, err, idgen.ErrUnknownUser)
	_, err = src.RecallSecret(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), searches())

	// Bounded: a third user evicts the least recently used ("nobody").
	_, err = src.RecallSecret(ctx, "carol")
	require.NoError(t, err)
	assert.Equal(t, 2, src.cache.len())
	_, err = src.RecallSecret(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, uint64(4), searches())
	_, err = src.RecallSecret(ctx, "nobody")
	require.ErrorIs(t, err, idgen.ErrUnknownUser)
	assert.Equal(t, uint64(5), searches())

	now = now.Add(2 * time.Minute)
	_, err = src.RecallSecret(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, uint64(6), searches(), "positive entries expire too")
}

func TestServerDownAndRecovery(t *testing.T) {
	s := startSlapd(t, false)
	cfg := config(s)
	cfg.CacheSize = -1
	cfg.DialTimeout = time.Second
	src := newSource(t, cfg)
	ctx := context.Background()

	_, err := src.RecallSecret(ctx, "alice")
	require.NoError(t, err)

	s.Stop()
	_, err = src.RecallSecret(ctx, "alice")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.False(t, isUserOutcome(err))
	g := idgen.New(idgen.Options{Source: src})
	res, err := g.Generate(ctx, idgen.Input{User: "alice", MessageID: "<a@b>", UniqueID: "u1"})
	require.NoError(t, err, "a directory outage never stops mail")
	assert.Equal(t, idgen.PathMD4, res.Path)
	assert.Equal(t, idgen.ReasonSourceError, res.Reason)
	assert.ErrorIs(t, res.Err, ErrUnavailable)

	s.Start()
	got, err := src.RecallSecret(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, aliceSecret, got)

	// A restart between lookups leaves a stale pooled connection; the
	// lookup retries on a new one.
	dials := src.Stats().Dials
	s.Stop()
	s.Start()
	got, err = src.RecallSecret(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, aliceSecret, got)
	assert.Equal(t, dials+1, src.Stats().Dials)
	assert.Equal(t, uint64(2), src.Stats().Failures)
}

func TestBindFailure(t *testing.T) {
	s := startSlapd(t, false)
	cfg := config(s)
	cfg.BindPassword = "wrong"
	src := newSource(t, cfg)
	_, err := src.RecallSecret(context.Background(), "alice")
	require.ErrorIs(t, err, ErrBind)
	assert.NotContains(t, err.Error(), "wrong", "the password is not in the error")

	g := idgen.New(idgen.Options{Source: src})
	res, err := g.Generate(context.Background(), idgen.Input{User: "alice", MessageID: "<a@b>", UniqueID: "u"})
	require.NoError(t, err)
	assert.Equal(t, idgen.ReasonSourceError, res.Reason)
	assert.ErrorIs(t, res.Err, ErrBind)

	// Anonymous search works: the test server lets everyone read.
	cfg.BindDN, cfg.BindPassword = "", ""
	anon := newSource(t, cfg)
	got, err := anon.RecallSecret(context.Background(), "alice")
	require.NoError(t, err)
	assert.Equal(t, aliceSecret, got)
}

func TestTLS(t *testing.T) {
	s := startSlapd(t, true)
	for _, tc := range []struct {
		name     string
		url      string
		startTLS bool
		roots    *x509.CertPool
		ok       bool
	}{
		{"StartTLS", s.URL, true, s.RootCAs, true},
		{"ldaps", s.LDAPSURL, false, s.RootCAs, true},
		{"StartTLS untrusted", s.URL, true, x509.NewCertPool(), false},
		{"ldaps untrusted", s.LDAPSURL, false, x509.NewCertPool(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(s)
			cfg.URL, cfg.StartTLS = tc.url, tc.startTLS
			cfg.TLSConfig = newTLSConfig(tc.roots)
			src := newSource(t, cfg)
			got, err := src.RecallSecret(context.Background(), "alice")
			if !tc.ok {
				require.ErrorIs(t, err, ErrUnavailable)
				var uerr x509.UnknownAuthorityError
				assert.True(t, errors.As(err, &uerr) || bytes.Contains([]byte(err.Error()), []byte("certificate")), err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, aliceSecret, got)
			c, _, err := src.get(context.Background())
			require.NoError(t, err)
			state, ok := c.l.TLSConnectionState()
			require.True(t, ok, "the pooled connection is TLS")
			assert.True(t, state.HandshakeComplete)
			src.put(c)
		})
	}
}

func TestHungServerTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	defer func() { ln.Close(); wg.Wait() }()
	wg.Add(1)
	go func() { // accepts and never answers
		defer wg.Done()
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	src := newSource(t, Config{URL: "ldap://" + ln.Addr().String(), BindDN: "cn=x", BindPassword: "y",
		BaseDN: "dc=x", Attribute: "a", DialTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = src.RecallSecret(ctx, "alice")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = src.RecallSecret(ctx, "alice")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestConcurrentReuse(t *testing.T) {
	s := startSlapd(t, false)
	cfg := config(s)
	cfg.CacheSize, cfg.MaxConns = -1, 2
	src := newSource(t, cfg)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				user := []string{"alice", "bob", weirdUID, "nobody"}[(i+j)%4]
				_, err := src.RecallSecret(context.Background(), user)
				if user == "alice" || user == weirdUID {
					assert.NoError(t, err)
				} else {
					assert.True(t, isUserOutcome(err), "%v", err)
				}
			}
		}()
	}
	wg.Wait()
	st := src.Stats()
	assert.Equal(t, uint64(160), st.Searches)
	assert.LessOrEqual(t, st.Dials, uint64(2), "connections are reused, at most MaxConns")
}

func TestClose(t *testing.T) {
	s := startSlapd(t, false)
	src := newSource(t, config(s))
	_, err := src.RecallSecret(context.Background(), "alice")
	require.NoError(t, err)
	require.NoError(t, src.Close())
	_, err = src.RecallSecret(context.Background(), "bob")
	require.ErrorIs(t, err, ErrClosed)
}

func TestNewErrors(t *testing.T) {
	ok := Config{URL: "ldap://127.0.0.1", BaseDN: "dc=x", Attribute: "a"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no attribute", func(c *Config) { c.Attribute = "" }},
		{"no base", func(c *Config) { c.BaseDN = "" }},
		{"no placeholder", func(c *Config) { c.Filter = "(uid=alice)" }},
		{"bad filter", func(c *Config) { c.Filter = "(uid=%s" }},
		{"bad scheme", func(c *Config) { c.URL = "http://127.0.0.1" }},
		{"ldapi", func(c *Config) { c.URL = "ldapi:///run/slapd.sock" }},
		{"no host", func(c *Config) { c.URL = "ldap://" }},
		{"StartTLS on ldaps", func(c *Config) { c.URL, c.StartTLS = "ldaps://127.0.0.1", true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			_, err := New(c)
			assert.Error(t, err)
		})
	}
	src, err := New(ok)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:389", src.addr)
	assert.Equal(t, DefaultFilter, src.cfg.Filter)
	src, err = New(Config{URL: "LDAPS://localhost", BaseDN: "dc=x", Attribute: "a"})
	require.NoError(t, err)
	assert.Equal(t, "localhost:636", src.addr)
	assert.Equal(t, "localhost", src.tlsConfig.ServerName)
}

// The end-to-end path: Generator with the LDAP source.
func TestGeneratorWithLDAP(t *testing.T) {
	s := startSlapd(t, false)
	src := newSource(t, config(s))
	var logs bytes.Buffer
	g := idgen.New(idgen.Options{Source: src, Logger: newTextLogger(&logs)})
	const mid, date = " <e2e.1@mail.example.com>", " Sat, 1 Aug 2026 12:34:56 +0200"
	for _, tc := range []struct {
		user   string
		path   idgen.Path
		reason idgen.Reason
		secret []byte
	}{
		{"alice", idgen.PathSHA1, idgen.ReasonNone, aliceSecret},
		{weirdUID, idgen.PathSHA1, idgen.ReasonNone, weirdSecret},
		{"bob", idgen.PathMD4, idgen.ReasonNoSecret, nil},
		{"eve", idgen.PathMD4, idgen.ReasonNoSecret, nil},
		{"carol", idgen.PathMD4, idgen.ReasonWeakSecret, nil},
		{"dave", idgen.PathMD4, idgen.ReasonAmbiguous, nil},
		{"dup", idgen.PathMD4, idgen.ReasonAmbiguous, nil},
		{"nobody", idgen.PathMD4, idgen.ReasonUnknownUser, nil},
		{"", idgen.PathMD4, idgen.ReasonUnauthenticated, nil},
	} {
		t.Run(tc.user, func(t *testing.T) {
			res, err := g.Generate(context.Background(), idgen.Input{User: tc.user, MessageID: mid, Date: date, UniqueID: "q1@mx"})
			require.NoError(t, err)
			assert.Equal(t, tc.path, res.Path)
			assert.Equal(t, tc.reason, res.Reason, "%v", res.Err)
			assert.Equal(t, "e2e.1@mail.example.com", res.EnvelopeID)
			if tc.path == idgen.PathSHA1 {
				want, err := idgen.ComputeSecret(mid, date, tc.secret)
				require.NoError(t, err)
				assert.Equal(t, want, res.Secret, "the client recomputes the server's secret")
				assert.True(t, res.Certifier.Verify(want))
			} else {
				assert.Equal(t, idgen.MD4Identifier("q1@mx"), res.Certifier)
			}
		})
	}
	assert.Contains(t, logs.String(), "too short")
	assert.Contains(t, logs.String(), "user=carol")
	assert.NotContains(t, logs.String(), base64.StdEncoding.EncodeToString(carolSecret))
}
