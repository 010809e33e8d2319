package mtrk

import (
	"strconv"
	"strings"
	"time"
)

// Keyword is the EHLO keyword of RFC 3885 section 3 and also the name of
// the MAIL parameter it adds.
const Keyword = "MTRK"

// Certifier sizes ParseCertifier and ParseParam accept, in decoded bytes.
// See the package documentation for why the range is wider than the 20
// bytes of a SHA-1 certifier.
const (
	MinCertifierSize = 16
	MaxCertifierSize = 64
)

// Secret sizes ParseSecret accepts, in decoded bytes: at least 128 bits of
// secret (the project's floor for anything that authorises tracking or
// recall; NewSecret draws 160) and at most MaxSecretSize.
const (
	MinSecretSize = 16
	MaxSecretSize = 64
)

// MaxTimeoutDigits is the longest timeout RFC 3885 section 3 allows
// (timeout = 1*9DIGIT), and MaxTimeout the largest value it can spell.
const (
	MaxTimeoutDigits = 9
	MaxTimeout       = 999999999 * time.Second
)

// decLen is the number of bytes n unpadded base64 characters decode to
// (n%4 != 1, checked by checkBase64).
func decLen(n int) int { return n * 6 / 8 }

// b64val maps a base64 character (already checked by isBase64) to its value.
func b64val(c byte) uint32 {
	switch {
	case c >= 'A' && c <= 'Z':
		return uint32(c - 'A')
	case c >= 'a' && c <= 'z':
		return uint32(c-'a') + 26
	case c >= '0' && c <= '9':
		return uint32(c-'0') + 52
	case c == '+':
		return 62
	default: // '/'
		return 63
	}
}

// decodeBase64 decodes s, already checked by checkBase64 and without
// padding, into dst of decLen(len(s)) bytes. It reports false when the
// last character carries non-zero unused bits, so only the canonical
// encoding of a byte string is accepted (RFC 4648 section 3.5). It works
// on the string directly so that parsing allocates nothing but dst.
func decodeBase64(dst []byte, s string) bool {
	di := 0
	i := 0
	for ; i+4 <= len(s); i += 4 {
		v := b64val(s[i])<<18 | b64val(s[i+1])<<12 | b64val(s[i+2])<<6 | b64val(s[i+3])
		dst[di], dst[di+1], dst[di+2] = byte(v>>16), byte(v>>8), byte(v)
		di += 3
	}
	switch len(s) - i {
	case 2:
		v := b64val(s[i])<<6 | b64val(s[i+1])
		if v&0xf != 0 {
			return false
		}
		dst[di] = byte(v >> 4)
	case 3:
		v := b64val(s[i])<<12 | b64val(s[i+1])<<6 | b64val(s[i+2])
		if v&0x3 != 0 {
			return false
		}
		dst[di], dst[di+1] = byte(v>>10), byte(v>>2)
	}
	return true
}

// Param is the value of an MTRK= MAIL parameter (RFC 3885 section 3):
// the certifier and, when TimeoutGiven, the tracking timeout the client
// asked for. Timeout is in whole seconds on the wire.
type Param struct {
	Certifier    Certifier
	Timeout      time.Duration
	TimeoutGiven bool
}

// ParseParam parses the text after "MTRK=" (certifier [":" timeout]).
// The only allocation on success is the returned certifier's bytes.
// Errors are *Error values that say which part was wrong.
func ParseParam(value string) (Param, error) {
	if value == "" {
		return Param{}, &Error{Part: PartValue, Reason: "is empty"}
	}
	cert, timeout, hasColon := strings.Cut(value, ":")
	c, err := parseCertifier(cert)
	if err != nil {
		return Param{}, err
	}
	p := Param{Certifier: c}
	if !hasColon {
		return p, nil
	}
	d, err := parseTimeout(timeout)
	if err != nil {
		return Param{}, err
	}
	p.Timeout, p.TimeoutGiven = d, true
	return p, nil
}

// parseTimeout reads 1*9DIGIT seconds.
func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, &Error{Part: PartTimeout, Reason: "is empty after \":\""}
	}
	if len(s) > MaxTimeoutDigits {
		return 0, &Error{Part: PartTimeout, Reason: "has more than 9 digits"}
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, &Error{Part: PartTimeout, Reason: "is not a decimal number of seconds"}
		}
		n = n*10 + int64(c-'0')
	}
	return time.Duration(n) * time.Second, nil
}

// String returns the exact wire form of p, the text to write after "MTRK=":
// the unpadded base64 certifier, then ":" and the timeout in whole seconds
// when TimeoutGiven. A timeout is truncated to whole seconds and kept within
// 0 to MaxTimeout so the result always parses; a relay that has no time
// left should not send MTRK at all (see Remaining).
func (p Param) String() string {
	if !p.TimeoutGiven {
		return p.Certifier.String()
	}
	secs := int64(p.Timeout / time.Second)
	if secs < 0 {
		secs = 0
	}
	if secs > int64(MaxTimeout/time.Second) {
		secs = int64(MaxTimeout / time.Second)
	}
	// A stack buffer holds any certifier up to MaxCertifierSize, so the
	// only allocation is the returned string.
	var stack [(MaxCertifierSize+2)/3*4 + 1 + MaxTimeoutDigits]byte
	buf := b64.AppendEncode(stack[:0], p.Certifier)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, secs, 10)
	return string(buf)
}

// MailParam returns the whole MAIL parameter, "MTRK=" followed by
// p.String().
func (p Param) MailParam() string { return Keyword + "=" + p.String() }

// ParseCertifier parses a certifier in its wire form: canonical unpadded
// base64 of MinCertifierSize to MaxCertifierSize bytes. Padding ("=") is
// rejected because it cannot appear in an ESMTP parameter value. The only
// allocation on success is the returned certifier.
func ParseCertifier(s string) (Certifier, error) { return parseCertifier(s) }

func parseCertifier(s string) (Certifier, error) {
	if s == "" {
		return nil, &Error{Part: PartCertifier, Reason: "is empty"}
	}
	if err := checkBase64(s, PartCertifier, false); err != nil {
		return nil, err
	}
	n := decLen(len(s))
	if n < MinCertifierSize || n > MaxCertifierSize {
		return nil, &Error{Part: PartCertifier, Reason: "decodes to " + strconv.Itoa(n) +
			" bytes, not " + strconv.Itoa(MinCertifierSize) + " to " + strconv.Itoa(MaxCertifierSize)}
	}
	c := make(Certifier, n)
	if !decodeBase64(c, s) {
		return nil, &Error{Part: PartCertifier, Reason: "has non-zero bits after its last byte (not canonical base64)"}
	}
	return c, nil
}

// checkBase64 checks the alphabet of RFC 3885 section 1 and the length,
// with precise reasons. With padOK, correct trailing padding is allowed.
func checkBase64(s string, part Part, padOK bool) error {
	body := s
	if padOK {
		body = strings.TrimRight(s, "=")
		if pad := len(s) - len(body); pad > 0 && (pad > 2 || len(s)%4 != 0) {
			return &Error{Part: part, Reason: "has wrong \"=\" padding"}
		}
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '=' {
			return &Error{Part: part, Reason: "contains \"=\" (padding is not allowed in ESMTP parameters)"}
		}
		if !isBase64(c) {
			return &Error{Part: part, Reason: "contains a character outside the base64 alphabet"}
		}
	}
	if len(body)%4 == 1 {
		return &Error{Part: part, Reason: "has a length no base64 encoding can have"}
	}
	return nil
}

func isBase64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// ParseSecret parses a secret A as a user types or pastes it: surrounding
// white space is ignored and correct "=" padding is accepted, because
// secrets are shown to people and copied through tools that pad base64
// (a secret never travels in SMTP, so the esmtp-value rule does not apply).
// The text must otherwise be canonical base64 of MinSecretSize to
// MaxSecretSize bytes; a typo in the last character usually makes its
// trailing bits non-zero and is then caught.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, &Error{Part: PartSecret, Reason: "is empty"}
	}
	if err := checkBase64(s, PartSecret, true); err != nil {
		return nil, err
	}
	body := strings.TrimRight(s, "=")
	n := decLen(len(body))
	if n < MinSecretSize || n > MaxSecretSize {
		return nil, &Error{Part: PartSecret, Reason: "decodes to " + strconv.Itoa(n) +
			" bytes, not " + strconv.Itoa(MinSecretSize) + " to " + strconv.Itoa(MaxSecretSize)}
	}
	sec := make(Secret, n)
	if !decodeBase64(sec, body) {
		return nil, &Error{Part: PartSecret, Reason: "has non-zero bits after its last byte (not canonical base64)"}
	}
	return sec, nil
}

// Offered reports whether an EHLO reply offers MTRK. Each argument is one
// extension line without the reply code, such as "PIPELINING", "MTRK" or
// "SIZE 1000"; the keyword is the first word and is compared without
// regard to case (RFC 5321 section 4.1.1.1).
func Offered(extensions ...string) bool {
	for _, line := range extensions {
		line = strings.TrimLeft(line, " \t")
		kw := line
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			kw = line[:i]
		}
		if strings.EqualFold(strings.TrimRight(kw, "\r\n"), Keyword) {
			return true
		}
	}
	return false
}
