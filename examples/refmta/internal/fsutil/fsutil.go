// Package fsutil holds the file-system helpers the reference MTA's
// packages share: directory fsync (what makes a rename durable), a reader
// that stops when its context ends, and a table loaded from a file that
// can be reloaded atomically.
package fsutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// SyncDir fsyncs a directory, so that entries created or renamed in it
// survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ContextReader returns a reader that fails with ctx.Err() once ctx is
// done, checked before each Read of r.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Reloadable is a table parsed from a file that can be re-read on demand
// (on SIGHUP, say). A failed reload keeps the previous table. It is safe
// for concurrent use.
type Reloadable[T any] struct {
	path   string
	prefix string
	parse  func(r io.Reader, name string) (*T, error)
	cur    atomic.Pointer[T]
}

// Load reads path with parse; errors are prefixed with prefix ("users").
func Load[T any](ctx context.Context, path, prefix string, parse func(io.Reader, string) (*T, error)) (*Reloadable[T], error) {
	f := &Reloadable[T]{path: path, prefix: prefix, parse: parse}
	if err := f.Reload(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload re-reads the file. On error the previous table stays in use.
func (f *Reloadable[T]) Reload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("%s: %w", f.prefix, err)
	}
	defer fh.Close()
	t, err := f.parse(fh, f.path)
	if err != nil {
		return fmt.Errorf("%s: %w", f.prefix, err)
	}
	f.cur.Store(t)
	return nil
}

// Table returns the current table.
func (f *Reloadable[T]) Table() *T { return f.cur.Load() }
