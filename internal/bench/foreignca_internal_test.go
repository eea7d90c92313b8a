package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// foreignCAEST is an EST server whose TLS certificate chains to root, and
// whose /cacerts adds to the real chain (root, issuing CA) a self-signed CA
// of its own under the issuing CA's name, with which it signs every
// enrollment.
func foreignCAEST(t *testing.T) (url string, root, foreign *x509.Certificate) {
	t.Helper()
	root, rootKey := testCert(t, "Root CA", true, nil, nil)
	issuing, issuingKey := testCert(t, "Issuing CA", true, root, rootKey)
	foreign, foreignKey := testCert(t, "Issuing CA", true, nil, nil)
	reply := func(w http.ResponseWriter, certs ...*x509.Certificate) {
		p7, err := cms.DegenerateCertificates(certs)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(est.EncodeBase64(p7))
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
		case est.OpCACerts:
			reply(w, issuing, root, foreign)
		case est.OpSimpleEnroll:
			body, _ := io.ReadAll(r.Body)
			der, err := est.DecodeBase64(body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req, err := x509.ParseCertificateRequest(der)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
			tmpl := &x509.Certificate{SerialNumber: serial, Subject: req.Subject,
				NotBefore: foreign.NotBefore, NotAfter: foreign.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature}
			der, err = x509.CreateCertificate(rand.Reader, tmpl, foreign, req.PublicKey, foreignKey)
			if err != nil {
				t.Error(err)
			}
			cert, _ := x509.ParseCertificate(der)
			reply(w, cert)
		default:
			http.NotFound(w, r)
		}
	}))
	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tlsTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: issuing.NotBefore, NotAfter: issuing.NotAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	tlsDER, err := x509.CreateCertificate(rand.Reader, tlsTmpl, issuing, tlsKey.Public(), issuingKey)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER, issuing.Raw}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, root, foreign
}

// Over EST with trust anchors (--cacert), as over SCEP, only the CA
// certificates from /cacerts that chain to them are issuers, at the start
// and when fetched again: certificates from a CA the server slipped in
// beside them fail as verify:chain.
func TestESTForeignCANotTrusted(t *testing.T) {
	u, root, foreign := foreignCAEST(t)
	now := func() time.Time { return time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC) } // within testCert's validity
	roots := x509.NewCertPool()
	roots.AddCert(root)
	o := Options{Protocol: EST, URLs: []string{u}, Challenge: "any", KeyType: "p256", Roots: roots, Now: now,
		Count: 3, Timeout: 20 * time.Second}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.OK != 0 || res.Failures["verify:chain"] != 3 || res.ExitError(true) == nil {
		t.Errorf("ok %d failures %v, want verify:chain 3 and a failed run: %v", res.OK, res.Failures, res.FirstErrors)
	}

	if err := o.normalise(); err != nil {
		t.Fatal(err)
	}
	targets, err := connect(ctx, &o)
	if err != nil {
		t.Fatal(err)
	}
	refetched, err := targets[0].fetchCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, certs := range map[string][]*x509.Certificate{"at connect": targets[0].caCerts, "fetched again": refetched} {
		if len(certs) != 2 {
			t.Errorf("%s: %d CA certificates, want the root and the issuing CA", name, len(certs))
		}
		for _, c := range certs {
			if c.Equal(foreign) {
				t.Errorf("%s: the foreign CA is among the CA certificates", name)
			}
		}
	}
}
