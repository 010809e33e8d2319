package users

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func hash(t testing.TB, pass string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	require.NoError(t, err)
	return string(h)
}

func TestAuthenticate(t *testing.T) {
	file := "# users\n\n  alice:wonder land  \r\nbob:" + hash(t, "builder") + "\ncarol:a:b:c\n"
	tab, err := Parse(strings.NewReader(file), "users")
	require.NoError(t, err)
	assert.Equal(t, []string{"alice", "bob", "carol"}, tab.Names())
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"alice", "wonder land", true},
		{"alice", "wonder", false},
		{"alice", "wonder land ", false},
		{"Alice", "wonder land", false},
		{"bob", "builder", true},
		{"bob", "Builder", false},
		{"bob", "", false},
		{"carol", "a:b:c", true},
		{"dave", "anything", false},
		{"", "", false},
	} {
		err := tab.Authenticate(tc.user, tc.pass)
		if tc.ok {
			assert.NoError(t, err, "%s/%s", tc.user, tc.pass)
		} else {
			assert.ErrorIs(t, err, ErrBadCredentials, "%s/%s", tc.user, tc.pass)
		}
	}
	code, enh, _ := ErrBadCredentials.(interface {
		SMTPReply() (int, [3]int, string)
	}).SMTPReply()
	assert.Equal(t, 535, code)
	assert.Equal(t, [3]int{5, 7, 8}, enh)
	assert.True(t, tab.Has("bob"))
	assert.False(t, tab.Has("dave"))
}

func TestUnknownUserWithoutBcrypt(t *testing.T) {
	tab, err := Parse(strings.NewReader("a:b\n"), "u")
	require.NoError(t, err)
	assert.ErrorIs(t, tab.Authenticate("x", "b"), ErrBadCredentials)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice\n", "f:1: missing ':'"},
		{"# c\n:pw\n", "f:2: empty user name"},
		{"a b:pw\n", "f:1: invalid character"},
		{"a:x\n\na:y\n", `f:3: user "a" listed twice`},
		{"a:\n", `f:1: empty password for "a"`},
		{"a:$2y$nothash\n", `f:1: malformed bcrypt hash for "a"`},
		{"a\x01:pw\n", "f:1: invalid character"},
		{"ok:1\n" + strings.Repeat("x", maxLine+1) + "\n", "f:2: bufio.Scanner: token too long"},
	} {
		_, err := Parse(strings.NewReader(tc.in), "f")
		var pe *ParseError
		require.True(t, errors.As(err, &pe), "%q: %v", tc.in, err)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), "pw", "password leaked into the error")
	}
}

func TestFileReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "users")
	require.NoError(t, os.WriteFile(p, []byte("alice:one\n"), 0o600))
	ctx := context.Background()
	f, err := Load(ctx, p)
	require.NoError(t, err)
	require.NoError(t, f.Authenticate("alice", "one"))

	require.NoError(t, os.WriteFile(p, []byte("alice:two\nbob:three\n"), 0o600))
	assert.NoError(t, f.Authenticate("alice", "one"), "no reload yet")
	require.NoError(t, f.Reload(ctx))
	assert.ErrorIs(t, f.Authenticate("alice", "one"), ErrBadCredentials)
	assert.NoError(t, f.Authenticate("alice", "two"))
	assert.True(t, f.Has("bob"))

	require.NoError(t, os.WriteFile(p, []byte("broken\n"), 0o600))
	err = f.Reload(ctx)
	require.ErrorContains(t, err, p+":1:")
	assert.NoError(t, f.Authenticate("alice", "two"), "failed reload keeps the old table")

	_, err = Load(ctx, filepath.Join(t.TempDir(), "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzParse(f *testing.F) {
	f.Add("alice:secret\n# comment\nbob:$2a$04$abcdefghijklmnopqrstuu5Tu7iKMJ9rF4pcjkqMf2vMK5oZbJQeO\n")
	f.Add("a:b:c\r\n\n   \n")
	f.Add(":x\n")
	f.Add("a\n")
	f.Fuzz(func(t *testing.T, in string) {
		tab, err := Parse(strings.NewReader(in), "fuzz")
		if err != nil {
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.Positive(t, pe.Line)
			return
		}
		for _, n := range tab.Names() {
			require.NotEmpty(t, n)
			require.NotContains(t, n, ":")
			require.True(t, tab.Has(n))
		}
	})
}

func BenchmarkAuthenticatePlain(b *testing.B) {
	tab, err := Parse(strings.NewReader("alice:correct horse battery staple\n"), "u")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if tab.Authenticate("alice", "correct horse battery staple") != nil {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkAuthenticateBcryptCost10(b *testing.B) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
	require.NoError(b, err)
	tab, err := Parse(strings.NewReader("alice:"+string(h)+"\n"), "u")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if tab.Authenticate("alice", "pw") != nil {
			b.Fatal("rejected")
		}
	}
}
