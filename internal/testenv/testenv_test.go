package testenv

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func memcachedRoundTrip(t *testing.T, addr, key string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "set %s 0 0 5\r\nhello\r\nget %s\r\n", key, key)
	r := bufio.NewReader(c)
	var lines []string
	for len(lines) < 4 {
		l, err := r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, ""), err
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, ""), nil
}

func TestMemcachedStartStopStart(t *testing.T) {
	m := StartMemcached(t)
	out, err := memcachedRoundTrip(t, m.Addr, "k1")
	require.NoError(t, err)
	require.Equal(t, "STORED\r\nVALUE k1 0 5\r\nhello\r\nEND\r\n", out)

	m.Stop()
	_, err = net.DialTimeout("tcp", m.Addr, time.Second)
	require.Error(t, err, "memcached still accepts connections after Stop")

	m.Start()
	out, err = memcachedRoundTrip(t, m.Addr, "k2")
	require.NoError(t, err)
	require.Contains(t, out, "VALUE k2 0 5")
}

func TestSlapdSearch(t *testing.T) {
	ldif := "dn: uid=alice," + SlapdPeople + "\nobjectClass: inetOrgPerson\nobjectClass: " + RecallSecretClass +
		"\nuid: alice\ncn: Alice\nsn: A\n" + RecallSecretAttr + ":: MDEyMzQ1Njc4OWFiY2RlZg==\n\n"
	s := StartSlapd(t, SlapdOptions{LDIF: ldif, TLS: true})
	search := LookPath(t, "ldapsearch", "ldap-utils")
	out, err := exec.Command(search, "-x", "-H", s.URL, "-D", s.BindDN, "-w", s.BindPassword,
		"-b", SlapdPeople, "(uid=alice)", RecallSecretAttr).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), RecallSecretAttr+": 0123456789abcdef")

	// The ldaps listener presents the generated certificate.
	addr := strings.TrimPrefix(s.LDAPSURL, "ldaps://")
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: s.RootCAs, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	c.Close()

	s.Stop()
	_, err = net.DialTimeout("tcp", s.Addr(), time.Second)
	require.Error(t, err)
	s.Start()
	out, err = exec.Command(search, "-x", "-H", s.URL, "-b", SlapdPeople, "(uid=alice)", "uid").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "uid: alice")
}

// TestMissingProgramSkipsOrFails runs a test that looks for a program no
// machine has, in a child test process, once without and once with
// MSGTRACK_REQUIRE_SERVERS=1: the first skips, the second fails, and both
// name the Debian package.
func TestMissingProgramSkipsOrFails(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		LookPath(t, "msgtrack-no-such-program", "msgtrack-no-such-package")
		t.Fatal("LookPath returned for a missing program")
	}
	for _, required := range []bool{false, true} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestMissingProgramSkipsOrFails$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", RequireEnv+"=")
		if required {
			cmd.Env = append(cmd.Env, RequireEnv+"=1")
		}
		out, err := cmd.CombinedOutput()
		require.Contains(t, string(out), `install the Debian package "msgtrack-no-such-package"`, string(out))
		if required {
			require.Error(t, err, string(out))
			require.Contains(t, string(out), "--- FAIL", string(out))
		} else {
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "--- SKIP", string(out))
		}
	}
}
