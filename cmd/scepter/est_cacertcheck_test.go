package main

import (
	"crypto"
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
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// testCA is a self-signed CA for a test and its key.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t *testing.T, name string, now time.Time) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey, now time.Time) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial, now.Add(-time.Minute), now.Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// `scepter est enroll|serverkeygen|reenroll --cacert` against a server
// whose TLS certificate is of another CA (B) than the one that issues
// (A, which /cacerts names) stops before it sends credentials or a CSR,
// naming A (subject, fingerprint) and saying to add it to the --cacert
// file; no key is made or kept. Before, the certificate was issued and
// then refused, the credentials spent at every run (r101 D1). With A
// added, the enrollment goes through.
func TestESTCACertOfAnotherCAStopsBeforeAsking(t *testing.T) {
	now := pki.SystemClock{}.Now() // the command checks with the real clock
	rootA, rootB := newTestCA(t, "Root A", now), newTestCA(t, "Root B", now)
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsCert := rootB.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, tlsKey.Public(), now)
	var asked atomic.Int32 // requests besides /cacerts
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reply := func(certs ...*x509.Certificate) {
			der, _ := cms.DegenerateCertificates(certs)
			w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
			w.Write(est.EncodeBase64(der))
		}
		op := strings.TrimPrefix(r.URL.Path, est.PathPrefix)
		if op == est.OpCACerts {
			reply(rootA.cert)
			return
		}
		asked.Add(1)
		switch op {
		case est.OpCSRAttrs:
			w.WriteHeader(http.StatusNoContent)
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
			reply(rootA.issue(t, &x509.Certificate{Subject: req.Subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, req.PublicKey, now))
		default:
			http.Error(w, "not in this test", http.StatusNotImplemented)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey}}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	if err := keys.WriteCertFile(path("rootB.pem"), rootB.cert); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteCertFile(path("both.pem"), rootB.cert, rootA.cert); err != nil {
		t.Fatal(err)
	}
	oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old := rootA.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "old"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, oldKey.Public(), now)
	if err := keys.WriteCertFile(path("old.pem"), old); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteKeyFile(path("old-key.pem"), oldKey); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"the server's /cacerts names a CA that the CA(s) in --cacert " + path("rootB.pem") + " do not trust: its certificates lead to CN=Root A (" + client.Fingerprint(rootA.cert) + ")",
		"so nothing more was sent (no credentials, no request); if you trust that CA for the certificates this server issues, add it to the --cacert file",
	}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"enroll", []string{"est", "enroll", "--subject", "CN=b2"}},
		{"serverkeygen", []string{"est", "serverkeygen", "--subject", "CN=b3"}},
		{"reenroll --rekey", []string{"est", "reenroll", "--cert", path("old.pem"), "--key", path("old-key.pem"), "--rekey"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			asked.Store(0)
			out, err := runCLI(append(tt.args, "--url", srv.URL, "--cacert", path("rootB.pem"), "--out", path(tt.name+".pem"), "--key-out", path(tt.name+"-key.pem"))...)
			if err == nil || exitCode(err) != 1 {
				t.Fatalf("err %v (exit %d), want a refusal, exit 1\n%s", err, exitCode(err), out)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant it to say %q", err, w)
				}
			}
			if n := asked.Load(); n != 0 {
				t.Errorf("%d requests besides /cacerts, want none", n)
			}
			entries, _ := os.ReadDir(d)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), tt.name) {
					t.Errorf("%s written by a refused run", e.Name())
				}
			}
		})
	}
	out, err := runCLI("est", "enroll", "--subject", "CN=b4", "--url", srv.URL, "--cacert", path("both.pem"), "--out", path("b4.pem"), "--key-out", path("b4-key.pem"))
	if err != nil {
		t.Fatalf("enroll with both roots in --cacert: %v\n%s", err, out)
	}
}
