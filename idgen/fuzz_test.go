package idgen

import (
	"strings"
	"testing"
)

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"", vecMID, " " + vecMID + "\r\n", " Sat, 1 Aug 2026\r\n\t12:34:56   +0200",
		"a\r\n \r\n b", "\n\tx", "<a\r@b>", "x\r", "  \t ", "<ü@example.com>", "a\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := Canonical(v)
		if err != nil {
			return
		}
		if strings.ContainsAny(c, "\r\n\t") || strings.Contains(c, "  ") ||
			strings.HasPrefix(c, " ") || strings.HasSuffix(c, " ") {
			t.Fatalf("Canonical(%q) = %q is not canonical", v, c)
		}
		if again, err := Canonical(c); err != nil || again != c {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", v, c, again, err)
		}
		// Refolding at every space (RFC 5322 section 2.2.3) changes nothing.
		refolded := strings.ReplaceAll(c, " ", "\r\n\t")
		if r, err := Canonical(" " + refolded + "\r\n"); err != nil || r != c {
			t.Fatalf("refolded %q: got %q, %v; want %q", refolded, r, err, c)
		}
		if c == "" {
			return
		}
		id, err := DeriveEnvelopeID(v)
		if err != nil || !ValidEnvelopeID(id) {
			t.Fatalf("DeriveEnvelopeID(%q) = %q, %v", v, id, err)
		}
		if _, err := ComputeSecret(v, v, []byte(vecGeneral)); err != nil {
			t.Fatalf("ComputeSecret(%q): %v", v, err)
		}
	})
}
