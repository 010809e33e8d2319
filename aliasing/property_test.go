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
			m[j] = addrs[r.IntN(n)]
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
	}
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
		if pol == First && n.Carries && n.Kind != List {
			// The carrier is the first surviving child.
			for _, c := range n.Children {
				if c.Outcome == Final || c.Outcome == Expanded {
					if !c.Carries {
						fail("first: first surviving member %s of %s does not carry", c.Address, n.Address)
					}
					break
				}
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
