package idgen

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
)

// Importing idgen must not pull in go-ldap (DESIGN.md: heavy dependencies
// live in the subpackage that needs them).
func TestNoLDAPDependency(t *testing.T) {
	goTool := testenv.LookPath(t, "go", "golang-go")
	out, err := exec.Command(goTool, "list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/msgtrack/msgtrack/idgen").CombinedOutput()
	require.NoError(t, err, string(out))
	deps := string(out)
	assert.Contains(t, deps, "golang.org/x/crypto/md4")
	assert.NotContains(t, deps, "go-ldap")
	assert.NotContains(t, deps, "asn1-ber")
	for _, line := range strings.Split(strings.TrimSpace(deps), "\n") {
		if line != "" && !strings.HasPrefix(line, "golang.org/x/crypto/") &&
			!strings.HasPrefix(line, "github.com/msgtrack/msgtrack/") {
			t.Errorf("unexpected dependency %s", line)
		}
	}
}
