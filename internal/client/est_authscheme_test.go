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

// A 401 whose WWW-Authenticate offers only another scheme than Basic
// (HTTP Digest, RFC 7030 §3.2.3) says the server asks for it and that the
// client sends Basic only, or a client certificate: no password was judged
// (r101 D3). One that offers Basic, among others or alone, or names no
// scheme, is a refusal of the credentials as before.
func TestESTUnauthorizedNamesTheScheme(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	der, tlsKey := localhostTLSCert(t, root, later)
	var challenges atomic.Value // []string: the WWW-Authenticate headers
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, c := range challenges.Load().([]string) {
			w.Header().Add("WWW-Authenticate", c)
		}
		http.Error(w, "authorization required", http.StatusUnauthorized)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	defer srv.Close()
	anchors := x509.NewCertPool()
	anchors.AddCert(root.cert)
	csrKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tt := range []struct {
		name       string
		challenges []string
		other      string // OtherAuthScheme; "": none
	}{
		{"Digest", []string{`Digest realm="est", qop="auth,auth-int", nonce="a, b", algorithm=SHA-256`}, "Digest"},
		{"Digest, a quoted comma and escape", []string{`Digest realm="a \"x, Basic\" b", nonce="n"`}, "Digest"},
		{"Negotiate and Digest", []string{"Negotiate", `Digest realm="est"`}, "Negotiate, Digest"},
		{"Basic", []string{`Basic realm="est", charset="UTF-8"`}, ""},
		{"Digest, then Basic in one header", []string{`Digest realm="est", nonce="n", Basic realm="est"`}, ""},
		{"Digest and basic in two headers", []string{`Digest realm="est"`, `basic realm="est"`}, ""},
		{"none", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			challenges.Store(tt.challenges)
			c := &EST{URL: srv.URL, Roots: anchors, User: "fleet", Password: "a long device password", Now: func() time.Time { return trustNow }}
			_, err := c.Enroll(context.Background(), ESTRequest{Op: est.OpSimpleEnroll, MakeCSR: func([]byte) ([]byte, error) {
				return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}}, csrKey)
			}})
			var he *HTTPError
			if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
				t.Fatalf("err = %v, want an HTTP 401", err)
			}
			if got := he.OtherAuthScheme(); got != tt.other {
				t.Errorf("OtherAuthScheme() = %q, want %q", got, tt.other)
			}
			const note = "authentication (WWW-Authenticate), which scepter's EST client does not send: it authenticates with HTTP Basic (a user and password) or a TLS client certificate, so no password was judged"
			if tt.other != "" {
				if want := "simpleenroll: HTTP 401: authorization required; the server asks for HTTP " + tt.other + " " + note; err.Error() != want {
					t.Errorf("err = %q\nwant %q", err, want)
				}
			} else if strings.Contains(err.Error(), note) {
				t.Errorf("err = %q: Basic was offered", err)
			}
		})
	}
}
