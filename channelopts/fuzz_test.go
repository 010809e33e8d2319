package channelopts

import (
	"errors"
	"strings"
	"testing"
)

// checkParseErr: a parser's error is a join of *Error values.
func checkParseErr(t *testing.T, err error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if pe.Err == nil {
		t.Fatalf("*Error without a cause")
	}
}

func FuzzParseMTA(f *testing.F) {
	f.Add("TRACKING_MODE=1\nMEMCACHE_HOST=a,b:1\n")
	f.Add("! c\n# c\n; c\ntracking_retries=0\ntracking_retry_delay = 25\n")
	f.Add("LOG_TRACKING=3\nLOG_FUTURERELEASE=1\nLDAP_ATTR_AUTH_RECALL_SECRET=x-y\n")
	f.Add("A=b\\\n! c\nc\n\nMEMCACHE_HOST=[::1]:5 ::1\nmemcache_port=1\n")
	f.Add("x\\\\\n\n=\n")
	f.Add("tracking_mode=2\nTRACKING_DEBUG=99\r\nOTHER=a=b\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseMTA(strings.NewReader(in), "fuzz")
		if err != nil {
			checkParseErr(t, err)
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed value does not validate: %v", err)
		}
		out, err := m.Format()
		if err != nil {
			t.Fatalf("format: %v", err)
		}
		back, err := ParseMTA(strings.NewReader(string(out)), "formatted")
		if err != nil {
			t.Fatalf("reparse of %q: %v", out, err)
		}
		out2, err := back.Format()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("round trip:\n%q\n%q (%v)", out, out2, err)
		}
		if back.Retries() != m.Retries() || back.RetryDelay() != m.RetryDelay() || back.Port() != m.Port() ||
			len(back.Other) != len(m.Other) || len(back.MemcacheServers()) != len(m.MemcacheServers()) {
			t.Fatalf("round trip changed values: %+v vs %+v", m, back)
		}
	})
}

func FuzzParseChannels(f *testing.F) {
	f.Add(sampleTable)
	f.Add("c trackingserver notrackingserver\n")
	f.Add("c trackinggenerate\n\nd trackingtimeoutmin -1 \\\n trackingtimeoutmax 5\nh\n")
	f.Add("defaults notices 1 2 3\n\n<inc\nc maxjobs 7 +3 trackingstrict\n;x\nh one\n")
	f.Add("rules\n\nc 5\n")
	f.Add("c a\\\\\n\nc\u00a0d x\n")
	f.Fuzz(func(t *testing.T, in string) {
		for _, skip := range []bool{false, true} {
			chs, err := parseChannels(strings.NewReader(in), "fuzz", skip)
			if err != nil {
				checkParseErr(t, err)
				continue
			}
			for _, c := range chs {
				if err := c.Validate(); err != nil {
					t.Fatalf("parsed channel does not validate: %v", err)
				}
			}
			out, err := FormatChannels(chs)
			if err != nil {
				t.Fatalf("format: %v", err)
			}
			back, err := ParseChannels(strings.NewReader(string(out)), "formatted")
			if err != nil {
				t.Fatalf("reparse of %q: %v", out, err)
			}
			out2, err := FormatChannels(back)
			if err != nil || string(out2) != string(out) {
				t.Fatalf("round trip:\n%q\n%q (%v)", out, out2, err)
			}
			if len(back) != len(chs) {
				t.Fatalf("round trip: %d channels, then %d", len(chs), len(back))
			}
		}
	})
}
