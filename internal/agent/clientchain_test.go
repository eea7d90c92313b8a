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
)

// An EST server of a two-tier PKI that trusts only the root for client
// certificates, and requires one for every request (so /cacerts cannot
// give the chain), is shown the issuing CA from chain_path after the
// certificate in place; before, the leaf went alone and was refused as of
// an unknown CA (r144 D1). Without a chain file the refusal says that the
// server refused the certificate sent, and where its chain goes.
func TestESTClientCertificateSentWithChainPath(t *testing.T) {
	for _, tt := range []struct {
		name      string
		chainFile bool
		want      string
	}{
		{"chain_path", true, ""},
		{"no chain file", false, "the server refused the TLS client certificate we sent (subject CN=device-1,O=Acme, issued by CN=Agent Test Issuing CA; alone, with no CA certificate after it): " +
			"it does not trust the CA that issued it (remote error: tls: unknown certificate authority); it may want the CA certificates of its chain, found neither with the certificate nor in the server's /cacerts: " +
			"put them in chain_path (or after the certificate in cert_path)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			extra := "renew_before = \"60d\"\n" // due: the renewal's handshake too
			if tt.chainFile {
				extra += "chain_path = \"chain.pem\"\n"
			}
			f := newFixture(t, fixtureOpts{intermediate: true, extra: extra})
			if tt.chainFile {
				writePEM(t, filepath.Join(f.dir, "chain.pem"), 0o644, nil, f.ca.inter, f.ca.cert)
			}
			tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "127.0.0.1"},
				NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(365 * 24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, f.ca.cert, tlsKey.Public(), f.ca.key)
			if err != nil {
				t.Fatal(err)
			}
			var reenrolls atomic.Int32 // simplereenroll requests, each past the handshake
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, est.OpSimpleReenroll) {
					reenrolls.Add(1)
				}
				der, _ := cms.DegenerateCertificates(f.ca.certs())
				w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
				w.Write(est.EncodeBase64(der))
			}))
			rootOnly := x509.NewCertPool()
			rootOnly.AddCert(f.ca.cert)
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}},
				ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: rootOnly, Time: f.clock.Now}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			c := f.cert()
			c.Protocol, c.URL = ProtocolEST, srv.URL
			f.agent.Renewers = nil
			f.cfg.OnceAttempts = 1
			f.agent.RunOnce(context.Background())
			log := f.logs.String()
			if !strings.Contains(log, tt.want) {
				t.Errorf("want the log to say %q:\n%s", tt.want, log)
			}
			if tt.chainFile && (strings.Contains(log, "remote error") || reenrolls.Load() == 0) {
				t.Errorf("the renewal's handshake was refused (%d simplereenroll requests came):\n%s", reenrolls.Load(), log)
			}
		})
	}
}
