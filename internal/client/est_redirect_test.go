package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/est"
)

// A 3xx is not followed (the password and the CSR must not go elsewhere),
// and the refusal says where the server redirects, without the user info
// of its Location, and what to give as --url if that is trusted (r75 D4).
func TestESTRedirectIsNamedNotFollowed(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	der, tlsKey := localhostTLSCert(t, root, later)
	var asked atomic.Int32
	var location atomic.Value // where the server redirects to
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Location", location.Load().(string))
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	anchors := x509.NewCertPool()
	anchors.AddCert(root.cert)
	csrKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	enroll := func(op string) func(*EST) error {
		return func(c *EST) error {
			_, err := c.Enroll(context.Background(), ESTRequest{Op: op, MakeCSR: func([]byte) ([]byte, error) {
				return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}}, csrKey)
			}})
			return err
		}
	}
	for _, tt := range []struct {
		op string
		do func(*EST) error
	}{
		{est.OpCACerts, func(c *EST) error { _, err := c.CACerts(context.Background()); return err }},
		{est.OpCSRAttrs, func(c *EST) error { _, err := c.CSRAttrs(context.Background()); return err }},
		{est.OpSimpleEnroll, enroll(est.OpSimpleEnroll)},
		{est.OpSimpleReenroll, enroll(est.OpSimpleReenroll)},
		{est.OpServerKeyGen, enroll(est.OpServerKeyGen)},
	} {
		for _, lt := range []struct {
			name, location, want, advice string
		}{
			{"to the same operation elsewhere", "https://admin:s3cret@other.example:8443/.well-known/est/lbl/" + tt.op,
				"the server redirects to https://other.example:8443/.well-known/est/lbl/" + tt.op,
				"give --url https://other.example:8443/.well-known/est/lbl if you trust it"},
			{"relative, elsewhere", "/login?next=1", "the server redirects to " + srv.URL + "/login?next=1", "give that URL with --url if you trust it"},
			// r79: no advice to give EST a URL it cannot use, and a huge
			// Location cut.
			{"to plain http", "http://other.example/.well-known/est/" + tt.op, "the server redirects to http://other.example/", "it is no https URL, which EST needs"},
			{"to javascript:", "javascript:alert(1)", "the server redirects to javascript:alert(1)", "it is no https URL, which EST needs"},
			{"huge", "https://other.example/" + strings.Repeat("a", 100000), "the server redirects to https://other.example/aaaa", "…"},
		} {
			t.Run(tt.op+" "+lt.name, func(t *testing.T) {
				location.Store(lt.location)
				asked.Store(0)
				c := &EST{URL: srv.URL, Roots: anchors, User: "fleet", Password: "a long device password", Now: func() time.Time { return trustNow }}
				err := tt.do(c)
				var he *HTTPError
				if !errors.As(err, &he) || he.Status != http.StatusTemporaryRedirect {
					t.Fatalf("err = %v, want an HTTP 307", err)
				}
				msg := err.Error()
				for _, w := range []string{"HTTP 307", lt.want, "scepter does not follow redirects (the password and the CSR must not go elsewhere)", lt.advice} {
					if !strings.Contains(msg, w) {
						t.Errorf("%q does not say %q", msg, w)
					}
				}
				if len(msg) > 1000 {
					t.Errorf("an error of %d bytes", len(msg))
				}
				if strings.Contains(msg, "s3cret") || strings.Contains(msg, "admin") {
					t.Errorf("%q shows the Location's user info", msg)
				}
				if n := asked.Load(); n != 1 {
					t.Errorf("the server was asked %d times, want once (not followed)", n)
				}
			})
		}
	}
}
