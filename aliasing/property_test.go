package aliasing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomTable builds a random expansion graph over n addresses: each is a
// mailbox, an alias, a forward or a list whose members are drawn from the
// same pool (so there are nested expansions, lists reached through
// aliases, duplicates, self-references and loops), plus a few random
// primaries.
func randomTable(r *rand.Rand, n int) (table, []string) {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("u%d@d%d.example", i, i%3)
	}
	// A few "hot" addresses are drawn far more often than the rest, so that
	// the same mailbox (or alias) is typically reached by several paths:
	// through a list and through an alias, under several aliases, as an
	// original recipient and as a member.
	hot := 1 + r.IntN(3)
	t := table{}
	for _, a := range addrs {
		var k Kind
		switch x := r.IntN(10); {
		case x < 4:
			continue // mailbox
		case x < 7:
			k = Alias
		case x < 8:
			k = Forward
		default:
			k = List
		}
		m := make([]string, r.IntN(6))
		for j := range m {
			if r.IntN(2) == 0 {
				m[j] = addrs[r.IntN(min(hot, n))]
			} else {
				m[j] = addrs[r.IntN(n)]
			}
			if r.IntN(8) == 0 { // same mailbox, domain in upper case
				m[j] = upperDomain(m[j])
			}
		}
		e := Expansion{Kind: k, Members: m}
		if len(m) > 0 && r.IntN(2) == 0 {
			e.Primary = m[r.IntN(len(m))]
		}
		t[a] = e
	}
	return t, addrs
}

func upperDomain(a string) string {
	b := []byte(a)
	for i := len(b) - 1; i >= 0 && b[i] != '@'; i-- {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// reachableFinals is an independent reference: the keys of every address
// reachable from the roots that does not expand, plus every expanding
// address that lists itself.
func reachableFinals(t table, roots []Recipient) map[string]bool {
	out := map[string]bool{}
	seen := map[string]bool{}
	var stack []string
	for _, r := range roots {
		stack = append(stack, r.Address)
	}
	for len(stack) > 0 {
		a := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := DomainFoldKey(a)
		if seen[k] {
			continue
		}
		seen[k] = true
		e, ok := t[a]
		if !ok {
			// The table is keyed by the lower-case spelling.
			e, ok = t[k]
		}
		if !ok {
			out[k] = true
			continue
		}
		for _, m := range e.Members {
			if DomainFoldKey(m) == k {
				out[k] = true
			}
			stack = append(stack, m)
		}
	}
	return out
}

// foldTable makes lookups case-insensitive in the domain, as a real
// expander would be.
type foldTable table

func (f foldTable) Expand(_ context.Context, a string) (Expansion, bool, error) {
	e, ok := f[DomainFoldKey(a)]
	return e, ok, nil
}

func TestPlanProperties(t *testing.T) {
	const iterations = 3000
	r := rand.New(rand.NewPCG(3885, 17))
	policies := []Policy{Multiple, Single, First, Strict}
	mixed := 0
	for it := 0; it < iterations; it++ {
		n := 1 + r.IntN(30)
		tab, addrs := randomTable(r, n)
		roots := make([]Recipient, 1+r.IntN(4))
		for i := range roots {
			roots[i] = Recipient{Address: addrs[r.IntN(n)], Tracked: r.IntN(4) != 0}
		}
		pol := policies[it%len(policies)]
		pl := &Planner{Policy: pol, Expander: foldTable(tab), MaxDepth: n + 1}
		p, err := pl.Plan(context.Background(), roots...)
		require.NoError(t, err, "iteration %d", it)
		checkPlan(t, it, tab, pol, roots, p)
		if sharedListAndGrant(tab, pol, p) {
			mixed++
		}

		// Order independence: the same expansion graph met in other
		// orders (original recipients and expansion members shuffled;
		// under First the first member stays first, since it defines the
		// carrier) yields the same decision for every final recipient.
		want := decisions(p)
		for range 4 {
			ptab, proots := permute(r, tab, roots, pol)
			pp, err := (&Planner{Policy: pol, Expander: foldTable(ptab), MaxDepth: n + 1}).Plan(context.Background(), proots...)
			require.NoError(t, err, "iteration %d", it)
			checkPlan(t, it, ptab, pol, proots, pp)
			require.Equal(t, want, decisions(pp), "iteration %d, policy %v: order changed the decision (roots %v, permuted %v)", it, pol, roots, proots)
			require.Equal(t, p.Duplicates+p.Loops, pp.Duplicates+pp.Loops, "iteration %d: dropped nodes", it)
		}
	}
	// The generator must actually produce the case the rule is about: a
	// mailbox met through a list and also granted the certifier elsewhere.
	require.Greater(t, mixed, iterations/20, "too few plans reach a carrying recipient through a list as well")
}

// decisions maps each final recipient's key to whether it carries.
func decisions(p *Plan) map[string]bool {
	d := map[string]bool{}
	for _, a := range p.WithCertifier {
		d[DomainFoldKey(a)] = true
	}
	for _, a := range p.WithoutCertifier {
		d[DomainFoldKey(a)] = false
	}
	return d
}

// permute returns a copy of the table with every expansion's members
// shuffled (the first kept first under First) and a shuffled copy of the
// roots.
func permute(r *rand.Rand, tab table, roots []Recipient, pol Policy) (table, []Recipient) {
	out := make(table, len(tab))
	for k, e := range tab {
		m := append([]string(nil), e.Members...)
		rest := m
		if pol == First && len(m) > 0 {
			rest = m[1:]
		}
		r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		e.Members = m
		out[k] = e
	}
	pr := append([]Recipient(nil), roots...)
	r.Shuffle(len(pr), func(i, j int) { pr[i], pr[j] = pr[j], pr[i] })
	return out, pr
}

// sharedListAndGrant reports whether some carrying final recipient of p
// also occurs (as a duplicate) below a list.
func sharedListAndGrant(tab table, pol Policy, p *Plan) bool {
	carrying := map[string]bool{}
	for _, a := range p.WithCertifier {
		carrying[DomainFoldKey(a)] = true
	}
	found := false
	var walk func(n *Node, underList bool)
	walk = func(n *Node, underList bool) {
		if underList && n.Outcome == Duplicate && carrying[DomainFoldKey(n.Address)] {
			found = true
		}
		for _, c := range n.Children {
			walk(c, underList || n.Kind == List)
		}
	}
	for _, root := range p.Roots {
		walk(root, false)
	}
	return found
}

// refGrants is the policy rule, restated for the test: the keys of the
// members to which a carrying expansion passes the certifier.
func refGrants(e Expansion, pol Policy) map[string]bool {
	g := map[string]bool{}
	if e.Kind == List || len(e.Members) == 0 {
		return g
	}
	distinct := map[string]bool{}
	for _, m := range e.Members {
		distinct[DomainFoldKey(m)] = true
	}
	switch pol {
	case Multiple:
		g = distinct
	case First:
		g[DomainFoldKey(e.Members[0])] = true
	case Single, Strict:
		if len(distinct) == 1 {
			g = distinct
		} else if pol == Strict && distinct[DomainFoldKey(e.Primary)] {
			g[DomainFoldKey(e.Primary)] = true
		}
	}
	return g
}

// refCarries computes, without the planner, which addresses carry: the
// tracked original recipients and, until nothing changes, every member
// granted by a carrying expansion. self holds the expanding addresses
// whose own mailbox ("a -> a, b") carries.
func refCarries(tab table, pol Policy, roots []Recipient) (carry, self map[string]bool) {
	carry, self = map[string]bool{}, map[string]bool{}
	for _, r := range roots {
		if r.Tracked {
			carry[DomainFoldKey(r.Address)] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for k, e := range tab {
			if !carry[k] {
				continue
			}
			for mk := range refGrants(e, pol) {
				switch {
				case mk == k:
					self[k] = true
				case !carry[mk]:
					carry[mk] = true
					changed = true
				}
			}
		}
	}
	return carry, self
}

func checkPlan(t *testing.T, it int, tab table, pol Policy, roots []Recipient, p *Plan) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("iteration %d, policy %v, roots %v: %s", it, pol, roots, fmt.Sprintf(format, args...))
	}
	require.Len(t, p.Roots, len(roots))

	// Every final recipient appears exactly once across the two lists, and
	// the lists hold exactly the Final nodes, with their certifier state.
	listed := map[string]bool{} // key -> carries
	for _, a := range p.WithCertifier {
		k := DomainFoldKey(a)
		if _, dup := listed[k]; dup {
			fail("%s listed twice", a)
		}
		listed[k] = true
	}
	for _, a := range p.WithoutCertifier {
		k := DomainFoldKey(a)
		if _, dup := listed[k]; dup {
			fail("%s listed twice", a)
		}
		listed[k] = false
	}
	finals := 0
	dups, loops := 0, 0

	// The reference decision: exactly the addresses with a granting path
	// from a tracked original recipient carry.
	refCarry, refSelf := refCarries(tab, pol, roots)
	survivorCarries := func(k string, self bool) bool {
		if self {
			return refSelf[k]
		}
		return refCarry[k]
	}
	for k, c := range listed {
		if _, expands := tab[k]; expands {
			if c != refSelf[k] {
				fail("self-delivery %s carries %v, reference %v", k, c, refSelf[k])
			}
		} else if c != refCarry[k] {
			fail("%s carries %v, reference %v", k, c, refCarry[k])
		}
	}

	var walk func(n *Node, tracked, underList bool, path map[string]bool)
	walk = func(n *Node, tracked, underList bool, path map[string]bool) {
		k := DomainFoldKey(n.Address)
		switch n.Outcome {
		case Final:
			finals++
			c, ok := listed[k]
			if !ok || c != n.Carries {
				fail("final %s (carries %v) not listed as such", n.Address, n.Carries)
			}
		case Expanded:
			if n.Carries != refCarry[k] {
				fail("expanded %s carries %v, reference %v", n.Address, n.Carries, refCarry[k])
			}
		case Duplicate:
			dups++
		case Loop:
			loops++
			if !path[k] {
				fail("%s marked loop but is not an ancestor", n.Address)
			}
		}
		// No list member, at any depth, ever carries.
		if underList && n.Carries {
			fail("%s carries below a list", n.Address)
		}
		if !tracked && n.Carries {
			fail("%s carries below an untracked recipient", n.Address)
		}
		if (n.Outcome == Duplicate || n.Outcome == Loop) && (n.Carries || len(n.Children) > 0) {
			fail("dropped node %s carries or has children", n.Address)
		}
		// Multiple never drops a non-list recipient: every node reached
		// on a path with the certifier and no list carries it.
		if pol == Multiple && tracked && !underList && (n.Outcome == Final || n.Outcome == Expanded) && !n.Carries {
			fail("multiple: %s lost the certifier", n.Address)
		}
		if n.Outcome != Expanded {
			return
		}
		carriers := 0
		for _, c := range n.Children {
			if c.Carries {
				carriers++
			}
		}
		if n.Kind == List && carriers > 0 {
			fail("list %s passed the certifier", n.Address)
		}
		if pol != Multiple && carriers > 1 {
			fail("%v: %d carriers in one expansion of %s", pol, carriers, n.Address)
		}
		if pol == Single && carriers == 1 {
			distinct := map[string]bool{}
			for _, c := range n.Children {
				distinct[DomainFoldKey(c.Address)] = true
			}
			if len(distinct) != 1 {
				fail("single: %s has %d distinct members and a carrier", n.Address, len(distinct))
			}
		}
		// Every occurrence, duplicates included, that the expansion grants
		// the certifier to ends up carrying wherever the address survives
		// (the decision is the union over all paths), and a surviving
		// carrier hangs below the expansion that granted it.
		grants := map[string]bool{}
		if n.Carries {
			grants = refGrants(tab[k], pol)
		}
		for _, c := range n.Children {
			ck := DomainFoldKey(c.Address)
			if grants[ck] && !survivorCarries(ck, ck == k) {
				fail("%s granted by %s but does not carry", c.Address, n.Address)
			}
			if c.Carries && !grants[ck] {
				fail("%s carries below %s, which did not grant it", c.Address, n.Address)
			}
		}
		path[k] = true
		for _, c := range n.Children {
			walk(c, tracked && n.Carries, underList || n.Kind == List, path)
		}
		delete(path, k)
	}
	for i, root := range p.Roots {
		if root.Address != roots[i].Address {
			fail("root %d is %s", i, root.Address)
		}
		if root.Outcome != Duplicate && root.Carries != roots[i].Tracked {
			fail("root %s carries %v, tracked %v", root.Address, root.Carries, roots[i].Tracked)
		}
		walk(root, roots[i].Tracked, false, map[string]bool{})
	}
	if finals != len(listed) {
		fail("%d final nodes, %d listed", finals, len(listed))
	}
	if dups != p.Duplicates || loops != p.Loops {
		fail("counts: %d/%d duplicates, %d/%d loops", dups, p.Duplicates, loops, p.Loops)
	}

	// Nothing is lost: the final recipients are exactly the reachable
	// mailboxes (computed without the planner).
	want := reachableFinals(tab, roots)
	if len(want) != len(listed) {
		fail("reachable finals %v, planned %v", want, listed)
	}
	for k := range want {
		if _, ok := listed[k]; !ok {
			fail("reachable final %s missing from the plan", k)
		}
	}
}
