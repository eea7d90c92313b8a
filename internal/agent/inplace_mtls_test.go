//go:build unix

package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/keys"
)

// Against an EST server that requires a TLS client certificate for every
// request, /cacerts too, the check of the certificate in place fetches
// /cacerts presenting that certificate, as the renewal does (r117 D8):
// before, the handshake failed ("certificate required") and the check was
// skipped on every run. The pinned CA's certificate passes, not due; a
// self-signed one put in its place fails.
func TestCertificateInPlaceCheckedAtAServerRequiringAClientCertificate(t *testing.T) {
	for _, swap := range []bool{false, true} {
		t.Run(map[bool]string{false: "ours", true: "swapped"}[swap], func(t *testing.T) {
			f := newFixture(t, fixtureOpts{intermediate: true})
			var presented atomic.Int32 // /cacerts requests that came with a client certificate
			tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "127.0.0.1"},
				NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(365 * 24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, f.ca.cert, tlsKey.Public(), f.ca.key)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.TrimPrefix(r.URL.Path, est.PathPrefix) != est.OpCACerts {
					http.Error(w, "only /cacerts here", http.StatusNotFound)
					return
				}
				if len(r.TLS.PeerCertificates) > 0 {
					presented.Add(1)
				}
				der, _ := cms.DegenerateCertificates(f.ca.certs())
				w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
				w.Write(est.EncodeBase64(der))
			}))
			// Required, not verified here: a server may judge it after
			// the handshake.
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}}, ClientAuth: tls.RequireAnyClientCert}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			c := f.cert()
			c.Protocol, c.URL = ProtocolEST, srv.URL
			f.agent.Renewers = nil
			f.cfg.OnceAttempts = 1
			if swap {
				key, err := keys.Generate(keys.P256)
				if err != nil {
					t.Fatal(err)
				}
				writePEM(t, filepath.Join(f.dir, "key.pem"), 0o600, key)
				writePEM(t, filepath.Join(f.dir, "cert.pem"), 0o644, nil, selfSigned(t, key, f.clock.Now()))
			}
			err = f.agent.RunOnce(context.Background())
			log := f.logs.String()
			switch {
			case strings.Contains(log, "could not fetch the CA certificates"):
				t.Errorf("the check was skipped: err = %v\n%s", err, log)
			case !swap && (err != nil || !strings.Contains(log, "not due for renewal")):
				t.Errorf("the pinned CA's certificate: err = %v\n%s", err, log)
			case swap && (err == nil || !strings.Contains(log, "does not chain to the pinned CA") || strings.Contains(log, "not due")):
				t.Errorf("a self-signed certificate: err = %v\n%s", err, log)
			}
			if presented.Load() == 0 {
				t.Error("no /cacerts request came with the client certificate")
			}
		})
	}
}
