package mtqp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// FuzzParseReport: whatever ParseReport accepts must format, and the
// formatted bytes must be a fixed point: parse(format(r)) formats to the
// same bytes and parses to an equal report.
func FuzzParseReport(f *testing.F) {
	f.Add([]byte(canonicalSample))
	f.Add([]byte("Original-Envelope-Id: e\nReporting-MTA: h\n\nFinal-Recipient: a@b\nAction: transferred\nStatus: 2.1.9\nRemote-MTA: dns; mta2\n"))
	f.Add([]byte("Original-Envelope-Id: e\r\nReporting-MTA: dns;\r\n  h\r\nX-A: " + strings.Repeat("w ", 60) + "\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.1.1\r\nLast-Attempt-Date: 4 Dec 26 09:30 EST\r\n"))
	f.Add([]byte("Original-Envelope-Id: e\nReporting-MTA: dns; h\nX-A: " + strings.Repeat("abc  ", 190) + "\n\t" + strings.Repeat("z", 900) + "\n\nFinal-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.0.0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		out, err := r.Format()
		require.NoError(t, err, "accepted report must format")
		r2, err := ParseReport(out)
		require.NoError(t, err, "formatted report must parse: %q", out)
		out2, err := r2.Format()
		require.NoError(t, err)
		require.Equal(t, string(out), string(out2))
		require.Equal(t, r, r2)
	})
}

// FuzzCommandReader feeds arbitrary bytes to the server's command reader
// (ReadLine + ParseCommand + ParseTrackArgs): it must never panic, never
// return a line over the limit, and always make progress.
func FuzzCommandReader(f *testing.F) {
	f.Add([]byte("TRACK env+2B1 c2VjcmV0\r\nQUIT\r\n"))
	f.Add([]byte("\x00\xff\r\n\n\n" + strings.Repeat("A", 1200) + "\r\nCOMMENT hi\t there\r\n"))
	f.Add([]byte("starttls\r\nTRACK a b c\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(b), 64)
		for i := 0; i <= len(b); i++ {
			line, err := ReadLine(r, MaxLineLength)
			if err == ErrLineTooLong {
				continue
			}
			if err != nil {
				return
			}
			require.LessOrEqual(t, len(line), MaxLineLength)
			cmd, err := ParseCommand(line)
			if err != nil {
				continue
			}
			require.Equal(t, strings.ToUpper(cmd.Verb), cmd.Verb)
			if a, err := ParseTrackArgs(cmd.Args); err == nil {
				require.NotEmpty(t, a.EnvID)
				require.NotEmpty(t, a.Secret)
				// The client's encoding of what was parsed parses back the same.
				c2, err := ParseCommand(FormatTrack(CmdTrack, a.EnvID, a.Secret))
				require.NoError(t, err)
				a2, err := ParseTrackArgs(c2.Args)
				require.NoError(t, err)
				require.Equal(t, a, a2)
			}
		}
		t.Fatal("reader made no progress")
	})
}

// FuzzServer sends each input to a live server over loopback TCP, reads
// everything the server answers until it closes, and requires that every
// answer is a well-formed reply and that a fresh connection still gets a
// TRACK report afterwards.
func FuzzServer(f *testing.F) {
	srvTLS, _ := testTLS(f, "mta1.test")
	b := newMapBackend()
	b.add("env-1", testSecret, sampleReport("env-1", "mta1.test"))
	// No connection cap: thousands of executions a second would otherwise
	// meet it while closed connections wind down.
	s := &Server{Backend: b, Domain: "mta1.test", TLSConfig: srvTLS, IdleTimeout: 5 * time.Second,
		FailureRate: rate.Inf, MaxConnections: -1}
	addr := startServer(f, s)
	f.Add([]byte(FormatTrack(CmdTrack, "env-1", testSecret) + "\r\n"))
	f.Add([]byte("COMMENT x\r\nTRACK\r\nRECALL a b\r\n\x00\xff\xfe\r\n"))
	f.Add([]byte(strings.Repeat("Z", 3000) + "\nQUIT\n"))
	f.Add([]byte("STARTTLS\r\nTRACK env-1 x\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = nc.Write(in)
			_, _ = nc.Write([]byte("\r\nQUIT\r\n"))
		}()
		r := bufio.NewReader(nc)
		for {
			rep, err := ReadReply(r, 1000)
			if err == io.EOF || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) {
				// A server that closes with unread input resets the
				// connection; replies in flight may be lost with it.
				break
			}
			require.NoError(t, err)
			if rep.Code == CodeReadyTLS {
				// The server now waits for a TLS handshake; nothing more
				// comes in plaintext.
				break
			}
		}
		// The server is still healthy.
		c, err := Dial(context.Background(), addr)
		require.NoError(t, err)
		defer c.Close()
		res, err := c.Track(context.Background(), "env-1", testSecret)
		require.NoError(t, err)
		require.Equal(t, "env-1", res.Report.EnvelopeID)
	})
}

// FuzzParseDate: an accepted date formats to a canonical date that parses
// to the same instant and offset.
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"Fri, 4 Dec 2026 09:30:00 +0100", "4 Dec 26 09:30 EST", "Mon , 07 (x) Dec 1999 23:59:60 Z", "1 Jan 0001 00:00:00 -2359"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDate(s)
		if err != nil {
			return
		}
		out := FormatDate(d)
		d2, err := ParseDate(out)
		require.NoError(t, err, "formatted %q from %q", out, s)
		require.True(t, d.Equal(d2))
		_, o1 := d.Zone()
		_, o2 := d2.Zone()
		require.Equal(t, o1, o2)
		require.Equal(t, out, FormatDate(d2))
	})
}

// FuzzReadReply: the client's reply reader never panics, and what it
// accepts is written back by AppendReply in a form it reads identically.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte("250-mta MTQP server ready\r\n250-STARTTLS\r\n250 vnd.msgtrack.recall\r\n"))
	f.Add([]byte("550 No such message\r\n"))
	f.Add([]byte("250-a\n250-\n250\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ReadReply(bufio.NewReader(bytes.NewReader(b)), 100)
		if err != nil {
			return
		}
		wire := AppendReply(nil, rep.Code, rep.Lines...)
		rep2, err := ReadReply(bufio.NewReader(bytes.NewReader(wire)), 100)
		require.NoError(t, err)
		require.Equal(t, rep, rep2)
		if g, err := ParseGreeting(rep); err == nil {
			require.NotEmpty(t, g.Domain)
		}
		if raw, err := splitReportReply(rep); err == nil {
			_, _ = ParseReport(raw)
		}
	})
}

// FuzzXtext: decoding is the inverse of encoding.
func FuzzXtext(f *testing.F) {
	f.Add("env+2B1+3D")
	f.Add("plain")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := DecodeXtext(s)
		if err != nil {
			return
		}
		d2, err := DecodeXtext(EncodeXtext(d))
		require.NoError(t, err)
		require.Equal(t, d, d2)
	})
}
