package ldapsecret

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// FuzzFilter checks that any user name yields a filter that compiles to
// the template's structure with the name as one literal assertion value:
// no name can add a filter component or a wildcard.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{"alice", weirdUID, "*", "alice)(uid=*", "\x00", `\2a`, "ü", "\xff\xfe", ""} {
		f.Add(s)
	}
	src, err := New(Config{URL: "ldap://127.0.0.1", BaseDN: "dc=x", Attribute: "a",
		Filter: "(&(objectClass=inetOrgPerson)(uid=%s))"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, user string) {
		p, err := ldap.CompileFilter(src.filter(user))
		if err != nil {
			t.Fatalf("filter for %q does not compile: %v", user, err)
		}
		if p.Tag != ldap.FilterAnd || len(p.Children) != 2 {
			t.Fatalf("filter for %q changed shape: %s", user, src.filter(user))
		}
		eq := p.Children[1]
		if eq.Tag != ldap.FilterEqualityMatch || len(eq.Children) != 2 {
			t.Fatalf("user %q is not an equality assertion: %s", user, src.filter(user))
		}
		if got := eq.Children[1].Data.String(); got != user {
			t.Fatalf("assertion value %q, want %q", got, user)
		}
	})
}
