package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// summary is the median of a series of repetitions with a distribution-free
// confidence interval for it.
type summary struct {
	Median, Lo, Hi float64
	// Coverage is the exact coverage of [Lo, Hi] (at least 0.95 when there
	// are six or more samples; with fewer it is the range of the samples).
	Coverage float64
	N        int
}

// summarize returns the median of xs and the order-statistic confidence
// interval for the median: [x(j), x(n-j+1)] (1-based ranks) with the largest
// j for which P(B < j) <= 0.025, B ~ Binomial(n, 1/2). It makes no
// assumption about the distribution, which on a shared machine is skewed.
func summarize(xs []float64) summary {
	n := len(xs)
	if n == 0 {
		return summary{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	var med float64
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	// cdf[k] = P(B <= k)
	j := 0
	cum := 0.0
	for k := 0; k < n; k++ {
		cum += binom(n, k) / math.Pow(2, float64(n))
		if cum <= 0.025 {
			j = k + 1 // P(B < k+1) <= 0.025
		} else {
			break
		}
	}
	if j == 0 {
		j = 1 // too few samples: the whole range
	}
	tail := 0.0
	for k := 0; k < j; k++ {
		tail += binom(n, k) / math.Pow(2, float64(n))
	}
	return summary{Median: med, Lo: s[j-1], Hi: s[n-j], Coverage: 1 - 2*tail, N: n}
}

func binom(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// fmtNum prints a figure with three significant digits (more for large
// integers), which is all a shared two-core machine can support.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// row is one line of the result table.
type row struct {
	Section, Name, Unit string
	Value               summary
	// Baseline names the row this one is compared with ("" for a
	// baseline itself); Ratio is the median of the per-repetition ratios
	// value/baseline (the two ran back to back in each round).
	Baseline string
	Ratio    summary
}

// markdownTable renders rows as a Markdown table.
func markdownTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| section | variant | median | 95% CI | unit | compared with | ratio | ratio 95% CI |\n")
	b.WriteString("|---|---|---:|---|---|---|---:|---|\n")
	for _, r := range rows {
		ratio, rci, base := "1 (baseline)", "", "—"
		if r.Baseline != "" {
			base = r.Baseline
			ratio = fmt.Sprintf("%.3f", r.Ratio.Median)
			rci = fmt.Sprintf("%.3f – %.3f", r.Ratio.Lo, r.Ratio.Hi)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s – %s | %s | %s | %s | %s |\n",
			r.Section, r.Name, fmtNum(r.Value.Median), fmtNum(r.Value.Lo), fmtNum(r.Value.Hi),
			r.Unit, base, ratio, rci)
	}
	return b.String()
}
