package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
)

// TestMain lets the test binary act as a contended-writer child, as the
// loadgen program does.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "writer" {
		if err := writerMain(os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// wantRows is every row the report must have, by section and variant.
var wantRows = [][2]string{
	{"SMTP 1 KiB, 8 connections", "go-smtp, no-op backend"},
	{"SMTP 1 KiB, 8 connections", "through smtpext"},
	{"SMTP 1 KiB, 8 connections", "middleware + memstore"},
	{"SMTP 1 KiB, 8 connections", "middleware + memcached"},
	{"SMTP 1 MiB, 1 connection", "go-smtp, no-op backend"},
	{"SMTP 1 MiB, 1 connection", "through smtpext"},
	{"SMTP 1 MiB, 1 connection", "middleware + memstore"},
	{"SMTP 1 MiB, 1 connection", "middleware + memcached"},
	{"store (memcached, 1 connection)", "raw gomemcache get"},
	{"store (memcached, 1 connection)", "raw gomemcache set"},
	{"store (memcached, 1 connection)", "raw gomemcache get+CAS"},
	{"store (memcached, 1 connection)", "engine event, 1 writer"},
	{"store (memcached, 1 connection)", "engine event, 2 writer processes, 1 record (sum)"},
	{"store (memcached, 1 connection)", "engine query (Track)"},
	{"MTQP TRACK, 1 connection", "raw gomemcache get (1 goroutine)"},
	{"MTQP TRACK, 1 connection", "TRACK, engine on memstore"},
	{"MTQP TRACK, 1 connection", "TRACK, engine on memcached"},
	{"MTQP TRACK, 16 connections", "raw gomemcache get (16 goroutines)"},
	{"MTQP TRACK, 16 connections", "TRACK, engine on memstore"},
	{"MTQP TRACK, 16 connections", "TRACK, engine on memcached"},
}

func init() {
	for _, sec := range []string{"growth: event cost (memcached)", "growth: MTQP TRACK time (memcached, 1 connection)", "growth: MTQP report size"} {
		for _, n := range []string{"1 recipient", "100 recipients", "1000 recipients", "10000 recipients"} {
			wantRows = append(wantRows, [2]string{sec, n})
		}
	}
}

// parseTable reads the Markdown table rows: section, variant -> cells.
func parseTable(t *testing.T, out string) map[[2]string][]string {
	rows := map[[2]string][]string{}
	for _, ln := range strings.Split(out, "\n") {
		if !strings.HasPrefix(ln, "| ") || strings.HasPrefix(ln, "| section ") {
			continue
		}
		cells := strings.Split(strings.Trim(ln, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		require.Len(t, cells, 8, "row %q", ln)
		rows[[2]string{cells[0], cells[1]}] = cells
	}
	return rows
}

func positive(t *testing.T, what, s string) {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if assert.NoError(t, err, "%s: %q", what, s) {
		assert.Greater(t, v, 0.0, "%s", what)
	}
}

// TestQuickRunReportsEveryRowWithPositiveFigures runs the whole load
// generator in -quick mode against its own memcached and checks that the
// printed table and the written document have every row, each with a
// positive median, a confidence interval around it and, for compared rows, a
// positive ratio. It asserts nothing about speed.
func TestQuickRunReportsEveryRowWithPositiveFigures(t *testing.T) {
	testenv.LookPath(t, "memcached", "memcached")
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	var stdout bytes.Buffer
	err := run(context.Background(), config{Quick: true, Rounds: 10, Writers: 2, Out: out, Stdout: &stdout})
	require.NoError(t, err)

	rows := parseTable(t, stdout.String())
	for _, w := range wantRows {
		cells, ok := rows[w]
		if !assert.True(t, ok, "missing row %v", w) {
			continue
		}
		positive(t, w[0]+"/"+w[1]+" median", cells[2])
		lohi := strings.Split(cells[3], " – ")
		if assert.Len(t, lohi, 2, "CI of %v", w) {
			positive(t, w[0]+"/"+w[1]+" CI low", lohi[0])
			lo, _ := strconv.ParseFloat(lohi[0], 64)
			hi, _ := strconv.ParseFloat(lohi[1], 64)
			med, _ := strconv.ParseFloat(cells[2], 64)
			assert.LessOrEqual(t, lo, med*1.001, "%v: CI low above median", w)
			assert.GreaterOrEqual(t, hi, med*0.999, "%v: CI high below median", w)
		}
		if cells[5] != "—" {
			positive(t, w[0]+"/"+w[1]+" ratio", cells[6])
		}
	}
	assert.Len(t, rows, len(wantRows), "unexpected extra rows")

	doc, err := os.ReadFile(out)
	require.NoError(t, err)
	docRows := parseTable(t, string(doc))
	assert.Equal(t, rows, docRows, "the document must carry the printed table")
	for _, s := range []string{"`nproc`", "/proc/cpuinfo", "go version", "memcached 1.", "make bench", notesMarker} {
		assert.Contains(t, string(doc), s)
	}

}

// TestWriteKeepsHandWrittenNotes: regenerating the report keeps what was
// written below the marker and replaces what is above it.
func TestWriteKeepsHandWrittenNotes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "docs", "BENCHMARKS.md")
	require.NoError(t, writeKeepingNotes(out, "generated one\n"))
	doc, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(out, append(doc, "hand-written finding\n"...), 0o644))
	require.NoError(t, writeKeepingNotes(out, "generated two\n"))
	doc, err = os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, "generated two\n"+notesMarker+"\nhand-written finding\n", string(doc))
}

// TestSummarizeOrderStatisticInterval checks the median interval against
// hand-computed ranks.
func TestSummarizeOrderStatisticInterval(t *testing.T) {
	for _, tc := range []struct {
		xs          []float64
		med, lo, hi float64
		minCoverage float64
	}{
		{[]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 5.5, 2, 9, 0.978},
		{[]float64{3, 1, 2}, 2, 1, 3, 0.75},
		{[]float64{1, 2, 3, 4, 5, 6}, 3.5, 1, 6, 0.968},
		{[]float64{4}, 4, 4, 4, 0},
	} {
		s := summarize(tc.xs)
		assert.Equal(t, tc.med, s.Median)
		assert.Equal(t, tc.lo, s.Lo)
		assert.Equal(t, tc.hi, s.Hi)
		assert.GreaterOrEqual(t, s.Coverage, tc.minCoverage)
	}
}
