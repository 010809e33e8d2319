// Package users reads the reference MTA's users file and checks passwords
// for SMTP AUTH (RFC 4954) and MTQP.
//
// # File format
//
// One user per line, "name:password". The name ends at the first colon;
// the password is everything after it (it may itself contain colons and
// inner spaces). A password beginning with "$2" is a bcrypt hash (for
// example from `htpasswd -nbB` or golang.org/x/crypto/bcrypt); anything
// else is a plain-text password. Blank lines and lines whose first
// non-blank character is "#" are ignored; leading and trailing blanks of a
// line (and a CR before the LF) are removed. A name may not be empty or
// contain blanks or control characters; a name may appear once; an empty
// password is refused (it would let anyone in). Names compare exactly
// (case-sensitive), as SASL PLAIN authcids do (RFC 4616).
//
// # Timing
//
// Plain passwords are compared as SHA-256 digests with
// crypto/subtle.ConstantTimeCompare, so neither content nor length leaks
// through timing; bcrypt hashes are checked with bcrypt, and an unknown
// user costs one bcrypt check against a dummy hash of the highest cost in
// the file, so probing for names is not cheaper than probing for
// passwords.
package users

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/fsutil"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// ErrBadCredentials is returned by Authenticate for an unknown user or a
// wrong password (deliberately not distinguished).
var ErrBadCredentials error = authError{}

type authError struct{}

func (authError) Error() string { return "users: authentication failed" }

// SMTPReply implements the project's SMTP reply convention: 535 5.7.8
// (RFC 4954 section 6).
func (authError) SMTPReply() (int, [3]int, string) {
	return 535, [3]int{5, 7, 8}, "Authentication credentials invalid"
}

// ParseError names the file and line of a syntax error.
type ParseError struct {
	// File is the name given to Parse (the path for Load).
	File string
	// Line is the 1-based line number.
	Line int
	// Msg says what is wrong (never the password).
	Msg string
}

// Error implements error.
func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

type entry struct {
	bcrypt []byte   // set for bcrypt users
	plain  [32]byte // SHA-256 of the plain password otherwise
}

// Table is a parsed users file. It is immutable and safe for concurrent
// use.
type Table struct {
	users     map[string]entry
	anyBcrypt bool
	dummyCost int
	dummyOnce sync.Once
	dummy     []byte
}

// maxLine bounds a line, so a huge or binary file fails cleanly.
const maxLine = 64 << 10

// Parse reads a users file from r; name is used in error messages.
func Parse(r io.Reader, name string) (*Table, error) {
	t := &Table{users: map[string]entry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		perr := func(format string, args ...any) error {
			return &ParseError{File: name, Line: n, Msg: fmt.Sprintf(format, args...)}
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok {
			return nil, perr("missing ':' between name and password")
		}
		if user == "" {
			return nil, perr("empty user name")
		}
		if i := strings.IndexFunc(user, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar }); i >= 0 {
			return nil, perr("invalid character in user name %q", user)
		}
		if _, dup := t.users[user]; dup {
			return nil, perr("user %q listed twice", user)
		}
		if pass == "" {
			return nil, perr("empty password for %q", user)
		}
		var e entry
		if strings.HasPrefix(pass, "$2") {
			cost, err := bcrypt.Cost([]byte(pass))
			if err != nil {
				return nil, perr("malformed bcrypt hash for %q: %v", user, err)
			}
			t.dummyCost = max(t.dummyCost, cost)
			e.bcrypt = []byte(pass)
			t.anyBcrypt = true
		} else {
			e.plain = sha256.Sum256([]byte(pass))
		}
		t.users[user] = e
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: name, Line: n + 1, Msg: err.Error()}
	}
	return t, nil
}

// Authenticate returns nil when pass is user's password and
// ErrBadCredentials otherwise.
func (t *Table) Authenticate(user, pass string) error {
	e, ok := t.users[user]
	switch {
	case !ok:
		if t.anyBcrypt {
			_ = bcrypt.CompareHashAndPassword(t.dummyHash(), []byte(pass))
		} else {
			sum := sha256.Sum256([]byte(pass))
			subtle.ConstantTimeCompare(sum[:], e.plain[:])
		}
		return ErrBadCredentials
	case e.bcrypt != nil:
		if bcrypt.CompareHashAndPassword(e.bcrypt, []byte(pass)) != nil {
			return ErrBadCredentials
		}
		return nil
	default:
		sum := sha256.Sum256([]byte(pass))
		if subtle.ConstantTimeCompare(sum[:], e.plain[:]) != 1 {
			return ErrBadCredentials
		}
		return nil
	}
}

func (t *Table) dummyHash() []byte {
	t.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte("no such user"), t.dummyCost)
		if err != nil {
			panic(err) // only fails for a bad cost or an overlong password
		}
		t.dummy = h
	})
	return t.dummy
}

// Has reports whether user is listed.
func (t *Table) Has(user string) bool {
	_, ok := t.users[user]
	return ok
}

// Names returns the user names, sorted.
func (t *Table) Names() []string {
	out := make([]string, 0, len(t.users))
	for n := range t.users {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Len returns the number of users.
func (t *Table) Len() int { return len(t.users) }

// File is a users file that can be reloaded on demand (on SIGHUP, say).
// Lookups always see a complete table: a reload that fails keeps the old
// one. It is safe for concurrent use.
type File struct {
	*fsutil.Reloadable[Table]
}

// Load reads the users file at path.
func Load(ctx context.Context, path string) (*File, error) {
	r, err := fsutil.Load(ctx, path, "users", Parse)
	if err != nil {
		return nil, err
	}
	return &File{r}, nil
}

// Authenticate checks user's password against the current table.
func (f *File) Authenticate(user, pass string) error { return f.Table().Authenticate(user, pass) }

// Has reports whether user is in the current table.
func (f *File) Has(user string) bool { return f.Table().Has(user) }
