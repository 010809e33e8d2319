package users_test

import (
	"fmt"
	"strings"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/users"
)

func ExampleTable_Authenticate() {
	tab, err := users.Parse(strings.NewReader(`
# name:password; "$2..." is a bcrypt hash
alice:$2a$04$V12ul4aF7I7g1SXPSPQLHexSTIzSLlSYfQH2skSZOhaW0/K3nl0ey
bob:builder
`), "users")
	if err != nil {
		panic(err)
	}
	fmt.Println(tab.Authenticate("alice", "wonderland"))
	fmt.Println(tab.Authenticate("bob", "builder"))
	fmt.Println(tab.Authenticate("bob", "guess"))
	// Output:
	// <nil>
	// <nil>
	// users: authentication failed
}
