package enroll_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

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

// MatchIssuerID resolves an ID or a unique prefix in any case; a shared
// prefix names both IDs, and an empty or unknown one names none.
func TestMatchIssuerID(t *testing.T) {
	a, b := "abcd1234"+strings.Repeat("0", 56), "abcd5678"+strings.Repeat("1", 56)
	for _, tt := range []struct {
		id, want, err string
	}{
		{"ABCD1234", a, ""},
		{b, b, ""},
		{"abcd", "", a + " and " + b},
		{"", "", enroll.ErrNoSuchIssuer.Error()},
		{"ffffffff", "", enroll.ErrNoSuchIssuer.Error()},
	} {
		got, err := enroll.MatchIssuerID([]string{a, b}, tt.id)
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%q: %q, %v; want %q, %q", tt.id, got, err, tt.want, tt.err)
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

// pinnedService is a service over f's store and CA whose one profile is
// pinned to issuer.
func pinnedService(t *testing.T, f *fixture, issuer string) *enroll.Service {
	t.Helper()
	p := pki.DefaultProfile()
	p.Name, p.Issuer = "pinned", issuer
	svc, err := enroll.New(f.st, f.auth, f.clock, slog.New(slog.DiscardHandler),
		enroll.Config{StaticChallenge: static, Profiles: map[string]pki.Profile{"pinned": p}, DefaultProfile: "pinned"})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// A profile pinned to the previous CA issues from it until the root's CRL
// lists that CA, and is unavailable after; one pinned to a next CA before
// its switch issues nothing (GetCACert does not serve it, and a discard
// may undo it).
func TestPinnedIssuerRevokedOrNotYetCurrent(t *testing.T) {
	f, _, prev := rolledOverFixture(t, "a")
	ctx := context.Background()
	svc := pinnedService(t, f, prev.ID[:12])
	res, err := svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "pin-1", "pin-1.example"))
	if err != nil || res.Record.IssuerID != prev.ID {
		t.Fatalf("pinned to the previous CA: %+v, %v; want issued by %s", res, err, prev.ID)
	}
	revokeOnRoot(t, f, prev)
	if _, err := svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "pin-2", "pin-2.example")); pki.ErrorCode(err) != pki.EUnavailable || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("pinned to a root-revoked CA: %v, want unavailable saying it is revoked", err)
	}

	switchAt := f.clock.Now().Add(time.Hour)
	if _, _, err := ca.Rollover(f.dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, f.clock); err != nil {
		t.Fatal(err)
	}
	if err := f.auth.Reload(f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	next, _, ok := f.auth.Next(f.clock.Now())
	if !ok {
		t.Fatal("no next CA scheduled")
	}
	svc = pinnedService(t, f, next.ID)
	if _, err := svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "pin-3", "pin-3.example")); pki.ErrorCode(err) != pki.EUnavailable {
		t.Errorf("pinned to the next CA before its switch: %v, want unavailable", err)
	}
	f.clock.Set(switchAt.Add(time.Minute))
	if res, err := svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "pin-4", "pin-4.example")); err != nil || res.Record.IssuerID != next.ID {
		t.Errorf("pinned to that CA once current: %+v, %v", res, err)
	}
}
