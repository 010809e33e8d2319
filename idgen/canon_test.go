package idgen

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
)

const (
	vecMID     = "<20260801123456.A1B2C3@mail.example.com>"
	vecDate    = "Sat, 1 Aug 2026 12:34:56 +0200"
	vecGeneral = "0123456789abcdef0123456789abcdef"
)

var vecGeneral2 = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		bad            bool
	}{
		{"empty", "", "", false},
		{"plain", vecMID, vecMID, false},
		{"leading space after colon", " " + vecMID, vecMID, false},
		{"trailing CRLF", " " + vecMID + "\r\n", vecMID, false},
		{"trailing LF", vecMID + "\n", vecMID, false},
		{"trailing white space", vecMID + " \t ", vecMID, false},
		{"folded before value", "\r\n " + vecMID, vecMID, false},
		{"folded with LF only", "\n\t" + vecMID, vecMID, false},
		{"folded date", " Sat, 1 Aug 2026\r\n\t12:34:56   +0200", vecDate, false},
		{"double space padding", "Sat,  1 Aug 2026 12:34:56 +0200", vecDate, false},
		{"tabs collapse", "Sat,\t1\t\tAug 2026 12:34:56 +0200", vecDate, false},
		{"fold then fold", "a\r\n \r\n b", "a b", false},
		{"comment kept", "<x@y> (sent by z)", "<x@y> (sent by z)", false},
		{"case kept", "<AbC@Example.COM>", "<AbC@Example.COM>", false},
		{"utf8 kept", "<ü@example.com>", "<ü@example.com>", false},
		{"only white space", " \t\r\n ", "", false},
		{"bare CR", "<a\r@b>", "", true},
		{"CRLF not a fold", "<a@b>\r\nX-Other: 1", "", true},
		{"bare LF inside", "<a\n@b>", "", true},
		{"lone trailing CR", "<a@b>\r", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonical(tc.in)
			if tc.bad {
				require.ErrorIs(t, err, ErrMalformedHeader)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// The expected values were computed outside this package with
//
//	M='<20260801123456.A1B2C3@mail.example.com>'; D='Sat, 1 Aug 2026 12:34:56 +0200'
//	G='0123456789abcdef0123456789abcdef'
//	printf '%s%s%s' "$M" "$D" "$G" | sha1sum                       # v1 A
//	printf '%s%s%s' "$M" "$D" "$G" | sha1sum | cut -c1-40 | xxd -r -p | sha1sum   # v1 B
//	printf '%s%s' "$M" "$G" | sha1sum                              # v2 A
//	printf '%s%s\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f' "$M" "$D" | sha1sum  # v3 A
func TestComputeSecretVectors(t *testing.T) {
	for _, tc := range []struct {
		name, mid, date string
		general         []byte
		wantA, wantB    string
		wantAB64        string
	}{
		{"v1", vecMID, vecDate, []byte(vecGeneral),
			"e1db9f7ee406353cd2687a9044dab9e58ef896ba", "380efc9e25538af80d64f86896fa6e0f65ba58d5", "4duffuQGNTzSaHqQRNq55Y74lro"},
		{"v1 folded", "\r\n " + vecMID + "  ", " Sat, 1 Aug 2026\r\n\t12:34:56   +0200", []byte(vecGeneral),
			"e1db9f7ee406353cd2687a9044dab9e58ef896ba", "380efc9e25538af80d64f86896fa6e0f65ba58d5", "4duffuQGNTzSaHqQRNq55Y74lro"},
		{"v2 no date", vecMID, "", []byte(vecGeneral),
			"1cd8ca2300b3154dd913614b11e16eab23b17d6d", "4c3b999db98cb33bdc2c0269c994b1b92505df14", "HNjKIwCzFU3ZE2FLEeFuqyOxfW0"},
		{"v2 blank date", vecMID, " \r\n ", []byte(vecGeneral),
			"1cd8ca2300b3154dd913614b11e16eab23b17d6d", "4c3b999db98cb33bdc2c0269c994b1b92505df14", "HNjKIwCzFU3ZE2FLEeFuqyOxfW0"},
		{"v3 16-byte binary secret", vecMID, vecDate, vecGeneral2,
			"845170c95e3679a5b38c9cecc9ba3d7e35733278", "cfb2f0b5414d1820464b23312db5090076b2db98", "hFFwyV42eaWzjJzsybo9fjVzMng"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ComputeSecret(tc.mid, tc.date, tc.general)
			require.NoError(t, err)
			assert.Equal(t, tc.wantA, hex.EncodeToString(a))
			assert.Equal(t, tc.wantAB64, a.String())
			assert.Equal(t, tc.wantB, hex.EncodeToString(a.Certifier()))
		})
	}
}

// pythonScript implements the package doc's definition independently:
// canonicalisation with regular expressions, SHA-1 from hashlib.
const pythonScript = `
import hashlib, json, re, sys
def canon(v):
    v = re.sub(r'\r?\n(?=[ \t])', '', v)
    v = re.sub(r'[ \t]+', ' ', v)
    if v.endswith('\r\n'):
        v = v[:-2]
    elif v.endswith('\n'):
        v = v[:-1]
    return v.strip(' ')
out = []
for c in json.load(sys.stdin):
    m, d = canon(c['mid']).encode('utf-8'), canon(c['date']).encode('utf-8')
    a = hashlib.sha1(m + d + bytes.fromhex(c['general'])).digest()
    out.append({'a': a.hex(), 'b': hashlib.sha1(a).hexdigest()})
json.dump(out, sys.stdout)
`

func TestComputeSecretAgainstPython(t *testing.T) {
	py := testenv.Python(t)
	type tcase struct {
		MID     string `json:"mid"`
		Date    string `json:"date"`
		General string `json:"general"`
	}
	cases := []tcase{
		{vecMID, vecDate, hex.EncodeToString([]byte(vecGeneral))},
		{" " + vecMID + "\r\n", "\r\n\tSat, 1 Aug 2026 12:34:56 +0200", hex.EncodeToString(vecGeneral2)},
		{"<a.b+c=d@[192.0.2.1]>", "", strings.Repeat("ff", 20)},
		{"<x@y> (comment\r\n  folded)", "Mon, 29 Feb 2028 00:00:00 -0000 (UTC)", strings.Repeat("00", 64)},
		{"<ünï@例え.jp>", "Sun,\t\t2 Aug 2026 01:02:03 +0900", strings.Repeat("a5", 16)},
		{"bare-id-without-brackets@example.org", " Sat, 1 Aug 2026\n 12:34:56 +0200\n", strings.Repeat("01", 32)},
	}
	in, err := json.Marshal(cases)
	require.NoError(t, err)
	cmd := exec.Command(py, "-c", pythonScript)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	require.NoError(t, err)
	var want []struct{ A, B string }
	require.NoError(t, json.Unmarshal(out, &want))
	require.Len(t, want, len(cases))
	for i, c := range cases {
		g, err := hex.DecodeString(c.General)
		require.NoError(t, err)
		a, err := ComputeSecret(c.MID, c.Date, g)
		require.NoError(t, err, "case %d", i)
		assert.Equal(t, want[i].A, hex.EncodeToString(a), "case %d: A", i)
		assert.Equal(t, want[i].B, hex.EncodeToString(a.Certifier()), "case %d: B", i)
	}
}

func TestComputeSecretErrors(t *testing.T) {
	good := []byte(vecGeneral)
	_, err := ComputeSecret(vecMID, vecDate, good[:MinGeneralSecretSize-1])
	assert.ErrorIs(t, err, ErrWeakSecret)
	_, err = ComputeSecret(vecMID, vecDate, nil)
	assert.ErrorIs(t, err, ErrWeakSecret)
	_, err = ComputeSecret(vecMID, vecDate, good[:MinGeneralSecretSize])
	assert.NoError(t, err, "exactly 128 bits is enough")
	_, err = ComputeSecret("", vecDate, good)
	assert.ErrorIs(t, err, ErrNoMessageID)
	_, err = ComputeSecret(" \r\n ", vecDate, good)
	assert.ErrorIs(t, err, ErrNoMessageID)
	_, err = ComputeSecret("<a\r@b>", vecDate, good)
	assert.ErrorIs(t, err, ErrMalformedHeader)
	_, err = ComputeSecret(vecMID, "Sat\n, 1 Aug", good)
	assert.ErrorIs(t, err, ErrMalformedHeader)
}

func TestComputeSecretInputsMatter(t *testing.T) {
	g := []byte(vecGeneral)
	base, err := ComputeSecret(vecMID, vecDate, g)
	require.NoError(t, err)
	other := func(mid, date string, general []byte) string {
		a, err := ComputeSecret(mid, date, general)
		require.NoError(t, err)
		return hex.EncodeToString(a)
	}
	assert.NotEqual(t, hex.EncodeToString(base), other("<20260801123456.A1B2C3@mail.example.org>", vecDate, g))
	assert.NotEqual(t, hex.EncodeToString(base), other(vecMID, "Sat, 1 Aug 2026 12:34:57 +0200", g))
	assert.NotEqual(t, hex.EncodeToString(base), other(vecMID, vecDate, append([]byte("x"), g[1:]...)))
	assert.NotEqual(t, hex.EncodeToString(base), other("20260801123456.A1B2C3@mail.example.com", vecDate, g),
		"angle brackets are part of the hashed bytes")
}

func TestDeriveEnvelopeID(t *testing.T) {
	long := "<" + strings.Repeat("x", 90) + "@example.com>"
	sum := func(s string) string { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{"brackets stripped", vecMID, "20260801123456.A1B2C3@mail.example.com", nil},
		{"folded", "\r\n " + vecMID + "\r\n", "20260801123456.A1B2C3@mail.example.com", nil},
		{"comment around", "(c) <a@b> (d)", "a@b", nil},
		{"no brackets", "a@b", "a@b", nil},
		{"plus and equals allowed", "<a+b=c@d>", "a+b=c@d", nil},
		{"too long", long, sum(long), nil},
		{"non-ascii", "<ü@example.com>", sum("<ü@example.com>"), nil},
		{"space inside", "<a b@c>", sum("<a b@c>"), nil},
		{"empty brackets", "<>", sum("<>"), nil},
		{"unclosed", "<a@b", sum("<a@b"), nil},
		{"missing", "", "", ErrNoMessageID},
		{"malformed", "<a\r@b>", "", ErrMalformedHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DeriveEnvelopeID(tc.in)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.True(t, ValidEnvelopeID(got))
		})
	}
}

func TestValidEnvelopeID(t *testing.T) {
	// 94 plain characters fill "ENVID=" + 94 = 100; a "+" costs three.
	assert.True(t, ValidEnvelopeID(strings.Repeat("a", 94)))
	assert.False(t, ValidEnvelopeID(strings.Repeat("a", 95)))
	assert.True(t, ValidEnvelopeID(strings.Repeat("a", 91)+"+"))
	assert.False(t, ValidEnvelopeID(strings.Repeat("a", 92)+"="))
	assert.False(t, ValidEnvelopeID(""))
	assert.False(t, ValidEnvelopeID("a b"))
	assert.False(t, ValidEnvelopeID("a\x7f"))
	assert.False(t, ValidEnvelopeID("<a>"))
	assert.True(t, ValidEnvelopeID("!~"))
}

// RFC 1320 appendix A.5 test suite.
func TestMD4Identifier(t *testing.T) {
	for in, want := range map[string]string{
		"":               "31d6cfe0d16ae931b73c59d7e0c089c0",
		"a":              "bde52cb31de33e46245e05fbdbd6fb24",
		"abc":            "a448017aaf21d8525fc10ae87aa6729d",
		"message digest": "d9130a8164549fe818874806e1c7014b",
	} {
		c := MD4Identifier(in)
		assert.Len(t, []byte(c), 16)
		assert.Equal(t, want, hex.EncodeToString(c), "MD4(%q)", in)
	}
}
