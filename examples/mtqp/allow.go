package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// allowList is the -allow referral policy: the hosts that may receive the
// tracking secret when -follow chases a referral. An entry is a host name
// (matched exactly, case-insensitively, a trailing dot ignored), an IP
// literal, or "*.domain", which matches every name below domain but not
// domain itself.
type allowList struct {
	exact    map[string]bool
	suffixes []string // ".example.com"
}

// parseAllow parses a comma-separated -allow value. Empty entries (a
// trailing comma) are ignored, but the list must name at least one host. A
// bare "*" is refused: it would send the secret to any host a report
// names, and a report comes from a server the user does not control.
func parseAllow(s string) (*allowList, error) {
	a := &allowList{exact: map[string]bool{}}
	for _, e := range strings.Split(s, ",") {
		e = normHost(e)
		switch {
		case e == "":
			continue
		case e == "*" || e == "*.":
			return nil, errors.New(`-allow: "*" would send the secret to any host a report names; list the hosts`)
		case strings.HasPrefix(e, "*."):
			d := e[2:]
			if !validHostName(d) {
				return nil, fmt.Errorf("-allow: %q is not a host name pattern", e)
			}
			a.suffixes = append(a.suffixes, "."+d)
		case net.ParseIP(e) != nil:
			a.exact[net.ParseIP(e).String()] = true
		case validHostName(e):
			a.exact[e] = true
		default:
			return nil, fmt.Errorf("-allow: %q is not a host name", e)
		}
	}
	if len(a.exact) == 0 && len(a.suffixes) == 0 {
		return nil, errors.New("-allow: no host given")
	}
	return a, nil
}

// Allows reports whether host may receive the secret.
func (a *allowList) Allows(host string) bool {
	h := normHost(host)
	if h == "" {
		return false
	}
	if ip := net.ParseIP(h); ip != nil {
		return a.exact[ip.String()]
	}
	if !validHostName(h) {
		return false
	}
	if a.exact[h] {
		return true
	}
	for _, s := range a.suffixes {
		if len(h) > len(s) && strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

func normHost(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// validHostName checks RFC 1123 section 2.1 host name syntax: dot-separated
// labels of letters, digits and hyphens, 1 to 63 characters, not starting
// or ending with a hyphen, 253 characters in all.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for len(h) > 0 {
		l := h
		if i := strings.IndexByte(h, '.'); i >= 0 {
			l, h = h[:i], h[i+1:]
			if h == "" {
				return false // empty last label ("a." was trimmed by normHost)
			}
		} else {
			h = ""
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
