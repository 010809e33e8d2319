package smtpext

import "bytes"

// dotState follows the end-of-data state machine of go-smtp v0.26.0's
// DATA reader (data.go), so the layer leaves data mode on exactly the
// byte where go-smtp stops reading. It reproduces go-smtp's quirks:
//
//   - the marker is CR LF "." CR LF where the CR LF before the dot must
//     itself have been seen as a line end: "\r\r\n.\r\n" does not end the
//     data (a CR after a CR is plain data for go-smtp), nor does a bare
//     "\n.\r\n" or "\n.\n";
//   - ".\rX" at the start of a line: go-smtp drops the dot and the CR and
//     keeps X as data; for framing only the state matters.
//
// RFC 5321 section 4.1.1.4 defines the marker; section 4.5.2 the
// transparency (dot-stuffing) procedure.
type dotState struct{ s uint8 }

const (
	dsBegin uint8 = iota // at the beginning of a line (initial state)
	dsDot                // "." at the beginning of a line
	dsDotCR              // ".\r" at the beginning of a line
	dsCR                 // "\r" seen
	dsData               // inside a line
)

// scan consumes p and reports how many bytes belong to the message
// (including the end marker) and whether the end marker was reached.
func (d *dotState) scan(p []byte) (n int, end bool) {
	s := d.s
	i := 0
	for i < len(p) {
		switch s {
		case dsData:
			j := bytes.IndexByte(p[i:], '\r')
			if j < 0 {
				d.s = dsData
				return len(p), false
			}
			i += j + 1
			s = dsCR
			continue
		case dsCR:
			if p[i] == '\n' {
				s = dsBegin
			} else {
				s = dsData
			}
		case dsBegin:
			switch p[i] {
			case '.':
				s = dsDot
			case '\r':
				s = dsCR
			default:
				s = dsData
			}
		case dsDot:
			if p[i] == '\r' {
				s = dsDotCR
			} else {
				s = dsData
			}
		case dsDotCR:
			if p[i] == '\n' {
				d.s = dsBegin
				return i + 1, true
			}
			s = dsData
		}
		i++
	}
	d.s = s
	return i, false
}
