package smtpext

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPipelinedParamsAndBodies(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{Extensions: testExtensions()}})
	body1 := "Subject: one\r\n\r\nMAIL FROM:<evil@x> XT=1\r\n..leading dot\r\nRSET\r\n.\rX\r\n\r\r\n.\r\nstill body\r\n"
	in := "EHLO client\r\n" +
		"MAIL FROM:<a@example.org> XT=42 BODY=8BITMIME\r\n" +
		"RCPT TO:<b@example.org> XR=7\r\n" +
		"RCPT TO:<c@example.org>\r\n" +
		"DATA\r\n" + body1 + ".\r\n" +
		"MAIL FROM:<d@example.org> XT=bad\r\n" +
		"MAIL FROM:<d@example.org> XTL=1\r\n" +
		"MAIL FROM:<d@example.org> XT=1 XT=2\r\n" +
		"MAIL FROM:<d@example.org>\r\n" +
		"RCPT TO:<e@example.org> XR=x\r\n" +
		"RCPT TO:<e@example.org> XR=9\r\n" +
		"BDAT 10\r\n0123456789" +
		"BDAT 5 LAST\r\nABCDE" +
		"QUIT\r\n"
	out := rawSession(t, ts.addr, in)
	assert.Equal(t, []string{
		"220", "250", // greeting, EHLO
		"250 2.0.0", "250 2.0.0", "250 2.0.0", "354", "250 2.0.0",
		"501 5.5.4", "555 5.5.4", "501 5.5.4",
		"250 2.0.0", "501 5.5.4", "250 2.0.0",
		"250 2.0.0", "250 2.0.0",
		"221 2.0.0",
	}, replyCodes(out), out)
	assert.Contains(t, out, "250 XTEST 1 2\r\n")
	assert.NotContains(t, out, "XTLS")
	assert.Contains(t, out, "Malformed XT value")

	msgs := ts.be.messages()
	require.Len(t, msgs, 2)
	m := msgs[0]
	assert.Equal(t, "a@example.org", m.From)
	assert.Equal(t, []string{"b@example.org", "c@example.org"}, m.Rcpts)
	assert.Equal(t, "Subject: one\r\n\r\nMAIL FROM:<evil@x> XT=1\r\n.leading dot\r\nRSET\r\nX\r\n\r\r\n.\r\nstill body\r\n", m.Body)
	require.True(t, m.HasInfo)
	p, ok := m.Tx.MailParams.Get("xt")
	require.True(t, ok)
	assert.Equal(t, uint64(42), p.Value)
	assert.Equal(t, "42", p.Raw)
	require.Len(t, m.Tx.Rcpts, 2)
	assert.Equal(t, "b@example.org", m.Tx.Rcpts[0].To)
	xr, ok := m.Tx.Rcpts[0].Params.Get("XR")
	require.True(t, ok)
	assert.Equal(t, uint64(7), xr.Value)
	assert.Empty(t, m.Tx.Rcpts[1].Params)
	assert.Equal(t, "BODY=8BITMIME", "BODY="+string(m.MailOpts.Body))
	assert.Equal(t, m.Tx.MailParams, m.MailCmd)

	m = msgs[1]
	assert.Equal(t, "0123456789ABCDE", m.Body)
	assert.Equal(t, "d@example.org", m.From)
	assert.Empty(t, m.Tx.MailParams)
	require.Len(t, m.Tx.Rcpts, 1)
	xr, _ = m.Tx.Rcpts[0].Params.Get("XR")
	assert.Equal(t, uint64(9), xr.Value)
	assert.True(t, strings.HasPrefix(m.Remote, "127.0.0.1:"))
	assert.Equal(t, "plain", m.Listener)
}

func TestStripRefusesTrailingSpaceInPath(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{Extensions: testExtensions()}})
	out := rawSession(t, ts.addr, "EHLO x\r\nMAIL FROM:a@b.c\v XT=1\r\nMAIL FROM:a@b.c\v\r\nQUIT\r\n")
	// With a parameter to remove: refused. Without: go-smtp decides (and
	// accepts the odd address, as it would without the layer).
	assert.Equal(t, []string{"220", "250", "501 5.5.2", "250 2.0.0", "221 2.0.0"}, replyCodes(out))
}

// wholeLinesRef is the line-by-line form of wholeLines (one IndexByte per
// line), kept as its reference.
func wholeLinesRef(buf []byte, limit int) (cut int, long bool) {
	for cut < len(buf) {
		j := bytes.IndexByte(buf[cut:], '\n')
		if j < 0 {
			break
		}
		if 1+j > limit {
			long = true
			break
		}
		cut += j + 1
	}
	return cut, long
}

// TestWholeLines: wholeLines gives the same cut as the line-by-line scan,
// and the same decision where readData uses long (nothing to hand over:
// wait for more, or fail with a too long line).
func TestWholeLines(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	decide := func(buf []byte, limit int, cut int, long bool) string {
		if cut > 0 {
			return "hand over"
		}
		if !long && len(buf)+1 <= limit {
			return "wait"
		}
		return "too long"
	}
	for range 20000 {
		limit := 1 + r.IntN(40)
		buf := make([]byte, r.IntN(120))
		for i := range buf {
			if r.IntN(1+r.IntN(30)) == 0 {
				buf[i] = '\n'
			} else {
				buf[i] = 'x'
			}
		}
		cut, long := wholeLines(buf, limit)
		rcut, rlong := wholeLinesRef(buf, limit)
		require.Equal(t, rcut, cut, "%q limit %d", buf, limit)
		require.Equal(t, decide(buf, limit, rcut, rlong), decide(buf, limit, cut, long), "%q limit %d", buf, limit)
	}
}
