package ca

import (
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

// An issuing CA the root revoked (SetRevokedIssuers) issued nothing that
// IssuedByUs accepts, expired or not, and its RAs leave RAs; the current
// and the next issuing CA are never taken as revoked.
func TestRevokedIssuers(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	first := a.Issuer
	firstLeaf := issueLeaf(t, first, "device", t0, 30*day)
	firstExpired := issueLeaf(t, first, "device", t0, time.Hour)
	switchAt := t0.Add(day)
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock); err != nil {
		t.Fatal(err)
	}
	clock.Set(switchAt.Add(time.Minute))
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	current, currentRA := a.Active(clock.Now())
	if current.ID == first.ID {
		t.Fatal("the switch did not happen")
	}
	// A second rollover, pending: the first CA is revoked, the next and
	// the current one are listed too, by mistake.
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: clock.Now().Add(30 * day)}, clock); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	next, nextRA, ok := a.Next(clock.Now())
	if !ok {
		t.Fatal("no next CA")
	}
	firstRA := raFor(a.RAs(), first)
	if firstRA == nil {
		t.Fatal("the first generation's RA is not loaded: the test proves nothing")
	}
	a.SetRevokedIssuers([]string{first.ID, current.ID, next.ID})
	if got, want := a.RevokedIssuers(), slices.Sorted(slices.Values([]string{first.ID, current.ID, next.ID})); !slices.Equal(got, want) {
		t.Errorf("RevokedIssuers = %v, want %v", got, want)
	}

	now := clock.Now()
	tests := []struct {
		name    string
		cert    *x509.Certificate
		want    *Issuer
		wantErr error
	}{
		{"revoked CA's leaf", firstLeaf, nil, ErrIssuerRevoked},
		{"revoked CA's expired leaf", firstExpired, nil, ErrIssuerRevoked},
		{"revoked CA's RA", firstRA.Cert, nil, ErrIssuerRevoked},
		{"current CA's leaf", issueLeaf(t, current, "device", now, 30*day), current, nil},
		{"next CA's leaf", issueLeaf(t, next, "device", now, 30*day), next, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := a.IssuedByUs(tt.cert, now)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrIssuerRevoked) && (errors.Is(err, ErrNotOurs) || errors.Is(err, ErrExpired)) {
				t.Errorf("ErrIssuerRevoked is also ErrNotOurs or ErrExpired: %v", err)
			}
			if (iss == nil) != (tt.want == nil) || iss != nil && iss.ID != tt.want.ID {
				t.Errorf("issuer %v, want %v", iss, tt.want)
			}
		})
	}
	ras := a.RAs()
	if slices.Contains(ras, firstRA) {
		t.Error("the revoked generation's RA is still in RAs")
	}
	for _, ra := range []*pki.RA{currentRA, nextRA} {
		if !slices.Contains(ras, ra) {
			t.Errorf("RA %s left out of RAs", ra.Cert.Subject)
		}
	}
	// A revocation outlives a reload; an empty set undoes it.
	if err := a.Reload(now); err != nil {
		t.Fatal(err)
	}
	if _, err := a.IssuedByUs(firstLeaf, now); !errors.Is(err, ErrIssuerRevoked) {
		t.Errorf("after a reload: %v, want ErrIssuerRevoked", err)
	}
	a.SetRevokedIssuers(nil)
	if iss, err := a.IssuedByUs(firstLeaf, now); err != nil || iss.ID != first.ID {
		t.Errorf("with no CA revoked: %v, %v", iss, err)
	}
	if raFor(a.RAs(), first) == nil {
		t.Error("with no CA revoked the first generation's RA is not in RAs")
	}
}

// raFor is the RA among ras whose issuing CA is issuer.
func raFor(ras []*pki.RA, issuer *Issuer) *pki.RA {
	for _, ra := range ras {
		if raIssuerID(ra) == issuer.ID {
			return ra
		}
	}
	return nil
}
