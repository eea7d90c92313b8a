package enroll_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// rolledOverFixture enrolls a certificate for each name (CN=name,
// DNS:name.example) under the first issuing CA, rolls the CA over and
// switches to the next one, as `scepter ca rollover` and the server's
// reload do. It returns the certificates and the first issuing CA, now a
// previous one with its key kept.
func rolledOverFixture(t *testing.T, names ...string) (*fixture, []*x509.Certificate, *ca.Issuer) {
	t.Helper()
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow = "dev", 1 // renewal open at once
	f := newFixture(t, map[string]pki.Profile{"dev": p}, "dev")
	ctx := context.Background()
	var certs []*x509.Certificate
	for _, n := range names {
		res, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, n, n+".example"))
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, res.Certificate)
	}
	first := f.auth.Issuer
	switchAt := f.clock.Now().Add(time.Hour)
	if _, _, err := ca.Rollover(f.dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, f.clock); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(switchAt.Add(time.Minute))
	if err := f.auth.Reload(f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	prev := f.auth.Previous()
	if len(prev) != 1 || prev[0].ID != first.ID {
		t.Fatalf("after the switch the first issuing CA is not the previous one: %v", prev)
	}
	if cur, _ := f.auth.Active(f.clock.Now()); cur.ID == first.ID {
		t.Fatal("the switch did not happen")
	}
	return f, certs, prev[0]
}

// renewalBy is a renewal request for a new key with the names given,
// authenticated by signer.
func renewalBy(t *testing.T, signer *x509.Certificate, cn string, dns ...string) enroll.Request {
	t.Helper()
	req := namedWithKey(t, newKey(t), "", cn, dns...)
	req.TransactionID = "tx-renew-" + cn
	req.Renewal, req.Evidence.SignerCert = true, signer
	return req
}

// The reviewer's forgery: a certificate signed with the previous issuing
// CA's key (stolen), carrying a serial we issued but other names and key,
// was renewed as the recorded certificate, under the forged names. It is
// not the certificate we issued with that serial: refused, as it is for
// GetCert and CertPoll, with or without the CA on the root CRL.
func TestForgedCertificateWithOurSerialIsRefused(t *testing.T) {
	f, certs, prev := rolledOverFixture(t, "victim")
	victim := certs[0]
	ctx := context.Background()
	tmpl := &x509.Certificate{
		SerialNumber: victim.SerialNumber,
		Subject:      pkix.Name{CommonName: "admin-forged"},
		DNSNames:     []string{"evil.example"},
		NotBefore:    f.clock.Now().Add(-time.Hour),
		NotAfter:     victim.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, prev.Cert, newKey(t).Public(), prev.Signer)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if iss, err := f.auth.IssuedByUs(forged, f.clock.Now()); err != nil || iss.ID != prev.ID {
		t.Fatalf("the forgery does not verify as the previous CA's (%v): the test proves nothing", err)
	}
	check := func(when, why string) {
		t.Helper()
		_, err := f.svc.Enroll(ctx, renewalBy(t, forged, "admin-forged", "evil.example"))
		if pki.ErrorCode(err) != pki.EBadCertID || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: renewal by the forgery: %v, want badCertId, %s", when, err, why)
		}
		if _, err := f.svc.GetCertificate(ctx, victim.RawIssuer, victim.SerialNumber.Text(16), forged); pki.ErrorCode(err) != pki.EBadCertID || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: GetCert signed by the forgery: %v, want badCertId, %s", when, err, why)
		}
		if err := f.svc.CheckNotRevoked(ctx, forged); pki.ErrorCode(err) != pki.EBadCertID {
			t.Errorf("%s: CertPoll signed by the forgery: %v, want badCertId", when, err)
		}
	}
	check("previous CA not revoked", "not the certificate this CA issued with serial "+pki.SerialText(victim.SerialNumber))
	// The genuine certificate still does what the forgery may not.
	if err := f.svc.CheckNotRevoked(ctx, victim); err != nil {
		t.Errorf("the genuine certificate: %v", err)
	}
	revokeOnRoot(t, f, prev)
	check("previous CA on the root CRL", "revoked (listed on the root CRL)")
	if _, err := f.svc.Enroll(ctx, renewalBy(t, victim, "victim", "victim.example")); pki.ErrorCode(err) != pki.EBadCertID {
		t.Errorf("renewal by the genuine certificate of a revoked CA: %v, want badCertId", err)
	}
}
