// Package maildir delivers messages into Maildir folders laid out as
// <root>/<user>/{tmp,new,cur}.
//
// Delivery follows the Maildir convention (D. J. Bernstein, "Using
// maildir format", cr.yp.to/proc/maildir.html): the message is written
// under a unique name in tmp, fsynced, then moved into new with rename,
// and new is fsynced, so a reader sees either the whole message or
// nothing, and a crash after Deliver returns cannot lose it (this is what
// lets the MTA report the recipient as delivered, RFC 5321 section 6.1).
// Unique names are "<seconds>.M<microseconds>P<pid>Q<counter>R<random>.<host>",
// the modern form of the convention's "time.pid_unique.host"; "/" and
// ":" in the host name are written as \057 and \072.
//
// User names are validated before they become a path component: a
// non-empty dot-atom local part (RFC 5322 section 3.2.3 atext and dots) of
// at most 64 octets (RFC 5321 section 4.5.3.1.1), without "/", without a
// leading, trailing or doubled dot. So "..", "a/b" and ".hidden" cannot
// name anything outside root. Case is preserved; folding is the caller's
// policy.
package maildir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/fsutil"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// ErrInvalidUser reports a user name that cannot name a Maildir.
var ErrInvalidUser = errors.New("maildir: invalid user name")

// Error is a failed delivery. Permanent failures (an invalid user name)
// should become a failed DSN; the others are temporary (a full disk, a
// permission problem an administrator can fix).
type Error struct {
	// User is the user delivered to.
	User string
	// Permanent is true when retrying cannot help.
	Permanent bool
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("maildir: delivering to %q: %v", e.User, e.Err) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// SMTPReply implements the project's SMTP reply convention: 550 5.1.3 for
// a bad mailbox name, 451 4.3.0 otherwise (RFC 3463).
func (e *Error) SMTPReply() (int, [3]int, string) {
	if e.Permanent {
		return 550, [3]int{5, 1, 3}, "Bad destination mailbox name"
	}
	return 451, [3]int{4, 3, 0}, "Mailbox temporarily unavailable"
}

// Options configure New. The zero value is usable.
type Options struct {
	// Hostname goes into unique file names; default os.Hostname().
	Hostname string
	// Now is the clock for unique names; default time.Now.
	Now func() time.Time
}

// Maildir delivers into Maildirs under one root directory. It is safe for
// concurrent use.
type Maildir struct {
	root string
	host string
	pid  int
	now  func() time.Time
	seq  atomic.Uint64
}

// New returns a Maildir rooted at root, creating root if needed.
func New(root string, opts Options) (*Maildir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("maildir: creating root: %w", err)
	}
	host := opts.Hostname
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			h = "localhost"
		}
		host = h
	}
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Maildir{root: root, host: host, pid: os.Getpid(), now: now}, nil
}

// ValidUser reports whether user may name a Maildir (see the package doc);
// the error wraps ErrInvalidUser.
func ValidUser(user string) error {
	if user == "" || len(user) > 64 {
		return fmt.Errorf("%w: length %d", ErrInvalidUser, len(user))
	}
	if user[0] == '.' || user[len(user)-1] == '.' || strings.Contains(user, "..") {
		return fmt.Errorf("%w: misplaced dot in %q", ErrInvalidUser, user)
	}
	for i := 0; i < len(user); i++ {
		c := user[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-=?^_`{|}~.", c) >= 0:
		default:
			return fmt.Errorf("%w: character %q in %q", ErrInvalidUser, c, user)
		}
	}
	return nil
}

// Path returns the Maildir directory of user.
func (m *Maildir) Path(user string) (string, error) {
	if err := ValidUser(user); err != nil {
		return "", err
	}
	return filepath.Join(m.root, user), nil
}

// Create makes user's tmp, new and cur folders if they are missing.
func (m *Maildir) Create(user string) (string, error) {
	dir, err := m.Path(user)
	if err != nil {
		return "", err
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// uniqueName returns a file name no other delivery by this or another
// process uses: time, pid, a per-process counter and random bits.
func (m *Maildir) uniqueName() (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	t := m.now()
	return fmt.Sprintf("%d.M%06dP%dQ%dR%s.%s", t.Unix(), t.Nanosecond()/1000, m.pid, m.seq.Add(1), hex.EncodeToString(r[:]), m.host), nil
}

// Deliver writes msg into user's Maildir (creating the folders) and
// returns the path of the new file in new/. On error nothing is left in
// new/ and the temporary file is removed. Failures are *Error.
func (m *Maildir) Deliver(ctx context.Context, user string, msg io.Reader) (string, error) {
	if err := ValidUser(user); err != nil {
		return "", &Error{User: user, Permanent: true, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return "", &Error{User: user, Err: err}
	}
	dir, err := m.Create(user)
	if err != nil {
		return "", &Error{User: user, Err: err}
	}
	name, err := m.uniqueName()
	if err != nil {
		return "", &Error{User: user, Err: err}
	}
	tmp := filepath.Join(dir, "tmp", name)
	dst := filepath.Join(dir, "new", name)
	if err := writeSync(ctx, tmp, msg); err != nil {
		_ = os.Remove(tmp)
		return "", &Error{User: user, Err: err}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return "", &Error{User: user, Err: err}
	}
	if err := fsutil.SyncDir(filepath.Join(dir, "new")); err != nil {
		return "", &Error{User: user, Err: err}
	}
	return dst, nil
}

func writeSync(ctx context.Context, path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, fsutil.ContextReader(ctx, r))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
