package aliasing

import (
	"encoding"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	_ encoding.TextMarshaler   = Policy(0)
	_ encoding.TextUnmarshaler = (*Policy)(nil)
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in   string
		want Policy
		err  bool
	}{
		{"trackingmultiple", Multiple, false},
		{"trackingsingle", Single, false},
		{"trackingfirst", First, false},
		{"trackingstrict", Strict, false},
		{"TrackingSingle", Single, false},
		{"TRACKINGFIRST", First, false},
		{"multiple", Multiple, false},
		{"Strict", Strict, false},
		{"", 0, true},
		{"tracking", 0, true},
		{"trackingtrackingsingle", 0, true},
		{" trackingsingle", 0, true},
		{"trackingsingle ", 0, true},
		{"notrackingsingle", 0, true},
		{"trackinglist", 0, true},
		{"single2", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if tt.err {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrUnknownPolicy)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestPolicyString(t *testing.T) {
	assert.Equal(t, "trackingmultiple", Policy(0).String(), "zero value is the product default")
	assert.Equal(t, "trackingsingle", Single.String())
	assert.Equal(t, "trackingfirst", First.String())
	assert.Equal(t, "trackingstrict", Strict.String())
	assert.Equal(t, "Policy(9)", Policy(9).String())
	assert.False(t, Policy(-1).Valid())
	for p := Multiple; p <= Strict; p++ {
		back, err := ParsePolicy(p.String())
		require.NoError(t, err)
		assert.Equal(t, p, back)
	}
}

func TestPolicyText(t *testing.T) {
	b, err := First.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "trackingfirst", string(b))
	var p Policy
	require.NoError(t, p.UnmarshalText([]byte("TRACKINGSINGLE")))
	assert.Equal(t, Single, p)
	err = p.UnmarshalText([]byte("bogus"))
	assert.ErrorIs(t, err, ErrUnknownPolicy)
	assert.Equal(t, Single, p, "failed unmarshal leaves the value alone")
	_, err = Policy(42).MarshalText()
	assert.True(t, errors.Is(err, ErrUnknownPolicy))
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"trackingmultiple", "trackingsingle", "TRACKINGFIRST", "strict", "", "tracking", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			if !errors.Is(err, ErrUnknownPolicy) {
				t.Fatalf("error %v does not wrap ErrUnknownPolicy", err)
			}
			return
		}
		if !p.Valid() {
			t.Fatalf("ParsePolicy(%q) = invalid %d", s, int(p))
		}
		// Accepted input is a keyword or a short form, case-insensitively.
		l := strings.ToLower(s)
		if l != p.String() && "tracking"+l != p.String() {
			t.Fatalf("ParsePolicy(%q) = %v, which is not what it spells", s, p)
		}
		again, err := ParsePolicy(p.String())
		if err != nil || again != p {
			t.Fatalf("round trip of %v: %v, %v", p, again, err)
		}
	})
}
