package mta

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/aliasing"
	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
	"github.com/msgtrack/msgtrack/tracking"
	"github.com/msgtrack/msgtrack/trackstore/memcachestore"
)

func TestLimiter(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}
	other := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 1234}
	for _, tc := range []struct {
		name    string
		rate    float64
		burst   int
		tries   int
		allowed int
	}{
		{"burst then refuse", 0.001, 3, 5, 3},
		{"unlimited", -1, 1, 50, 50},
		{"defaults", 0, 0, DefaultSessionBurst + 5, DefaultSessionBurst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(tc.rate, tc.burst)
			n := 0
			for range tc.tries {
				if l.allow(addr) {
					n++
				}
			}
			// One client's budget is its own; a port change is the same
			// client.
			assert.Equal(t, tc.allowed, n)
			assert.True(t, l.allow(other), "another address has its own budget")
		})
	}
}

func TestDefaultChannel(t *testing.T) {
	for _, tc := range []struct {
		name           string
		server, client bool
		generate       time.Duration
	}{
		{ChannelMX, true, false, 0},
		{ChannelSubmission, true, false, 259200 * time.Second},
		{ChannelRelay, false, true, 0},
		{"other", false, false, 0},
	} {
		ch := DefaultChannel(tc.name)
		assert.Equal(t, tc.name, ch.Name)
		assert.Equal(t, tc.server, ch.TrackingServer, tc.name)
		assert.Equal(t, tc.client, ch.TrackingClient, tc.name)
		assert.Equal(t, tc.generate, ch.TrackingGenerate, tc.name)
		assert.Equal(t, channelopts.Internal, ch.Disposition, tc.name)
		assert.Equal(t, aliasing.Multiple, ch.AliasPolicy, tc.name)
		assert.NoError(t, ch.Validate())
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	base := func(t *testing.T) Config {
		d := t.TempDir()
		return Config{MXAddr: "127.0.0.1:0", SubmissionAddr: "127.0.0.1:0", MTQPAddr: "127.0.0.1:0",
			SpoolDir: filepath.Join(d, "spool"), MaildirRoot: filepath.Join(d, "md"), Logger: slog.New(slog.DiscardHandler)}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no spool", func(c *Config) { c.SpoolDir = "" }, "required"},
		{"bad store", func(c *Config) { c.Store = "redis://x" }, "unknown store"},
		{"empty memcache", func(c *Config) { c.Store = "memcache://" }, "no memcached server"},
		{"memcached from the options", func(c *Config) {
			c.Options = channelopts.MTA{TrackingMode: channelopts.ModeMemcached}
		}, "memcache_host"},
		{"cert without key", func(c *Config) { c.TLSCert = "/nonexistent" }, "together"},
		{"missing users file", func(c *Config) { c.UsersFile = "/nonexistent/users" }, "users"},
		{"bad listen address", func(c *Config) { c.MXAddr = "256.0.0.1:1" }, "listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base(t)
			tc.mod(&cfg)
			_, err := New(context.Background(), cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// startMTA runs an MTA on free loopback ports with users alice and bob.
func startMTA(tb testing.TB, mods ...func(*Config)) *MTA {
	tb.Helper()
	d := tb.TempDir()
	users := filepath.Join(d, "users")
	require.NoError(tb, os.WriteFile(users, []byte("alice:pw\nbob:pw\n"), 0o600))
	cfg := Config{
		MXAddr: "127.0.0.1:0", SubmissionAddr: "127.0.0.1:0", MTQPAddr: "127.0.0.1:0",
		Hostname: "mta.example.test", SpoolDir: filepath.Join(d, "spool"), MaildirRoot: filepath.Join(d, "md"),
		LocalDomains: []string{"example.test"}, UsersFile: users, SessionRate: -1,
		Logger: slog.New(slog.DiscardHandler),
	}
	for _, f := range mods {
		f(&cfg)
	}
	m, err := New(context.Background(), cfg)
	require.NoError(tb, err)
	m.Start(context.Background())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(tb, m.Shutdown(ctx))
	})
	return m
}

// submitHeld submits one tracked message held for an hour over a fresh
// authenticated connection.
func submitHeld(ctx context.Context, addr, envid string, secret mtrk.Secret) error {
	return submitHold(ctx, addr, envid, secret, 3600)
}

func submitHold(ctx context.Context, addr, envid string, secret mtrk.Secret, hold int) error {
	return submitTo(ctx, addr, envid, secret, hold, "bob@example.test")
}

func submitTo(ctx context.Context, addr, envid string, secret mtrk.Secret, hold int, rcpt string) error {
	c, err := smtpext.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StartTLS(ctx, &tls.Config{InsecureSkipVerify: true}); err != nil { //nolint:gosec // self-signed test certificate
		return err
	}
	if err := c.Auth(ctx, sasl.NewPlainClient("", "alice", "pw")); err != nil {
		return err
	}
	if err := c.Mail(ctx, "alice@example.test",
		smtpext.MailParam{Name: "ENVID", Value: envid, Keyword: "DSN"},
		smtpext.MailParam{Name: "MTRK", Value: secret.Certifier().String(), Keyword: "MTRK"},
		smtpext.MailParam{Name: "HOLDFOR", Value: fmt.Sprint(hold), Keyword: "FUTURERELEASE"}); err != nil {
		return err
	}
	if _, err := c.Rcpt(ctx, rcpt); err != nil {
		return err
	}
	w, err := c.Data(ctx)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, "Subject: "+envid+"\r\nMessage-ID: <"+envid+"@example.test>\r\n\r\nhello\r\n"); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit(ctx)
}

func TestSubmissionRequiresAuthAndTLS(t *testing.T) {
	m := startMTA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := smtpext.Dial(ctx, m.Addrs().Submission)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Hello(ctx, "client.example.test"))
	ok, _ := c.Extension("AUTH")
	assert.False(t, ok, "no AUTH before TLS")
	ok, _ = c.Extension("FUTURERELEASE")
	assert.False(t, ok, "no FUTURERELEASE before TLS")
	err = c.Mail(ctx, "alice@example.test")
	var re *smtpext.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 530, re.Code)

	require.NoError(t, c.StartTLS(ctx, &tls.Config{InsecureSkipVerify: true})) //nolint:gosec // self-signed test certificate
	for _, kw := range []string{"AUTH", "MTRK", "FUTURERELEASE", "DSN"} {
		ok, _ := c.Extension(kw)
		assert.True(t, ok, kw)
	}
	err = c.Auth(ctx, sasl.NewPlainClient("", "alice", "wrong"))
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 535, re.Code)
}

func TestRecallInProcess(t *testing.T) {
	m := startMTA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	secret, err := mtrk.NewSecret()
	require.NoError(t, err)
	require.NoError(t, submitHeld(ctx, m.Addrs().Submission, "unit-1", secret))

	c, err := mtqp.Dial(ctx, m.Addrs().MTQP)
	require.NoError(t, err)
	defer c.Close()
	res, err := c.Recall(ctx, "unit-1", secret)
	require.NoError(t, err)
	require.Len(t, res.Report.Recipients, 1)
	assert.Equal(t, mtqp.RecallRecalled, res.Report.Recipients[0].RecallStatus())

	// The spool, the authority, agrees.
	var states []string
	for _, env := range m.spool.List() {
		for _, r := range env.Recipients {
			states = append(states, string(r.State))
		}
	}
	assert.Equal(t, []string{"recalled"}, states)

	// A wrong secret learns nothing.
	other, err := mtrk.NewSecret()
	require.NoError(t, err)
	_, err = c.Track(ctx, "unit-1", other)
	assert.ErrorIs(t, err, mtqp.ErrNotFound)
}

// BenchmarkSubmitHeld measures the acceptance path of one tracked, held
// message over loopback: TLS, AUTH, MAIL with MTRK and HOLDFOR, DATA, the
// durable spool write (two fsyncs and renames) and the tracking record.
func BenchmarkSubmitHeld(b *testing.B) {
	m := startMTA(b)
	ctx := context.Background()
	secret, err := mtrk.NewSecret()
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := submitHeld(ctx, m.Addrs().Submission, fmt.Sprintf("bench-%d", i), secret); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRecallClaimedBeforeAttempt: a recall made at another MTA of the
// deployment claims the recipient while the message is held here; this
// MTA does not poll (PollInterval is an hour), so it first learns of the
// claim from BeginDelivery at the release: it must withdraw the recipient
// from its spool, confirm the recall, and deliver nothing.
func TestRecallClaimedBeforeAttempt(t *testing.T) {
	mc := testenv.StartMemcached(t)
	m := startMTA(t, func(c *Config) {
		c.Store = "memcache://" + mc.Addr
		c.PollInterval = time.Hour
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret, err := mtrk.NewSecret()
	require.NoError(t, err)
	require.NoError(t, submitHold(ctx, m.Addrs().Submission, "claimed-1", secret, 2))

	st, err := memcachestore.New(memcachestore.Options{Servers: []string{mc.Addr}})
	require.NoError(t, err)
	defer st.Close()
	other := tracking.New(st, tracking.Options{ReportingMTA: "other.example.test"})
	rep, err := other.Recall(ctx, "claimed-1", secret)
	require.NoError(t, err)
	require.Len(t, rep.Results, 1)
	assert.Equal(t, tracking.RecallPending, rep.Results[0].Outcome, "owned by the first MTA, which has not seen the claim yet")

	deadline := time.Now().Add(20 * time.Second)
	for {
		rep, err = other.Recall(ctx, "claimed-1", secret)
		require.NoError(t, err)
		if rep.Results[0].Outcome != tracking.RecallPending {
			break
		}
		require.True(t, time.Now().Before(deadline), "the release never confirmed the recall")
		time.Sleep(100 * time.Millisecond)
	}
	assert.Equal(t, tracking.RecallRecalled, rep.Results[0].Outcome)
	var states []string
	for _, env := range m.spool.List() {
		for _, r := range env.Recipients {
			states = append(states, string(r.State))
		}
	}
	assert.Equal(t, []string{"recalled"}, states)
	entries, _ := os.ReadDir(filepath.Join(m.cfg.MaildirRoot, "bob", "new"))
	assert.Empty(t, entries)
}

func TestParseStore(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		servers []string
		err     string
	}{
		{"memory", nil, ""},
		{"memcache://127.0.0.1:11211", []string{"127.0.0.1:11211"}, ""},
		{"memcache://a:1, b:2,", []string{"a:1", "b:2"}, ""},
		{"memcache://[::1]:11211", []string{"[::1]:11211"}, ""},
		{"memcache://", nil, "no memcached server"},
		{"memcache://host", nil, "not host:port"},
		{"memcache://:11211", nil, "not host:port"},
		{"Memory", nil, "unknown store"},
		{"redis://x:1", nil, "unknown store"},
		{"", nil, "unknown store"},
	} {
		got, err := ParseStore(tc.spec)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.spec)
			continue
		}
		require.NoError(t, err, tc.spec)
		assert.Equal(t, tc.servers, got, tc.spec)
	}
}

func FuzzParseStore(f *testing.F) {
	for _, s := range []string{"memory", "memcache://127.0.0.1:11211", "memcache://a:1,b:2", "memcache://", "memcache://[::1]:1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		servers, err := ParseStore(spec)
		if err != nil {
			return
		}
		if spec == "memory" {
			assert.Nil(t, servers)
			return
		}
		require.NotEmpty(t, servers)
		for _, s := range servers {
			h, p, err := net.SplitHostPort(s)
			require.NoError(t, err)
			assert.NotEmpty(t, h)
			assert.NotEmpty(t, p)
			assert.Contains(t, spec, s)
		}
	})
}

// TestQueueRemoveAlias: the engine may ask the queue to remove an alias
// whose expansion it never recorded; the queue removes the members that
// carry the certifier and reports the alias removed once all are.
func TestQueueRemoveAlias(t *testing.T) {
	aliasesFile := filepath.Join(t.TempDir(), "aliases")
	require.NoError(t, os.WriteFile(aliasesFile, []byte("team: alice, bob\n"), 0o600))
	m := startMTA(t, func(c *Config) { c.AliasesFile = aliasesFile })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	secret, err := mtrk.NewSecret()
	require.NoError(t, err)
	require.NoError(t, submitTo(ctx, m.Addrs().Submission, "alias-q", secret, 3600, "team@example.test"))

	envs := m.spool.List()
	require.Len(t, envs, 1)
	queueID := envs[0].Tracking.Extra[extraQueue]
	q := spoolQueue{m}
	for _, tc := range []struct {
		ask, want []string
	}{
		{[]string{"nobody@example.test"}, nil},
		{[]string{"team@example.test"}, []string{"team@example.test"}},
		{[]string{"team@example.test", "alice@example.test"}, []string{"team@example.test", "alice@example.test"}},
	} {
		got, err := q.Remove(ctx, queueID, tc.ask)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, tc.ask)
	}
	got, err := q.Remove(ctx, "no-such-queue", []string{"team@example.test"})
	require.NoError(t, err)
	assert.Empty(t, got)

	env, err := m.spool.Get(envs[0].ID)
	require.NoError(t, err)
	for _, r := range env.Recipients {
		assert.Equal(t, "recalled", string(r.State), r.Addr)
		assert.Equal(t, "team@example.test", r.Meta[metaParent])
	}
}
