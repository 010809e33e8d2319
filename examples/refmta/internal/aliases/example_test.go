package aliases_test

import (
	"fmt"
	"strings"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/aliases"
)

func ExampleTable_Lookup() {
	tab, err := aliases.Parse(strings.NewReader(`
postmaster: alice
team: alice, bob,
      carol@example.net
list devs: alice, dave@example.org
`), "aliases")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"team", "devs", "nobody"} {
		kind, targets, ok := tab.Lookup(name)
		fmt.Println(name, ok, kind, targets)
	}
	// Output:
	// team true alias [alice bob carol@example.net]
	// devs true list [alice dave@example.org]
	// nobody false Kind(0) []
}
