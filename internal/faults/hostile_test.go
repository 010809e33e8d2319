package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/tracking"
)

// smtpRaw is a raw SMTP client for input the real client would not send.
type smtpRaw struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *smtpRaw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(60*time.Second)))
	t.Cleanup(func() { c.Close() })
	r := &smtpRaw{c: c, br: bufio.NewReaderSize(c, 64<<10)}
	r.expect(t, "220")
	r.write(t, "EHLO client.faults.test\r\n")
	r.expect(t, "250")
	return r
}

func (r *smtpRaw) write(t *testing.T, s string) {
	t.Helper()
	_, err := r.c.Write([]byte(s))
	require.NoError(t, err)
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (r *smtpRaw) reply() (string, error) {
	for {
		ln, err := r.br.ReadString('\n')
		if err != nil {
			return ln, err
		}
		if len(ln) >= 4 && ln[3] == '-' {
			continue
		}
		return strings.TrimRight(ln, "\r\n"), nil
	}
}

func (r *smtpRaw) expect(t *testing.T, code string) string {
	t.Helper()
	ln, err := r.reply()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(ln, code), "want %s, got %q", code, ln)
	return ln
}

// TestTenThousandRecipientMessageIsRecordedAndTrackableOverMTQP sends one
// tracked message to 10,000 recipients (go-smtp's MaxRecipients raised;
// RCPTs pipelined) through the middleware onto memcached. The record holds
// every recipient and an MTQP TRACK returns a report with all 10,000.
func TestTenThousandRecipientMessageIsRecordedAndTrackableOverMTQP(t *testing.T) {
	const n = 10000
	mc := testenv.StartMemcached(t)
	st := startStack(t, stackOptions{store: memcacheStore(t, mc.Addr, 5*time.Second), maxRcpts: n, storeTimeout: 30 * time.Second})
	addr := startMTQP(t, &mtqp.Server{}, st.eng)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	m := newTrackedMessage(t, 1)
	r := dialRaw(t, st.addr)
	// Write the RCPTs from another goroutine while reading the replies, so
	// that neither side blocks on a full socket buffer.
	werr := make(chan error, 1)
	go func() {
		var b strings.Builder
		fmt.Fprintf(&b, "MAIL FROM:<alice@example.test> ENVID=%s MTRK=%s\r\n", m.envID, m.secret.Certifier())
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "RCPT TO:<user%d@example.org>\r\n", i)
		}
		b.WriteString("DATA\r\n")
		_, err := r.c.Write([]byte(b.String()))
		werr <- err
	}()
	r.expect(t, "250")
	for i := 0; i < n; i++ {
		r.expect(t, "250")
	}
	r.expect(t, "354")
	require.NoError(t, <-werr)
	r.write(t, "Message-ID: "+m.msgID+"\r\nSubject: many\r\n\r\nbody\r\n.\r\n")
	r.expect(t, "250")

	tr, ok := st.inbox.get(m.msgID)
	require.True(t, ok)
	assert.Len(t, tr.Recipients, n, "the backend saw every recipient")
	assert.Equal(t, uint64(1), st.mw.Stats().Recorded)

	rec, err := st.eng.Track(ctx, m.envID, m.secret)
	require.NoError(t, err)
	assert.Len(t, rec.Recipients, n, "the record holds every recipient")
	assert.False(t, rec.Incomplete)

	c, err := mtqp.Dial(ctx, addr)
	require.NoError(t, err)
	defer c.Close()
	res, err := c.Track(ctx, m.envID, m.secret)
	require.NoError(t, err)
	require.Len(t, res.Report.Recipients, n, "the MTQP report lists every recipient")
	seen := map[string]bool{}
	for _, rr := range res.Report.Recipients {
		seen[rr.FinalRecipient.Value] = true
	}
	assert.Len(t, seen, n, "each recipient once")
	assert.True(t, seen["user9999@example.org"])
}

// TestMailLineAtLengthLimitIsTrackedAndOneByteMoreIsRefused sends MAIL FROM
// lines with MTRK= as long as the layer's line limit allows (go-smtp's 2000
// bytes with its accounting) and one byte longer. The longest accepted line
// gives a tracked message whose sender is recorded whole; one byte more is
// answered "500 5.4.0" and the connection is closed, as by plain go-smtp.
func TestMailLineAtLengthLimitIsTrackedAndOneByteMoreIsRefused(t *testing.T) {
	mc := testenv.StartMemcached(t)
	st := startStack(t, stackOptions{store: memcacheStore(t, mc.Addr, 5*time.Second)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	m := newTrackedMessage(t, 1)
	// line is the MAIL command without CRLF, padded to size bytes in the
	// local part of the sender.
	line := func(size int) (string, string) {
		pre := "MAIL FROM:<"
		post := fmt.Sprintf("@example.test> ENVID=%s MTRK=%s", m.envID, m.secret.Certifier())
		local := strings.Repeat("a", size-len(pre)-len(post))
		return pre + local + post, local + "@example.test"
	}
	// go-smtp's 2000-byte limit counts the bytes before LF, CR included,
	// plus the previous line's LF (smtpext follows it exactly): after EHLO a
	// command may have 1998 bytes before its CRLF.
	const longest = 2000 - 2
	okLine, sender := line(longest)
	r := dialRaw(t, st.addr)
	r.write(t, okLine+"\r\n")
	r.expect(t, "250")
	r.write(t, "RCPT TO:<bob@example.org>\r\nDATA\r\n")
	r.expect(t, "250")
	r.expect(t, "354")
	r.write(t, "Message-ID: "+m.msgID+"\r\n\r\nbody\r\n.\r\n")
	r.expect(t, "250")
	rec, err := st.eng.Track(ctx, m.envID, m.secret)
	require.NoError(t, err, "the message sent with the longest MAIL line is tracked")
	assert.Equal(t, sender, rec.Sender)

	long, _ := line(longest + 1)
	r2 := dialRaw(t, st.addr)
	r2.write(t, long+"\r\n")
	ln := r2.expect(t, "500")
	assert.Contains(t, ln, "5.4.0")
	_, err = r2.reply()
	assert.Error(t, err, "the connection is closed after an over-long line")
	assert.Equal(t, 1, st.inbox.count())
}

// TestCorruptRecordInMemcachedGivesTrackErrorAndServerKeepsServing writes
// garbage with raw gomemcache under the head key of one record, and under
// one recipient shard key of another (40 recipients, so that the record is
// sharded). TRACK of the first answers an error reply, without a panic; the
// second is reported incomplete, without exactly the recipients of the
// corrupt shard; and the server still answers a healthy record on the same
// connection.
func TestCorruptRecordInMemcachedGivesTrackErrorAndServerKeepsServing(t *testing.T) {
	mc := testenv.StartMemcached(t)
	st := startStack(t, stackOptions{store: memcacheStore(t, mc.Addr, 5*time.Second)})
	srv := &mtqp.Server{}
	addr := startMTQP(t, srv, st.eng)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var rcpts []string
	for i := 0; i < 40; i++ {
		rcpts = append(rcpts, fmt.Sprintf("user%d@example.org", i))
	}
	var ms []message
	for i := 0; i < 3; i++ {
		m := newTrackedMessage(t, i)
		m.rcpts = rcpts
		require.NoError(t, send(ctx, st.addr, m))
		ms = append(ms, m)
	}
	bad := tracking.ShardOf("user0@example.org")
	wantMissing := map[string]bool{}
	for _, r := range rcpts {
		if tracking.ShardOf(r) == bad {
			wantMissing[r] = true
		}
	}
	raw := memcache.New(mc.Addr)
	garbage := []byte("\x00\xffnot a tracking record{{{")
	require.NoError(t, raw.Set(&memcache.Item{Key: tracking.HeadKey(ms[0].secret.Certifier()), Value: garbage}))
	require.NoError(t, raw.Set(&memcache.Item{Key: tracking.ShardKey(ms[1].secret.Certifier(), bad), Value: garbage}))

	c, err := mtqp.Dial(ctx, addr)
	require.NoError(t, err)
	defer c.Close()

	_, err = c.Track(ctx, ms[0].envID, ms[0].secret)
	var re *mtqp.ReplyError
	require.True(t, errors.As(err, &re), "a corrupt head gives an error reply, got %v", err)
	assert.GreaterOrEqual(t, re.Code, 400)
	// The engine reads an undecodable head like a missing one: the envelope
	// ID cannot be checked, so the answer is the one for an unknown message.
	assert.True(t, errors.Is(err, mtqp.ErrNotFound), "got %v", err)
	assert.NotEmpty(t, st.logs.warnings("unreadable record head"), "the corrupt head is logged")

	res, err := c.Track(ctx, ms[1].envID, ms[1].secret)
	require.NoError(t, err, "a corrupt shard leaves the rest of the record readable")
	got := map[string]bool{}
	for _, r := range res.Report.Recipients {
		got[r.FinalRecipient.Value] = true
	}
	for _, r := range rcpts {
		assert.Equal(t, !wantMissing[r], got[r], "recipient %s (corrupt shard %d holds it: %v)", r, bad, wantMissing[r])
	}
	hasIncomplete := false
	for _, f := range res.Report.Extensions {
		if strings.EqualFold(f.Name, "X-Record-Incomplete") {
			hasIncomplete = true
		}
	}
	assert.True(t, hasIncomplete, "the report says the record is incomplete")
	assert.NotEmpty(t, st.logs.warnings("unreadable record shard"), "the corrupt shard is logged")

	res, err = c.Track(ctx, ms[2].envID, ms[2].secret)
	require.NoError(t, err, "the server keeps serving healthy records on the same connection")
	assert.Len(t, res.Report.Recipients, len(rcpts))
}

// TestMTQPOneMegabyteLineGetsReplyAndConnectionStaysInStep sends a 1 MB
// TRACK line (RFC 3887 allows 998 characters). The server answers it with
// 500, keeps the connection in step and answers the next, valid TRACK on
// it; the over-long line is counted in Metrics.
func TestMTQPOneMegabyteLineGetsReplyAndConnectionStaysInStep(t *testing.T) {
	mc := testenv.StartMemcached(t)
	st := startStack(t, stackOptions{store: memcacheStore(t, mc.Addr, 5*time.Second)})
	srv := &mtqp.Server{}
	addr := startMTQP(t, srv, st.eng)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := newTrackedMessage(t, 1)
	require.NoError(t, send(ctx, st.addr, m))

	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	br := bufio.NewReader(c)
	readReply := func() string {
		t.Helper()
		var last string
		for {
			ln, err := br.ReadString('\n')
			require.NoError(t, err)
			last = strings.TrimRight(ln, "\r\n")
			if len(ln) < 4 || ln[3] != '-' {
				return last
			}
		}
	}
	assert.True(t, strings.HasPrefix(readReply(), "250"), "greeting")

	werr := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("TRACK " + strings.Repeat("x", 1<<20) + "\r\n"))
		werr <- err
	}()
	assert.True(t, strings.HasPrefix(readReply(), "500"), "the 1 MB line is answered 500")
	require.NoError(t, <-werr)

	_, err = c.Write([]byte(mtqp.FormatTrack("TRACK", m.envID, m.secret) + "\r\n"))
	require.NoError(t, err)
	first := ""
	for {
		ln, err := br.ReadString('\n')
		require.NoError(t, err)
		if first == "" {
			first = ln
		}
		if len(ln) >= 4 && ln[3] == ' ' {
			break
		}
	}
	assert.True(t, strings.HasPrefix(first, "250"), "the next TRACK on the same connection is answered: %q", first)
	assert.Equal(t, uint64(1), srv.Metrics().LineTooLong)

	// Another client is served too.
	c2, err := mtqp.Dial(ctx, addr)
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.Track(ctx, m.envID, m.secret)
	assert.NoError(t, err)
}
