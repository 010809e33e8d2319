package aliasing_test

import (
	"context"
	"fmt"

	"github.com/msgtrack/msgtrack/aliasing"
)

func ExamplePlanner_Plan() {
	// A directory: sales@ is an alias for two people and a mailing list;
	// the list has an alias among its members.
	dir := map[string]aliasing.Expansion{
		"sales@example.com": {Kind: aliasing.Alias, Members: []string{"ann@example.com", "bob@example.com", "leads@example.com"}},
		"leads@example.com": {Kind: aliasing.List, Members: []string{"cat@example.com", "night@example.com"}},
		"night@example.com": {Kind: aliasing.Forward, Members: []string{"dan@example.net"}},
	}
	pl := &aliasing.Planner{
		Policy: aliasing.Multiple, // trackingmultiple, the product's default
		Expander: aliasing.ExpanderFunc(func(_ context.Context, a string) (aliasing.Expansion, bool, error) {
			e, ok := dir[a]
			return e, ok, nil
		}),
	}
	plan, err := pl.Plan(context.Background(), aliasing.Recipient{Address: "sales@example.com", Tracked: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("with MTRK:   ", plan.WithCertifier)
	fmt.Println("without MTRK:", plan.WithoutCertifier)
	plan.Roots[0].Walk(func(n *aliasing.Node, depth int) bool {
		fmt.Printf("%*s%s %v %v carries=%v\n", 2*depth, "", n.Address, n.Kind, n.Outcome, n.Carries)
		return true
	})
	// Output:
	// with MTRK:    [ann@example.com bob@example.com]
	// without MTRK: [cat@example.com dan@example.net]
	// sales@example.com alias expanded carries=true
	//   ann@example.com mailbox final carries=true
	//   bob@example.com mailbox final carries=true
	//   leads@example.com list expanded carries=true
	//     cat@example.com mailbox final carries=false
	//     night@example.com forward expanded carries=false
	//       dan@example.net mailbox final carries=false
}

func ExampleParsePolicy() {
	p, err := aliasing.ParsePolicy("TrackingSingle")
	fmt.Println(p, err, p == aliasing.Single)
	var zero aliasing.Policy
	fmt.Println(zero)
	// Output:
	// trackingsingle <nil> true
	// trackingmultiple
}
