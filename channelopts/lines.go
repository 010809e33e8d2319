package channelopts

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// maxLineBytes bounds one physical line.
const maxLineBytes = 1 << 20

// logicalLine is one line after continuation lines are joined.
type logicalLine struct {
	text  string
	line  int  // physical line number of its first line
	blank bool // an empty or white-space line (a block separator)
}

// readLogical splits r into logical lines. Physical lines whose first byte
// is in comment are dropped, also inside a continuation. A trailing
// backslash joins the next physical line; a blank line ends a pending
// continuation and is itself returned.
func readLogical(r io.Reader, comment string) ([]logicalLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	var (
		out     []logicalLine
		cur     strings.Builder
		start   int
		pending bool
		n       int
	)
	flush := func() {
		if pending {
			t := cur.String()
			// A continuation of nothing ("\" alone) is a blank line.
			out = append(out, logicalLine{text: t, line: start, blank: strings.TrimSpace(t) == ""})
			cur.Reset()
			pending = false
		}
	}
	for sc.Scan() {
		n++
		s := strings.TrimSuffix(sc.Text(), "\r")
		if s != "" && strings.IndexByte(comment, s[0]) >= 0 {
			continue
		}
		if strings.TrimSpace(s) == "" {
			flush()
			out = append(out, logicalLine{line: n, blank: true})
			continue
		}
		if !pending {
			start = n
			pending = true
		}
		if t, ok := strings.CutSuffix(s, `\`); ok {
			cur.WriteString(t)
			continue
		}
		cur.WriteString(s)
		flush()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	flush()
	return out, nil
}

// isInt reports whether s is a decimal integer literal with an optional
// sign: the form of a keyword argument.
func isInt(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseInt parses an integer literal, saturating far outside any range
// this package accepts so that huge values report ErrRange, not ErrSyntax.
func parseInt(s string) (int64, bool) {
	if !isInt(s) {
		return 0, false
	}
	neg := s[0] == '-'
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	var v int64
	for i := 0; i < len(s); i++ {
		v = v*10 + int64(s[i]-'0')
		if v > 1<<40 {
			v = 1 << 40
		}
	}
	if neg {
		v = -v
	}
	return v, true
}
