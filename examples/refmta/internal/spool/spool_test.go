package spool

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

func testEnv(rcpts ...string) *Envelope {
	e := &Envelope{From: "alice@example.org", EnvID: "env+2B1", Ret: "HDRS",
		Tracking: Tracking{ID: "tid", Certifier: "abc", Timeout: time.Hour}, HoldUntil: t0.Add(time.Hour)}
	for _, r := range rcpts {
		e.Recipients = append(e.Recipients, Recipient{Addr: r, Notify: "FAILURE", ORcpt: "rfc822;" + r})
	}
	return e
}

func openT(t testing.TB, dir string) *Spool {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func readBody(t testing.TB, s *Spool, id string) string {
	t.Helper()
	rc, err := s.Body(id)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

func TestPutGetReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	ctx := context.Background()
	id, err := s.Put(ctx, testEnv("bob@example.net", "carol@example.net"), strings.NewReader("Subject: hi\r\n\r\nbody\r\n"))
	require.NoError(t, err)
	require.True(t, validID(id))

	env, err := s.Get(id)
	require.NoError(t, err)
	assert.Equal(t, id, env.ID)
	assert.Equal(t, FormatVersion, env.V)
	assert.Equal(t, t0, env.Arrival)
	assert.EqualValues(t, len("Subject: hi\r\n\r\nbody\r\n"), env.Size)
	assert.Equal(t, Queued, env.Recipients[0].State)
	assert.Equal(t, "hi", strings.TrimSpace(strings.SplitN(readBody(t, s, id), "\r\n", 2)[0][len("Subject:"):]))

	// Copies are independent.
	env.Recipients[0].State = Failed
	env2, _ := s.Get(id)
	assert.Equal(t, Queued, env2.Recipients[0].State)

	_, err = Open(context.Background(), dir, Options{})
	require.ErrorIs(t, err, ErrLocked, "a second open of a directory in use fails")
	require.NoError(t, s.Close())
	_, err = s.Get(id)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Put(ctx, testEnv("b@c"), strings.NewReader("x"))
	require.ErrorIs(t, err, ErrClosed)

	s2 := openT(t, dir)
	got, err := s2.Get(id)
	require.NoError(t, err)
	assert.Equal(t, env2, got)
	assert.Equal(t, "Subject: hi\r\n\r\nbody\r\n", readBody(t, s2, id))
	assert.Empty(t, s2.Damaged())
}

func TestPutInvalid(t *testing.T) {
	s := openT(t, t.TempDir())
	_, err := s.Put(context.Background(), &Envelope{From: "a@b"}, strings.NewReader("x"))
	require.ErrorIs(t, err, ErrInvalid)
	_, err = s.Put(context.Background(), &Envelope{Recipients: []Recipient{{Addr: ""}}}, strings.NewReader("x"))
	require.ErrorIs(t, err, ErrInvalid)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Put(ctx, testEnv("b@c"), strings.NewReader("x"))
	var se *Error
	require.ErrorAs(t, err, &se)
	code, enh, _ := se.SMTPReply()
	assert.Equal(t, 451, code)
	assert.Equal(t, [3]int{4, 3, 0}, enh)
	assert.Equal(t, 0, s.Len())
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, fmt.Errorf("client went away") }

func TestPutBodyErrorLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	_, err := s.Put(context.Background(), testEnv("b@c"), io.MultiReader(strings.NewReader("part"), failingReader{}))
	require.ErrorContains(t, err, "client went away")
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		assert.Contains(t, []string{DamagedDir, lockName}, n.Name(), "left behind: %s", n.Name())
	}
}

func TestUpdateAndRemove(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	ctx := context.Background()
	id, err := s.Put(ctx, testEnv("b@c"), strings.NewReader("x"))
	require.NoError(t, err)

	_, err = s.Update(ctx, id, func(e *Envelope) error { e.Hops = 7; e.ID = "changed"; return nil })
	require.NoError(t, err)
	_, err = s.Update(ctx, id, func(e *Envelope) error { e.Hops = 9; return fmt.Errorf("refuse") })
	require.ErrorContains(t, err, "refuse")
	_, err = s.Update(ctx, id, func(e *Envelope) error { e.Recipients[0].State = "bogus"; return nil })
	require.ErrorIs(t, err, ErrInvalid)

	require.NoError(t, s.Close())
	s = openT(t, dir)
	env, err := s.Get(id)
	require.NoError(t, err)
	assert.Equal(t, 7, env.Hops)
	assert.Equal(t, id, env.ID)

	require.NoError(t, s.Remove(ctx, id))
	_, err = s.Get(id)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, s.Remove(ctx, id), ErrNotFound)
	_, err = s.Body(id)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, s.Close())
	assert.Equal(t, 0, openT(t, dir).Len())
}

func TestBadIDsAreNotFound(t *testing.T) {
	s := openT(t, t.TempDir())
	for _, id := range []string{"", "../etc/passwd", strings.Repeat("A", 32), strings.Repeat("0", 31)} {
		_, err := s.Get(id)
		assert.ErrorIs(t, err, ErrNotFound, id)
		_, err = s.Body(id)
		assert.ErrorIs(t, err, ErrNotFound, id)
	}
}

func TestListOrder(t *testing.T) {
	s := openT(t, t.TempDir())
	n := 0
	s.now = func() time.Time { n++; return t0.Add(time.Duration(n) * time.Second) }
	var ids []string
	for i := 0; i < 5; i++ {
		id, err := s.Put(context.Background(), testEnv("b@c"), strings.NewReader("x"))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	var got []string
	for _, e := range s.List() {
		got = append(got, e.ID)
	}
	assert.Equal(t, ids, got)
	assert.Equal(t, 5, s.Len())
}

func TestRecoverRepairs(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	ctx := context.Background()
	good, err := s.Put(ctx, testEnv("a@x", "b@x", "c@x"), strings.NewReader("good"))
	require.NoError(t, err)
	_, err = s.ClaimMany(ctx, good, []string{"a@x", "b@x"})
	require.NoError(t, err)
	_, err = s.Update(ctx, good, func(e *Envelope) error { e.Recipients[1].State = Delivered; return nil })
	require.NoError(t, err)

	require.NoError(t, s.Close())
	mk := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	bad := strings.Repeat("1", 32)
	mk(bad+envExt, "{not json")
	mk(bad+bodyExt, "body")
	noBody := strings.Repeat("2", 32)
	enc, _ := EncodeEnvelope(&Envelope{V: 1, ID: noBody, Recipients: []Recipient{{Addr: "a", State: Queued}}})
	mk(noBody+envExt, string(enc))
	mismatch := strings.Repeat("3", 32)
	mk(mismatch+envExt, string(enc))
	mk(mismatch+bodyExt, "b")
	orphan := strings.Repeat("4", 32)
	mk(orphan+bodyExt, "unfinished put")
	mk(tmpPrefix+"123", "half written")
	mk("README", "unknown files are left alone")

	s2 := openT(t, dir)
	assert.Equal(t, 1, s2.Len())
	env, err := s2.Get(good)
	require.NoError(t, err)
	assert.Equal(t, Queued, env.Recipients[0].State, "delivering goes back to queued")
	assert.Equal(t, "attempt interrupted by restart", env.Recipients[0].Reason)
	assert.Equal(t, Delivered, env.Recipients[1].State)
	assert.Equal(t, Queued, env.Recipients[2].State)

	dmg := map[string]Damage{}
	for _, d := range s2.Damaged() {
		dmg[d.ID] = d
		assert.ErrorIs(t, d.Err, ErrCorrupt, d.ID)
		assert.FileExists(t, d.Path)
		assert.Equal(t, filepath.Join(dir, DamagedDir, d.ID+envExt), d.Path)
	}
	assert.Len(t, dmg, 3)
	assert.Contains(t, dmg, bad)
	assert.Contains(t, dmg, noBody)
	assert.Contains(t, dmg, mismatch)
	assert.FileExists(t, filepath.Join(dir, DamagedDir, bad+bodyExt))
	assert.NoFileExists(t, filepath.Join(dir, orphan+bodyExt))
	assert.NoFileExists(t, filepath.Join(dir, tmpPrefix+"123"))
	assert.FileExists(t, filepath.Join(dir, "README"))

	// The requeue was persisted: a third open finds no damage and no
	// delivering recipient.
	require.NoError(t, s2.Close())
	s3 := openT(t, dir)
	assert.Empty(t, s3.Damaged())
	env3, _ := s3.Get(good)
	assert.Equal(t, env, env3)
}

func TestRecallAndClaim(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	id, err := s.Put(ctx, testEnv("a@x", "B@x", "c@x", "d@x", "e@x"), strings.NewReader("m"))
	require.NoError(t, err)
	_, err = s.Update(ctx, id, func(e *Envelope) error {
		e.Recipients[3].State = Delivered
		e.Recipients[4].State = Deferred
		e.Recipients[4].NextAttempt = t0.Add(time.Minute)
		return nil
	})
	require.NoError(t, err)

	ok, err := s.Claim(ctx, id, "c@x")
	require.NoError(t, err)
	require.True(t, ok)

	tests := []struct {
		name  string
		rcpts []string
		want  []string
	}{
		{"queued recipient, case-insensitive", []string{"b@X"}, []string{"B@x"}},
		{"again: idempotent", []string{"b@x"}, []string{"B@x"}},
		{"delivering and delivered are too late", []string{"c@x", "d@x"}, nil},
		{"unknown recipient", []string{"zz@x"}, nil},
		{"all: the rest, plus the earlier one", nil, []string{"a@x", "B@x", "e@x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Recall(ctx, id, tc.rcpts)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	env, _ := s.Get(id)
	states := []State{}
	for _, r := range env.Recipients {
		states = append(states, r.State)
	}
	assert.Equal(t, []State{Recalled, Recalled, Delivering, Delivered, Recalled}, states)
	assert.True(t, env.Recipients[4].NextAttempt.IsZero())

	for _, r := range []string{"a@x", "c@x", "d@x", "nobody"} {
		ok, err := s.Claim(ctx, id, r)
		require.NoError(t, err)
		assert.False(t, ok, r)
	}
	_, err = s.Recall(ctx, strings.Repeat("f", 32), nil)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Claim(ctx, strings.Repeat("f", 32), "a@x")
	require.ErrorIs(t, err, ErrNotFound)
}

// TestRecallClaimRace runs recalls and claims for the same recipients from
// many goroutines: every recipient must end up claimed by exactly one
// claimer or recalled, never both, and the spool on disk must agree.
func TestRecallClaimRace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	const nrcpt, workers = 40, 8
	var rcpts []string
	for i := 0; i < nrcpt; i++ {
		rcpts = append(rcpts, fmt.Sprintf("r%02d@x", i))
	}
	id, err := s.Put(ctx, testEnv(rcpts...), strings.NewReader("m"))
	require.NoError(t, err)

	var mu sync.Mutex
	claimedBy := map[string]int{}
	recalled := map[string]bool{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			for i := w; i < nrcpt+w; i++ {
				r := rcpts[i%nrcpt]
				ok, err := s.Claim(ctx, id, r)
				assert.NoError(t, err)
				if ok {
					mu.Lock()
					claimedBy[r]++
					mu.Unlock()
				}
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			for i := nrcpt - 1 - w; i >= -w; i -= 3 {
				r := rcpts[(i+nrcpt)%nrcpt]
				got, err := s.Recall(ctx, id, []string{r})
				assert.NoError(t, err)
				mu.Lock()
				for _, g := range got {
					recalled[g] = true
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()

	env, err := s.Get(id)
	require.NoError(t, err)
	// On disk the same, except that a reopen puts claimed recipients back
	// to queued (an attempt interrupted by the "crash"); recalls stay.
	require.NoError(t, s.Close())
	disk, err := openT(t, dir).Get(id)
	require.NoError(t, err)
	for i, r := range env.Recipients {
		if r.State == Recalled {
			assert.Equal(t, Recalled, disk.Recipients[i].State, r.Addr)
		} else {
			assert.Equal(t, Queued, disk.Recipients[i].State, r.Addr)
		}
		n := claimedBy[r.Addr]
		assert.LessOrEqual(t, n, 1, "%s claimed %d times", r.Addr, n)
		assert.False(t, n == 1 && recalled[r.Addr], "%s both claimed and recalled", r.Addr)
		switch r.State {
		case Delivering:
			assert.Equal(t, 1, n, r.Addr)
		case Recalled:
			assert.True(t, recalled[r.Addr], r.Addr)
		default:
			t.Errorf("%s left in %s", r.Addr, r.State)
		}
	}
}

// Kill -9 durability. The test binary re-executes itself as a child that
// Puts messages in a loop and prints "ACK id sha256" only after each Put
// returns (the moment an SMTP server would send 250), claims some earlier
// messages and recalls others, printing "RECALLED id" only after Recall
// returns (the moment MTQP would report the recall). The parent kills it
// with SIGKILL mid-stream, reopens the spool and checks that every
// acknowledged message is present and intact, that no recipient is left
// delivering, and that every acknowledged recall is still a recall.
//
// A SIGKILL leaves the kernel's page cache intact, so this proves the
// write/rename protocol (atomicity, recovery, nothing acknowledged before
// it is in place), not survival of a power cut; that additionally relies
// on the fsync calls, which are in the same code path.

const childEnv = "SPOOL_KILL_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(childPutLoop(dir))
	}
	os.Exit(m.Run())
}

func childPutLoop(dir string) int {
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w := bufio.NewWriter(os.Stdout)
	var ids []string
	for i := 0; ; i++ {
		// Bodies of varied size, so the kill lands in every phase.
		body := strings.Repeat(fmt.Sprintf("line %d of message %d\r\n", i, i), 1+(i*37)%400)
		env := &Envelope{From: "a@x", Recipients: []Recipient{{Addr: fmt.Sprintf("r%d@x", i)}}}
		id, err := s.Put(ctx, env, strings.NewReader(body))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		sum := sha256.Sum256([]byte(body))
		fmt.Fprintf(w, "ACK %s %s %d\n", id, hex.EncodeToString(sum[:]), i)
		w.Flush()
		ids = append(ids, id)
		switch i % 4 {
		case 1:
			// Update durability: claim an earlier message (even
			// index), which Open must put back to queued.
			if _, err := s.ClaimMany(ctx, ids[i/2], nil); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 4
			}
		case 3:
			// Recall durability: recall an earlier message (odd
			// index) and report it only once Recall has returned.
			got, err := s.Recall(ctx, ids[i/2], nil)
			if err != nil || len(got) != 1 {
				fmt.Fprintln(os.Stderr, "recall:", got, err)
				return 5
			}
			fmt.Fprintf(w, "RECALLED %s\n", ids[i/2])
			w.Flush()
		}
	}
}

func TestKill9Durability(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())

		acked := map[string]string{}
		recalled := map[string]bool{}
		record := func(line string) {
			f := strings.Fields(line)
			switch {
			case len(f) == 4 && f[0] == "ACK":
				acked[f[1]] = f[2]
			case len(f) == 2 && f[0] == "RECALLED":
				recalled[f[1]] = true
			default:
				t.Errorf("bad child line %q", line)
			}
		}
		sc := bufio.NewScanner(out)
		killAt := 20 + round*15
		for sc.Scan() {
			record(sc.Text())
			if len(acked) == killAt {
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				break
			}
		}
		// Lines written before the kill landed are acknowledgements too.
		for sc.Scan() {
			record(sc.Text())
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())

		s := openT(t, dir)
		assert.Empty(t, s.Damaged())
		assert.NotEmpty(t, recalled)
		assert.GreaterOrEqual(t, s.Len(), len(acked))
		assert.LessOrEqual(t, s.Len(), len(acked)+1, "at most the in-flight put may also have completed")
		for id, sum := range acked {
			env, err := s.Get(id)
			require.NoError(t, err, "acknowledged message %s lost", id)
			require.Len(t, env.Recipients, 1)
			assert.NotEqual(t, Delivering, env.Recipients[0].State)
			if recalled[id] {
				assert.Equal(t, Recalled, env.Recipients[0].State, "acknowledged recall of %s undone", id)
			}
			b := readBody(t, s, id)
			got := sha256.Sum256([]byte(b))
			assert.Equal(t, sum, hex.EncodeToString(got[:]), "body of %s damaged", id)
			assert.EqualValues(t, len(b), env.Size)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			assert.False(t, strings.HasPrefix(e.Name(), tmpPrefix), "temp file survived recovery")
		}
	}
}
