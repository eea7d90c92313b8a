package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testUnholdTimes: an unhold records its time on the certificate (which
// the OCSP responder reads with the record) and as its issuer's newest
// unhold (which the CRL publisher reads), in its transaction; nothing
// else moves either.
func testUnholdTimes(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, sn := range []string{"u0", "u1", "u2"} {
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(24*time.Hour))))
	}
	lastUnhold := func(issuer string) time.Time {
		t.Helper()
		at, err := s.LastUnhold(ctx, issuer)
		if err != nil {
			t.Fatalf("LastUnhold(%s): %v", issuer, err)
		}
		return at
	}
	unheldAt := func(serial string) time.Time {
		t.Helper()
		c, err := s.Certificate(ctx, issuerA, serial)
		if err != nil {
			t.Fatal(err)
		}
		return c.UnheldAt
	}
	hold := func(serial string, at time.Time) {
		t.Helper()
		if _, _, err := s.RevokeCertificate(ctx, issuerA, serial, 6, at, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}
	unhold := func(serial string, at time.Time) *pki.Certificate {
		t.Helper()
		c, _, err := s.UnholdCertificate(ctx, issuerA, serial, at, pki.AuditEvent{Type: pki.EventUnheld})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	if got := lastUnhold(issuerA); !got.IsZero() {
		t.Errorf("last unhold %v before any, want zero", got)
	}
	hold("u0", t0.Add(time.Minute))
	if got := lastUnhold(issuerA); !got.IsZero() || !unheldAt("u0").IsZero() {
		t.Errorf("a hold alone: last unhold %v, certificate's %v; want zero", got, unheldAt("u0"))
	}
	lifted := t0.Add(2 * time.Minute)
	if c := unhold("u0", lifted); !c.UnheldAt.Equal(lifted) {
		t.Errorf("unhold returned UnheldAt %v, want %v", c.UnheldAt, lifted)
	}
	if got := unheldAt("u0"); !got.Equal(lifted) {
		t.Errorf("stored UnheldAt %v, want %v", got, lifted)
	}
	if got := lastUnhold(issuerA); !got.Equal(lifted) {
		t.Errorf("last unhold %v, want %v", got, lifted)
	}
	if got := lastUnhold(issuerB); !got.IsZero() {
		t.Errorf("another issuer's last unhold %v, want zero", got)
	}

	// An unhold of a certificate that is not held changes nothing.
	unhold("u2", t0.Add(time.Hour))
	if !unheldAt("u2").IsZero() || !lastUnhold(issuerA).Equal(lifted) {
		t.Errorf("a no-op unhold recorded a time: certificate %v, issuer %v", unheldAt("u2"), lastUnhold(issuerA))
	}
	// An unhold dated earlier (another node's clock behind) is the
	// certificate's, but the issuer's newest stays.
	hold("u1", t0.Add(30*time.Second))
	earlier := t0.Add(90 * time.Second)
	unhold("u1", earlier)
	if !unheldAt("u1").Equal(earlier) || !lastUnhold(issuerA).Equal(lifted) {
		t.Errorf("an earlier unhold: certificate %v, issuer %v; want %v, %v", unheldAt("u1"), lastUnhold(issuerA), earlier, lifted)
	}
	// Revoked again, the certificate keeps the time of its last unhold.
	hold("u0", t0.Add(3*time.Minute))
	if got := unheldAt("u0"); !got.Equal(lifted) {
		t.Errorf("UnheldAt %v after a new hold, want %v", got, lifted)
	}
}
