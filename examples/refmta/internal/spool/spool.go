// Package spool is the reference MTA's durable message queue: one directory
// holding, per message, a body file and a small versioned JSON envelope
// beside it.
//
// # Durability
//
// RFC 5321 section 6.1 makes a 250 reply to the end of DATA a promise: the
// server "accepts responsibility for delivering or relaying the message".
// Put therefore returns only once the message would survive a crash or a
// power loss: the body is written to a temporary file, fsynced and renamed
// to <id>.msg; the envelope is written the same way to <id>.env; then the
// directory is fsynced so that both names are durable. The envelope's
// rename is the commit point: a body without an envelope is an unfinished
// Put and Open deletes it. Every later change to an envelope (Update,
// Claim, Recall) is the same write-temp, fsync, rename, fsync-directory
// sequence, so a reader after a crash sees either the old or the new
// envelope, never a mixture. (A power cut between the two renames of a Put
// that had not yet returned can leave an envelope without its body; Open
// reports it as damaged. Nothing acknowledged is affected.)
//
// # Recall and claim
//
// The spool, not the tracking store, is the authority on whether a
// recipient may still go out (see DESIGN.md, "Data flow"). Claim durably
// moves a pending recipient to Delivering before an attempt; Recall
// durably moves a pending recipient to Recalled. Both run under the
// message's lock and persist the change before returning, so a recipient
// is never both claimed and recalled, and a recall reported to the user is
// never undone by a restart, whatever happens to the store.
//
// # At-least-once after a crash
//
// A recipient found in Delivering by Open was claimed by an attempt whose
// outcome was never recorded: the process died during or just after it.
// Open puts such recipients back to Queued, so the attempt is repeated and
// the recipient may receive the message twice. That is the usual MTA
// trade-off (RFC 5321 section 6.1 prefers duplicates to loss); the
// alternative, marking them failed, would lose mail. Note that such a
// recipient can be recalled after the restart although an attempt may
// already have delivered it; the tracking record, if it says delivered,
// is then more accurate than the spool.
package spool

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/msgtrack/msgtrack/examples/refmta/internal/fsutil"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotFound: no message with that ID is in the spool (never was, removed,
// or the ID is malformed).
var ErrNotFound = errors.New("spool: no such message")

// ErrLocked: another Spool (in this or another process) has the directory
// open.
var ErrLocked = errors.New("spool: directory in use by another process")

// ErrClosed: the Spool was closed.
var ErrClosed = errors.New("spool: closed")

// ErrInvalid: Put was given an envelope that cannot be spooled (no
// recipients, an empty address, an unknown state).
var ErrInvalid = errors.New("spool: invalid envelope")

const (
	idLen     = 32
	bodyExt   = ".msg"
	envExt    = ".env"
	tmpPrefix = ".tmp-"
	lockName  = ".lock"
	// DamagedDir is the subdirectory Open moves damaged messages into.
	DamagedDir = "damaged"
)

// Error is an I/O failure of a spool operation. It carries the SMTP reply a
// server should give when the failure happens while accepting a message:
// 451 4.3.0, a temporary local error (RFC 5321 section 4.2.3, RFC 3463
// X.3.0), so the client retries instead of losing the message.
type Error struct {
	// Op is the operation that failed ("put", "update", ...).
	Op string
	// ID is the message concerned, "" if none was assigned yet.
	ID string
	// Err is the underlying error.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.ID == "" {
		return "spool: " + e.Op + ": " + e.Err.Error()
	}
	return "spool: " + e.Op + " " + e.ID + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// SMTPReply implements the project's SMTP reply convention.
func (e *Error) SMTPReply() (int, [3]int, string) {
	return 451, [3]int{4, 3, 0}, "Local error in processing: queue write failed, try again later"
}

// Damage describes an envelope that Open could not load.
type Damage struct {
	// ID is the message ID taken from the file name.
	ID string
	// Path is where the envelope file now is (under DamagedDir), or its
	// original path if moving it failed too.
	Path string
	// Err says what was wrong.
	Err error
}

// Options configure Open. The zero value is usable.
type Options struct {
	// Logger receives recovery reports; nil discards them.
	Logger *slog.Logger
	// Now is the clock used for Arrival and Updated stamps; nil means
	// time.Now.
	Now func() time.Time
}

// Spool is an open spool directory. It is safe for concurrent use. Only one
// Spool may have a directory open at a time: Open takes an flock on
// dir/.lock and fails with ErrLocked if another holds it.
type Spool struct {
	dir string
	log *slog.Logger
	now func() time.Time

	lock *os.File // flock'ed for the Spool's lifetime

	mu      sync.Mutex // guards msgs and closed; never held while waiting for an entry's lock
	msgs    map[string]*entry
	closed  bool
	damaged []Damage
}

// entry is one message. mu serialises every read-modify-write of env.
type entry struct {
	mu      sync.Mutex
	env     *Envelope
	removed bool
}

// Open opens (creating if needed) the spool directory dir and recovers it:
// stray temporary files from interrupted writes are removed, a body without
// an envelope (an unfinished Put) is deleted, every envelope is loaded, and
// an envelope that does not decode, or whose body is missing, is moved to
// dir/damaged and reported by Damaged instead of failing Open. Recipients
// left in Delivering by a crash go back to Queued (see the package doc).
func Open(ctx context.Context, dir string, opts Options) (*Spool, error) {
	s := &Spool{dir: dir, log: opts.Logger, now: opts.Now, msgs: map[string]*entry{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.MkdirAll(filepath.Join(dir, DamagedDir), 0o700); err != nil {
		return nil, &Error{Op: "open", Err: err}
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, &Error{Op: "open", Err: err}
	}
	s.lock = lock
	if err := s.recover(ctx); err != nil {
		lock.Close()
		return nil, &Error{Op: "open", Err: err}
	}
	return s, nil
}

// lockDir takes an exclusive, non-blocking flock on dir/.lock. The kernel
// drops it when the process dies, so a kill -9 never leaves a stale lock.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return f, nil
}

// Close releases the directory; later calls fail with ErrClosed (or
// ErrNotFound from lookups). Everything acknowledged is already durable,
// so Close has nothing to flush.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.msgs = map[string]*entry{}
	return s.lock.Close()
}

func (s *Spool) recover(ctx context.Context) error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	bodies := map[string]bool{}
	var envs []string
	changed := false
	for _, de := range ents {
		name := de.Name()
		switch {
		case de.IsDir(), name == lockName:
		case strings.HasPrefix(name, tmpPrefix):
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			s.log.Info("spool: removed interrupted write", "file", name)
			changed = true
		case strings.HasSuffix(name, bodyExt):
			bodies[strings.TrimSuffix(name, bodyExt)] = true
		case strings.HasSuffix(name, envExt):
			envs = append(envs, strings.TrimSuffix(name, envExt))
		default:
			s.log.Warn("spool: ignoring unknown file", "file", name)
		}
	}
	for _, id := range envs {
		if err := ctx.Err(); err != nil {
			return err
		}
		env, derr := s.load(id, bodies[id])
		if derr != nil {
			s.quarantine(id, bodies[id], derr)
			delete(bodies, id)
			changed = true
			continue
		}
		delete(bodies, id)
		if s.requeueInterrupted(env) {
			if err := s.writeEnvelope(env, false); err != nil {
				return err
			}
			changed = true
		}
		s.msgs[id] = &entry{env: env}
	}
	for id := range bodies {
		// A body whose envelope never got renamed into place: Put did not
		// return, so nobody was told 250. Delete it.
		if err := os.Remove(s.path(id, bodyExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		s.log.Info("spool: removed body of unfinished put", "id", id)
		changed = true
	}
	if changed {
		return fsutil.SyncDir(s.dir)
	}
	return nil
}

func (s *Spool) load(id string, haveBody bool) (*Envelope, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: file name is not a spool id", ErrCorrupt)
	}
	b, err := os.ReadFile(s.path(id, envExt))
	if err != nil {
		return nil, err
	}
	env, err := DecodeEnvelope(b)
	if err != nil {
		return nil, err
	}
	if env.ID != id {
		return nil, fmt.Errorf("%w: envelope id %q in file for %q", ErrCorrupt, env.ID, id)
	}
	if !haveBody {
		return nil, fmt.Errorf("%w: body file missing", ErrCorrupt)
	}
	return env, nil
}

// quarantine moves a damaged message aside and records it.
func (s *Spool) quarantine(id string, haveBody bool, cause error) {
	d := Damage{ID: id, Path: filepath.Join(s.dir, id+envExt), Err: cause}
	dst := filepath.Join(s.dir, DamagedDir, id+envExt)
	if err := os.Rename(d.Path, dst); err == nil {
		d.Path = dst
	} else {
		s.log.Error("spool: cannot move damaged envelope", "id", id, "err", err)
	}
	if haveBody {
		if err := os.Rename(s.path(id, bodyExt), filepath.Join(s.dir, DamagedDir, id+bodyExt)); err != nil {
			s.log.Error("spool: cannot move damaged body", "id", id, "err", err)
		}
	}
	s.log.Error("spool: damaged message moved aside", "id", id, "path", d.Path, "err", cause)
	s.damaged = append(s.damaged, d)
}

func (s *Spool) requeueInterrupted(env *Envelope) bool {
	changed := false
	for i := range env.Recipients {
		r := &env.Recipients[i]
		if r.State == Delivering {
			r.State = Queued
			r.Reason = "attempt interrupted by restart"
			r.Updated = s.now()
			changed = true
			s.log.Warn("spool: interrupted attempt will be repeated", "id", env.ID, "rcpt", r.Addr)
		}
	}
	return changed
}

// Damaged returns the envelopes Open moved aside.
func (s *Spool) Damaged() []Damage { return slices.Clone(s.damaged) }

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

func (s *Spool) path(id, ext string) string { return filepath.Join(s.dir, id+ext) }

// newID returns 8 bytes of big-endian arrival nanoseconds followed by 8
// random bytes, in hex: unique, and sorted by arrival.
func (s *Spool) newID() (string, error) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(s.now().UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Put stores a new message and returns its ID once it is durable (see the
// package doc): only then may the caller reply 250. env is copied; its ID,
// V and Size are set by Put, Arrival when zero, and recipients without a
// State become Queued. A failure wraps ErrInvalid or is an *Error.
func (s *Spool) Put(ctx context.Context, env *Envelope, body io.Reader) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", &Error{Op: "put", Err: err}
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return "", &Error{Op: "put", Err: ErrClosed}
	}
	e := env.Clone()
	id, err := s.newID()
	if err != nil {
		return "", &Error{Op: "put", Err: err}
	}
	now := s.now()
	e.ID, e.V = id, FormatVersion
	if e.Arrival.IsZero() {
		e.Arrival = now
	}
	for i := range e.Recipients {
		if e.Recipients[i].State == "" {
			e.Recipients[i].State = Queued
			e.Recipients[i].Updated = now
		}
	}
	if err := e.validate(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	n, err := s.writeFile(ctx, s.path(id, bodyExt), body)
	if err != nil {
		return "", &Error{Op: "put", ID: id, Err: err}
	}
	e.Size = n
	if err := s.writeEnvelope(e, true); err != nil {
		_ = os.Remove(s.path(id, bodyExt))
		return "", &Error{Op: "put", ID: id, Err: err}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", &Error{Op: "put", ID: id, Err: ErrClosed}
	}
	s.msgs[id] = &entry{env: e}
	s.mu.Unlock()
	return id, nil
}

// writeFile writes r to a temporary file, fsyncs it and renames it to dst.
// It does not sync the directory.
func (s *Spool) writeFile(ctx context.Context, dst string, r io.Reader) (int64, error) {
	return s.writeTemp(dst, func(f *os.File) (int64, error) { return io.Copy(f, fsutil.ContextReader(ctx, r)) })
}

// writeTemp is writeFile with the writing done by fill.
func (s *Spool) writeTemp(dst string, fill func(*os.File) (int64, error)) (int64, error) {
	f, err := os.CreateTemp(s.dir, tmpPrefix)
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	n, err := fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, err
	}
	return n, nil
}

// writeEnvelope atomically replaces e's envelope file and fsyncs the
// directory when syncdir is set.
func (s *Spool) writeEnvelope(e *Envelope, syncdir bool) error {
	b, err := EncodeEnvelope(e)
	if err != nil {
		return err
	}
	write := func(f *os.File) (int64, error) { n, err := f.Write(b); return int64(n), err }
	if _, err := s.writeTemp(s.path(e.ID, envExt), write); err != nil {
		return err
	}
	if syncdir {
		return fsutil.SyncDir(s.dir)
	}
	return nil
}

func (s *Spool) entry(id string) (*entry, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	s.mu.Lock()
	e := s.msgs[id]
	s.mu.Unlock()
	if e == nil {
		return nil, ErrNotFound
	}
	return e, nil
}

// Get returns a copy of the message's envelope.
func (s *Spool) Get(id string) (*Envelope, error) {
	e, err := s.entry(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return nil, ErrNotFound
	}
	return e.env.Clone(), nil
}

// Body opens the message body. The caller closes it. A body opened before
// Remove stays readable until closed.
func (s *Spool) Body(id string) (io.ReadCloser, error) {
	if _, err := s.Get(id); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(id, bodyExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, &Error{Op: "body", ID: id, Err: err}
	}
	return f, nil
}

// List returns copies of every envelope, oldest first.
func (s *Spool) List() []*Envelope {
	s.mu.Lock()
	ents := make([]*entry, 0, len(s.msgs))
	for _, e := range s.msgs {
		ents = append(ents, e)
	}
	s.mu.Unlock()
	out := make([]*Envelope, 0, len(ents))
	for _, e := range ents {
		e.mu.Lock()
		if !e.removed {
			out = append(out, e.env.Clone())
		}
		e.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b *Envelope) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Len returns the number of messages in the spool.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Update applies fn to a copy of the envelope under the message's lock and
// durably replaces the envelope with the result, returning a copy of it.
// When fn returns an error nothing is written and that error is returned.
// fn must not call other methods on s for the same message (it would
// deadlock). ID and V cannot be changed.
func (s *Spool) Update(ctx context.Context, id string, fn func(*Envelope) error) (*Envelope, error) {
	e, err := s.entry(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return nil, ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "update", ID: id, Err: err}
	}
	c := e.env.Clone()
	if err := fn(c); err != nil {
		return nil, err
	}
	c.ID, c.V = id, FormatVersion
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := s.writeEnvelope(c, true); err != nil {
		return nil, &Error{Op: "update", ID: id, Err: err}
	}
	e.env = c
	return c.Clone(), nil
}

// errNoChange lets Recall and Claim skip the write when nothing changed.
var errNoChange = errors.New("no change")

// matches reports whether addr is selected by rcpts (all when empty).
func matches(rcpts []string, addr string) bool {
	if len(rcpts) == 0 {
		return true
	}
	for _, r := range rcpts {
		if strings.EqualFold(r, addr) {
			return true
		}
	}
	return false
}

// Recall withdraws the named recipients (all recipients when rcpts is
// empty; addresses compare case-insensitively) and returns those that are
// recalled when it returns. A Queued or Deferred recipient becomes
// Recalled, and that change is durable before Recall returns; a recipient
// already Recalled is reported again, so a retried recall gives the same
// answer. Delivering, Delivered and Failed recipients are not recalled
// (too late) and are absent from the result.
func (s *Spool) Recall(ctx context.Context, id string, rcpts []string) ([]string, error) {
	var recalled []string
	_, err := s.Update(ctx, id, func(env *Envelope) error {
		changed := false
		now := s.now()
		for i := range env.Recipients {
			r := &env.Recipients[i]
			if !matches(rcpts, r.Addr) {
				continue
			}
			switch {
			case r.State.Pending():
				r.State, r.Reason, r.Updated = Recalled, "recalled", now
				r.NextAttempt = time.Time{}
				changed = true
				recalled = append(recalled, r.Addr)
			case r.State == Recalled:
				recalled = append(recalled, r.Addr)
			}
		}
		if !changed {
			return errNoChange
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return nil, err
	}
	return recalled, nil
}

// Claim durably moves one pending (Queued or Deferred) recipient to
// Delivering before a delivery attempt and counts the attempt. It reports
// false when the recipient is not pending (recalled, already claimed,
// finished) or not a recipient of the message.
func (s *Spool) Claim(ctx context.Context, id, rcpt string) (bool, error) {
	got, err := s.ClaimMany(ctx, id, []string{rcpt})
	return len(got) == 1, err
}

// ClaimMany is Claim for several recipients with one durable write; it
// returns the addresses it claimed, in envelope order. An empty rcpts
// claims every pending recipient.
func (s *Spool) ClaimMany(ctx context.Context, id string, rcpts []string) ([]string, error) {
	var claimed []string
	_, err := s.Update(ctx, id, func(env *Envelope) error {
		now := s.now()
		for i := range env.Recipients {
			r := &env.Recipients[i]
			if r.State.Pending() && matches(rcpts, r.Addr) {
				r.State, r.Updated = Delivering, now
				r.Attempts++
				claimed = append(claimed, r.Addr)
			}
		}
		if len(claimed) == 0 {
			return errNoChange
		}
		env.Attempts++
		return nil
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return nil, err
	}
	return claimed, nil
}

// Remove deletes a message. The envelope goes first (it is the commit
// point), so a crash half-way leaves an orphan body that Open deletes.
func (s *Spool) Remove(ctx context.Context, id string) error {
	e, err := s.entry(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: "remove", ID: id, Err: err}
	}
	if err := os.Remove(s.path(id, envExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &Error{Op: "remove", ID: id, Err: err}
	}
	e.removed = true
	s.mu.Lock()
	delete(s.msgs, id)
	s.mu.Unlock()
	if err := os.Remove(s.path(id, bodyExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("spool: body left behind, Open will delete it", "id", id, "err", err)
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return &Error{Op: "remove", ID: id, Err: err}
	}
	return nil
}
