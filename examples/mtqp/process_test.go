package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runMainEnv makes the test binary act as the command: TestMain calls
// main with the arguments after "--".
const runMainEnv = "MTQP_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"mtqp"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		return
	}
	os.Exit(m.Run())
}

// execMain runs the command as a real process, so that main's wiring of
// run to os.Exit, stdout and stderr is exercised.
func execMain(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func TestProcessExitStatuses(t *testing.T) {
	be := newMapBackend()
	secret := newSecret(t)
	be.add("env-1", secret, sampleReport("env-1"), nil)
	s := startServer(t, be, serverOpts{tls: true})

	r := execMain(t, secret.String()+"\n", "track", "-server", s.addr, "-ca", s.caFile, "-envid", "env-1", "-secret-file", "-")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "bob@example.test")

	r = execMain(t, "", "track", "-server", s.addr, "-ca", s.caFile, "-envid", "env-9", "-secret", secret.String())
	assert.Equal(t, 1, r.code)
	requireOneLine(t, r)
	assert.Contains(t, r.stderr, "not found")

	r = execMain(t, "", "track", "-server", s.addr)
	assert.Equal(t, 2, r.code)
	requireOneLine(t, r)

	r = execMain(t, "", "-h")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, usageText, r.stdout)
}
