package scepserver_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
)

// With an RSA issuing CA acting as its own RA, GetCACert holds the CA chain
// only and our client encrypts to the CA certificate.
func TestRAModeCA(t *testing.T) {
	ts := newTestServer(t, serverOptions{ca: ca.InitOptions{KeyType: "rsa2048", RAMode: ca.RAModeCA}})
	if !ts.RA.Cert.Equal(ts.Authority.Issuer.Cert) {
		t.Fatal("the RA is not the issuing CA")
	}
	ctx := context.Background()
	c := &client.SCEP{URL: ts.URL + "/scep", Now: ts.Clock.Now}
	caps, certs := fetchCA(t, c)
	if len(certs) != 2 || !certs[0].Equal(ts.Authority.Issuer.Cert) || !certs[1].Equal(ts.Authority.Root) {
		t.Fatalf("GetCACert returned %d certificates, want issuing CA and root", len(certs))
	}
	key := testKey(t, 0)
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "ra-mode-ca"}, ChallengePassword: testChallenge}, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.Enroll(ctx, client.EnrollRequest{CSR: der, Key: key, CACerts: certs, Caps: caps})
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(ts.Authority.Issuer.Cert); err != nil {
		t.Fatal(err)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign != 0 || cert.IsCA {
		t.Error("a device certificate must not be a CA")
	}
}

func TestPaths(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for _, path := range []string{"/scep", "/scep/", "/scep/pkiclient.exe", "/cgi-bin/pkiclient.exe"} {
		resp, err := http.Get(ts.URL + path + "?operation=GetCACaps")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: HTTP %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(ts.URL + "/scep/nope/deeper?operation=GetCACaps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: HTTP %d", resp.StatusCode)
	}
}
