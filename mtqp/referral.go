package mtqp

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// DefaultMaxHops is the referral depth TrackPath follows when
// Referrals.MaxHops is 0.
const DefaultMaxHops = 5

// ErrReferralRefused is wrapped by the error of a Hop that was not asked:
// the caller's policy refused the host, the hop limit was reached, or the
// host could not be reached over verified TLS.
var ErrReferralRefused = errors.New("mtqp: referral not followed")

// Referrals says whether and how TrackPath follows recipients reported as
// transferred (RFC 3886 Action "transferred", Remote-MTA naming the next
// MTQP-capable MTA; RFC 3887 section 1's chaining model). Following a
// referral sends the secret to another host, so it happens only when
// Allow approves the host and only over TLS whose certificate verified
// for that host name.
type Referrals struct {
	// Allow decides which hosts may receive the secret. nil follows none.
	Allow func(host string) bool
	// MaxHops bounds the depth (the first server is depth 0); 0 means
	// DefaultMaxHops.
	MaxHops int
	// Dialer connects to referred hosts with DialDomain. Its TLSConfig is
	// required and must verify certificates (InsecureSkipVerify false).
	Dialer *Dialer
}

// Hop is one server asked (or refused) along a path.
type Hop struct {
	// Host is the server's name: the first client's Host, then the
	// Remote-MTA value that referred to it.
	Host string
	// Referrer is the host whose report named this one ("" for the first).
	Referrer string
	// Depth is 0 for the first server.
	Depth int
	// Result is the server's answer, nil when Err is set.
	Result *Result
	// Err says why the hop gave no answer.
	Err error
}

// Path is the merged answer: every hop in the order asked (breadth first).
type Path struct {
	Hops []Hop
}

// PathRecipient is one recipient's latest known state along a path.
type PathRecipient struct {
	// Host is the server that reported this state.
	Host string
	Recipient
}

// Recipients merges the hops into one list: the recipients of every
// answered hop, except those whose transfer was followed to a hop that
// answered (that hop's recipients stand for them). Order follows the hops.
func (p *Path) Recipients() []PathRecipient {
	answered := map[string]bool{}
	for _, h := range p.Hops {
		if h.Result != nil && h.Depth > 0 {
			answered[h.Referrer+"\x00"+strings.ToLower(h.Host)] = true
		}
	}
	var out []PathRecipient
	for _, h := range p.Hops {
		if h.Result == nil {
			continue
		}
		for _, rc := range h.Result.Report.Recipients {
			if next, ok := referral(rc); ok && answered[h.Host+"\x00"+next] {
				continue
			}
			out = append(out, PathRecipient{Host: h.Host, Recipient: rc})
		}
	}
	return out
}

// referral returns the lower-case host a recipient was transferred to.
func referral(rc Recipient) (string, bool) {
	if rc.Action != ActionTransferred || !strings.EqualFold(rc.RemoteMTA.Type, TypeDNS) || rc.RemoteMTA.Value == "" {
		return "", false
	}
	h := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(rc.RemoteMTA.Value), "."))
	if h == "" || strings.ContainsAny(h, " \t/[]") {
		return "", false
	}
	return h, true
}

// TrackPath asks c with TRACK and then follows referrals as ref allows,
// merging every answer into one Path. Loops are detected by host name (a
// host is asked at most once; c's host and greeting domain count as
// asked). The error is that of the first TRACK; referral failures are
// recorded in their Hop.
func (c *Client) TrackPath(ctx context.Context, envid string, secret []byte, ref Referrals) (*Path, error) {
	first, err := c.Track(ctx, envid, secret)
	if err != nil {
		return nil, err
	}
	p := &Path{Hops: []Hop{{Host: c.Host(), Result: first}}}
	visited := map[string]bool{
		strings.ToLower(c.Host()):            true,
		strings.ToLower(c.Greeting().Domain): true,
	}
	maxHops := ref.MaxHops
	if maxHops <= 0 {
		maxHops = DefaultMaxHops
	}
	for i := 0; i < len(p.Hops); i++ {
		h := p.Hops[i]
		if h.Result == nil {
			continue
		}
		for _, rc := range h.Result.Report.Recipients {
			next, ok := referral(rc)
			if !ok || visited[next] {
				continue
			}
			visited[next] = true
			hop := Hop{Host: next, Referrer: h.Host, Depth: h.Depth + 1}
			switch {
			case hop.Depth > maxHops:
				hop.Err = fmt.Errorf("%w: hop limit %d reached", ErrReferralRefused, maxHops)
			case ref.Allow == nil || !ref.Allow(next):
				hop.Err = fmt.Errorf("%w: policy refuses %s", ErrReferralRefused, next)
			default:
				hop.Result, hop.Err = askReferral(ctx, ref, next, envid, secret)
			}
			p.Hops = append(p.Hops, hop)
		}
	}
	return p, nil
}

func askReferral(ctx context.Context, ref Referrals, host, envid string, secret []byte) (*Result, error) {
	if ref.Dialer == nil || ref.Dialer.TLSConfig == nil {
		return nil, fmt.Errorf("%w: no TLS configuration for referrals", ErrReferralRefused)
	}
	if ref.Dialer.TLSConfig.InsecureSkipVerify {
		return nil, fmt.Errorf("%w: referrals need verified TLS (InsecureSkipVerify is set)", ErrReferralRefused)
	}
	d := *ref.Dialer
	cfg := d.TLSConfig.Clone()
	cfg.ServerName = host // verify the name the report gave, whatever SRV says
	d.TLSConfig = nil     // StartTLS below, so that a server without it is refused, not used in clear
	c, err := d.DialDomain(ctx, host)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if !c.Supports(OptionStartTLS) {
		return nil, fmt.Errorf("%w: %s does not offer STARTTLS", ErrReferralRefused, host)
	}
	if err := c.StartTLS(ctx, cfg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReferralRefused, err)
	}
	if st, ok := c.TLSConnectionState(); !ok || len(st.VerifiedChains) == 0 {
		return nil, fmt.Errorf("%w: certificate of %s not verified", ErrReferralRefused, host)
	}
	res, err := c.Track(ctx, envid, secret)
	if err != nil {
		return nil, err
	}
	res.Host = host
	_ = c.Quit(ctx)
	return res, nil
}
