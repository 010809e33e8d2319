package smtpext

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line, verb, arg string
		err             bool
	}{
		{"MAIL FROM:<a@b>", "MAIL", "FROM:<a@b>", false},
		{"mail from:<a@b>  \r", "MAIL", "from:<a@b>", false},
		{"QUIT", "QUIT", "", false},
		{"quit\r\r", "QUIT", "", false},
		{"STARTTLS", "STARTTLS", "", false},
		{"starttlsGARBAGE x", "STARTTLS", "", false},
		{"\u017ftarttls", "STARTTLS", "", false}, // long s upper-cases to S, as in go-smtp
		{"", "", "", false},
		{"AB", "", "", true},
		{"NOOPX", "", "", true},
		{"BDAT\t5", "", "", true},
		{"RCPT  TO:<a@b>", "RCPT", "TO:<a@b>", false},
	} {
		verb, arg, err := parseCommand(tc.line)
		if tc.err {
			assert.Error(t, err, tc.line)
			continue
		}
		require.NoError(t, err, tc.line)
		assert.Equal(t, tc.verb, verb, tc.line)
		assert.Equal(t, tc.arg, arg, tc.line)
	}
}

func TestParseEnvelope(t *testing.T) {
	for _, tc := range []struct {
		arg    string
		rcpt   bool
		ok     bool
		addr   string
		path   string
		fields []string
	}{
		{"FROM:<a@b.c> XT=1 BODY=8BITMIME", false, true, "a@b.c", "<a@b.c>", []string{"XT=1", "BODY=8BITMIME"}},
		{"from: <a@b.c>XT=1", false, true, "a@b.c", "<a@b.c>", []string{"XT=1"}},
		{"FROM:<>", false, true, "", "<>", nil},
		{"FROM:<> MTRK=x:1", false, true, "", "<>", []string{"MTRK=x:1"}},
		{"FROM:a@b.c\tXT", false, true, "a@b.c", "a@b.c", []string{"XT"}},
		{"FROM:<@r.ex:a@b.c> X=1", false, true, "a@b.c", "<@r.ex:a@b.c>", []string{"X=1"}},
		{`FROM:<"q u\"x"@b.c> X=1`, false, true, `q u"x@b.c`, `<"q u\"x"@b.c>`, []string{"X=1"}},
		{"FROM:<a b@c>", false, false, "", "", nil},
		{"FROM:<a@b.c", false, false, "", "", nil},
		{"FROM:<a@>", false, false, "", "", nil},
		{"FROM:<a@b@>", false, false, "", "", nil},
		{"FROM:a@b@ X=1", false, false, "", "", nil},
		{"FROM:<a@b@c> X=1", false, true, "a@b@c", "<a@b@c>", []string{"X=1"}},
		{`FROM:<"a"@b> X=1`, false, true, "a@b", `<"a"@b>`, []string{"X=1"}},
		{"FROM:<a@b>  ", false, true, "a@b", "<a@b>", nil},
		{"FROM:<a@b.c> A=B=C", false, false, "", "", nil},
		{"TO:<a@b.c>", false, false, "", "", nil},
		{"TO:<Postmaster> XR=1", true, true, "Postmaster", "<Postmaster>", []string{"XR=1"}},
		{"TO:<>", true, false, "", "", nil},
		{"TO:b@c.d NOTIFY=NEVER", true, true, "b@c.d", "b@c.d", []string{"NOTIFY=NEVER"}},
	} {
		env, ok := parseEnvelope(tc.arg, tc.rcpt)
		require.Equal(t, tc.ok, ok, tc.arg)
		if !ok {
			continue
		}
		assert.Equal(t, tc.addr, env.addr, tc.arg)
		assert.Equal(t, tc.path, env.path, tc.arg)
		assert.Equal(t, tc.fields, env.fields(), tc.arg)
	}
}

func TestBdatArgs(t *testing.T) {
	for _, tc := range []struct {
		arg      string
		size     int64
		last, ok bool
	}{
		{"10", 10, false, true},
		{"0 LAST", 0, true, true},
		{"  7   last ", 7, true, true},
		{"4294967295", 4294967295, false, true},
		{"4294967296", 0, false, false},
		{"-1", 0, false, false},
		{"+5", 0, false, false},
		{"", 0, false, false},
		{"5 FIRST", 0, false, false},
		{"5 LAST x", 0, false, false},
	} {
		size, last, ok := bdatArgs(tc.arg)
		assert.Equal(t, tc.ok, ok, tc.arg)
		assert.Equal(t, tc.size, size, tc.arg)
		assert.Equal(t, tc.last, last, tc.arg)
	}
}

// refDot is go-smtp's end-of-data state machine written byte by byte,
// the straightforward way; dotState must agree with it however the input
// is split.
func refDot(p []byte) (n int, end bool) {
	const (
		begin = iota
		dot
		dotCR
		cr
		data
	)
	s := begin
	for i, c := range p {
		switch s {
		case begin:
			switch c {
			case '.':
				s = dot
			case '\r':
				s = cr
			default:
				s = data
			}
		case dot:
			if c == '\r' {
				s = dotCR
			} else {
				s = data
			}
		case dotCR:
			if c == '\n' {
				return i + 1, true
			}
			s = data
		case cr:
			if c == '\n' {
				s = begin
			} else {
				s = data
			}
		case data:
			if c == '\r' {
				s = cr
			}
		}
	}
	return len(p), false
}

func TestDotState(t *testing.T) {
	for _, tc := range []struct {
		in  string
		end int // -1: no end
	}{
		{".\r\n", 3},
		{"a\r\n.\r\n", 6},
		{"a\r\r\n.\r\nb\r\n.\r\n", 13},
		{"a\n.\n.\r\n", -1},
		{"a\n.\r\n", -1},
		{".\rX\r\n.\r\n", 8},
		{"..\r\n.\r\n", 7},
		{"\r.\r\n", -1},
		{"\r\n.\r\n", 5},
		{".\r\r\n.\r\n", -1},
	} {
		var d dotState
		n, end := d.scan([]byte(tc.in))
		if tc.end < 0 {
			assert.False(t, end, "%q", tc.in)
			continue
		}
		assert.True(t, end, "%q", tc.in)
		assert.Equal(t, tc.end, n, "%q", tc.in)
	}
}

func FuzzDotState(f *testing.F) {
	f.Add([]byte("a\r\r\n.\r\nb\r\n.\r\n"), uint64(1))
	f.Add([]byte(".\rX\r\n.\r\n"), uint64(2))
	f.Add([]byte("\n.\n.\r\n\r\n.\r\n"), uint64(3))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		wantN, wantEnd := refDot(in)
		r := rand.New(rand.NewPCG(seed, 0))
		var d dotState
		got := 0
		end := false
		for rest := in; len(rest) > 0 && !end; {
			k := 1 + r.IntN(len(rest))
			var n int
			n, end = d.scan(rest[:k])
			got += n
			rest = rest[n:]
		}
		if end != wantEnd || got != wantN {
			t.Fatalf("%q: got (%d,%v) want (%d,%v)", in, got, end, wantN, wantEnd)
		}
	})
}

// FuzzParseEnvelope checks that a MAIL/RCPT argument the layer rebuilds
// after removing parameters parses back to the same address and
// remaining parameters, and that the parsers never panic.
func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{"FROM:<a@b> XT=1 B=2", "TO:<Postmaster> X", "FROM:<> A=B=C", `FROM:<"a b"@c>X=1`, "FROM:a@b\v X=1"} {
		f.Add(s, strings.HasPrefix(s, "TO"))
	}
	f.Fuzz(func(t *testing.T, arg string, rcpt bool) {
		_, _, _ = parseCommand(arg)
		_, _, _ = bdatArgs(arg)
		env, ok := parseEnvelope(arg, rcpt)
		if !ok {
			return
		}
		prefix := "FROM:"
		if rcpt {
			prefix = "TO:"
		}
		if r, _ := utf8.DecodeLastRuneInString(env.path); unicode.IsSpace(r) {
			return // the layer refuses to rebuild these (501)
		}
		kept := env.fields()
		if len(kept) > 0 {
			kept = kept[1:] // drop one parameter, as the layer would
		}
		rebuilt := prefix + env.path
		for _, k := range kept {
			rebuilt += " " + k
		}
		env2, ok := parseEnvelope(rebuilt, rcpt)
		if !ok || env2.addr != env.addr || env2.path != env.path || strings.Join(env2.fields(), " ") != strings.Join(kept, " ") {
			t.Fatalf("%q -> %q: %+v vs %+v", arg, rebuilt, env, env2)
		}
	})
}

func TestNewServerValidation(t *testing.T) {
	be := &recBackend{}
	for _, tc := range []struct {
		name string
		ext  Extension
	}{
		{"bad keyword", Extension{Keyword: "-X"}},
		{"go-smtp keyword", Extension{Keyword: "SIZE"}},
		{"bad param", Extension{Mail: []ParamSpec{{Name: "A B"}}}},
		{"go-smtp param without pass-through", Extension{Mail: []ParamSpec{{Name: "BODY"}}}},
		{"go-smtp rcpt param", Extension{Rcpt: []ParamSpec{{Name: "NOTIFY"}}}},
	} {
		_, err := NewServer(smtp.NewServer(be), Config{Extensions: []Extension{tc.ext}})
		assert.Error(t, err, tc.name)
	}
	_, err := NewServer(smtp.NewServer(be), Config{Extensions: []Extension{{Keyword: "X"}, {Keyword: "x"}}})
	assert.Error(t, err, "duplicate keyword")
	_, err = NewServer(smtp.NewServer(be), Config{MaxLineLength: 5000})
	assert.Error(t, err)
	_, err = NewServer(nil, Config{})
	assert.Error(t, err)

	s := smtp.NewServer(be)
	s.AllowInsecureAuth = false
	srv, err := NewServer(s, Config{Extensions: []Extension{{Mail: []ParamSpec{{Name: "ENVID", PassThrough: true}}}}})
	require.NoError(t, err)
	assert.True(t, s.AllowInsecureAuth, "go-smtp must not gate AUTH itself")
	assert.False(t, srv.cfg.AllowInsecureAuth)
	assert.Equal(t, DefaultReadTimeout, srv.cfg.ReadTimeout)
	assert.Equal(t, DefaultMaxConnections, srv.cfg.MaxConnections)
	assert.Zero(t, s.ReadTimeout)
	assert.Nil(t, s.TLSConfig)
}

func TestLineLimitAndBareLF(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{MaxLineLength: 100}})
	ok := "NOOP " + strings.Repeat("x", 100-5-2) + "\r\n" // 99 bytes + LF counts 1
	out := rawSession(t, ts.addr, "EHLO x\r\n"+ok+"QUIT\r\n")
	assert.Equal(t, []string{"220", "250", "250 2.0.0", "221 2.0.0"}, replyCodes(out))
	long := "NOOP " + strings.Repeat("x", 100-5-1) + "\r\n"
	out = rawSession(t, ts.addr, "EHLO x\r\n"+long+"QUIT\r\n")
	assert.Equal(t, []string{"220", "250", "500 5.4.0"}, replyCodes(out))

	ts2 := startServer(t, serverOpts{cfg: Config{BareLF: BareLFReject}})
	out = rawSession(t, ts2.addr, "EHLO x\r\nNOOP\nQUIT\r\n")
	assert.Equal(t, []string{"220", "250", "500 5.5.2"}, replyCodes(out))
	// Bare LF inside DATA is content: it neither ends the message nor
	// is rejected.
	out = rawSession(t, ts2.addr, "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\na\n.\nb\r\n.\r\nQUIT\r\n")
	assert.Equal(t, []string{"220", "250", "250 2.0.0", "250 2.0.0", "354", "250 2.0.0", "221 2.0.0"}, replyCodes(out))
	msgs := ts2.be.messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "a\n.\nb\r\n", msgs[0].Body)
}

func TestRequireTLSOnlyAfterTLS(t *testing.T) {
	ts := startServer(t, serverOpts{tls: true, tune: func(s *smtp.Server) { s.EnableREQUIRETLS = true }})
	out := rawSession(t, ts.addr, "EHLO x\r\nMAIL FROM:<a@b.c> REQUIRETLS\r\nQUIT\r\n")
	assert.NotContains(t, out, "REQUIRETLS\r\n")
	assert.Contains(t, out, "555 5.5.4 REQUIRETLS")
}

func TestLMTP(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{Extensions: testExtensions()}, tune: func(s *smtp.Server) { s.LMTP = true }})
	ts.be.rejectRcpt = map[string]bool{}
	out := rawSession(t, ts.addr, "LHLO x\r\nMAIL FROM:<a@b.c> XT=5\r\nRCPT TO:<d@e.f> XR=1\r\nRCPT TO:<g@h.i>\r\nDATA\r\nbody\r\n.\r\nQUIT\r\n")
	assert.Equal(t, []string{"220", "250", "250 2.0.0", "250 2.0.0", "250 2.0.0", "354", "250 2.0.0", "250 2.0.0", "221 2.0.0"}, replyCodes(out))
	assert.Contains(t, out, "250 XTEST 1 2\r\n")
	msgs := ts.be.messages()
	require.Len(t, msgs, 1)
	require.Len(t, msgs[0].Tx.Rcpts, 2)
	xr, _ := msgs[0].Tx.Rcpts[0].Params.Get("XR")
	assert.Equal(t, uint64(1), xr.Value)
	assert.True(t, bytes.Equal([]byte("body\r\n"), []byte(msgs[0].Body)))
}
