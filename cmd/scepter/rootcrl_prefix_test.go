package main

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// ca root crl --revoke takes a unique prefix of an issuer ID, as ca show's
// IDs are taken by certs revoke --issuer and the API, and lists the CA by
// its whole ID; a prefix under 8 digits is refused (as a profile's pin),
// and one that names none is refused as before.
func TestCARootCRLRevokeByPrefix(t *testing.T) {
	dir, a := caDataDir(t, ca.InitOptions{})
	ctx := context.Background()
	now := pki.SystemClock{}.Now()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	publish := func(c *x509.Certificate, at time.Time) {
		t.Helper()
		gen := store.CAGeneration{IssuerID: issuerIDOf(c), RootFingerprint: a.RootFingerprint(), IssuerDER: c.Raw,
			SwitchAt: at, PublishedAt: now, PublishedBy: "test"}
		if _, err := st.PublishCAGeneration(ctx, gen, pki.AuditEvent{Time: now, Type: pki.EventCAPublished, Actor: "test", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	previous := a.Issuer.Cert
	prevID := issuerIDOf(previous)
	publish(previous, time.Time{})
	publish(otherIssuingCA(t, dir, "current issuing CA", 1001), now.Add(-time.Hour))
	// An older issuing CA whose ID starts with the same hex digit as the
	// previous one's (of at most 17, two do).
	var twin *x509.Certificate
	for serial := int64(2000); twin == nil; serial++ {
		if c := otherIssuingCA(t, dir, "older issuing CA", serial); issuerIDOf(c)[0] == prevID[0] && issuerIDOf(c) != prevID {
			twin = c
		}
	}
	publish(twin, now.Add(-48*time.Hour))
	shared := prevID[:1]
	for n := 2; strings.HasPrefix(issuerIDOf(twin), prevID[:n]); n++ {
		shared = prevID[:n]
	}
	unknown := ""
	gens, err := st.CAGenerations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range "0123456789abcdef" {
		taken := false
		for _, g := range gens {
			taken = taken || strings.HasPrefix(g.IssuerID, string(d))
		}
		if !taken {
			unknown = string(d) + "0000000"
			break
		}
	}
	if unknown == "" {
		t.Fatal("every hex digit starts an issuer ID")
	}

	for _, tc := range []struct {
		prefix, err string
	}{
		// Shorter than 8 digits, as a profile's pin: refused for that
		// (two IDs sharing 8 digits are too rare to build here;
		// TestMatchIssuerID covers the ambiguity).
		{shared, "at least 8 hex digits"},
		{prevID[:1], "at least 8 hex digits"},
		{unknown, "no issuing CA with this ID in the store"},
	} {
		_, _, err := runCA(t, nil, dir, "root", "crl", "--revoke", tc.prefix, "--reason", "superseded")
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("--revoke %s: %v, want a usage error saying %q", tc.prefix, err, tc.err)
		}
	}
	if _, err := st.LatestCRL(ctx, issuerIDOf(a.Root)); err == nil {
		t.Error("a refused --revoke signed a root CRL")
	}

	stdout, _, err := runCA(t, nil, dir, "root", "crl", "--revoke", strings.ToUpper(prevID[:8]), "--reason", "superseded")
	if err != nil || !strings.Contains(stdout, "revoked:     issuing CA "+prevID) {
		t.Fatalf("--revoke %s: %v\n%s", prevID[:8], err, stdout)
	}
	stored, err := st.LatestCRL(ctx, issuerIDOf(a.Root))
	if err != nil {
		t.Fatal(err)
	}
	list, err := x509.ParseRevocationList(stored.DER)
	if err != nil || len(list.RevokedCertificateEntries) != 1 || list.RevokedCertificateEntries[0].SerialNumber.Cmp(previous.SerialNumber) != 0 {
		t.Errorf("the root CRL does not list the previous CA alone: %v %+v", err, list)
	}
}
