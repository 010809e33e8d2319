// Package aliases reads the reference MTA's aliases file: local names that
// expand to one or more targets, some marked as mailing lists.
//
// # File format
//
//	# A comment: a line whose first non-blank character is "#".
//	postmaster: alice
//	team:       alice, bob,
//	            carol@example.net
//	list devs:  alice, bob, dave@example.org
//
// An entry is "name: target, target, ...". A line that begins with a blank
// (space or tab) continues the previous entry, as in sendmail's aliases(5)
// and RFC 5322 folding. The word "list" followed by blanks before the name
// marks the entry as a mailing list: RFC 3885 section 7 (and the product's
// alias policies) never propagate tracking across a list expansion, while a
// plain alias may propagate it according to the channel's policy, so the
// distinction must be in the data, not guessed. "list" alone before the
// colon is an ordinary alias named "list".
//
// Names compare case-insensitively (they are stored lower-cased) and may
// be a local part or a full address. Targets are kept as written, in
// order, with repeats dropped; empty items between commas are ignored,
// but an entry needs at least one target. Names and targets may not
// contain blanks, commas or control characters. Program ("|cmd"), file
// ("/path") and ":include:" targets of sendmail are refused: the
// reference MTA delivers only to addresses. A name may be defined once.
// Errors name the file and line.
//
// Lookup returns one level; expansion (recursion, loop detection, the
// tracking policy per target) belongs to the caller, which knows local
// domains and the channel's alias policy.
package aliases

import (
	"bufio"
	"context"
	"fmt"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/fsutil"
	"io"
	"slices"
	"strings"
	"unicode"
)

// Kind tells an ordinary alias from a mailing list.
type Kind int

// The kinds of entry.
const (
	// Alias is an ordinary alias: tracking may propagate to its targets
	// according to the channel's alias policy.
	Alias Kind = iota + 1
	// List is a mailing list: tracking never propagates past it.
	List
)

// String returns "alias" or "list".
func (k Kind) String() string {
	switch k {
	case Alias:
		return "alias"
	case List:
		return "list"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Entry is one alias or list definition.
type Entry struct {
	// Name is the lower-cased name.
	Name string
	// Kind is Alias or List.
	Kind Kind
	// Targets are the expansion, in file order, without repeats.
	Targets []string
	// Line is where the entry starts in the file.
	Line int
}

// ParseError names the file and line of a syntax error.
type ParseError struct {
	// File is the name given to Parse (the path for Load).
	File string
	// Line is the 1-based line number.
	Line int
	// Msg says what is wrong.
	Msg string
}

// Error implements error.
func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Table is a parsed aliases file. It is immutable and safe for concurrent
// use.
type Table struct {
	entries map[string]*Entry
}

const maxLine = 64 << 10

// Parse reads an aliases file from r; file is used in error messages.
func Parse(r io.Reader, file string) (*Table, error) {
	t := &Table{entries: map[string]*Entry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	var (
		cur     strings.Builder
		curLine int
		n       int
	)
	flush := func() error {
		if curLine == 0 {
			return nil
		}
		e, msg := parseEntry(cur.String())
		if msg != "" {
			return &ParseError{File: file, Line: curLine, Msg: msg}
		}
		if prev, dup := t.entries[e.Name]; dup {
			return &ParseError{File: file, Line: curLine, Msg: fmt.Sprintf("%q already defined on line %d", e.Name, prev.Line)}
		}
		e.Line = curLine
		t.entries[e.Name] = e
		cur.Reset()
		curLine = 0
		return nil
	}
	for sc.Scan() {
		n++
		raw := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if raw[0] == ' ' || raw[0] == '\t' {
			if curLine == 0 {
				return nil, &ParseError{File: file, Line: n, Msg: "continuation line without an entry before it"}
			}
			cur.WriteByte(' ')
			cur.WriteString(trimmed)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		curLine = n
		cur.WriteString(trimmed)
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: file, Line: n + 1, Msg: err.Error()}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return t, nil
}

// parseEntry parses one unfolded entry; msg is non-empty on error.
func parseEntry(s string) (*Entry, string) {
	head, body, ok := strings.Cut(s, ":")
	if !ok {
		return nil, "missing ':' after the name"
	}
	e := &Entry{Kind: Alias}
	fields := strings.Fields(head)
	switch {
	case len(fields) == 1:
		e.Name = fields[0]
	case len(fields) == 2 && strings.EqualFold(fields[0], "list"):
		e.Kind, e.Name = List, fields[1]
	case len(fields) == 0:
		return nil, "empty name"
	default:
		return nil, fmt.Sprintf("bad name %q (names have no blanks; mark lists with \"list NAME:\")", strings.TrimSpace(head))
	}
	if msg := checkToken(e.Name, "name"); msg != "" {
		return nil, msg
	}
	e.Name = strings.ToLower(e.Name)
	seen := map[string]bool{}
	for _, item := range strings.Split(body, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if msg := checkToken(item, "target"); msg != "" {
			return nil, msg
		}
		switch {
		case item[0] == '|':
			return nil, fmt.Sprintf("program target %q not supported", item)
		case item[0] == '/':
			return nil, fmt.Sprintf("file target %q not supported", item)
		case strings.HasPrefix(strings.ToLower(item), ":include:"):
			return nil, fmt.Sprintf("include target %q not supported", item)
		}
		if !seen[strings.ToLower(item)] {
			seen[strings.ToLower(item)] = true
			e.Targets = append(e.Targets, item)
		}
	}
	if len(e.Targets) == 0 {
		return nil, fmt.Sprintf("%q has no targets", e.Name)
	}
	return e, ""
}

// checkToken refuses blanks, commas, colons in names and control
// characters.
func checkToken(s, what string) string {
	for _, r := range s {
		switch {
		case r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r), r == ',':
			return fmt.Sprintf("invalid character %q in %s %q", r, what, s)
		case r == ':' && what == "name":
			return fmt.Sprintf("invalid character %q in %s %q", r, what, s)
		case r == '\uFFFD':
			return fmt.Sprintf("invalid UTF-8 in %s %q", what, s)
		}
	}
	return ""
}

// Lookup returns the kind and targets of name (case-insensitive). The
// slice is the caller's to keep.
func (t *Table) Lookup(name string) (Kind, []string, bool) {
	e, ok := t.entries[strings.ToLower(name)]
	if !ok {
		return 0, nil, false
	}
	return e.Kind, slices.Clone(e.Targets), true
}

// Entries returns every entry, sorted by name. The entries are copies.
func (t *Table) Entries() []Entry {
	out := make([]Entry, 0, len(t.entries))
	for _, e := range t.entries {
		c := *e
		c.Targets = slices.Clone(e.Targets)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Len returns the number of entries.
func (t *Table) Len() int { return len(t.entries) }

// WriteTo writes t in the file format (one line per entry, sorted), so
// that Parse of the output yields the same table.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, e := range t.Entries() {
		if e.Kind == List {
			b.WriteString("list ")
		}
		b.WriteString(e.Name)
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Targets, ", "))
		b.WriteByte('\n')
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// File is an aliases file that can be reloaded on demand. A failed reload
// keeps the previous table. It is safe for concurrent use.
type File struct {
	*fsutil.Reloadable[Table]
}

// Load reads the aliases file at path.
func Load(ctx context.Context, path string) (*File, error) {
	r, err := fsutil.Load(ctx, path, "aliases", Parse)
	if err != nil {
		return nil, err
	}
	return &File{r}, nil
}

// Lookup looks name up in the current table.
func (f *File) Lookup(name string) (Kind, []string, bool) { return f.Table().Lookup(name) }
