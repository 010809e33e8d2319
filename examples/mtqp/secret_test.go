package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/idgen"
)

func TestHeaderFields(t *testing.T) {
	cases := []struct {
		name, msg, id, date, err string
	}{
		{name: "CRLF", msg: "Message-ID: <a@b>\r\nDate: Sat, 1 Aug 2026 12:34:56 +0200\r\n\r\nbody", id: "<a@b>", date: "Sat, 1 Aug 2026 12:34:56 +0200"},
		{name: "LF, folded, any case", msg: "message-id:\n <a@b>\nDATE: Sat, 1 Aug 2026\n\t12:34:56 +0200\n\n", id: "<a@b>", date: "Sat, 1 Aug 2026 12:34:56 +0200"},
		{name: "no Date", msg: "Message-Id: <a@b>\n\n", id: "<a@b>"},
		{name: "first occurrence", msg: "Message-ID: <first@b>\nMessage-ID: <second@b>\n\n", id: "<first@b>"},
		{name: "header only, no body", msg: "Message-ID: <a@b>\n", id: "<a@b>"},
		{name: "no Message-ID", msg: "Date: Sat, 1 Aug 2026 12:34:56 +0200\n\n", err: "no Message-ID"},
		{name: "empty Message-ID", msg: "Message-ID:   \n\n", err: "no Message-ID"},
		{name: "empty file", msg: "", err: "header"},
		{name: "stray CR at the end", msg: "Message-ID: <a@b>\r", err: "Message-ID field"},
		{name: "stray CR in Date", msg: "Message-ID: <a@b>\nDate: x\ry\n\n", err: "Date field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, date, err := headerFields([]byte(tc.msg))
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.id, id)
			assert.Equal(t, tc.date, date)
		})
	}
}

// TestHeaderFieldsAgreeWithIdgen: whatever folding a sent copy has, the
// secret recomputed from it is the one idgen computes from the fields as
// they stand in the message (idgen canonicalises both).
func TestHeaderFieldsAgreeWithIdgen(t *testing.T) {
	g := []byte(vecGeneral)
	want, err := idgen.ComputeSecret("\r\n "+vecMessageID+" ", " Sat, 1 Aug 2026\r\n\t12:34:56 +0200", g)
	require.NoError(t, err)
	for _, msg := range []string{
		"Message-ID: " + vecMessageID + "\r\nDate: " + vecDate + "\r\n\r\n",
		"Message-ID:\r\n " + vecMessageID + " \r\nDate:  Sat,  1 Aug 2026\r\n\t12:34:56   +0200\r\n\r\n",
		"Date: " + vecDate + "\nMessage-ID:\t" + vecMessageID + "\n",
	} {
		id, date, err := headerFields([]byte(msg))
		require.NoError(t, err)
		got, err := idgen.ComputeSecret(id, date, g)
		require.NoError(t, err)
		assert.Equal(t, want.String(), got.String(), "%q", msg)
	}
	assert.Equal(t, "4duffuQGNTzSaHqQRNq55Y74lro", want.String())
}

func TestDecodeBase64AndTrim(t *testing.T) {
	for in, want := range map[string]string{"YWJj": "abc", "YWI=": "ab", "YWI": "ab", " YWJj\n": "abc"} {
		b, err := decodeBase64(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, string(b))
	}
	for _, bad := range []string{"YW=", "%%", "YWJ-"} {
		_, err := decodeBase64(bad)
		assert.Error(t, err, bad)
	}
	assert.Equal(t, "g", string(trimOneNewline([]byte("g\n"))))
	assert.Equal(t, "g", string(trimOneNewline([]byte("g\r\n"))))
	assert.Equal(t, "g\n", string(trimOneNewline([]byte("g\n\n"))), "only one newline is dropped")
	assert.Equal(t, " g ", string(trimOneNewline([]byte(" g "))), "other white space is part of the secret")
}

// FuzzHeaderFields: reading any file never panics, and a Message-ID it
// returns is non-empty and free of line breaks, so idgen's
// canonicalisation accepts it.
func FuzzHeaderFields(f *testing.F) {
	f.Add([]byte("Message-ID: <a@b>\r\nDate: Sat, 1 Aug 2026 12:34:56 +0200\r\n\r\nbody"))
	f.Add([]byte("message-id:\n <a@b>\n\n"))
	f.Add([]byte("Message-ID: <a@b>\nMessage-ID: <c@d>\n"))
	f.Add([]byte("From: x\n\n"))
	f.Add([]byte(""))
	f.Add([]byte(" folded-first: x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, date, err := headerFields(b)
		if err != nil {
			return
		}
		require.NotEmpty(t, strings.TrimSpace(id))
		require.NotContains(t, id, "\n")
		require.NotContains(t, date, "\n")
		_, err = idgen.Canonical(id)
		require.NoError(t, err)
		_, err = idgen.Canonical(date)
		require.NoError(t, err)
	})
}
