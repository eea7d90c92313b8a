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
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// An EST server that redirects the renewal is refused (never followed),
// and the advice names the certificate's `url` setting in the agent's
// configuration file, which is where the agent's URL comes from, not
// scepter's --url, which the agent does not take (r101 D8).
func TestESTRedirectNamesTheURLSetting(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(365 * 24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, f.ca.cert, tlsKey.Public(), f.ca.key)
	if err != nil {
		t.Fatal(err)
	}
	var location string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/"+est.OpCACerts):
			der, _ := cms.DegenerateCertificates(f.ca.certs())
			w.Header().Set("Content-Type", "application/pkcs7-mime")
			w.Write(est.EncodeBase64(der))
		default:
			http.Redirect(w, r, location+strings.TrimPrefix(r.URL.Path, est.PathPrefix), http.StatusFound)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER, f.ca.cert.Raw}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := f.cert()
	c.Protocol, c.URL = ProtocolEST, srv.URL
	p := f.pair()
	for _, tt := range []struct {
		name, location, want string
	}{
		{"to the same operation elsewhere", "https://est.example/.well-known/est/std/",
			`set url = "https://est.example/.well-known/est/std" for this certificate in the configuration file if you trust it`},
		{"elsewhere", "https://est.example/login?op=",
			"set this certificate's url to that URL in the configuration file if you trust it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			location = tt.location
			_, err := ESTRenewer{}.Renew(context.Background(), RenewRequest{Config: c, Old: p.cert, OldKey: p.key, Key: p.key, Now: f.clock.Now})
			if err == nil || !strings.Contains(err.Error(), "scepter does not follow redirects") || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "--url") {
				t.Errorf("err = %v\nwant the redirect refused, advising %q and not --url", err, tt.want)
			}
		})
	}
}
