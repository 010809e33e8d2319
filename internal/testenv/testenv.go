// Package testenv starts real servers (memcached, slapd) on free loopback
// ports for tests and finds real client programs (python3, swaks).
//
// A helper whose binary is missing skips the test with a message naming the
// Debian package that provides it, unless the environment variable
// MSGTRACK_REQUIRE_SERVERS is set to 1 (as .ci/run does), in which case the
// test fails: CI must never pass by skipping.
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing server or
// client program from a skip into a failure.
const RequireEnv = "MSGTRACK_REQUIRE_SERVERS"

// Required reports whether missing servers must fail tests rather than skip
// them.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// LookPath finds the named program, looking also in the sbin directories
// that a non-root PATH often lacks. When it is missing the test is skipped
// (or fails, see Required) with a message naming the Debian package.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	missing(t, name+" not found", debianPackage)
	return ""
}

// Python returns the path of python3, or skips/fails as LookPath does.
func Python(t testing.TB) string { return LookPath(t, "python3", "python3") }

// Swaks returns the path of swaks, or skips/fails as LookPath does. The
// tests drive swaks over STARTTLS and implicit TLS, which it can speak only
// with the Perl module Net::SSLeay (Debian's swaks merely recommends it), so
// a swaks without TLS support counts as missing too.
func Swaks(t testing.TB) string {
	t.Helper()
	p := LookPath(t, "swaks", "swaks")
	out, _ := exec.Command(p, "--support").CombinedOutput()
	if !bytes.Contains(out, []byte("TLS supported")) {
		missing(t, "swaks has no TLS support (Net::SSLeay)", "libnet-ssleay-perl")
	}
	return p
}

// missing skips the test, or fails it when servers are required, with a
// message naming the Debian package that provides what is missing.
func missing(t testing.TB, what, debianPackage string) {
	t.Helper()
	msg := fmt.Sprintf("%s: install the Debian package %q (apt-get install %s)", what, debianPackage, debianPackage)
	if Required() {
		t.Fatalf("%s; %s=1 makes this a failure", msg, RequireEnv)
	}
	t.Skip(msg)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until addr accepts TCP connections or the process
// exits or the deadline passes.
func waitListening(addr string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("process exited before listening on %s", addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nothing listening on %s after %v", addr, limit)
}

// process is a started server process with its captured output.
type process struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProcess(path string, args ...string) (*process, error) {
	p := &process{out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop kills the process and waits for it to exit.
func (p *process) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func itoa(n int) string { return strconv.Itoa(n) }
