package mtrk

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// enc is the standard library's encoder, an independent reference for the
// hand-written decoder.
var enc = base64.RawStdEncoding

func mustStd(s string) []byte {
	b, err := enc.Strict().DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func certOf(n int, fill byte) string { return enc.EncodeToString(bytes.Repeat([]byte{fill}, n)) }

var (
	sha1Cert = enc.EncodeToString(bytes.Repeat([]byte{0xA5}, 20)) // 27 chars, ends in a 2-bit remainder
	md4Cert  = enc.EncodeToString(bytes.Repeat([]byte{0x5A}, 16)) // 22 chars
)

func TestParseParamValid(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		bytes   []byte
		timeout time.Duration
		given   bool
	}{
		{"sha1 no timeout", sha1Cert, bytes.Repeat([]byte{0xA5}, 20), 0, false},
		{"sha1 timeout", sha1Cert + ":86400", bytes.Repeat([]byte{0xA5}, 20), 86400 * time.Second, true},
		{"md4", md4Cert + ":1", bytes.Repeat([]byte{0x5A}, 16), time.Second, true},
		{"nine digits", sha1Cert + ":999999999", bytes.Repeat([]byte{0xA5}, 20), MaxTimeout, true},
		{"zero timeout is syntax-valid", sha1Cert + ":0", bytes.Repeat([]byte{0xA5}, 20), 0, true},
		{"leading zeros", sha1Cert + ":000000007", bytes.Repeat([]byte{0xA5}, 20), 7 * time.Second, true},
		{"sha256 length", certOf(32, 0xFF), bytes.Repeat([]byte{0xFF}, 32), 0, false},
		{"max length", certOf(64, 0x01), bytes.Repeat([]byte{0x01}, 64), 0, false},
		{"plus and slash", "++++////++++////++++/w", mustStd("++++////++++////++++/w"), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseParam(tt.value)
			require.NoError(t, err)
			want, err := enc.DecodeString(strings.SplitN(tt.value, ":", 2)[0])
			require.NoError(t, err)
			assert.Equal(t, want, []byte(p.Certifier), "agrees with encoding/base64")
			assert.Equal(t, tt.bytes, []byte(p.Certifier))
			assert.Equal(t, tt.timeout, p.Timeout)
			assert.Equal(t, tt.given, p.TimeoutGiven)
		})
	}
}

func TestParseParamInvalid(t *testing.T) {
	tests := []struct {
		name  string
		value string
		part  Part
	}{
		{"MTRK=", "", PartValue},
		{"MTRK=:", ":", PartCertifier},
		{"MTRK=:998", ":998", PartCertifier},
		{"MTRK=abc:", "abc:", PartCertifier}, // abc is 2 bytes, too short
		{"long cert, empty timeout", sha1Cert + ":", PartTimeout},
		{"MTRK=abc:abc", "abc:abc", PartCertifier},
		{"letters timeout", sha1Cert + ":abc", PartTimeout},
		{"ten digits", sha1Cert + ":1234567890", PartTimeout},
		{"twenty digits", sha1Cert + ":" + strings.Repeat("9", 20), PartTimeout},
		{"negative", sha1Cert + ":-1", PartTimeout},
		{"plus sign", sha1Cert + ":+1", PartTimeout},
		{"second colon", sha1Cert + ":1:2", PartTimeout},
		{"space in timeout", sha1Cert + ": 1", PartTimeout},
		{"padding", enc.EncodeToString(make([]byte, 20)) + "=", PartCertifier},
		{"padded std", base64.StdEncoding.EncodeToString(make([]byte, 16)), PartCertifier},
		{"padding with timeout", base64.StdEncoding.EncodeToString(make([]byte, 16)) + ":60", PartCertifier},
		{"url alphabet dash", strings.Repeat("-", 27), PartCertifier},
		{"url alphabet underscore", strings.Repeat("_", 27), PartCertifier},
		{"dash in lax parser's example", "my-ceritifier", PartCertifier},
		{"space", strings.Repeat("A", 13) + " " + strings.Repeat("A", 13), PartCertifier},
		{"non-ascii", strings.Repeat("A", 26) + "é", PartCertifier},
		{"nul", strings.Repeat("A", 26) + "\x00", PartCertifier},
		{"CRLF", strings.Repeat("A", 27) + "\r\n", PartCertifier},
		{"length 1 mod 4", strings.Repeat("A", 25), PartCertifier},
		{"non-zero trailing bits (2 left)", strings.Repeat("A", 26) + "B", PartCertifier}, // 27 chars: last holds 2 unused bits
		{"non-zero trailing bits (4 left)", strings.Repeat("A", 21) + "B", PartCertifier}, // 22 chars: last holds 4 unused bits
		{"15 bytes", certOf(15, 1), PartCertifier},
		{"65 bytes", certOf(65, 1), PartCertifier},
		{"1 byte", "AA", PartCertifier},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseParam(tt.value)
			require.Error(t, err)
			assert.Nil(t, p.Certifier)
			var me *Error
			require.ErrorAs(t, err, &me)
			assert.Equal(t, tt.part, me.Part, "error %q", err)
			code, enh, msg := me.SMTPReply()
			assert.Equal(t, 501, code)
			assert.Equal(t, [3]int{5, 5, 4}, enh)
			assert.Contains(t, msg, tt.part.String())
			assert.NotContains(t, msg, "\r")
			assert.NotContains(t, msg, "\n")
		})
	}
}

func TestTrailingBitsCheckedAgainstStdlib(t *testing.T) {
	// Every final character for 20- and 16-byte certifiers: ours accepts
	// exactly what the standard library's strict decoder accepts.
	for _, prefix := range []string{sha1Cert[:26], md4Cert[:21]} {
		for c := 0; c < 64; c++ {
			s := prefix + string(alphabet[c])
			_, stdErr := enc.Strict().DecodeString(s)
			_, ourErr := ParseCertifier(s)
			assert.Equal(t, stdErr == nil, ourErr == nil, "%q: std %v ours %v", s, stdErr, ourErr)
		}
	}
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func TestErrorsIs(t *testing.T) {
	_, err := ParseParam("")
	assert.ErrorIs(t, err, ErrValue)
	assert.NotErrorIs(t, err, ErrCertifier)

	_, err = ParseParam("!!!")
	assert.ErrorIs(t, err, ErrCertifier)
	assert.NotErrorIs(t, err, ErrTimeout)

	_, err = ParseParam(sha1Cert + ":x")
	assert.ErrorIs(t, err, ErrTimeout)
	assert.NotErrorIs(t, err, ErrCertifier)

	_, err = ParseSecret("")
	assert.ErrorIs(t, err, ErrSecret)

	wrapped := errors.Join(errors.New("context"), err)
	assert.ErrorIs(t, wrapped, ErrSecret)
	var me *Error
	require.ErrorAs(t, wrapped, &me)
	assert.Equal(t, PartSecret, me.Part)
	assert.Equal(t, "mtrk: secret is empty", me.Error())
}

// smtpReplier is the method set the go-smtp middleware type-asserts.
type smtpReplier interface {
	SMTPReply() (int, [3]int, string)
}

func TestErrorIsSMTPReplier(t *testing.T) {
	_, err := ParseParam(sha1Cert + ":1234567890")
	var r smtpReplier
	require.ErrorAs(t, err, &r)
	code, enh, msg := r.SMTPReply()
	assert.Equal(t, 501, code)
	assert.Equal(t, [3]int{5, 5, 4}, enh)
	assert.Equal(t, "Invalid MTRK parameter: timeout has more than 9 digits", msg)
}

func TestParseCertifier(t *testing.T) {
	c, err := ParseCertifier(sha1Cert)
	require.NoError(t, err)
	assert.Len(t, c, CertifierSize)
	assert.Equal(t, sha1Cert, c.String())

	_, err = ParseCertifier(sha1Cert + ":60")
	assert.ErrorIs(t, err, ErrCertifier, "a colon is not part of a certifier")
	_, err = ParseCertifier("")
	assert.ErrorIs(t, err, ErrCertifier)
}

func TestParseSecret(t *testing.T) {
	sec, err := NewSecret()
	require.NoError(t, err)
	raw := sec.String()
	padded := base64.StdEncoding.EncodeToString(sec)
	require.NotEqual(t, raw, padded, "20 bytes pad with one '='")

	for _, in := range []string{raw, padded, "  " + raw + "\n", "\t" + padded + "\r\n"} {
		got, err := ParseSecret(in)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, sec, got, "%q", in)
		assert.True(t, sec.Certifier().Verify(got))
	}

	bad := []struct{ name, in string }{
		{"empty", ""},
		{"blank", "   "},
		{"wrong padding count", raw + "=="},
		{"padding on unpadded length", enc.EncodeToString(make([]byte, 18)) + "="},
		{"three pads", enc.EncodeToString(make([]byte, 16)) + "==="},
		{"inner padding", raw[:10] + "=" + raw[10:]},
		{"url alphabet", strings.Repeat("-", 27)},
		{"too short", enc.EncodeToString(make([]byte, 15))},
		{"too long", enc.EncodeToString(make([]byte, 65))},
		{"trailing bits", strings.Repeat("A", 26) + "B"},
		{"inner space", raw[:10] + " " + raw[10:]},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSecret(tt.in)
			assert.ErrorIs(t, err, ErrSecret)
		})
	}
}

func TestParamString(t *testing.T) {
	c := Certifier(bytes.Repeat([]byte{0xA5}, 20))
	tests := []struct {
		name string
		p    Param
		want string
	}{
		{"no timeout", Param{Certifier: c}, sha1Cert},
		{"timeout ignored unless given", Param{Certifier: c, Timeout: time.Hour}, sha1Cert},
		{"timeout", Param{Certifier: c, Timeout: 86400 * time.Second, TimeoutGiven: true}, sha1Cert + ":86400"},
		{"truncated to seconds", Param{Certifier: c, Timeout: 1500 * time.Millisecond, TimeoutGiven: true}, sha1Cert + ":1"},
		{"negative written as 0", Param{Certifier: c, Timeout: -time.Second, TimeoutGiven: true}, sha1Cert + ":0"},
		{"capped to 9 digits", Param{Certifier: c, Timeout: 2 * MaxTimeout, TimeoutGiven: true}, sha1Cert + ":999999999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.p.String())
			assert.Equal(t, "MTRK="+tt.want, tt.p.MailParam())
			assert.NotContains(t, tt.p.String(), "=")
			_, err := ParseParam(tt.p.String())
			assert.NoError(t, err, "String output parses")
		})
	}
}

func TestRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		n := MinCertifierSize + r.IntN(MaxCertifierSize-MinCertifierSize+1)
		c := make(Certifier, n)
		for j := range c {
			c[j] = byte(r.Uint32())
		}
		p := Param{Certifier: c}
		if r.IntN(2) == 0 {
			p.Timeout, p.TimeoutGiven = time.Duration(r.Int64N(1e9))*time.Second, true
		}
		s := p.String()
		require.Equal(t, enc.EncodeToString(c), strings.SplitN(s, ":", 2)[0])
		got, err := ParseParam(s)
		require.NoError(t, err, s)
		require.True(t, got.Certifier.Equal(p.Certifier), s)
		require.Equal(t, p.Timeout, got.Timeout, s)
		require.Equal(t, p.TimeoutGiven, got.TimeoutGiven, s)
		require.Equal(t, s, got.String())

		cc, err := ParseCertifier(c.String())
		require.NoError(t, err)
		require.Equal(t, c, cc)
	}
}

func TestSecretCertifierRoundTrip(t *testing.T) {
	for i := 0; i < 100; i++ {
		sec, err := NewSecret()
		require.NoError(t, err)
		require.Len(t, sec, SecretSize)
		c := sec.Certifier()
		sum := sha1.Sum(sec)
		require.Equal(t, sum[:], []byte(c))

		wire := Param{Certifier: c, Timeout: time.Hour, TimeoutGiven: true}.String()
		p, err := ParseParam(wire)
		require.NoError(t, err)
		back, err := ParseSecret(sec.String())
		require.NoError(t, err)
		assert.True(t, p.Certifier.Verify(back))
		assert.True(t, p.Certifier.Equal(c))

		other, err := NewSecret()
		require.NoError(t, err)
		assert.False(t, p.Certifier.Verify(other))
	}
}

func TestOffered(t *testing.T) {
	tests := []struct {
		name string
		ext  []string
		want bool
	}{
		{"present", []string{"PIPELINING", "MTRK", "SIZE 1000"}, true},
		{"lower case", []string{"mtrk"}, true},
		{"mixed case", []string{"8BITMIME", "MtRk"}, true},
		{"with trailing params", []string{"MTRK something"}, true},
		{"with tab", []string{"MTRK\tx"}, true},
		{"with CRLF", []string{"MTRK\r\n"}, true},
		{"leading blank", []string{" MTRK"}, true},
		{"absent", []string{"PIPELINING", "SIZE 1000", "DSN"}, false},
		{"none", nil, false},
		{"prefix only", []string{"MTRKX"}, false},
		{"longer keyword", []string{"XMTRK"}, false},
		{"as a parameter", []string{"AUTH MTRK"}, false},
		{"empty line", []string{""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Offered(tt.ext...))
		})
	}
}

func TestParseParamAllocs(t *testing.T) {
	v := sha1Cert + ":86400"
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseParam(v); err != nil {
			t.Fatal(err)
		}
	})
	assert.Equal(t, 1.0, allocs, "only the certifier's bytes")
}
