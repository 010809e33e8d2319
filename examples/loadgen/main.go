// Command loadgen measures, in one run on one machine, what message tracking
// costs against its baselines: SMTP acceptance through plain go-smtp,
// smtpext and the tracking middleware (package tracking/gosmtp) on the
// in-memory store and on memcached; the tracking engine's store operations
// against raw gomemcache calls; MTQP TRACK (RFC 3887) against a raw
// memcached get; and how the cost of an event and of a TRACK report (RFC
// 3886 message/tracking-status) grows with the number of recipients.
//
// Every variant is measured for a fixed time slice, round-robin: each round
// runs every variant once (in an order rotated from round to round), so that
// load from other processes on a shared machine falls on all variants alike.
// A warm-up round is discarded. Each figure is the median of the rounds with
// an order-statistic 95% confidence interval, and each ratio is the median of
// the per-round ratios to the baseline measured in the same round.
//
// Usage:
//
//	loadgen [-quick] [-rounds n] [-slice d] [-out docs/BENCHMARKS.md] [-only substr] [-cpuprofile file]
//
// loadgen starts its own memcached on a free loopback port (as user nobody
// when run as root) unless -memcached names one. The contended-writer
// figure runs several copies of this program as child processes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"
)

// variant is one measured configuration.
type variant struct {
	Section, Name, Unit string
	// Baseline is the Name of the variant in the same section this one
	// is compared with; empty for a baseline.
	Baseline string
	// Run measures for about d and returns the figure in Unit.
	Run func(ctx context.Context, d time.Duration) (float64, error)
}

type config struct {
	Quick      bool
	Rounds     int
	Slice      time.Duration
	Memcached  string
	Only       string
	Writers    int
	Out        string
	CPUProfile string
	Stdout     io.Writer
	// Progress receives a line per round; nil discards.
	Progress io.Writer
}

func main() {
	if os.Getenv(childEnv) == "writer" {
		if err := writerMain(os.Stdin, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	var c config
	flag.BoolVar(&c.Quick, "quick", false, "smoke test: 3 rounds of 15 ms slices and small messages counts")
	flag.IntVar(&c.Rounds, "rounds", 10, "measured rounds (each runs every variant once)")
	flag.DurationVar(&c.Slice, "slice", 400*time.Millisecond, "time slice per variant per round")
	flag.StringVar(&c.Memcached, "memcached", "", "host:port of a memcached to use (default: start one)")
	flag.StringVar(&c.Only, "only", "", "run only variants whose section/name contains this")
	flag.IntVar(&c.Writers, "writers", 4, "writer processes for the contended event figure")
	flag.StringVar(&c.Out, "out", "", "write the report (Markdown) to this file")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured rounds")
	flag.Parse()
	c.Stdout, c.Progress = os.Stdout, os.Stderr
	if err := run(context.Background(), c); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c config) error {
	if c.Quick {
		c.Rounds, c.Slice = 3, 15*time.Millisecond
		if c.Writers > 2 {
			c.Writers = 2
		}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Rounds < 1 {
		return errors.New("loadgen: -rounds must be at least 1")
	}
	env, err := newEnv(ctx, c)
	if err != nil {
		return err
	}
	defer env.Close()
	all := env.variants()
	var vs []variant
	for _, v := range all {
		if c.Only == "" || strings.Contains(v.Section+"/"+v.Name, c.Only) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return fmt.Errorf("loadgen: no variant matches %q", c.Only)
	}
	// Pull in the baselines of the selected variants.
	if c.Only != "" {
		vs = withBaselines(all, vs)
	}
	start := time.Now()
	loadBefore := loadavg()
	samples := make([][]float64, len(vs))
	var prof *os.File
	for round := 0; round <= c.Rounds; round++ { // round 0 is the warm-up
		if round == 1 && c.CPUProfile != "" {
			prof, err = os.Create(c.CPUProfile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(prof); err != nil {
				return err
			}
		}
		for k := range vs {
			i := (k + round) % len(vs)
			v := vs[i]
			x, err := v.Run(ctx, c.Slice)
			if err != nil {
				return fmt.Errorf("loadgen: %s/%s: %w", v.Section, v.Name, err)
			}
			if round > 0 {
				samples[i] = append(samples[i], x)
			}
		}
		fmt.Fprintf(c.Progress, "loadgen: round %d/%d done (%v)\n", round, c.Rounds, time.Since(start).Round(time.Second))
	}
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	rows := buildRows(vs, samples)
	table := markdownTable(rows)
	fmt.Fprint(c.Stdout, table)
	notes := env.notes()
	for _, n := range notes {
		fmt.Fprintln(c.Stdout, "note:", n)
	}
	if c.Out != "" {
		doc := document(c, env, table, notes, loadBefore, loadavg(), time.Since(start))
		if err := writeKeepingNotes(c.Out, doc); err != nil {
			return err
		}
	}
	return nil
}

func withBaselines(all, sel []variant) []variant {
	have := map[string]bool{}
	for _, v := range sel {
		have[v.Section+"/"+v.Name] = true
	}
	var out []variant
	for _, v := range all {
		k := v.Section + "/" + v.Name
		need := have[k]
		if !need {
			for _, s := range sel {
				if s.Section == v.Section && s.Baseline == v.Name {
					need = true
				}
			}
		}
		if need {
			out = append(out, v)
		}
	}
	return out
}

func buildRows(vs []variant, samples [][]float64) []row {
	idx := map[string]int{}
	for i, v := range vs {
		idx[v.Section+"/"+v.Name] = i
	}
	rows := make([]row, len(vs))
	for i, v := range vs {
		rows[i] = row{Section: v.Section, Name: v.Name, Unit: v.Unit, Value: summarize(samples[i]), Baseline: v.Baseline}
		if v.Baseline == "" {
			continue
		}
		b := samples[idx[v.Section+"/"+v.Baseline]]
		var ratios []float64
		for k := range samples[i] {
			if k < len(b) && b[k] != 0 {
				ratios = append(ratios, samples[i][k]/b[k])
			}
		}
		rows[i].Ratio = summarize(ratios)
	}
	return rows
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// notesMarker separates the generated part of the report from notes written
// by hand, which a new run keeps.
const notesMarker = "<!-- Everything below this line is written by hand and kept by loadgen. -->"

func writeKeepingNotes(path, doc string) error {
	old, err := os.ReadFile(path)
	if err == nil {
		if i := strings.Index(string(old), notesMarker); i >= 0 {
			doc += string(old[i:])
		}
	}
	if !strings.Contains(doc, notesMarker) {
		doc += "\n" + notesMarker + "\n"
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
