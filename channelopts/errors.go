package channelopts

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, wrapped by *Error.
var (
	// ErrSyntax: a line or keyword that cannot be read.
	ErrSyntax = errors.New("syntax error")
	// ErrMissingArgument: a keyword that needs an integer has none.
	ErrMissingArgument = errors.New("missing integer argument")
	// ErrRange: a number outside the allowed range, or limits that
	// contradict each other (min above max).
	ErrRange = errors.New("value out of range")
	// ErrContradiction: two keywords of one channel that exclude each
	// other.
	ErrContradiction = errors.New("contradictory keywords")
	// ErrUnknownMode: a tracking_mode other than 0, 1 or 2.
	ErrUnknownMode = errors.New("unknown tracking_mode")
	// ErrInclude: an include line ("<file"), which this package does not
	// follow.
	ErrInclude = errors.New("include files are not supported")
)

// Error is a problem in an option file, a channel definition or a value
// built in Go. File and Line are zero for values that did not come from a
// file.
type Error struct {
	File    string
	Line    int
	Channel string // the channel's name, "" for MTA options
	Keyword string // the option or keyword, as written
	Err     error
}

// Error formats the problem as "file:line: channel name: keyword: cause",
// leaving out the parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" || e.Line > 0 {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Channel != "" {
		fmt.Fprintf(&b, "channel %s: ", e.Channel)
	}
	if e.Keyword != "" {
		fmt.Fprintf(&b, "%s: ", e.Keyword)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// maxErrors bounds the problems one parse reports.
const maxErrors = 50

type errList struct {
	errs []error
}

func (l *errList) add(e *Error) {
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, e)
	}
}

func (l *errList) addf(file string, line int, channel, keyword string, sentinel error, format string, args ...any) {
	l.add(&Error{File: file, Line: line, Channel: channel, Keyword: keyword,
		Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))})
}

func (l *errList) err() error { return errors.Join(l.errs...) }
