package enroll_test

import (
	"context"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pki"
)

// revokeOnRoot lists issuer on the root's CRL, stored as `scepter ca root
// crl --revoke` stores it, and has the authority read it, as the server's
// reload does.
func revokeOnRoot(t *testing.T, f *fixture, issuer *ca.Issuer) {
	t.Helper()
	ctx := context.Background()
	root, err := ca.RootIssuer(f.dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, _, err := crl.SignRootCRL(root, nil, []crl.RootRevocation{{Cert: issuer.Cert, RevokedAt: f.clock.Now(), Reason: 2}}, // cACompromise,
		f.clock.Now(), crl.DefaultRootValidity)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutCRL(ctx, *signed, 10); err != nil {
		t.Fatal(err)
	}
	added, err := crl.ApplyRootCRL(ctx, f.st, f.auth)
	if err != nil || len(added) != 1 || added[0] != issuer.ID {
		t.Fatalf("ApplyRootCRL: %v, %v; want %s", added, err, issuer.ID)
	}
}

// A genuine certificate of an issuing CA that the root's CRL lists renews
// until the CRL is stored and read, and not after; nor does it
// authenticate GetCert or CertPoll. The RA of that generation no longer
// decrypts. The current CA's certificates are not affected.
func TestRootRevokedIssuerAuthenticatesNothing(t *testing.T) {
	f, certs, prev := rolledOverFixture(t, "before", "after")
	ctx := context.Background()
	res, err := f.svc.Enroll(ctx, renewalBy(t, certs[0], "before", "before.example"))
	if err != nil {
		t.Fatalf("renewal under a previous CA not revoked: %v", err)
	}
	current := res.Certificate
	prevRA := raOf(f.svc.RAs(), prev)
	if prevRA == nil {
		t.Fatal("the previous generation's RA is not loaded: the test proves nothing")
	}

	revokeOnRoot(t, f, prev)
	genuine := certs[1]
	_, err = f.svc.Enroll(ctx, renewalBy(t, genuine, "after", "after.example"))
	if pki.ErrorCode(err) != pki.EBadCertID || !strings.Contains(err.Error(), "revoked (listed on the root CRL)") {
		t.Errorf("renewal by a certificate of a root-revoked CA: %v, want badCertId naming the root CRL", err)
	}
	if _, err := f.svc.GetCertificate(ctx, genuine.RawIssuer, genuine.SerialNumber.Text(16), genuine); pki.ErrorCode(err) != pki.EBadCertID {
		t.Errorf("GetCert signed by a certificate of a root-revoked CA: %v, want badCertId", err)
	}
	if err := f.svc.CheckNotRevoked(ctx, genuine); pki.ErrorCode(err) != pki.EBadCertID {
		t.Errorf("CertPoll signed by a certificate of a root-revoked CA: %v, want badCertId", err)
	}
	for _, ra := range f.svc.RAs() {
		if ra.Cert.Equal(prevRA.Cert) {
			t.Error("the root-revoked generation's RA still decrypts (in RAs)")
		}
	}
	// The current CA goes on: its RA, and renewal by what it issued.
	if active := f.svc.ActiveRA(); raOf(f.svc.RAs(), f.issuerNow()) == nil || active == nil {
		t.Error("the current generation's RA is gone")
	}
	if _, err := f.svc.Enroll(ctx, renewalBy(t, current, "before", "before.example")); err != nil {
		t.Errorf("renewal by a certificate of the current CA: %v", err)
	}
}

// issuerNow is the issuing CA in charge.
func (f *fixture) issuerNow() *ca.Issuer {
	iss, _ := f.auth.Active(f.clock.Now())
	return iss
}

// raOf is the RA among ras whose issuing CA is issuer.
func raOf(ras []*pki.RA, issuer *ca.Issuer) *pki.RA {
	for _, ra := range ras {
		if (ra.IsCA && ra.Cert.Equal(issuer.Cert)) || len(ra.Chain) > 1 && ra.Chain[1].Equal(issuer.Cert) {
			return ra
		}
	}
	return nil
}
