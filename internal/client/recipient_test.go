package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
)

// When the server's RSA RA certificate is outside its validity at the
// client's clock, TrustedCACerts leaves it out and nothing is left to
// encrypt to: the error says which certificate and since or until when,
// not that the server has no RSA certificate at all (which it still says
// when that is so, or when the only RSA certificate is another CA's).
func TestSCEPRecipientOutsideItsValidityIsNamed(t *testing.T) {
	now := time.Date(2031, 3, 14, 9, 0, 0, 0, time.UTC) // the client's clock; the certificates are dated around it
	ca := newTLSTestCA(t, "Our CA", now)                // EC: no recipient itself
	stranger := newTLSTestCA(t, "Another CA", now)
	raKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ra := func(by *tlsTestCA, cn string, notBefore, notAfter time.Time) *x509.Certificate {
		t.Helper()
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature},
			by.cert, raKey.Public(), by.key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	expired := ra(ca, "Our RA", now.Add(-48*time.Hour), now.Add(-time.Hour))
	early := ra(ca, "Next RA", now.Add(time.Hour), now.Add(48*time.Hour))
	foreign := ra(stranger, "Their RA", now.Add(-48*time.Hour), now.Add(-time.Hour))
	// An issuing CA under the pinned one that has expired, its RA still
	// valid: the RA does not chain any more, and the CA is what to name.
	subKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	subDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Our issuing CA"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign},
		ca.cert, subKey.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := x509.ParseCertificate(subDER)
	raUnderExpired := ra(&tlsTestCA{cert: sub, key: subKey}, "Our RA", now.Add(-48*time.Hour), now.Add(48*time.Hour))
	for _, tt := range []struct {
		name    string
		offered []*x509.Certificate
		want    []string // in the error
		notWant string
	}{
		{"expired RA", []*x509.Certificate{expired, ca.cert},
			[]string{"no valid RSA certificate", "CN=Our RA expired at " + expired.NotAfter.UTC().Format(time.RFC3339)}, ""},
		{"RA not yet valid", []*x509.Certificate{early, ca.cert},
			[]string{"no valid RSA certificate", "CN=Next RA is not valid before " + early.NotBefore.UTC().Format(time.RFC3339)}, ""},
		{"expired issuing CA", []*x509.Certificate{raUnderExpired, sub, ca.cert},
			[]string{"no valid RSA certificate", "CN=Our issuing CA expired at " + sub.NotAfter.UTC().Format(time.RFC3339)}, ""},
		{"no RSA certificate", []*x509.Certificate{ca.cert}, []string{"the server offers no RSA certificate to encrypt the request to"}, "valid"},
		{"another CA's expired RA", []*x509.Certificate{foreign, ca.cert}, []string{"the server offers no RSA certificate to encrypt the request to"}, "Their RA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				der, _ := cms.DegenerateCertificates(tt.offered)
				w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
				w.Write(der)
			}))
			defer srv.Close()
			c := &SCEP{URL: srv.URL + "/scep", Now: func() time.Time { return now }}
			offered, err := c.GetCACert(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			trusted, err := TrustedCACerts(offered, Fingerprint(ca.cert), now)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Enroll(context.Background(), EnrollRequest{CSR: csr, Key: key, CACerts: trusted, Caps: Caps{"aes": true, "sha-256": true}})
			if err == nil {
				t.Fatal("enrolled with no certificate to encrypt to")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("err = %v, want it not to say %q", err, tt.notWant)
			}
		})
	}
}
