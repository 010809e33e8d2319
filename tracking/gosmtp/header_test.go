package gosmtp

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeaderReader(t *testing.T) {
	cases := []struct {
		name, in, msgID, date string
		hasID                 bool
	}{
		{"simple", "Message-ID: <a@b>\r\nDate: x\r\n\r\nbody\r\n", " <a@b>", " x", true},
		{"folded", "Message-Id:\r\n <a@b>\r\nDATE: Sat,\r\n\t1 Aug\r\n\r\n", "\r\n <a@b>", " Sat,\r\n\t1 Aug", true},
		{"first wins", "Message-ID: <1@b>\r\nMessage-ID: <2@b>\r\nDate: d1\r\nDate: d2\r\n\r\n", " <1@b>", " d1", true},
		{"bare LF", "Message-ID: <a@b>\nDate: x\n\nbody\n", " <a@b>", " x", true},
		{"no header", "\r\nMessage-ID: <a@b>\r\n", "", "", false},
		{"in body only", "Subject: s\r\n\r\nMessage-ID: <a@b>\r\n", "", "", false},
		{"space before colon", "Message-ID : <a@b>\r\n\r\n", " <a@b>", "", true},
		{"no end of header", "Subject: s\r\nMessage-ID: <a@b>", " <a@b>", "", true},
		{"empty", "", "", "", false},
		{"not a field", "garbage line\r\nDate: y\r\n\r\n", "", " y", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, half := range []bool{false, true} {
				var r io.Reader = strings.NewReader(c.in)
				if half {
					r = iotest.OneByteReader(r)
				}
				h := &headerReader{r: r}
				h.readHeader(DefaultMaxHeaderBytes)
				assert.Equal(t, c.hasID, h.hasMessageID)
				assert.Equal(t, c.msgID, h.messageID)
				assert.Equal(t, c.date, h.date)
				out, err := io.ReadAll(h)
				require.NoError(t, err)
				assert.Equal(t, c.in, string(out), "passes everything through")
			}
		})
	}
}

func TestHeaderReaderLimitAndInsert(t *testing.T) {
	long := "X-Pad: " + strings.Repeat("p", 200) + "\r\n"
	in := strings.Repeat(long, 10) + "Message-ID: <late@b>\r\n\r\nbody"
	h := &headerReader{r: strings.NewReader(in)}
	h.readHeader(1000)
	assert.False(t, h.hasMessageID, "fields past the limit are not looked at")
	h.insert("Message-ID: <new@b>\r\n")
	out, err := io.ReadAll(h)
	require.NoError(t, err)
	assert.Equal(t, "Message-ID: <new@b>\r\n"+in, string(out))

	// A field that crosses the limit is left out, not read truncated.
	in = "Subject: s\r\nMessage-ID: <" + strings.Repeat("m", 100) + "@b>\r\n\r\n"
	h = &headerReader{r: strings.NewReader(in)}
	h.readHeader(40)
	assert.False(t, h.hasMessageID)
	in = "Subject: s\r\nMessage-ID: <m@b>\r\n" + strings.Repeat(" fold\r\n", 20) + "\r\n"
	h = &headerReader{r: strings.NewReader(in)}
	h.readHeader(60)
	assert.False(t, h.hasMessageID, "a folded field continuing past the limit is left out")

	h = &headerReader{r: iotest.TimeoutReader(strings.NewReader("Subject: x\r\n"))}
	h.readHeader(DefaultMaxHeaderBytes)
	assert.ErrorIs(t, h.err, iotest.ErrTimeout)
}

func FuzzHeaderReader(f *testing.F) {
	f.Add([]byte("Message-ID: <a@b>\r\nDate: x\r\n\r\nbody\r\n"), uint16(100))
	f.Add([]byte("Message-Id:\r\n <a@b>\r\n\r\n"), uint16(3))
	f.Add([]byte("\n\n\r\n"), uint16(0))
	f.Add([]byte("a:\r\n\r\r\n\n"), uint16(7))
	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		h := &headerReader{r: bytes.NewReader(in)}
		h.readHeader(int(limit) + 1)
		if h.hasMessageID && !bytes.Contains(in, []byte(h.messageID)) {
			t.Fatalf("Message-ID %q not in the input", h.messageID)
		}
		if !bytes.Contains(in, []byte(h.date)) {
			t.Fatalf("Date %q not in the input", h.date)
		}
		out, err := io.ReadAll(h)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("passthrough changed the message")
		}
	})
}
