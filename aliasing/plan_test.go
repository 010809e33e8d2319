package aliasing

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// table is a map-backed Expander for tests.
type table map[string]Expansion

func (t table) Expand(_ context.Context, a string) (Expansion, bool, error) {
	e, ok := t[a]
	return e, ok, nil
}

func alias(m ...string) Expansion   { return Expansion{Kind: Alias, Members: m} }
func forward(m ...string) Expansion { return Expansion{Kind: Forward, Members: m} }
func list(m ...string) Expansion    { return Expansion{Kind: List, Members: m} }

func TestPlanPolicies(t *testing.T) {
	tab := table{
		"team@x":   alias("ann@x", "bob@x", "cat@x"),
		"solo@x":   alias("dan@x"),
		"fwd@x":    forward("eve@x"),
		"staff@x":  alias("ann@x", "all@x"),
		"all@x":    list("fay@x", "gus@x", "inner@x"),
		"inner@x":  alias("hal@x"),
		"twice@x":  alias("ivy@x", "ivy@X", "ivy@x"),
		"prim@x":   {Kind: Alias, Members: []string{"jo@x", "kim@x"}, Primary: "kim@x"},
		"noprim@x": {Kind: Alias, Members: []string{"jo@x", "kim@x"}, Primary: "zed@x"},
		"ml@x":     list("lee@x"),
		"tolist@x": alias("ml@x"),
	}
	type want struct{ with, without []string }
	tests := []struct {
		name   string
		policy Policy
		rcpt   string
		want   want
	}{
		{"multiple all carry", Multiple, "team@x", want{[]string{"ann@x", "bob@x", "cat@x"}, nil}},
		{"single of three", Single, "team@x", want{nil, []string{"ann@x", "bob@x", "cat@x"}}},
		{"single of one", Single, "solo@x", want{[]string{"dan@x"}, nil}},
		{"forward single", Single, "fwd@x", want{[]string{"eve@x"}, nil}},
		{"first of three", First, "team@x", want{[]string{"ann@x"}, []string{"bob@x", "cat@x"}}},
		{"strict of three", Strict, "team@x", want{nil, []string{"ann@x", "bob@x", "cat@x"}}},
		{"strict of one", Strict, "solo@x", want{[]string{"dan@x"}, nil}},
		{"strict primary", Strict, "prim@x", want{[]string{"kim@x"}, []string{"jo@x"}}},
		{"strict stale primary", Strict, "noprim@x", want{nil, []string{"jo@x", "kim@x"}}},
		{"multiple primary ignored", Multiple, "prim@x", want{[]string{"jo@x", "kim@x"}, nil}},
		{"list through alias, multiple", Multiple, "staff@x", want{[]string{"ann@x"}, []string{"fay@x", "gus@x", "hal@x"}}},
		{"list through alias, first", First, "staff@x", want{[]string{"ann@x"}, []string{"fay@x", "gus@x", "hal@x"}}},
		{"single-member list, single", Single, "ml@x", want{nil, []string{"lee@x"}}},
		{"alias to single-member list, single", Single, "tolist@x", want{nil, []string{"lee@x"}}},
		{"alias to list, strict", Strict, "tolist@x", want{nil, []string{"lee@x"}}},
		{"duplicates inside one alias count once", Single, "twice@x", want{[]string{"ivy@x"}, nil}},
		{"mailbox", Single, "plain@x", want{[]string{"plain@x"}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := &Planner{Policy: tt.policy, Expander: tab}
			p, err := pl.Plan(context.Background(), Recipient{Address: tt.rcpt, Tracked: true})
			require.NoError(t, err)
			assert.Equal(t, tt.want.with, p.WithCertifier, "with certifier")
			assert.Equal(t, tt.want.without, p.WithoutCertifier, "without certifier")
			assert.Equal(t, tt.policy, p.Policy)
			require.NoError(t, p.Check())

			// Untracked: the same recipients, none carries.
			u, err := pl.Plan(context.Background(), Recipient{Address: tt.rcpt})
			require.NoError(t, err)
			assert.Empty(t, u.WithCertifier)
			assert.ElementsMatch(t, append(append([]string{}, tt.want.with...), tt.want.without...), u.WithoutCertifier)
		})
	}
}

func TestPlanTree(t *testing.T) {
	tab := table{
		"staff@x": alias("ann@x", "all@x", "ann@x"),
		"all@x":   list("bob@x", "staff@x"),
	}
	pl := &Planner{Expander: tab}
	p, err := pl.Plan(context.Background(), Recipient{Address: "staff@x", Tracked: true}, Recipient{Address: "bob@x", Tracked: true})
	require.NoError(t, err)
	require.Len(t, p.Roots, 2)
	r := p.Roots[0]
	assert.Equal(t, &Node{Address: "staff@x", Kind: Alias, Outcome: Expanded, Carries: true, Children: []*Node{
		{Address: "ann@x", Outcome: Final, Carries: true},
		{Address: "all@x", Kind: List, Outcome: Expanded, Carries: true, Children: []*Node{
			{Address: "bob@x", Outcome: Duplicate},
			{Address: "staff@x", Outcome: Loop},
		}},
		{Address: "ann@x", Outcome: Duplicate},
	}}, r)
	assert.Equal(t, &Node{Address: "bob@x", Outcome: Final, Carries: true}, p.Roots[1],
		"a tracked RCPT carries although the walk meets bob@x first through the list; it survives where it is granted")
	assert.Equal(t, []string{"ann@x", "bob@x"}, p.WithCertifier)
	assert.Empty(t, p.WithoutCertifier)
	assert.Equal(t, 2, p.Duplicates)
	assert.Equal(t, 1, p.Loops)
	assert.NoError(t, p.Check(), "staff@x still delivers")

	var seen []string
	r.Walk(func(n *Node, depth int) bool {
		seen = append(seen, fmt.Sprintf("%d:%s:%v", depth, n.Address, n.Outcome))
		return true
	})
	assert.Equal(t, []string{"0:staff@x:expanded", "1:ann@x:final", "1:all@x:expanded", "2:bob@x:duplicate", "2:staff@x:loop", "1:ann@x:duplicate"}, seen)
	var count int
	r.Walk(func(*Node, int) bool { count++; return count < 2 })
	assert.Equal(t, 2, count, "Walk stops when fn returns false")
}

func TestPlanSelfReferenceAndLoops(t *testing.T) {
	tab := table{
		"me@x":    forward("me@x", "phone@y", "me@X"),
		"a@x":     alias("b@x"),
		"b@x":     alias("a@x"),
		"loop@x":  alias("loop2@x"),
		"loop2@x": alias("loop@x", "out@x"),
	}
	pl := &Planner{Policy: Multiple, Expander: tab}

	p, err := pl.Plan(context.Background(), Recipient{Address: "me@x", Tracked: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"me@x", "phone@y"}, p.WithCertifier, "a forward that keeps a copy delivers to the mailbox itself")
	assert.Equal(t, Final, p.Roots[0].Children[0].Outcome)
	assert.Equal(t, Duplicate, p.Roots[0].Children[2].Outcome, "me@X is the same mailbox (domain case folded)")
	assert.Equal(t, 0, p.Loops)

	p, err = pl.Plan(context.Background(), Recipient{Address: "a@x", Tracked: true})
	require.NoError(t, err)
	assert.Empty(t, p.WithCertifier)
	assert.Empty(t, p.WithoutCertifier)
	assert.Equal(t, 1, p.Loops)
	var le *LoopError
	require.ErrorAs(t, p.Check(), &le)
	assert.Equal(t, "a@x", le.Address)
	code, enh, _ := le.SMTPReply()
	assert.Equal(t, 554, code)
	assert.Equal(t, [3]int{5, 4, 6}, enh)

	p, err = pl.Plan(context.Background(), Recipient{Address: "loop@x", Tracked: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"out@x"}, p.WithCertifier)
	assert.NoError(t, p.Check(), "a loop beside a real recipient is not an error")

	// An empty alias delivers to nobody, but that is not a loop.
	p, err = (&Planner{Expander: table{"void@x": alias()}}).Plan(context.Background(), Recipient{Address: "void@x"})
	require.NoError(t, err)
	assert.NoError(t, p.Check())
	assert.False(t, p.Roots[0].Delivers())
}

func TestPlanFirstIsFirstMember(t *testing.T) {
	tab := table{"grp@x": alias("ann@x", "bob@x", "cat@x")}
	pl := &Planner{Policy: First, Expander: tab}
	// ann@x also arrives as its own RCPT, untracked, before grp@x. It is
	// still grp@x's first member, so it carries, in either order, and
	// nobody else in grp@x does.
	for _, roots := range [][]Recipient{
		{{Address: "ann@x"}, {Address: "grp@x", Tracked: true}},
		{{Address: "grp@x", Tracked: true}, {Address: "ann@x"}},
	} {
		p, err := pl.Plan(context.Background(), roots...)
		require.NoError(t, err)
		assert.Equal(t, []string{"ann@x"}, p.WithCertifier)
		assert.Equal(t, []string{"bob@x", "cat@x"}, p.WithoutCertifier)
		assert.Equal(t, 1, p.Duplicates, "the untracked RCPT ann@x is the duplicate")
	}
}

func TestPlanErrors(t *testing.T) {
	boom := errors.New("ldap down")
	ctx := context.Background()

	_, err := (&Planner{Expander: ExpanderFunc(func(context.Context, string) (Expansion, bool, error) {
		return Expansion{}, false, boom
	})}).Plan(ctx, Recipient{Address: "a@x"})
	var ee *ExpandError
	require.ErrorAs(t, err, &ee)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, "a@x", ee.Address)
	code, enh, _ := ee.SMTPReply()
	assert.Equal(t, 451, code)
	assert.Equal(t, [3]int{4, 4, 3}, enh)

	// The wrapped error's own reply wins.
	_, err = (&Planner{Expander: ExpanderFunc(func(context.Context, string) (Expansion, bool, error) {
		return Expansion{}, false, &LoopError{Address: "q"}
	})}).Plan(ctx, Recipient{Address: "a@x"})
	require.ErrorAs(t, err, &ee)
	code, _, _ = ee.SMTPReply()
	assert.Equal(t, 554, code)

	_, err = (&Planner{Expander: table{"a@x": {Kind: Mailbox, Members: []string{"b@x"}}}}).Plan(ctx, Recipient{Address: "a@x"})
	assert.ErrorIs(t, err, ErrBadExpansion)
	_, err = (&Planner{Expander: table{"a@x": {Kind: Kind(7)}}}).Plan(ctx, Recipient{Address: "a@x"})
	assert.ErrorIs(t, err, ErrBadExpansion)

	// A chain of fresh addresses: a loop the expander hides.
	chain := ExpanderFunc(func(_ context.Context, a string) (Expansion, bool, error) {
		return alias(a + "x"), true, nil
	})
	_, err = (&Planner{Expander: chain, MaxDepth: 5}).Plan(ctx, Recipient{Address: "a"})
	var lim *LimitError
	require.ErrorAs(t, err, &lim)
	assert.ErrorIs(t, err, ErrTooDeep)
	assert.Equal(t, "axxxxx", lim.Address)
	code, enh, _ = lim.SMTPReply()
	assert.Equal(t, 554, code)
	assert.Equal(t, [3]int{5, 4, 6}, enh)
	_, err = (&Planner{Expander: chain}).Plan(ctx, Recipient{Address: "a"})
	assert.ErrorIs(t, err, ErrTooDeep, "default depth applies")

	wide := table{"big@x": alias("1", "2", "3", "4", "5")}
	_, err = (&Planner{Expander: wide, MaxNodes: 4}).Plan(ctx, Recipient{Address: "big@x"})
	require.ErrorAs(t, err, &lim)
	assert.ErrorIs(t, err, ErrTooManyNodes)
	code, enh, _ = lim.SMTPReply()
	assert.Equal(t, 550, code)
	assert.Equal(t, [3]int{5, 5, 3}, enh)
	_, err = (&Planner{Expander: wide, MaxNodes: 6}).Plan(ctx, Recipient{Address: "big@x"})
	assert.NoError(t, err)

	_, err = (&Planner{Policy: Policy(12)}).Plan(ctx)
	assert.ErrorIs(t, err, ErrUnknownPolicy)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = (&Planner{Expander: wide}).Plan(cctx, Recipient{Address: "big@x"})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestPlanNoExpander(t *testing.T) {
	p, err := (&Planner{}).Plan(context.Background(),
		Recipient{Address: "a@x", Tracked: true}, Recipient{Address: "b@x"}, Recipient{Address: "A@X", Tracked: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"a@x", "A@X"}, p.WithCertifier, "local parts are case-sensitive by default")
	assert.Equal(t, []string{"b@x"}, p.WithoutCertifier)
	assert.Equal(t, 0, p.Duplicates)

	p, err = (&Planner{Key: func(s string) string { return "same" }}).Plan(context.Background(),
		Recipient{Address: "a@x"}, Recipient{Address: "b@x"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a@x"}, p.WithoutCertifier, "custom Key")
}

func TestDomainFoldKey(t *testing.T) {
	assert.Equal(t, "Ann@example.com", DomainFoldKey("Ann@EXAMPLE.com"))
	assert.Equal(t, "a@b@c.d", DomainFoldKey("a@b@C.D"))
	assert.Equal(t, "postmaster", DomainFoldKey("postmaster"))
	assert.Equal(t, "x@y", DomainFoldKey("x@y"))
}

func TestStrings(t *testing.T) {
	assert.Equal(t, "list", List.String())
	assert.Equal(t, "mailbox", Mailbox.String())
	assert.Equal(t, "Kind(9)", Kind(9).String())
	assert.Equal(t, "loop", Loop.String())
	assert.Equal(t, "Outcome(-1)", Outcome(-1).String())
	assert.Contains(t, (&LimitError{Address: "a", Err: ErrTooDeep}).Error(), "at a")
	assert.Contains(t, (&ExpandError{Address: "a", Err: errors.New("e")}).Error(), "expanding a")
}

// BenchmarkPlan1000 plans a tracked alias to ten sub-aliases and a list,
// 1,000 final recipients in all, under each policy.
func BenchmarkPlan1000(b *testing.B) {
	tab := table{}
	var top []string
	for g := 0; g < 10; g++ {
		name := fmt.Sprintf("group%d@example.com", g)
		top = append(top, name)
		var m []string
		for i := 0; i < 90; i++ {
			m = append(m, fmt.Sprintf("user%d.%d@example.com", g, i))
		}
		tab[name] = alias(m...)
	}
	var lm []string
	for i := 0; i < 100; i++ {
		lm = append(lm, fmt.Sprintf("member%d@lists.example.com", i))
	}
	tab["list@example.com"] = list(lm...)
	top = append(top, "list@example.com")
	tab["everyone@example.com"] = alias(top...)

	for _, pol := range []Policy{Multiple, Single, First, Strict} {
		b.Run(pol.String(), func(b *testing.B) {
			pl := &Planner{Policy: pol, Expander: tab}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				p, err := pl.Plan(ctx, Recipient{Address: "everyone@example.com", Tracked: true})
				if err != nil || len(p.WithCertifier)+len(p.WithoutCertifier) != 1000 {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPlanOrderIndependent: the certifier decision for a mailbox reached
// through several paths does not depend on which path the walk meets
// first. Under Multiple a mailbox reached through a list and through an
// alias carries (the alias path grants it; the list path only fails to).
func TestPlanOrderIndependent(t *testing.T) {
	for _, pol := range []Policy{Multiple, Single, First, Strict} {
		for _, order := range [][]string{{"all@x", "solo@x"}, {"solo@x", "all@x"}} {
			tab := table{
				"staff@x": alias(order...),
				"all@x":   list("ann@x", "bob@x"),
				"solo@x":  alias("ann@x"),
			}
			pl := &Planner{Policy: pol, Expander: tab}
			// solo@x is also an original recipient, so that under the
			// one-carrier policies too some alias path grants ann@x.
			roots := []Recipient{{Address: "staff@x", Tracked: true}, {Address: "solo@x", Tracked: true}}
			p, err := pl.Plan(context.Background(), roots...)
			require.NoError(t, err)
			assert.Equal(t, []string{"ann@x"}, p.WithCertifier, "%v %v", pol, order)
			assert.Equal(t, []string{"bob@x"}, p.WithoutCertifier, "%v %v", pol, order)

			if pol == Multiple {
				// The reported bug: staff@x alone, ann@x met through the
				// list first or second.
				p, err := pl.Plan(context.Background(), Recipient{Address: "staff@x", Tracked: true})
				require.NoError(t, err)
				assert.ElementsMatch(t, []string{"ann@x"}, p.WithCertifier, "%v", order)
				assert.ElementsMatch(t, []string{"bob@x"}, p.WithoutCertifier, "%v", order)
				require.NoError(t, p.Check())
			}
		}
	}
}
