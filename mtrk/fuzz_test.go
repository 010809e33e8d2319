package mtrk

import (
	"strings"
	"testing"
)

func FuzzParseParam(f *testing.F) {
	for _, s := range []string{
		"", ":", ":998", "abc:", "abc:abc", sha1Cert, sha1Cert + ":86400", md4Cert + ":0",
		sha1Cert + ":1234567890", sha1Cert + "=", "my-ceritifier", strings.Repeat("A", 26) + "B",
		certOf(64, 0xff) + ":999999999", sha1Cert + ":1:2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParam(s)
		if err != nil {
			if p.Certifier != nil || p.TimeoutGiven {
				t.Fatalf("%q: error %v with non-zero Param", s, err)
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("%q: error %T is not *Error", s, err)
			}
			code, _, msg := err.(*Error).SMTPReply()
			if code != 501 || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("%q: reply %d %q", s, code, msg)
			}
			return
		}
		if strings.Contains(s, "=") {
			t.Fatalf("%q: accepted padding", s)
		}
		if n := len(p.Certifier); n < MinCertifierSize || n > MaxCertifierSize {
			t.Fatalf("%q: certifier of %d bytes", s, n)
		}
		out := p.String()
		q, err := ParseParam(out)
		if err != nil {
			t.Fatalf("%q -> %q: %v", s, out, err)
		}
		if !q.Certifier.Equal(p.Certifier) || q.Timeout != p.Timeout || q.TimeoutGiven != p.TimeoutGiven {
			t.Fatalf("%q -> %q: %+v != %+v", s, out, q, p)
		}
		if q.String() != out {
			t.Fatalf("format not stable: %q then %q", out, q.String())
		}
		// The certifier text is canonical: it is what we write.
		if cert, _, _ := strings.Cut(s, ":"); cert != p.Certifier.String() {
			t.Fatalf("%q: accepted non-canonical certifier text", s)
		}
	})
}

func FuzzParseCertifier(f *testing.F) {
	for _, s := range []string{"", sha1Cert, md4Cert, sha1Cert + "=", "AA", strings.Repeat("/", 22), strings.Repeat("A", 25)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCertifier(s)
		std, stdErr := enc.Strict().DecodeString(s)
		// Agreement with encoding/base64 (strict, unpadded) within the
		// accepted length range.
		inRange := stdErr == nil && len(std) >= MinCertifierSize && len(std) <= MaxCertifierSize &&
			!strings.ContainsAny(s, "\r\n")
		if (err == nil) != inRange {
			t.Fatalf("%q: ours %v, encoding/base64 %v (len %d)", s, err, stdErr, len(std))
		}
		if err != nil {
			return
		}
		if string(c) != string(std) {
			t.Fatalf("%q: decoded %x, want %x", s, c, std)
		}
		if c.String() != s {
			t.Fatalf("%q: formats as %q", s, c.String())
		}
		c2, err := ParseCertifier(c.String())
		if err != nil || !c2.Equal(c) {
			t.Fatalf("%q: reparse %v", s, err)
		}
	})
}

func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{"", sha1Cert, sha1Cert + "=", " " + md4Cert + "==\n", "A===", strings.Repeat("A", 26) + "B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sec, err := ParseSecret(s)
		if err != nil {
			return
		}
		if n := len(sec); n < MinSecretSize || n > MaxSecretSize {
			t.Fatalf("%q: %d bytes", s, n)
		}
		back, err := ParseSecret(sec.String())
		if err != nil || string(back) != string(sec) {
			t.Fatalf("%q: reparse of %q: %v", s, sec.String(), err)
		}
	})
}
