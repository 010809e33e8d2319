package gosmtp

import (
	"bytes"
	"io"
)

// headerReader reads the message header ahead (up to a limit) so that the
// Message-ID and Date fields are known before the wrapped session sees the
// message, then passes everything through unchanged, optionally behind an
// inserted Message-ID field.
type headerReader struct {
	r   io.Reader
	buf []byte // bytes read ahead (and an inserted field), not yet passed on
	off int
	err error // read error met while reading ahead, returned after buf

	messageID, date string
	hasMessageID    bool
}

// maxKeptBuf bounds the read-ahead buffer a session keeps between
// messages.
const maxKeptBuf = 16 << 10

// reuseBuf returns b emptied for the next message, or nil when it is too
// large to keep.
func reuseBuf(b []byte) []byte {
	if cap(b) > maxKeptBuf {
		return nil
	}
	return b[:0]
}

// readHeader reads up to limit bytes, stopping at the end of the header (the
// first empty line, RFC 5322 section 2.1), and extracts the fields.
func (h *headerReader) readHeader(limit int) {
	chunk := 4096
	for {
		if end := headerEnd(h.buf); end >= 0 && end <= limit {
			h.parse(h.buf[:end])
			return
		}
		if len(h.buf) >= limit {
			h.parse(wholeFields(h.buf, limit))
			return
		}
		if cap(h.buf)-len(h.buf) < chunk {
			nb := make([]byte, len(h.buf), len(h.buf)+max(chunk, len(h.buf)))
			copy(nb, h.buf)
			h.buf = nb
		}
		n, err := h.r.Read(h.buf[len(h.buf):cap(h.buf)])
		h.buf = h.buf[:len(h.buf)+n]
		if err != nil {
			if err != io.EOF {
				h.err = err
			}
			h.parse(h.buf)
			if err == io.EOF {
				h.err = io.EOF
			}
			return
		}
	}
}

// headerEnd returns the offset of the empty line that ends the header in b
// (0 when b starts with it), or -1 when it has not been read yet.
func headerEnd(b []byte) int {
	if bytes.HasPrefix(b, []byte("\r\n")) || bytes.HasPrefix(b, []byte("\n")) {
		return 0
	}
	off := 0
	for {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return -1
		}
		p := off + i + 1
		if p < len(b) && b[p] == '\n' || p+1 < len(b) && b[p] == '\r' && b[p+1] == '\n' {
			return p
		}
		if p >= len(b) || p+1 == len(b) && b[p] == '\r' {
			return -1
		}
		off = p
	}
}

// wholeFields returns the longest prefix of b within limit bytes that ends
// at the end of a field: at a line end followed (in b) by a byte that does
// not continue the field. A field cut by the limit is left out rather than
// read truncated.
func wholeFields(b []byte, limit int) []byte {
	for p := min(limit, len(b)) - 1; p >= 0; p-- {
		if b[p] == '\n' && p+1 < len(b) && b[p+1] != ' ' && b[p+1] != '\t' {
			return b[:p+1]
		}
	}
	return nil
}

// parse finds the first Message-ID and Date fields of hdr and keeps their
// bodies as they stand, folds included (idgen canonicalises them).
func (h *headerReader) parse(hdr []byte) {
	var gotDate bool
	for len(hdr) > 0 {
		// One field: a line and its continuation lines (RFC 5322 2.2.3).
		end := 0
		for {
			i := bytes.IndexByte(hdr[end:], '\n')
			if i < 0 {
				end = len(hdr)
				break
			}
			end += i + 1
			if end >= len(hdr) || hdr[end] != ' ' && hdr[end] != '\t' {
				break
			}
		}
		field := hdr[:end]
		hdr = hdr[end:]
		colon := bytes.IndexByte(field, ':')
		if colon <= 0 {
			continue
		}
		name := bytes.TrimRight(field[:colon], " \t")
		body := trimEOL(field[colon+1:])
		switch {
		case !h.hasMessageID && asciiEqualFold(name, "Message-ID"):
			h.messageID, h.hasMessageID = string(body), true
		case !gotDate && asciiEqualFold(name, "Date"):
			h.date, gotDate = string(body), true
		}
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// insert puts field (a whole header line with CRLF) before the message.
func (h *headerReader) insert(field string) {
	nb := make([]byte, 0, len(field)+len(h.buf)-h.off)
	nb = append(nb, field...)
	nb = append(nb, h.buf[h.off:]...)
	h.buf, h.off = nb, 0
}

// Read passes the bytes read ahead, then reads through.
func (h *headerReader) Read(p []byte) (int, error) {
	if h.off < len(h.buf) {
		n := copy(p, h.buf[h.off:])
		h.off += n
		return n, nil
	}
	if h.err != nil {
		return 0, h.err
	}
	return h.r.Read(p)
}
