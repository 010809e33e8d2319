package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestUsage: the flag names are part of the interface (issue 7); -h
// documents each, and the precedence rule.
func TestUsage(t *testing.T) {
	var buf bytes.Buffer
	assert.Equal(t, 0, run([]string{"-h"}, &buf))
	for _, name := range []string{"mx", "submission", "mtqp", "hostname", "store", "spool", "maildir",
		"local-domains", "users", "aliases", "relay", "max-hold", "options", "channels", "tls-cert", "tls-key",
		"ldap-url", "ldap-bind-dn", "ldap-bind-password", "ldap-base", "ldap-attr"} {
		assert.Contains(t, buf.String(), "\n  -"+name+" ", name)
	}
	assert.Contains(t, buf.String(), "wins over")
	assert.Contains(t, buf.String(), `(default "127.0.0.1:2525")`)
	assert.Contains(t, buf.String(), `(default "127.0.0.1:5587")`)
	assert.Contains(t, buf.String(), `(default "127.0.0.1:11038")`)
}

func TestRunRefusesBadInvocations(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected arguments"},
		{[]string{"-options", "/nonexistent/option.dat"}, 2, "no such file"},
		{[]string{"-channels", "/nonexistent/imta.cnf"}, 2, "no such file"},
		{[]string{"-store", "redis://x", "-spool", "/tmp/x-refmta-spool", "-mx", "-", "-submission", "-", "-mtqp", "-"}, 1, "unknown store"},
	} {
		var buf bytes.Buffer
		assert.Equal(t, tc.code, run(tc.args, &buf), tc.args)
		assert.Contains(t, buf.String(), tc.msg, tc.args)
	}
}
