package aliases

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `# aliases for example.org
postmaster: alice
Team:   alice, bob,
	carol@example.net ,
        alice
list devs: alice,, bob, dave@example.org
list: eve
LIST ops: root
`

func TestParseAndLookup(t *testing.T) {
	tab, err := Parse(strings.NewReader(sample), "aliases")
	require.NoError(t, err)
	assert.Equal(t, 5, tab.Len())
	for _, tc := range []struct {
		name    string
		kind    Kind
		targets []string
	}{
		{"postmaster", Alias, []string{"alice"}},
		{"TEAM", Alias, []string{"alice", "bob", "carol@example.net"}},
		{"devs", List, []string{"alice", "bob", "dave@example.org"}},
		{"list", Alias, []string{"eve"}},
		{"ops", List, []string{"root"}},
	} {
		kind, targets, ok := tab.Lookup(tc.name)
		require.True(t, ok, tc.name)
		assert.Equal(t, tc.kind, kind, tc.name)
		assert.Equal(t, tc.targets, targets, tc.name)
	}
	_, _, ok := tab.Lookup("nobody")
	assert.False(t, ok)

	// Lookup hands out copies.
	_, targets, _ := tab.Lookup("team")
	targets[0] = "mallory"
	_, again, _ := tab.Lookup("team")
	assert.Equal(t, "alice", again[0])

	es := tab.Entries()
	assert.Equal(t, "devs", es[0].Name)
	assert.Equal(t, 6, es[0].Line)
	assert.Equal(t, "team", es[4].Name)
	assert.Equal(t, 3, es[4].Line)
	assert.Equal(t, "list", List.String())
	assert.Equal(t, "alias", Alias.String())
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"  a: b\n", "f:1: continuation line without an entry"},
		{"a b\n", "f:1: missing ':'"},
		{"# x\n\na b: c\n", `f:3: bad name "a b"`},
		{": c\n", "f:1: empty name"},
		{"a:\n", `f:1: "a" has no targets`},
		{"a: ,\n , \n", `f:1: "a" has no targets`},
		{"a: b\nA: c\n", `f:2: "a" already defined on line 1`},
		{"a: |/bin/sh\n", "f:1: program target"},
		{"a: /var/mail/x\n", "f:1: file target"},
		{"a: :include:/etc/list\n", "f:1: include target"},
		{"a: b c\n", `f:1: invalid character ' ' in target "b c"`},
		{"a: b,\n c d\n", `f:1: invalid character ' ' in target "c d"`},
		{"a\x01: b\n", "f:1: invalid character"},
		{"a: b\xff\n", "f:1: invalid UTF-8"},
		{"x: y\n" + strings.Repeat("z", maxLine+1), "f:2: bufio.Scanner: token too long"},
	} {
		_, err := Parse(strings.NewReader(tc.in), "f")
		var pe *ParseError
		require.True(t, errors.As(err, &pe), "%q: %v", tc.in, err)
		assert.Contains(t, err.Error(), tc.want, "%q", tc.in)
	}
}

func TestFileReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "aliases")
	require.NoError(t, os.WriteFile(p, []byte("a: b\n"), 0o600))
	ctx := context.Background()
	f, err := Load(ctx, p)
	require.NoError(t, err)
	_, tg, ok := f.Lookup("a")
	require.True(t, ok)
	assert.Equal(t, []string{"b"}, tg)
	require.NoError(t, os.WriteFile(p, []byte("list a: c, d\n"), 0o600))
	require.NoError(t, f.Reload(ctx))
	k, tg, _ := f.Lookup("a")
	assert.Equal(t, List, k)
	assert.Equal(t, []string{"c", "d"}, tg)
	require.NoError(t, os.WriteFile(p, []byte("oops\n"), 0o600))
	require.ErrorContains(t, f.Reload(ctx), p+":1:")
	k, _, _ = f.Lookup("a")
	assert.Equal(t, List, k, "old table kept")
}

// FuzzParse: no panics; errors carry a line; an accepted table written
// out and parsed again is the same table.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("a: b\n c\n")
	f.Add("list x: y\r\n# c\n")
	f.Add(" a: b")
	f.Add("a: |x")
	f.Fuzz(func(t *testing.T, in string) {
		tab, err := Parse(strings.NewReader(in), "fuzz")
		if err != nil {
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.Positive(t, pe.Line)
			return
		}
		var buf bytes.Buffer
		_, err = tab.WriteTo(&buf)
		require.NoError(t, err)
		again, err := Parse(&buf, "again")
		require.NoError(t, err, "re-parse of %q", buf.String())
		a, b := tab.Entries(), again.Entries()
		require.Len(t, b, len(a))
		for i := range a {
			require.Equal(t, a[i].Name, b[i].Name)
			require.Equal(t, a[i].Kind, b[i].Kind)
			require.Equal(t, a[i].Targets, b[i].Targets)
			k, tg, ok := tab.Lookup(a[i].Name)
			require.True(t, ok)
			require.Equal(t, a[i].Kind, k)
			require.NotEmpty(t, tg)
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		sb.WriteString("user")
		sb.WriteString(strings.Repeat("x", i%7))
		sb.WriteString(string(rune('a' + i%26)))
		sb.WriteString(strings.Repeat("y", i/26))
		sb.WriteString(": a, b, c@example.org\n")
	}
	tab, err := Parse(strings.NewReader(sb.String()), "bench")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := tab.Lookup("UserA"); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(strings.NewReader(sample), "s"); err != nil {
			b.Fatal(err)
		}
	}
}
