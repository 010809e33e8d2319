package mtqp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dateLayout is the RFC 5322 section 3.3 date-time Format writes: day of
// week, one- or two-digit day, numeric zone.
const dateLayout = "Mon, 2 Jan 2006 15:04:05 -0700"

// FormatDate writes t as an RFC 5322 section 3.3 date-time, in t's own
// zone offset, to the second.
func FormatDate(t time.Time) string { return t.Format(dateLayout) }

var months = map[string]time.Month{
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
	"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}

// obsZones are RFC 5322 section 4.3's obsolete zone names. Military
// one-letter zones are taken as -0000 (unknown), as that section says.
var obsZones = map[string]int{
	"ut": 0, "gmt": 0, "z": 0,
	"edt": -4, "est": -5, "cdt": -5, "cst": -6,
	"mdt": -6, "mst": -7, "pdt": -7, "pst": -8,
}

// ParseDate parses an RFC 5322 section 3.3 date-time, tolerating the
// obsolete syntax of section 4.3: optional day of week, comments, folding
// white space anywhere, two- and three-digit years, missing seconds and
// the zone names UT, GMT, EST/EDT, CST/CDT, MST/MDT, PST/PDT and military
// letters. The result carries the written offset.
func ParseDate(v string) (time.Time, error) {
	// Fast path for the canonical form FormatDate writes.
	if t, err := time.Parse(dateLayout, v); err == nil && len(v) <= 40 {
		_, off := t.Zone()
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, zone(off))
		if FormatDate(t) == v {
			return t, nil
		}
	}
	s := stripComments(v)
	s = strings.ReplaceAll(s, ",", " , ")
	f := strings.Fields(s)
	if len(f) > 0 && len(f[0]) >= 3 && isAlpha(f[0]) {
		if _, isMonth := months[strings.ToLower(f[0][:3])]; !isMonth || len(f) > 1 && f[1] == "," {
			f = f[1:] // day of week
			if len(f) > 0 && f[0] == "," {
				f = f[1:]
			}
		}
	}
	if len(f) < 4 {
		return time.Time{}, fmt.Errorf("mtqp: date %q too short", truncate(v, 60))
	}
	day, err := strconv.Atoi(f[0])
	if err != nil || len(f[0]) > 2 || day < 1 || day > 31 {
		return time.Time{}, fmt.Errorf("mtqp: bad day in %q", truncate(v, 60))
	}
	if len(f[1]) < 3 {
		return time.Time{}, fmt.Errorf("mtqp: bad month in %q", truncate(v, 60))
	}
	mon, ok := months[strings.ToLower(f[1][:3])]
	if !ok || (len(f[1]) != 3 && !isAlpha(f[1])) {
		return time.Time{}, fmt.Errorf("mtqp: bad month in %q", truncate(v, 60))
	}
	year, err := strconv.Atoi(f[2])
	if err != nil || len(f[2]) < 2 || len(f[2]) > 4 {
		return time.Time{}, fmt.Errorf("mtqp: bad year in %q", truncate(v, 60))
	}
	switch len(f[2]) {
	case 2:
		if year < 50 {
			year += 2000
		} else {
			year += 1900
		}
	case 3:
		year += 1900
	}
	hms := strings.Split(f[3], ":")
	if len(hms) < 2 || len(hms) > 3 {
		return time.Time{}, fmt.Errorf("mtqp: bad time in %q", truncate(v, 60))
	}
	var tv [3]int
	for i, p := range hms {
		n, err := strconv.Atoi(p)
		if err != nil || len(p) != 2 {
			return time.Time{}, fmt.Errorf("mtqp: bad time in %q", truncate(v, 60))
		}
		tv[i] = n
	}
	if tv[0] > 23 || tv[1] > 59 || tv[2] > 60 {
		return time.Time{}, fmt.Errorf("mtqp: bad time in %q", truncate(v, 60))
	}
	if tv[2] == 60 {
		tv[2] = 59 // leap second: keep the date valid
	}
	offset := 0
	if len(f) >= 5 {
		z := f[4]
		if (z[0] == '+' || z[0] == '-') && len(z) == 5 {
			n, err := strconv.Atoi(z[1:])
			if err != nil || n%100 > 59 {
				return time.Time{}, fmt.Errorf("mtqp: bad zone in %q", truncate(v, 60))
			}
			offset = (n/100*3600 + n%100*60)
			if z[0] == '-' {
				offset = -offset
			}
		} else if h, ok := obsZones[strings.ToLower(z)]; ok {
			offset = h * 3600
		} else if len(z) == 1 && isAlpha(z) {
			offset = 0
		} else {
			return time.Time{}, fmt.Errorf("mtqp: bad zone in %q", truncate(v, 60))
		}
		if len(f) > 5 {
			return time.Time{}, fmt.Errorf("mtqp: trailing text in date %q", truncate(v, 60))
		}
	} else {
		return time.Time{}, fmt.Errorf("mtqp: date %q has no zone", truncate(v, 60))
	}
	t := time.Date(year, mon, day, tv[0], tv[1], tv[2], 0, zone(offset))
	if t.Day() != day {
		return time.Time{}, errors.New("mtqp: day out of range for month")
	}
	return t, nil
}

// zone returns UTC for offset 0, so that parsed and constructed UTC times
// compare equal, and a fixed unnamed zone otherwise.
func zone(offset int) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	return time.FixedZone("", offset)
}

func isAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return s != ""
}

// stripComments removes RFC 5322 comments (nested parentheses, with
// backslash quoting).
func stripComments(s string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
			b.WriteByte(' ')
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}
