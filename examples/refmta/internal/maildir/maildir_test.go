package maildir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newT(t testing.TB) (*Maildir, string) {
	root := filepath.Join(t.TempDir(), "mail")
	m, err := New(root, Options{Hostname: "mx/1:a", Now: func() time.Time { return time.Unix(1700000000, 123456789) }})
	require.NoError(t, err)
	return m, root
}

func TestDeliver(t *testing.T) {
	m, root := newT(t)
	p, err := m.Deliver(context.Background(), "bob", strings.NewReader("Subject: x\r\n\r\nhello\r\n"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, "bob", "new"), filepath.Dir(p))
	name := filepath.Base(p)
	assert.Regexp(t, regexp.MustCompile(`^1700000000\.M123456P\d+Q1R[0-9a-f]{8}\.mx\\0571\\072a$`), name)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "Subject: x\r\n\r\nhello\r\n", string(b))
	for _, sub := range []string{"tmp", "cur"} {
		ents, err := os.ReadDir(filepath.Join(root, "bob", sub))
		require.NoError(t, err)
		assert.Empty(t, ents, sub)
	}
	fi, err := os.Stat(filepath.Join(root, "bob"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

func TestUniqueUnderConcurrency(t *testing.T) {
	m, root := newT(t)
	var wg sync.WaitGroup
	paths := make(chan string, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := m.Deliver(context.Background(), "carol", strings.NewReader(fmt.Sprint("msg ", i)))
			assert.NoError(t, err)
			paths <- p
		}()
	}
	wg.Wait()
	close(paths)
	seen := map[string]bool{}
	for p := range paths {
		assert.False(t, seen[p], "duplicate %s", p)
		seen[p] = true
	}
	ents, _ := os.ReadDir(filepath.Join(root, "carol", "new"))
	assert.Len(t, ents, 64)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }

func TestDeliverFailureLeavesNothing(t *testing.T) {
	m, root := newT(t)
	_, err := m.Deliver(context.Background(), "dave", errReader{})
	var me *Error
	require.ErrorAs(t, err, &me)
	assert.False(t, me.Permanent)
	code, enh, _ := me.SMTPReply()
	assert.Equal(t, 451, code)
	assert.Equal(t, [3]int{4, 3, 0}, enh)
	for _, sub := range []string{"tmp", "new"} {
		ents, _ := os.ReadDir(filepath.Join(root, "dave", sub))
		assert.Empty(t, ents, sub)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = m.Deliver(ctx, "dave", strings.NewReader("x"))
	require.ErrorIs(t, err, context.Canceled)
}

func TestValidUser(t *testing.T) {
	for _, tc := range []struct {
		user string
		ok   bool
	}{
		{"bob", true}, {"Bob.Smith", true}, {"a+tag", true}, {"o'neil", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {".", false}, {"..", false}, {"../etc", false},
		{"a/b", false}, {".hidden", false}, {"trail.", false}, {"a..b", false}, {"a b", false},
		{"a\x00b", false}, {"a\\b", false}, {"ü", false}, {"a@b", false},
	} {
		err := ValidUser(tc.user)
		if tc.ok {
			assert.NoError(t, err, "%q", tc.user)
		} else {
			assert.ErrorIs(t, err, ErrInvalidUser, "%q", tc.user)
		}
	}
	m, _ := newT(t)
	_, err := m.Deliver(context.Background(), "../x", strings.NewReader("x"))
	var me *Error
	require.ErrorAs(t, err, &me)
	assert.True(t, me.Permanent)
	code, enh, _ := me.SMTPReply()
	assert.Equal(t, 550, code)
	assert.Equal(t, [3]int{5, 1, 3}, enh)
}

// FuzzValidUser: any accepted name is a single clean path component.
func FuzzValidUser(f *testing.F) {
	for _, s := range []string{"bob", "..", "a/b", ".x", "a.b", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		if ValidUser(user) != nil {
			return
		}
		require.Equal(t, user, filepath.Clean(user))
		require.Equal(t, user, filepath.Base(user))
		require.NotContains(t, user, "/")
		require.NotEqual(t, "..", user)
		require.False(t, strings.HasPrefix(user, "."))
	})
}

// BenchmarkDeliver: one fsynced delivery of 4 KiB (fsync-bound).
func BenchmarkDeliver(b *testing.B) {
	m, _ := newT(b)
	body := strings.Repeat("x", 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Deliver(context.Background(), "bob", strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}
