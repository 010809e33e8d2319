package testenv

import (
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// Memcached is a real memcached process listening on a loopback port. It can
// be stopped and started again on the same address, which fault tests use.
type Memcached struct {
	t    testing.TB
	path string
	args []string
	// Addr is host:port of the server.
	Addr string

	mu   sync.Mutex
	proc *process
}

// MemcachedOptions tune the started server. The zero value is memcached's
// defaults (64 MiB of memory, 1 MiB items).
type MemcachedOptions struct {
	// MemoryMB is memcached's -m; 0 keeps the default.
	MemoryMB int
	// MaxItemSize is memcached's -I (for example "2m"); empty keeps 1m.
	MaxItemSize string
}

// StartMemcached starts memcached on a free loopback port and stops it when
// the test ends. It skips (or fails, see Required) when memcached is not
// installed.
func StartMemcached(t testing.TB, opts ...MemcachedOptions) *Memcached {
	t.Helper()
	path := LookPath(t, "memcached", "memcached")
	var o MemcachedOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	port := FreePort(t)
	m := &Memcached{t: t, path: path, Addr: net.JoinHostPort("127.0.0.1", itoa(port))}
	m.args = []string{"-l", "127.0.0.1", "-p", itoa(port), "-U", "0"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root without -u.
		m.args = append(m.args, "-u", "nobody")
	}
	if o.MemoryMB > 0 {
		m.args = append(m.args, "-m", itoa(o.MemoryMB))
	}
	if o.MaxItemSize != "" {
		m.args = append(m.args, "-I", o.MaxItemSize)
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start starts the server again after Stop, on the same address. It fails
// the test if the server does not come up.
func (m *Memcached) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		select {
		case <-m.proc.exited:
		default:
			return // already running
		}
	}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		p, err := startProcess(m.path, m.args...)
		if err != nil {
			m.t.Fatalf("testenv: starting memcached: %v", err)
		}
		if err = waitListening(m.Addr, p.exited, 10*time.Second); err == nil {
			m.proc = p
			return
		}
		p.stop()
		lastErr = err
		// The port may still be in TIME_WAIT or briefly taken; retry.
		time.Sleep(100 * time.Millisecond)
		if out := p.out.String(); out != "" {
			lastErr = &startError{err: err, output: out}
		}
	}
	m.t.Fatalf("testenv: memcached did not start: %v", lastErr)
}

// Stop kills the server. Data is lost, as in a real crash.
func (m *Memcached) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proc.stop()
}

type startError struct {
	err    error
	output string
}

func (e *startError) Error() string { return e.err.Error() + "; output: " + e.output }
