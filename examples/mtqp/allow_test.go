package main

import (
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAllow(t *testing.T) {
	cases := []struct {
		list    string
		allowed []string
		refused []string
		err     string
	}{
		{list: "mx2.example.com", allowed: []string{"mx2.example.com", "MX2.Example.COM", "mx2.example.com."},
			refused: []string{"example.com", "mx3.example.com", "a.mx2.example.com", "mx2.example.com.evil.test", "", "mx2.example.com:1038"}},
		{list: " mx2.example.com , *.example.net ,", allowed: []string{"mx2.example.com", "a.example.net", "a.b.example.net"},
			refused: []string{"example.net", "aexample.net", "a.example.net.evil", "*.example.net"}},
		{list: "192.0.2.1,2001:db8::1", allowed: []string{"192.0.2.1", "2001:DB8:0::1"}, refused: []string{"192.0.2.2", "192.0.2.1.example.com"}},
		{list: "*.Example.ORG.", allowed: []string{"mx.example.org"}, refused: []string{"example.org"}},
		{list: "", err: "no host"},
		{list: " , ,", err: "no host"},
		{list: "*", err: `"*"`},
		{list: "mx.example.com,*", err: `"*"`},
		{list: "*.", err: `"*"`},
		{list: "*.*.example.com", err: "pattern"},
		{list: "mx_1.example.com", err: "not a host name"},
		{list: "-mx.example.com", err: "not a host name"},
		{list: "mx..example.com", err: "not a host name"},
		{list: "mx.example.com/path", err: "not a host name"},
		{list: "mx.example.com:1038", err: "not a host name"},
		{list: strings.Repeat("a", 64) + ".example.com", err: "not a host name"},
		{list: "*." + strings.Repeat("a.", 127) + "com", err: "pattern"},
	}
	for _, tc := range cases {
		t.Run(tc.list, func(t *testing.T) {
			a, err := parseAllow(tc.list)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			for _, h := range tc.allowed {
				assert.True(t, a.Allows(h), "allows %q", h)
			}
			for _, h := range tc.refused {
				assert.False(t, a.Allows(h), "refuses %q", h)
			}
		})
	}
}

// FuzzParseAllow checks the policy's invariants on any list and host:
// parsing never panics, every plain entry of an accepted list is allowed
// in any case and with a trailing dot, a host is allowed only when it is a
// valid name or address, and a pattern never matches its own domain.
func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{"mx.example.com", "*.example.com,mx.example.org", "192.0.2.1", "::1", "", "*", ",", "a,b,c", "*.a", "A.B."} {
		f.Add(s, "mx.example.com")
	}
	f.Add("*.example.com", "example.com")
	f.Add("x", "X.")
	f.Fuzz(func(t *testing.T, list, host string) {
		a, err := parseAllow(list)
		if err != nil {
			return
		}
		if a.Allows(host) {
			h := normHost(host)
			require.True(t, validHostName(h) || isIP(h), "allowed %q is a host", host)
			require.True(t, a.Allows(strings.ToUpper(host)))
		}
		for _, e := range strings.Split(list, ",") {
			e = normHost(e)
			if e == "" {
				continue
			}
			if strings.HasPrefix(e, "*.") {
				require.False(t, a.Allows(e[2:]), "pattern %q does not match its domain", e)
				require.True(t, a.Allows("x."+e[2:]) || len("x."+e[2:]) > 253, "pattern %q matches below", e)
				continue
			}
			require.True(t, a.Allows(e), "entry %q", e)
			require.True(t, a.Allows(strings.ToUpper(e)+"."), "entry %q in upper case with a dot", e)
		}
	})
}

func BenchmarkAllows(b *testing.B) {
	a, err := parseAllow("mx1.example.com,mx2.example.com,*.example.net,*.example.org,192.0.2.1")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if !a.Allows("mx.relay.example.org") || a.Allows("evil.test") {
			b.Fatal("policy")
		}
	}
}

func isIP(h string) bool { return net.ParseIP(h) != nil }
