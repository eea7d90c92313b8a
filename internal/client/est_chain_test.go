package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// rolloverEST is an EST server on 127.0.0.1 in a CA rollover: /cacerts
// holds the issuing CA, the root and the next issuing CA, as scepter's
// does; its TLS certificate is the issuing CA's.
func rolloverEST(t *testing.T, issuing, root, next *testCert) string {
	t.Helper()
	later := trustNow.Add(24 * time.Hour)
	der, tlsKey := localhostTLSCert(t, issuing, later)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != est.PathPrefix+est.OpCACerts {
			http.NotFound(w, r)
			return
		}
		body, _ := cms.DegenerateCertificates([]*x509.Certificate{issuing.cert, root.cert, next.cert})
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(est.EncodeBase64(body))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, issuing.cert.Raw}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// CheckIssued returns the issued certificate's own chain, its issuing CA
// and then the root, for the chain file: not the whole /cacerts answer,
// which during a rollover also holds the next issuing CA, which did not
// sign the certificate (r75 D3).
func TestESTCheckIssuedReturnsTheCertificatesChain(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	issuing := issue(t, "issuing", root, true, later)
	next := issue(t, "next-issuing", root, true, later)
	u := rolloverEST(t, issuing, root, next)
	leaf := issue(t, "dev1", issuing, false, later)
	anchors := x509.NewCertPool()
	anchors.AddCert(root.cert)
	for _, tt := range []struct {
		name string
		c    *EST
	}{
		{"--cacert", &EST{URL: u, Roots: anchors}},
		{"--ca-fingerprint", &EST{URL: u, Fingerprint: Fingerprint(root.cert)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Now = func() time.Time { return trustNow }
			chain, err := tt.c.CheckIssued(context.Background(), leaf.cert, leaf.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if got := subjects(chain); got != "issuing,root" {
				t.Errorf("chain %q, want the certificate's own: issuing,root", got)
			}
		})
	}
}
