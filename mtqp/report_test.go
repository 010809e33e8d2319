package mtqp

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const canonicalSample = "Original-Envelope-Id: env-1\r\n" +
	"Reporting-MTA: dns; mta1.example.org\r\n" +
	"Arrival-Date: Fri, 4 Dec 2026 09:30:00 +0100\r\n" +
	"X-Queue-Id: Q123\r\n" +
	"\r\n" +
	"Original-Recipient: rfc822; list@example.com\r\n" +
	"Final-Recipient: rfc822; alice@example.com\r\n" +
	"Action: delivered\r\n" +
	"Status: 2.0.0\r\n" +
	"Remote-MTA: dns; mx.example.com\r\n" +
	"Last-Attempt-Date: Fri, 4 Dec 2026 09:31:00 +0100\r\n" +
	"\r\n" +
	"Final-Recipient: rfc822; bob@example.net\r\n" +
	"Action: delayed\r\n" +
	"Status: 4.4.1\r\n" +
	"Will-Retry-Until: Mon, 7 Dec 2026 09:30:00 +0100\r\n" +
	"Diagnostic-Code: smtp; 421 try later\r\n"

func TestReportFormatCanonical(t *testing.T) {
	b, err := sampleReport("env-1", "mta1.example.org").Format()
	require.NoError(t, err)
	assert.Equal(t, canonicalSample, string(b))
}

func TestReportRoundTrip(t *testing.T) {
	r := sampleReport("env-1", "mta1.example.org")
	b, err := r.Format()
	require.NoError(t, err)
	p, err := ParseReport(b)
	require.NoError(t, err)
	assert.Equal(t, r.EnvelopeID, p.EnvelopeID)
	assert.True(t, r.ArrivalDate.Equal(p.ArrivalDate))
	_, off := p.ArrivalDate.Zone()
	assert.Equal(t, 3600, off)
	// Field by field equality, times compared as instants.
	require.Len(t, p.Recipients, 2)
	for i := range r.Recipients {
		a, b := r.Recipients[i], p.Recipients[i]
		assert.True(t, a.LastAttemptDate.Equal(b.LastAttemptDate))
		assert.True(t, a.WillRetryUntil.Equal(b.WillRetryUntil))
		a.LastAttemptDate, b.LastAttemptDate, a.WillRetryUntil, b.WillRetryUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		assert.Equal(t, a, b)
	}
	// format(parse(b)) == b for canonical b.
	b2, err := p.Format()
	require.NoError(t, err)
	assert.Equal(t, string(b), string(b2))
}

func TestParseReportTolerant(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, r *Report)
	}{
		{"LF endings, odd case, extra spaces", "\n\noriginal-envelope-ID :  e1 \nREPORTING-mta:dns ;  h.example\n\n\nfinal-recipient:RFC822;a@b\naction: DELIVERED\nstatus: 2.1.5 (ok)\n\n\n",
			func(t *testing.T, r *Report) {
				assert.Equal(t, "e1", r.EnvelopeID)
				assert.Equal(t, TypedValue{"dns", "h.example"}, r.ReportingMTA)
				assert.Equal(t, TypedValue{"RFC822", "a@b"}, r.Recipients[0].FinalRecipient)
				assert.Equal(t, ActionDelivered, r.Recipients[0].Action)
				assert.Equal(t, Status{2, 1, 5}, r.Recipients[0].Status)
			}},
		{"folded values", "Original-Envelope-Id: e1\r\nReporting-MTA: dns;\r\n h.example\r\nX-Long: one\r\n two\r\n\tthree\r\n\r\nFinal-Recipient: a@b\r\nAction: transferred\r\nStatus: 2.1.9\r\nRemote-MTA: mta2.example\r\n",
			func(t *testing.T, r *Report) {
				assert.Equal(t, TypedValue{"dns", "h.example"}, r.ReportingMTA)
				assert.Equal(t, []Field{{"X-Long", "one two\tthree"}}, r.Extensions)
				assert.Equal(t, RFC822("a@b"), r.Recipients[0].FinalRecipient, "missing type defaults to rfc822")
				assert.Equal(t, DNS("mta2.example"), r.Recipients[0].RemoteMTA, "missing type defaults to dns")
				assert.Equal(t, StatusRelayedNonCompliant, r.Recipients[0].Status)
			}},
		{"obsolete dates", "Original-Envelope-Id: e1\nReporting-MTA: dns; h\nArrival-Date: 4 Dec 26 09:30 EST\n\nFinal-Recipient: rfc822; a@b\nAction: delayed\nStatus: 4.0.0\nLast-Attempt-Date: Fri , 04 Dec 2026 09:30:00 (comment) GMT\n",
			func(t *testing.T, r *Report) {
				assert.True(t, r.ArrivalDate.Equal(time.Date(2026, 12, 4, 14, 30, 0, 0, time.UTC)))
				assert.True(t, r.Recipients[0].LastAttemptDate.Equal(time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)))
			}},
		{"extension order kept", "Original-Envelope-Id: e1\nX-B: 2\nReporting-MTA: dns; h\nX-A: 1\n\nX-Z: z\nFinal-Recipient: rfc822; a@b\nX-Y: y\nAction: opaque\nStatus: 2.0.0\n",
			func(t *testing.T, r *Report) {
				assert.Equal(t, []Field{{"X-B", "2"}, {"X-A", "1"}}, r.Extensions)
				assert.Equal(t, []Field{{"X-Z", "z"}, {"X-Y", "y"}}, r.Recipients[0].Extensions)
				assert.Equal(t, ActionOpaque, r.Recipients[0].Action)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReport([]byte(tc.in))
			require.NoError(t, err)
			tc.check(t, r)
			// Whatever was accepted formats, and the canonical form is stable.
			b, err := r.Format()
			require.NoError(t, err)
			r2, err := ParseReport(b)
			require.NoError(t, err)
			b2, err := r2.Format()
			require.NoError(t, err)
			assert.Equal(t, string(b), string(b2))
		})
	}
}

func TestParseReportErrors(t *testing.T) {
	base := "Original-Envelope-Id: e1\nReporting-MTA: dns; h\n\n"
	rcpt := "Final-Recipient: rfc822; a@b\nAction: delivered\nStatus: 2.0.0\n"
	tests := map[string]string{
		"empty":                "",
		"no recipients":        base,
		"no envid":             "Reporting-MTA: dns; h\n\n" + rcpt,
		"no reporting mta":     "Original-Envelope-Id: e1\n\n" + rcpt,
		"no final recipient":   base + "Action: delivered\nStatus: 2.0.0\n",
		"no action":            base + "Final-Recipient: rfc822; a@b\nStatus: 2.0.0\n",
		"bad status":           base + "Final-Recipient: rfc822; a@b\nAction: delivered\nStatus: 3.0.0\n",
		"status shape":         base + "Final-Recipient: rfc822; a@b\nAction: delivered\nStatus: 2.0\n",
		"bad date":             base + rcpt + "Last-Attempt-Date: yesterday\n",
		"repeated field":       base + rcpt + "Action: failed\n",
		"not a field":          base + "this is not a field\n",
		"leading continuation": " x\n" + base + rcpt,
		"recipient field up":   "Original-Envelope-Id: e1\nReporting-MTA: dns; h\nAction: failed\n\n" + rcpt,
		"control char":         base + rcpt + "X-A: a\x00b\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseReport([]byte(in))
			assert.Error(t, err)
		})
	}
}

func TestFormatFolding(t *testing.T) {
	long := strings.Repeat("word ", 40) + "end"
	r := &Report{EnvelopeID: "e", ReportingMTA: DNS("h"),
		Extensions: []Field{{"X-Long", long}, {"X-Unbreakable", strings.Repeat("x", 120)}},
		Recipients: []Recipient{{FinalRecipient: RFC822("a@b"), Action: ActionFailed, Status: Status{5, 1, 1}}}}
	b, err := r.Format()
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\r\n") {
		if !strings.HasPrefix(l, "X-Unbreakable") {
			assert.LessOrEqual(t, len(l), foldWidth, "line %q", l)
		}
	}
	assert.Contains(t, string(b), "X-Unbreakable: "+strings.Repeat("x", 120)+"\r\n")
	p, err := ParseReport(b)
	require.NoError(t, err)
	assert.Equal(t, long, p.Extensions[0].Value)
}

func TestFormatRejectsInvalid(t *testing.T) {
	ok := func() *Report { return sampleReport("e", "h") }
	tests := map[string]func(r *Report){
		"newline in value":   func(r *Report) { r.Extensions = []Field{{"X-A", "a\r\nInjected: yes"}} },
		"colon in name":      func(r *Report) { r.Extensions = []Field{{"X:A", "a"}} },
		"known as extension": func(r *Report) { r.Extensions = []Field{{"action", "a"}} },
		"upper-case action":  func(r *Report) { r.Recipients[0].Action = "Delivered" },
		"no recipients":      func(r *Report) { r.Recipients = nil },
		"bad status":         func(r *Report) { r.Recipients[0].Status = Status{1, 0, 0} },
		"space in type":      func(r *Report) { r.ReportingMTA = TypedValue{"d ns", "h"} },
		"leading space":      func(r *Report) { r.EnvelopeID = " e" },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			r := ok()
			mod(r)
			_, err := r.Format()
			assert.Error(t, err)
		})
	}
}

func TestParseDate(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time
	}{
		{"Fri, 4 Dec 2026 09:30:00 +0000", utc(2026, 12, 4, 9, 30, 0)},
		{"4 Dec 2026 09:30:00 -0130", utc(2026, 12, 4, 11, 0, 0)},
		{"Fri, 04 Dec 26 09:30 UT", utc(2026, 12, 4, 9, 30, 0)},
		{"4 Dec 99 09:30:00 PST", utc(1999, 12, 4, 17, 30, 0)},
		{"4 Dec 101 09:30:00 Z", utc(2001, 12, 4, 9, 30, 0)},
		{"4 Dec 2026 23:59:60 +0000", utc(2026, 12, 4, 23, 59, 59)},
		{"  4   December  2026 09:30:00   +0000  ", utc(2026, 12, 4, 9, 30, 0)},
		{"4 Dec 2026 09:30:00 A", utc(2026, 12, 4, 9, 30, 0)},
	}
	for _, tc := range tests {
		got, err := ParseDate(tc.in)
		require.NoError(t, err, tc.in)
		assert.True(t, tc.want.Equal(got), "%s: got %v", tc.in, got)
	}
	for _, bad := range []string{"", "4 Dec", "32 Dec 2026 09:30:00 +0000", "31 Feb 2026 09:30:00 +0000", "4 Foo 2026 09:30:00 +0000",
		"4 Dec 2026 24:00:00 +0000", "4 Dec 2026 09:30:00", "4 Dec 2026 09:30:00 +0099", "4 Dec 2026 09:30:00 +0000 extra", "4 Dec 2026 9:30:00 +0000"} {
		_, err := ParseDate(bad)
		assert.Error(t, err, bad)
	}
}

func TestParseStatus(t *testing.T) {
	for in, want := range map[string]Status{"2.0.0": {2, 0, 0}, "5.1.1": {5, 1, 1}, "4.999.999": {4, 999, 999}, " 2.1.9 (relayed)": {2, 1, 9}} {
		got, err := ParseStatus(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"", "2", "2.0", "1.0.0", "6.0.0", "22.0.0", "2.1000.0", "2.a.0", "2..0", "2.0.0.0"} {
		_, err := ParseStatus(bad)
		assert.Error(t, err, bad)
	}
}

func TestRecallStatusField(t *testing.T) {
	var rc Recipient
	assert.Equal(t, RecallStatus(""), rc.RecallStatus())
	rc.SetRecallStatus(RecallPending)
	rc.SetRecallStatus(RecallTooLate)
	assert.Equal(t, RecallTooLate, rc.RecallStatus())
	assert.Len(t, rc.Extensions, 1)
}

func TestLineLimit(t *testing.T) {
	r := sampleReport("e", "h")
	r.Extensions = []Field{{"X-Huge", strings.Repeat("x", MaxLineLength)}}
	_, err := r.Format()
	assert.Error(t, err, "a value that cannot be folded under 998 characters is refused")
	r.Extensions = []Field{{"X-Huge", strings.Repeat("word ", 400) + "end"}}
	b, err := r.Format()
	require.NoError(t, err, "a long value with white space folds")
	p, err := ParseReport(b)
	require.NoError(t, err)
	assert.Equal(t, r.Extensions, p.Extensions)
	_, err = ParseReport([]byte("Original-Envelope-Id: " + strings.Repeat("e", 1000) + "\nReporting-MTA: dns; h\n\nFinal-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.0.0\n"))
	assert.Error(t, err)
}

// X.1.9 is the registry's "message relayed to non-compliant mailer" (RFC
// 3886's addition to RFC 3463), reported as a success class code.
func TestStatusRelayedNonCompliantIsX19(t *testing.T) {
	assert.Equal(t, "2.1.9", StatusRelayedNonCompliant.String())
	assert.True(t, StatusRelayedNonCompliant.Valid())
}
