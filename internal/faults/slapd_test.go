package faults

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/idgen/ldapsecret"
	"github.com/msgtrack/msgtrack/internal/testenv"
	"github.com/msgtrack/msgtrack/trackstore/memstore"
)

// TestSlapdDownGenerationFallsBackToMD4AndMailFlows runs trackinggenerate
// with the general recall secret in a real slapd: an authenticated message
// gets the SHA-1 path while slapd is up, the MD4 path (with the source's
// failure as the reason) while it is down, and the SHA-1 path again after
// it is back. Every message is accepted and recorded either way.
func TestSlapdDownGenerationFallsBackToMD4AndMailFlows(t *testing.T) {
	general := []byte("0123456789abcdef0123456789abcdef")
	ldif := "dn: uid=alice," + testenv.SlapdPeople + "\nobjectClass: inetOrgPerson\nobjectClass: " + testenv.RecallSecretClass +
		"\nuid: alice\ncn: alice\nsn: test\n" + testenv.RecallSecretAttr + ":: " + base64.StdEncoding.EncodeToString(general) + "\n\n"
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: ldif})
	src, err := ldapsecret.New(ldapsecret.Config{URL: sl.URL, BindDN: sl.BindDN, BindPassword: sl.BindPassword,
		BaseDN: testenv.SlapdPeople, Attribute: testenv.RecallSecretAttr,
		CacheTTL: -1, NegativeTTL: -1, DialTimeout: time.Second, RequestTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	gen := idgen.New(idgen.Options{Source: src, SourceTimeout: 2 * time.Second})
	st := startStack(t, stackOptions{store: memstore.New(memstore.Options{}), generator: gen,
		channel: channelopts.Channel{TrackingGenerate: 86400 * time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sendAs := func(i int) message {
		m := newTrackedMessage(t, i)
		m.secret, m.envID, m.user = nil, "", "alice" // no MTRK=: the server generates
		require.NoError(t, send(ctx, st.addr, m), "mail flows")
		return m
	}
	check := func(m message, want idgen.Path) {
		t.Helper()
		tr, ok := st.inbox.get(m.msgID)
		require.True(t, ok, "message reached the backend")
		assert.Equal(t, want, tr.Path)
		_, err := st.eng.Lookup(ctx, tr.Certifier)
		assert.NoError(t, err, "the generated identifier was recorded")
		if want == idgen.PathSHA1 {
			a, err := idgen.ComputeSecret(m.msgID, "Sat, 1 Aug 2026 12:34:56 +0200", general)
			require.NoError(t, err)
			assert.Equal(t, a.Certifier(), tr.Certifier, "a client recomputes the secret from the sent copy")
		} else {
			assert.Len(t, []byte(tr.Certifier), 16, "MD4 certifier")
			assert.NotEqual(t, idgen.ReasonNone, tr.Reason)
		}
	}

	check(sendAs(1), idgen.PathSHA1)
	sl.Stop()
	down := sendAs(2)
	check(down, idgen.PathMD4)
	tr, _ := st.inbox.get(down.msgID)
	t.Logf("with slapd down: path %v, reason %v", tr.Path, tr.Reason)
	sl.Start()
	check(sendAs(3), idgen.PathSHA1)
	assert.Equal(t, uint64(3), st.mw.Stats().Generated)
	assert.Equal(t, uint64(2), st.mw.Stats().GeneratedSHA1)
}
