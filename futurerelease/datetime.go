package futurerelease

import (
	"strconv"
	"time"
)

// ParseDateTime parses an RFC 3339 section 5.6 date-time:
//
//	date-time      = full-date "T" full-time
//	full-date      = date-fullyear "-" date-month "-" date-mday
//	full-time      = partial-time time-offset
//	partial-time   = time-hour ":" time-minute ":" time-second [time-secfrac]
//	time-secfrac   = "." 1*DIGIT
//	time-offset    = "Z" / time-numoffset
//	time-numoffset = ("+" / "-") time-hour ":" time-minute
//
// It handles what time.Parse with time.RFC3339 does not:
//
//   - "T" and "Z" may be lower case (RFC 3339 section 5.6 NOTE; ABNF strings
//     are case-insensitive, RFC 5234 section 2.3);
//   - a leap second, time-second 60 (RFC 3339 section 5.7). time.Time has no
//     leap seconds, so 23:59:60 is returned as the instant one second after
//     23:59:59, the start of the next day. A 60 is accepted only where a
//     leap second can be, at 23:59:60 UTC on the last day of a month;
//   - fractional seconds of any length (kept to the nanosecond, further
//     digits are dropped).
//
// Day-of-month limits follow RFC 3339 section 5.7 (and Appendix C for leap
// years); offset hours and minutes must be 00-23 and 00-59. The result is in
// UTC. Nothing else is accepted: no space instead of "T", no missing
// seconds, no offset without ":", no integer (Unix time).
func ParseDateTime(s string) (time.Time, error) {
	t, ok := parseDateTime(s)
	if !ok {
		return time.Time{}, &Error{Reason: Malformed, Detail: "not an RFC 3339 date-time"}
	}
	return t, nil
}

func digits(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for j := i; j < i+n; j++ {
		c := s[j]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// daysFromCivil returns the number of days from 1970-01-01 to the given
// proleptic Gregorian date (valid month and day), by counting in 400-year
// eras that start on March 1st so that the leap day ends a year.
func daysFromCivil(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400                   // [0, 399]
	mp := int64((month + 9) % 12)        // March = 0
	doy := (153*mp+2)/5 + int64(day) - 1 // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func daysIn(year int, month time.Month) int {
	switch month {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

func parseDateTime(s string) (time.Time, bool) {
	// 0123456789012345678
	// YYYY-MM-DDTHH:MM:SS
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
		s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s, 0, 4)
	month, ok2 := digits(s, 5, 2)
	day, ok3 := digits(s, 8, 2)
	hour, ok4 := digits(s, 11, 2)
	minute, ok5 := digits(s, 14, 2)
	sec, ok6 := digits(s, 17, 2)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, time.Month(month)) ||
		hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	i := 19
	nsec := 0
	if s[i] == '.' {
		i++
		start := i
		scale := 100000000
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			nsec += int(s[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return time.Time{}, false
		}
	}
	if i >= len(s) {
		return time.Time{}, false
	}
	offset := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		oh, okh := digits(s, i+1, 2)
		om, okm := digits(s, i+4, 2)
		if !okh || !okm || s[i+3] != ':' || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(s) {
		return time.Time{}, false
	}
	leap := sec == 60
	if leap {
		sec = 59
	}
	unix := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	t := time.Unix(unix, int64(nsec)).UTC()
	if leap {
		// RFC 3339 section 5.7: a leap second is the last second of a UTC
		// month, so in UTC the time must read 23:59:60 on the month's last day.
		if t.Hour() != 23 || t.Minute() != 59 || t.Day() != daysIn(t.Year(), t.Month()) {
			return time.Time{}, false
		}
		t = t.Add(time.Second)
	}
	return t, true
}

// FormatDateTime writes t as an RFC 3339 date-time in UTC with "T" and "Z"
// upper case: "2026-08-03T00:00:00Z", with fractional seconds only when t has
// them (trailing zeros dropped). The result parses back with ParseDateTime
// to the same instant (for years 0000 to 9999).
func FormatDateTime(t time.Time) string {
	var buf [len("2006-01-02T15:04:05.999999999Z")]byte
	return string(appendDateTime(buf[:0], t))
}

func appendDateTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = append2(append2(appendYear(b, year), '-', int(month)), '-', day)
	b = append2(b, 'T', hour)
	b = append2(b, ':', minute)
	b = append2(b, ':', sec)
	if ns := t.Nanosecond(); ns != 0 {
		b = append(b, '.')
		d := 9
		for ns%10 == 0 {
			ns /= 10
			d--
		}
		var tmp [9]byte
		for j := d - 1; j >= 0; j-- {
			tmp[j] = byte('0' + ns%10)
			ns /= 10
		}
		b = append(b, tmp[:d]...)
	}
	return append(b, 'Z')
}

func appendYear(b []byte, y int) []byte {
	if y < 0 || y > 9999 {
		// Outside RFC 3339's four digits; written so it is visibly wrong
		// rather than silently wrapped.
		return strconv.AppendInt(b, int64(y), 10)
	}
	return append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
}

func append2(b []byte, sep byte, v int) []byte {
	return append(b, sep, byte('0'+v/10), byte('0'+v%10))
}
