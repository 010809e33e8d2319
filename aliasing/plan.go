package aliasing

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Kind is what an address turned out to be when the expander looked it up.
type Kind int

// The kinds of address. Alias and Forward behave the same for the
// certifier; they are kept apart so that records and logs can say which.
const (
	// Mailbox is a final recipient: the expander does not expand it.
	Mailbox Kind = iota
	// Alias is an alias-file or directory alias.
	Alias
	// Forward is a user's forwarding (e.g. a .forward file or a
	// forwarding attribute).
	Forward
	// List is a mailing list. Its expansion never carries the certifier.
	List
)

var kindNames = [...]string{Mailbox: "mailbox", Alias: "alias", Forward: "forward", List: "list"}

// String returns "mailbox", "alias", "forward" or "list".
func (k Kind) String() string {
	if k >= Mailbox && k <= List {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Expansion is what an Expander returns for an address that expands.
type Expansion struct {
	// Kind is Alias, Forward or List.
	Kind Kind
	// Members are the resulting addresses, in the order the expansion
	// defines (for directory aliases that order may be arbitrary; the
	// product's chapter warns that "first" is then unpredictable).
	Members []string
	// Primary optionally designates the RFC 3885 primary recipient among
	// Members; only the Strict policy uses it. A Primary that is not among
	// Members designates nobody.
	Primary string
}

// Expander looks up one address. found is false for an address that does
// not expand (a final mailbox); exp is then ignored. An error stops
// planning; Plan wraps it in an *ExpandError.
type Expander interface {
	Expand(ctx context.Context, address string) (exp Expansion, found bool, err error)
}

// ExpanderFunc adapts a function to the Expander interface.
type ExpanderFunc func(ctx context.Context, address string) (Expansion, bool, error)

// Expand calls f.
func (f ExpanderFunc) Expand(ctx context.Context, address string) (Expansion, bool, error) {
	return f(ctx, address)
}

// Recipient is an original recipient of the transaction.
type Recipient struct {
	Address string
	// Tracked is true when the recipient arrived with the tracking
	// certifier (MTRK= on the transaction, or a generated identifier).
	Tracked bool
}

// Outcome is what became of one node of the plan.
type Outcome int

// The outcomes.
const (
	// Final: a final recipient, listed in exactly one of the Plan's lists.
	Final Outcome = iota
	// Expanded: the address expanded into Children (possibly none).
	Expanded
	// Duplicate: the address already occurred earlier in the plan; this
	// occurrence is dropped (neither delivered nor expanded).
	Duplicate
	// Loop: the address is one of this node's ancestors; dropped.
	Loop
)

var outcomeNames = [...]string{Final: "final", Expanded: "expanded", Duplicate: "duplicate", Loop: "loop"}

// String returns "final", "expanded", "duplicate" or "loop".
func (o Outcome) String() string {
	if o >= Final && o <= Loop {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Node is one address in a Plan's tree.
type Node struct {
	Address string
	// Kind is the expander's classification; Mailbox for a final
	// recipient, for duplicates and for loops (which are not looked up).
	Kind    Kind
	Outcome Outcome
	// Carries reports whether the certifier reaches this address. It is
	// always false for Duplicate and Loop nodes.
	Carries  bool
	Children []*Node
}

// Delivers reports whether any final recipient is at or below n.
func (n *Node) Delivers() bool {
	if n.Outcome == Final {
		return true
	}
	for _, c := range n.Children {
		if c.Delivers() {
			return true
		}
	}
	return false
}

// Walk calls fn for n and every node below it, depth first in plan order,
// with the node's depth (0 for n). It stops early when fn returns false.
func (n *Node) Walk(fn func(node *Node, depth int) bool) {
	n.walk(fn, 0)
}

func (n *Node) walk(fn func(*Node, int) bool, depth int) bool {
	if !fn(n, depth) {
		return false
	}
	for _, c := range n.Children {
		if !c.walk(fn, depth+1) {
			return false
		}
	}
	return true
}

// Plan is the result of planning the expansion of a transaction's
// original recipients.
type Plan struct {
	// Policy is the policy the plan was made under.
	Policy Policy
	// Roots holds one tree per original recipient, in the given order.
	Roots []*Node
	// WithCertifier are the final recipients that carry the certifier:
	// relay them in a transaction with MTRK.
	WithCertifier []string
	// WithoutCertifier are the other final recipients: relay them in a
	// transaction without MTRK.
	WithoutCertifier []string
	// Duplicates and Loops count the dropped nodes of each outcome.
	Duplicates, Loops int
}

// Check returns a *LoopError for the first original recipient that
// delivers to nobody because of an alias loop, and nil otherwise. A
// recipient that expands to nobody for other reasons (an empty alias or
// list, or only duplicates) is not an error.
func (p *Plan) Check() error {
	for _, r := range p.Roots {
		if r.Delivers() {
			continue
		}
		loop := false
		r.Walk(func(n *Node, _ int) bool {
			if n.Outcome == Loop {
				loop = true
			}
			return !loop
		})
		if loop {
			return &LoopError{Address: r.Address}
		}
	}
	return nil
}

// Defaults for the Planner's limits.
const (
	// DefaultMaxDepth is the default number of expansion levels allowed
	// below an original recipient.
	DefaultMaxDepth = 20
	// DefaultMaxNodes is the default bound on the nodes of one plan
	// (every occurrence of every address, duplicates included).
	DefaultMaxNodes = 100000
)

// Errors returned (wrapped) by Plan.
var (
	// ErrTooDeep: an expansion went deeper than Planner.MaxDepth.
	ErrTooDeep = errors.New("aliasing: too many levels of expansion")
	// ErrTooManyNodes: the plan grew beyond Planner.MaxNodes.
	ErrTooManyNodes = errors.New("aliasing: expansion too large")
	// ErrBadExpansion: the expander returned an expansion of an unknown
	// kind, or of kind Mailbox.
	ErrBadExpansion = errors.New("aliasing: invalid expansion")
)

// LimitError reports a planning limit that was exceeded. Err is
// ErrTooDeep or ErrTooManyNodes.
type LimitError struct {
	Address string // the address being expanded when the limit was hit
	Err     error
}

// Error describes the limit and the address.
func (e *LimitError) Error() string { return fmt.Sprintf("%v (at %s)", e.Err, e.Address) }

// Unwrap returns Err.
func (e *LimitError) Unwrap() error { return e.Err }

// SMTPReply gives 554 5.4.6 (routing loop detected, RFC 3463) for excess
// depth, which in practice is a loop the expander hides behind new
// addresses, and 550 5.5.3 (too many recipients) for excess size.
func (e *LimitError) SMTPReply() (int, [3]int, string) {
	if errors.Is(e.Err, ErrTooManyNodes) {
		return 550, [3]int{5, 5, 3}, "Too many recipients after expansion"
	}
	return 554, [3]int{5, 4, 6}, "Too many levels of alias expansion"
}

// ExpandError wraps an error of the Expander (or ErrBadExpansion).
type ExpandError struct {
	Address string
	Err     error
}

// Error names the address and the expander's error.
func (e *ExpandError) Error() string {
	return fmt.Sprintf("aliasing: expanding %s: %v", e.Address, e.Err)
}

// Unwrap returns Err.
func (e *ExpandError) Unwrap() error { return e.Err }

// SMTPReply returns the reply of the wrapped error when it has one, and
// otherwise 451 4.4.3 (directory server failure, RFC 3463): alias lookups
// usually fail because a directory is unreachable, and the sender should
// retry.
func (e *ExpandError) SMTPReply() (int, [3]int, string) {
	var r interface {
		SMTPReply() (int, [3]int, string)
	}
	if errors.As(e.Err, &r) {
		return r.SMTPReply()
	}
	return 451, [3]int{4, 4, 3}, "Temporary failure expanding recipient"
}

// LoopError reports an original recipient whose every path loops.
type LoopError struct {
	Address string
}

// Error names the looping recipient.
func (e *LoopError) Error() string {
	return fmt.Sprintf("aliasing: %s expands to nobody: alias loop", e.Address)
}

// SMTPReply gives 554 5.4.6 (routing loop detected).
func (e *LoopError) SMTPReply() (int, [3]int, string) {
	return 554, [3]int{5, 4, 6}, "Alias loop detected"
}

// DomainFoldKey is the default address key: the domain (after the last
// "@") folded to lower case, the local part unchanged.
func DomainFoldKey(address string) string {
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return address
	}
	dom := address[at+1:]
	for i := 0; i < len(dom); i++ {
		if c := dom[i]; c >= 'A' && c <= 'Z' {
			return address[:at+1] + strings.ToLower(dom)
		}
	}
	return address
}

// Planner plans expansions. The zero Planner uses Multiple, expands
// nothing (every address is final) and applies the default limits. A
// Planner is safe for concurrent use when its Expander is.
type Planner struct {
	// Policy applies to alias and forward expansions.
	Policy Policy
	// Expander looks addresses up; nil means no address expands.
	Expander Expander
	// MaxDepth bounds the expansion levels below an original recipient,
	// counted along an address's shortest path from one (the tree may
	// nest an address deeper; see the package doc); 0 means
	// DefaultMaxDepth.
	MaxDepth int
	// MaxNodes bounds the size of the plan; 0 means DefaultMaxNodes.
	MaxNodes int
	// Key maps an address to the form compared for duplicates and loops;
	// nil means DomainFoldKey.
	Key func(address string) string
}

// entry is what the exploration learned about one address key.
type entry struct {
	exp   Expansion
	found bool // the address expands (exp is valid)
	// carries: some path from a tracked original recipient grants the
	// certifier to this address. self: the expansion delivers to the
	// address's own mailbox ("a -> a, b") with the certifier.
	carries, self bool
	placed        bool // pass 2: the surviving node has been built
	grant         map[string]struct{}
}

type planState struct {
	pl       *Planner
	ctx      context.Context
	key      func(string) string
	maxDepth int
	maxNodes int
	nodes    int
	graph    map[string]*entry
	onPath   map[string]struct{}
	plan     *Plan
}

// Plan expands the original recipients and decides for each resulting
// recipient whether it carries the certifier. Duplicate removal spans all
// the given recipients, and the decision does not depend on their order
// or on the order of an expansion's members (except that First is defined
// by the member order; see the package doc). It returns an error (and no
// plan) when the expander fails, the expander returns an invalid
// expansion, or a limit is exceeded; loops are not errors (see
// Plan.Check).
func (pl *Planner) Plan(ctx context.Context, rcpts ...Recipient) (*Plan, error) {
	if !pl.Policy.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownPolicy, int(pl.Policy))
	}
	st := &planState{
		pl:       pl,
		ctx:      ctx,
		key:      pl.Key,
		maxDepth: pl.MaxDepth,
		maxNodes: pl.MaxNodes,
		graph:    make(map[string]*entry, len(rcpts)),
		onPath:   make(map[string]struct{}),
		plan:     &Plan{Policy: pl.Policy, Roots: make([]*Node, 0, len(rcpts))},
	}
	if st.key == nil {
		st.key = DomainFoldKey
	}
	if st.maxDepth <= 0 {
		st.maxDepth = DefaultMaxDepth
	}
	if st.maxNodes <= 0 {
		st.maxNodes = DefaultMaxNodes
	}
	if err := st.explore(rcpts); err != nil {
		return nil, err
	}
	st.propagate(rcpts)
	for _, r := range rcpts {
		st.plan.Roots = append(st.plan.Roots, st.build(r.Address, r.Tracked))
	}
	return st.plan, nil
}

// explore looks every reachable address up once, breadth first, so that
// the depth limit applies to an address's shortest path from an original
// recipient (a property of the expansion graph, not of the walk order),
// and counts the plan's nodes: one per original recipient and one per
// member of every expansion.
func (st *planState) explore(rcpts []Recipient) error {
	type item struct {
		address string
		depth   int
	}
	queue := make([]item, 0, len(rcpts))
	for _, r := range rcpts {
		queue = append(queue, item{r.Address, 0})
	}
	st.nodes = len(rcpts)
	if st.nodes > st.maxNodes {
		return &LimitError{Address: rcpts[st.maxNodes].Address, Err: ErrTooManyNodes}
	}
	for i := 0; i < len(queue); i++ {
		it := queue[i]
		k := st.key(it.address)
		if _, ok := st.graph[k]; ok {
			continue
		}
		e := &entry{}
		st.graph[k] = e
		if st.pl.Expander == nil {
			continue
		}
		if err := st.ctx.Err(); err != nil {
			return &ExpandError{Address: it.address, Err: err}
		}
		exp, found, err := st.pl.Expander.Expand(st.ctx, it.address)
		if err != nil {
			return &ExpandError{Address: it.address, Err: err}
		}
		if !found {
			continue
		}
		if exp.Kind != Alias && exp.Kind != Forward && exp.Kind != List {
			return &ExpandError{Address: it.address, Err: fmt.Errorf("%w: kind %v", ErrBadExpansion, exp.Kind)}
		}
		if it.depth >= st.maxDepth {
			return &LimitError{Address: it.address, Err: ErrTooDeep}
		}
		e.exp, e.found = exp, true
		for _, m := range exp.Members {
			st.nodes++
			if st.nodes > st.maxNodes {
				return &LimitError{Address: m, Err: ErrTooManyNodes}
			}
			if st.key(m) != k {
				queue = append(queue, item{m, it.depth + 1})
			}
		}
	}
	return nil
}

// propagate computes which addresses carry the certifier: an original
// recipient that arrived tracked, and every member that the expansion of
// a carrying address grants it to (grants). It is a reachability fix
// point over the expansion graph, so it does not depend on any order.
func (st *planState) propagate(rcpts []Recipient) {
	var work []string
	for _, r := range rcpts {
		if !r.Tracked {
			continue
		}
		k := st.key(r.Address)
		if e := st.graph[k]; !e.carries {
			e.carries = true
			work = append(work, k)
		}
	}
	for len(work) > 0 {
		k := work[len(work)-1]
		work = work[:len(work)-1]
		e := st.graph[k]
		if !e.found {
			continue
		}
		e.grant = st.grants(e.exp)
		for mk := range e.grant {
			if mk == k {
				e.self = true
				continue
			}
			if me := st.graph[mk]; !me.carries {
				me.carries = true
				work = append(work, mk)
			}
		}
	}
}

// grants returns the keys of the members that a carrying address's
// expansion passes the certifier to under the planner's policy. It looks
// at the expansion alone.
func (st *planState) grants(exp Expansion) map[string]struct{} {
	if exp.Kind == List || len(exp.Members) == 0 {
		return nil
	}
	g := map[string]struct{}{}
	switch st.pl.Policy {
	case Multiple:
		for _, m := range exp.Members {
			g[st.key(m)] = struct{}{}
		}
	case First:
		g[st.key(exp.Members[0])] = struct{}{}
	case Single, Strict:
		distinct := st.countDistinct(exp.Members)
		switch {
		case distinct == 1:
			g[st.key(exp.Members[0])] = struct{}{}
		case st.pl.Policy == Strict && exp.Primary != "":
			pk := st.key(exp.Primary)
			for _, m := range exp.Members {
				if st.key(m) == pk {
					g[pk] = struct{}{}
					break
				}
			}
		}
	}
	return g
}

// build makes the node of one occurrence of address, depth first in the
// expander's order. granted says whether this occurrence receives the
// certifier (a tracked original recipient, or a member granted by a
// carrying expansion). An address survives at its first occurrence in the
// walk, except that an address that carries survives only at an
// occurrence that grants it: its other occurrences are duplicates. Such an
// occurrence is always reached (the carrying path's addresses survive at
// granting occurrences themselves), so every reachable address survives
// exactly once, and a carrying node always hangs below the expansion
// that granted it.
func (st *planState) build(address string, granted bool) *Node {
	k := st.key(address)
	e := st.graph[k]
	if _, ok := st.onPath[k]; ok {
		st.plan.Loops++
		return &Node{Address: address, Outcome: Loop}
	}
	if e.placed || (e.carries && !granted) {
		st.plan.Duplicates++
		return &Node{Address: address, Outcome: Duplicate}
	}
	e.placed = true
	if !e.found {
		st.final(address, e.carries)
		return &Node{Address: address, Outcome: Final, Carries: e.carries}
	}
	n := &Node{Address: address, Kind: e.exp.Kind, Outcome: Expanded, Carries: e.carries,
		Children: make([]*Node, 0, len(e.exp.Members))}
	st.onPath[k] = struct{}{}
	selfDone := false
	for _, m := range e.exp.Members {
		mk := st.key(m)
		if mk == k {
			// "a -> a, b": deliver to the mailbox a itself.
			if selfDone {
				st.plan.Duplicates++
				n.Children = append(n.Children, &Node{Address: m, Outcome: Duplicate})
				continue
			}
			selfDone = true
			st.final(m, e.self)
			n.Children = append(n.Children, &Node{Address: m, Outcome: Final, Carries: e.self})
			continue
		}
		_, g := e.grant[mk]
		n.Children = append(n.Children, st.build(m, g))
	}
	delete(st.onPath, k)
	return n
}

func (st *planState) final(address string, carries bool) {
	if carries {
		st.plan.WithCertifier = append(st.plan.WithCertifier, address)
	} else {
		st.plan.WithoutCertifier = append(st.plan.WithoutCertifier, address)
	}
}

// countDistinct counts the members of one expansion with distinct keys.
func (st *planState) countDistinct(members []string) int {
	switch len(members) {
	case 0, 1:
		return len(members)
	}
	if len(members) <= 8 {
		n := 0
		for i, m := range members {
			mk := st.key(m)
			dup := false
			for _, o := range members[:i] {
				if st.key(o) == mk {
					dup = true
					break
				}
			}
			if !dup {
				n++
			}
		}
		return n
	}
	set := make(map[string]struct{}, len(members))
	for _, m := range members {
		set[st.key(m)] = struct{}{}
	}
	return len(set)
}
