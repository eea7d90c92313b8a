package enroll_test

import (
	"context"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A pin names one issuing CA by its ID or a prefix of it, in any case; a
// prefix two IDs share, or one no ID has, is an error saying which.
func TestPinnedIssuer(t *testing.T) {
	a := &ca.Issuer{ID: "abcd1234" + strings.Repeat("0", 56)}
	b := &ca.Issuer{ID: "abcd5678" + strings.Repeat("1", 56)}
	issuers := []*ca.Issuer{a, b}
	for _, tt := range []struct {
		pin  string
		want *ca.Issuer
		err  string
	}{
		{a.ID, a, ""},
		{"ABCD1234", a, ""},
		{"abcd5678", b, ""},
		{"abcd", nil, "more than one issuing CA"},
		{"ffffffff", nil, "names none of this CA's issuing CAs"},
	} {
		got, err := enroll.PinnedIssuer(issuers, pki.Profile{Name: "p", Issuer: tt.pin})
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("pin %q: %v, %v; want %v, %q", tt.pin, got, err, tt.want, tt.err)
		}
	}
}

// An enrollment at a profile whose pinned CA is not loaded (gone since the
// start checked it) is unavailable, not an internal error.
func TestPinnedIssuerGoneIsUnavailable(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.Issuer = "default", "ffffffff"
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"})
	_, err := f.svc.Enroll(context.Background(), namedWithKey(t, newKey(t), static, "device-1", "device-1.example"))
	if pki.ErrorCode(err) != pki.EUnavailable || !strings.Contains(err.Error(), "names none of this CA's issuing CAs") {
		t.Errorf("enroll: %v (code %v), want unavailable naming the pin", err, pki.ErrorCode(err))
	}
}
