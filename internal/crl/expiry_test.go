package crl_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// expiryPKI is a fixture with a publisher, a certificate revoked as
// compromised at the start, and a way to have a CRL published at a given
// time without a recent revocation in it (whose date would change the
// CRL's thisUpdate): revoking one more certificate, dated at its issue.
type expiryPKI struct {
	t       *testing.T
	f       *fixture.PKI
	p       *crl.Publisher
	revoked *x509.Certificate
	fillers []*x509.Certificate
}

func newExpiryPKI(t *testing.T, validity time.Duration) *expiryPKI {
	f := fixture.New(t, fixture.Options{})
	e := &expiryPKI{t: t, f: f, p: crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{Validity: validity})}
	e.revoked, _ = f.Issue(t, "compromised")
	f.Revoke(t, e.revoked, pki.ReasonKeyCompromise)
	e.update()
	// Issued a day later, the fillers outlive it.
	f.Clock.Advance(24 * time.Hour)
	for range 10 {
		c, _ := f.Issue(t, "filler")
		e.fillers = append(e.fillers, c)
	}
	return e
}

func (e *expiryPKI) update() {
	e.t.Helper()
	if err := e.p.Update(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// publishAt has a new CRL published at `at` and returns it.
func (e *expiryPKI) publishAt(at time.Time) *x509.RevocationList {
	e.t.Helper()
	issuer := e.f.Issuer()
	before := parseCRL(e.t, mustCRL(e.t, e.p, issuer.ID), issuer.Cert)
	e.f.Clock.Set(at)
	filler := e.fillers[0]
	e.fillers = e.fillers[1:]
	if _, _, err := e.f.Store.RevokeCertificate(context.Background(), issuer.ID, filler.SerialNumber.Text(16),
		pki.ReasonSuperseded, filler.NotBefore, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		e.t.Fatal(err)
	}
	e.update()
	// GetCRL over SCEP serves CurrentCRL too.
	list := parseCRL(e.t, mustCRL(e.t, e.p, issuer.ID), issuer.Cert)
	if list.Number.Cmp(before.Number) <= 0 {
		e.t.Fatalf("no CRL published at %v: still CRL %v", at, list.Number)
	}
	return list
}

func lists(list *x509.RevocationList, cert *x509.Certificate) bool {
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

// RFC 5280 §3.3: a revoked certificate's entry leaves the CRL only once it
// has appeared on a CRL issued beyond the certificate's validity period,
// that is with a thisUpdate after its notAfter; here it stays a full CRL
// validity past the notAfter. A CRL whose thisUpdate is before the notAfter
// (backdated a minute before its publication) lists it whatever the
// publication time.
func TestExpiredEntryStaysUntilACRLBeyondItsEnd(t *testing.T) {
	const validity = time.Hour
	e := newExpiryPKI(t, validity)
	end := e.revoked.NotAfter
	for _, step := range []struct {
		name       string
		at         time.Time // the publication
		thisUpdate time.Time
		want       bool
	}{
		{"a validity before the notAfter", end.Add(-validity), end.Add(-validity - time.Minute), true},
		{"published after the notAfter, thisUpdate a second before it", end.Add(59 * time.Second), end.Add(-time.Second), true},
		{"thisUpdate at the notAfter: still within the validity", end.Add(time.Minute), end, true},
		{"thisUpdate a second after the notAfter: the first CRL beyond it", end.Add(61 * time.Second), end.Add(time.Second), true},
		{"half a validity on", end.Add(61*time.Second + validity/2), end.Add(time.Second + validity/2), true},
		{"a validity after the notAfter", end.Add(time.Minute + validity), end.Add(validity), true},
		{"more than a validity after, with a CRL beyond it before: gone", end.Add(61*time.Second + validity), end.Add(time.Second + validity), false},
	} {
		list := e.publishAt(step.at)
		if !list.ThisUpdate.Equal(step.thisUpdate) {
			t.Fatalf("%s: thisUpdate %v, want %v", step.name, list.ThisUpdate, step.thisUpdate)
		}
		if got := lists(list, e.revoked); got != step.want {
			t.Errorf("%s: CRL %v (thisUpdate %v) lists the certificate revoked, ending %v: %v, want %v",
				step.name, list.Number, list.ThisUpdate, end, got, step.want)
		}
	}
}

// A node down for long (no CRL published around a revoked certificate's
// end) still publishes one CRL beyond the end that lists it, and drops it
// from the next.
func TestExpiredEntryListedOnceAfterADowntime(t *testing.T) {
	const validity = time.Hour
	e := newExpiryPKI(t, validity)
	end := e.revoked.NotAfter
	e.publishAt(end.Add(-time.Hour))
	if list := e.publishAt(end.Add(10 * validity)); !lists(list, e.revoked) {
		t.Errorf("the first CRL after a downtime past the notAfter (thisUpdate %v, notAfter %v) leaves the certificate revoked out",
			list.ThisUpdate, end)
	}
	if list := e.publishAt(end.Add(10*validity + time.Second)); lists(list, e.revoked) {
		t.Errorf("the second CRL beyond the notAfter (thisUpdate %v) still lists the certificate revoked", list.ThisUpdate)
	}
}
