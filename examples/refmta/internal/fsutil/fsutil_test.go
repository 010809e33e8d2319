package fsutil

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type table struct{ lines []string }

func parse(r io.Reader, name string) (*table, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if strings.Contains(string(b), "bad") {
		return nil, errors.New(name + ": bad line")
	}
	return &table{lines: strings.Fields(string(b))}, nil
}

func TestReloadKeepsThePreviousTableWhenTheNewFileIsBad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t")
	require.NoError(t, os.WriteFile(path, []byte("a b"), 0o600))
	f, err := Load(context.Background(), path, "test", parse)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, f.Table().lines)

	require.NoError(t, os.WriteFile(path, []byte("a bad"), 0o600))
	err = f.Reload(context.Background())
	require.ErrorContains(t, err, "test: ")
	require.Equal(t, []string{"a", "b"}, f.Table().lines)

	require.NoError(t, os.WriteFile(path, []byte("c"), 0o600))
	require.NoError(t, f.Reload(context.Background()))
	require.Equal(t, []string{"c"}, f.Table().lines)

	_, err = Load(context.Background(), filepath.Join(t.TempDir(), "missing"), "test", parse)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestContextReaderStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := ContextReader(ctx, strings.NewReader("0123456789"))
	buf := make([]byte, 4)
	n, err := r.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	cancel()
	_, err = r.Read(buf)
	require.ErrorIs(t, err, context.Canceled)
}

func TestSyncDir(t *testing.T) {
	require.NoError(t, SyncDir(t.TempDir()))
	require.Error(t, SyncDir(filepath.Join(t.TempDir(), "missing")))
}
