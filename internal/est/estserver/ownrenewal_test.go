package estserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/server"
)

// simplereenroll with one of the server's own certificates is refused
// saying so, not "renew it there" at a label that does not exist (r75 D7).
func TestOwnCertificateRenewalSaysTheServerRenewsIt(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	httpsPair, err := tls.LoadX509KeyPair(filepath.Join(f.dir, "tls", server.ServerCertFile), filepath.Join(f.dir, "tls", server.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	responderKey := newKey(t)
	responder, err := f.svc.IssueResponderCertificate(ctx, f.auth.Issuer.ID, responderKey.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RecordRACertificates(ctx); err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{f.auth.Issuer.Cert}
	for _, tc := range []struct {
		name string
		pair *tls.Certificate
		want string
	}{
		{"the HTTPS certificate", &httpsPair, "its HTTPS certificate"},
		{"an OCSP responder's", tlsPair(responder, responderKey, chain...), "an OCSP responder's certificate"},
		{"the SCEP RA's", tlsPair(f.auth.RA.Cert, f.auth.RA.Key, chain...), "the SCEP RA's certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(f.httpClient(tc.pair, 0), "simplereenroll", "", "", newCSR(t, newKey(t), "localhost", csr.Template{}), nil)
			wantStatus(t, r, http.StatusForbidden, "one of the server's own certificates ("+tc.want)
			if body := string(r.body); !strings.Contains(body, "the server renews itself") || strings.Contains(body, "renew it there") {
				t.Errorf("reason %q, want it to say the server renews it itself", body)
			}
		})
	}
}

// r109 observation 6: simplereenroll with one of the CA's own CA
// certificates (ours, but issued to no client) is refused naming which,
// as the server's other own certificates are, not as a certificate this
// CA did not issue.
func TestCACertificateRenewalSaysWhichItIs(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	rootPair, err := tls.LoadX509KeyPair(filepath.Join(f.dir, "ca", "root.crt"), filepath.Join(f.dir, "ca", "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pair *tls.Certificate
		want string
	}{
		{"the issuing CA's", tlsPair(f.auth.Issuer.Cert, f.auth.Issuer.Signer, f.auth.Issuer.Chain[1:]...), "the client certificate is this CA's own issuing CA certificate (" + f.auth.Issuer.Cert.Subject.String() + ")"},
		{"the root's", &rootPair, "the client certificate is this CA's own root certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(f.httpClient(tc.pair, 0), "simplereenroll", "", "", newCSR(t, newKey(t), "ca", csr.Template{}), nil)
			wantStatus(t, r, http.StatusForbidden, tc.want)
			if body := string(r.body); !strings.Contains(body, "not a certificate issued to a client") || strings.Contains(body, "not issued by this CA") {
				t.Errorf("reason %q, want it to say this is no client's certificate", body)
			}
		})
	}
}
