package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// serve's CA reload reads the root CRL that `scepter ca root crl --revoke`
// stored: from then on the listed issuing CA's certificates authenticate
// nothing, and the log says so once.
func TestReloadAppliesTheRootCRL(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	leaf, _ := p.Issue(t, "device")
	first := p.Issuer()
	switchAt := p.Clock.Now().Add(time.Hour)
	if _, _, err := ca.Rollover(p.Dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, p.Clock); err != nil {
		t.Fatal(err)
	}
	p.Clock.Set(switchAt.Add(time.Minute))
	reloadCA(p.Authority, p.Clock, log, func() {})
	applyRootCRL(ctx, p.Store, p.Authority, log)
	if _, err := p.Authority.IssuedByUs(leaf, p.Clock.Now()); err != nil {
		t.Fatalf("before the root CRL: %v", err)
	}

	root, err := ca.RootIssuer(p.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, _, err := crl.SignRootCRL(root, nil, []crl.RootRevocation{{Cert: first.Cert, RevokedAt: p.Clock.Now(), Reason: 2}}, p.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Store.PutCRL(ctx, *signed, rootCRLsKept); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		reloadCA(p.Authority, p.Clock, log, func() {})
		applyRootCRL(ctx, p.Store, p.Authority, log)
	}
	if _, err := p.Authority.IssuedByUs(leaf, p.Clock.Now()); !errors.Is(err, ca.ErrIssuerRevoked) {
		t.Errorf("after the root CRL: %v, want ErrIssuerRevoked", err)
	}
	if n := strings.Count(logged.String(), "issuer_id="+first.ID); n != 1 {
		t.Errorf("the revocation logged %d times, want once:\n%s", n, logged.String())
	}
}
