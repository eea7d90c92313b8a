package bench_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/bench"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// otherCA is a self-signed CA certificate of no server here: a --cacert
// that names the wrong CA.
func otherCA(t *testing.T) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Liar CA"},
		NotBefore: fixture.Start.Add(-time.Hour), NotAfter: fixture.Start.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// A server bench cannot trust is refused as `scepter enroll` and `scepter
// est` refuse it, saying what to give or check (the client's words), not
// with Go's bare x509 error (r124 D1): over SCEP on https without trust
// anchors or with the wrong ones, over EST with the wrong ones, and over
// plain-http SCEP whose CA certificates do not chain to the --cacert file,
// which is named with the CA the server's certificates lead to.
func TestRunUntrustedServerSaysWhatToDo(t *testing.T) {
	s := newSCEPServer(t)
	tlsSCEP := httptest.NewTLSServer(s.handler) // httptest's own certificate: "Acme Co"
	t.Cleanup(tlsSCEP.Close)
	_, estOpts := newESTServer(t, nil)
	wrong := otherCA(t)
	rootFP := client.Fingerprint(s.pki.Authority.Root)

	est := estOpts
	est.CAFingerprint, est.Roots, est.RootsFile = "", wrong, "liar-ca.pem"
	for _, c := range []struct {
		name string
		o    bench.Options
		want []string
	}{
		{"scep over https, no anchors", s.options(tlsSCEP.URL + "/scep"),
			[]string{"GetCACaps: the system's roots do not trust this server (", "give --cacert FILE", "--ca-fingerprint sha256:HEX"}},
		{"scep over https, the wrong anchors", func() bench.Options {
			o := s.options(tlsSCEP.URL + "/scep")
			o.Roots, o.RootsFile = wrong, "liar-ca.pem"
			return o
		}(), []string{"does not chain to the CA(s) in --cacert liar-ca.pem: its chain leads to O=Acme Co", "check that the file holds that CA"}},
		{"est, the wrong anchors", est,
			[]string{"does not chain to the CA(s) in --cacert liar-ca.pem: its chain leads to", "check that the file holds that CA"}},
		{"scep over http, CA certificates of another CA", func() bench.Options {
			o := s.options(s.url)
			o.Roots, o.RootsFile = wrong, "liar-ca.pem"
			return o
		}(), []string{"none of the CA certificates the server sent chains to the CA(s) in --cacert liar-ca.pem: they lead to " +
			s.pki.Authority.Root.Subject.String() + " (" + rootFP + ")", "check that the file holds that CA"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.Count = 1
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := bench.Run(ctx, c.o)
			if res != nil || err == nil {
				t.Fatalf("Run: result %v, error %v; want refused before the run", res != nil, err)
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Run: %v\nwant it to say %q", err, want)
				}
			}
		})
	}
}
