package enroll_test

import (
	"context"
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// Every certificate gets a CDP and an AIA (OCSP and caIssuers) under the
// public URL, naming the issuer that signed it; a profile's own URLs win,
// each kind on its own.
func TestRevocationURLs(t *testing.T) {
	own := pki.DefaultProfile()
	own.Name = "own"
	own.CRLURLs = []string{"http://crl.example/own.crl"}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": pki.DefaultProfile(), "own": own},
		DefaultProfile: "default", PublicURL: "http://ca.example:8080/"})
	issuer, _ := f.auth.Active(f.clock.Now())
	res, err := f.svc.Enroll(context.Background(), request(t, static, "dev.example"))
	if err != nil {
		t.Fatal(err)
	}
	c := res.Certificate
	wantCRL := "http://ca.example:8080/crl/" + issuer.ID + ".crl"
	if !slices.Equal(c.CRLDistributionPoints, []string{wantCRL}) || !slices.Equal(c.OCSPServer, []string{"http://ca.example:8080/ocsp"}) ||
		!slices.Equal(c.IssuingCertificateURL, []string{"http://ca.example:8080/ca/" + issuer.ID + ".crt"}) {
		t.Errorf("CDP %v, OCSP %v, caIssuers %v", c.CRLDistributionPoints, c.OCSPServer, c.IssuingCertificateURL)
	}
	req := request(t, "", "own.example")
	req.Profile = "own"
	otp, _, err := f.admin.NewChallenge(context.Background(), time.Hour, "own", "test")
	if err != nil {
		t.Fatal(err)
	}
	req.Evidence.Challenge = otp
	res, err = f.svc.Enroll(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	c = res.Certificate
	if !slices.Equal(c.CRLDistributionPoints, own.CRLURLs) || !slices.Equal(c.OCSPServer, []string{"http://ca.example:8080/ocsp"}) {
		t.Errorf("profile override: CDP %v, OCSP %v", c.CRLDistributionPoints, c.OCSPServer)
	}
}

// A delegated responder certificate: OCSP signing only, nocheck, no CDP or
// AIA, from the issuer asked for, in the inventory.
func TestIssueResponderCertificate(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{PublicURL: "http://ca.example"})
	issuer, _ := f.auth.Active(f.clock.Now())
	key, err := keys.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.svc.IssueResponderCertificate(context.Background(), issuer.ID, key.Public(), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.CheckSignatureFrom(issuer.Cert) != nil || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) ||
		c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA || len(c.CRLDistributionPoints)+len(c.OCSPServer) != 0 {
		t.Errorf("responder certificate: EKU %v KU %v CA %v CDP %v OCSP %v", c.ExtKeyUsage, c.KeyUsage, c.IsCA, c.CRLDistributionPoints, c.OCSPServer)
	}
	nocheck := false
	for _, e := range c.Extensions {
		nocheck = nocheck || e.Id.String() == "1.3.6.1.5.5.7.48.1.5"
	}
	if !nocheck || c.NotAfter.Sub(f.clock.Now()) > 48*time.Hour {
		t.Errorf("nocheck %v, valid until %v", nocheck, c.NotAfter)
	}
	if _, err := f.st.Certificate(context.Background(), issuer.ID, c.SerialNumber.Text(16)); err != nil {
		t.Errorf("not in the inventory: %v", err)
	}
	// Another ID: its first digit changed (an ID that begins "00" made
	// "00"+ID[2:] the same ID, one run in 256).
	other := "1" + issuer.ID[1:]
	if issuer.ID[0] == '1' {
		other = "2" + issuer.ID[1:]
	}
	if _, err := f.svc.IssueResponderCertificate(context.Background(), other, key.Public(), time.Hour); err == nil {
		t.Error("a responder certificate from an unknown issuer")
	}
}

func TestCheckNotRevoked(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	res, err := f.svc.Enroll(ctx, request(t, static, "dev.example"))
	if err != nil {
		t.Fatal(err)
	}
	c := res.Certificate
	if err := f.svc.CheckNotRevoked(ctx, c); err != nil {
		t.Errorf("valid certificate: %v", err)
	}
	if _, err := f.admin.Revoke(ctx, c.SerialNumber.Text(16), "", 1, "test"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.CheckNotRevoked(ctx, c); pki.ErrorCode(err) != pki.EBadCertID {
		t.Errorf("revoked certificate: %v, want EBadCertID", err)
	}
	other := newFixture(t, nil, "")
	res, err = other.svc.Enroll(ctx, request(t, static, "other.example"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.CheckNotRevoked(ctx, res.Certificate); err != nil {
		t.Errorf("another CA's certificate is not this check's business: %v", err)
	}
}

// A profile's empty list (crl_urls = [] in the config) means no CDP, no
// OCSP URL or no caIssuers: the public URL's defaults are for a list left
// unset, not for one emptied on purpose.
func TestRevocationURLsEmptiedByTheProfile(t *testing.T) {
	for _, tt := range []struct {
		name              string
		crl, ocsp, issuer []string
		wantCRL, wantOCSP int
		wantIssuer        int
	}{
		{"unset", nil, nil, nil, 1, 1, 1},
		{"no CRL", []string{}, nil, nil, 0, 1, 1},
		{"no OCSP", nil, []string{}, nil, 1, 0, 1},
		{"no caIssuers", nil, nil, []string{}, 1, 1, 0},
		{"none", []string{}, []string{}, []string{}, 0, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.CRLURLs, p.OCSPURLs, p.IssuerURLs = tt.crl, tt.ocsp, tt.issuer
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{p.Name: p}, DefaultProfile: p.Name, PublicURL: "http://ca.example"})
			res, err := f.svc.Enroll(context.Background(), request(t, static, "dev.example"))
			if err != nil {
				t.Fatal(err)
			}
			c := res.Certificate
			if len(c.CRLDistributionPoints) != tt.wantCRL || len(c.OCSPServer) != tt.wantOCSP || len(c.IssuingCertificateURL) != tt.wantIssuer {
				t.Errorf("CDP %v, OCSP %v, caIssuers %v; want %d, %d, %d", c.CRLDistributionPoints, c.OCSPServer, c.IssuingCertificateURL,
					tt.wantCRL, tt.wantOCSP, tt.wantIssuer)
			}
		})
	}
}
