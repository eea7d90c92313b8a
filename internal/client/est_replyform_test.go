package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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

// A reply that is not the base64 of DER (RFC 8951) is refused saying it is
// the server's reply, and what it is when that can be told: PEM, or DER
// sent as it is; not "the body", which reads as the client's request.
func TestESTReplyNotBase64SaysWhatItIs(t *testing.T) {
	later := trustNow.Add(time.Hour)
	ca := issue(t, "ca", nil, true, later)
	leaf := issue(t, "unused", nil, false, later)
	der, err := x509.CreateCertificate(nil, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: trustNow.Add(-time.Hour), NotAfter: later, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca.cert, leaf.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	certsOnly, err := cms.DegenerateCertificates([]*x509.Certificate{ca.cert})
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string][]byte{
		"PEM":           pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: certsOnly}),
		"DER":           certsOnly,
		"HTML":          []byte("<html><body>502 Bad Gateway</body></html>"),
		"empty":         nil,
		"base64":        est.EncodeBase64(certsOnly),
		"not DER":       est.EncodeBase64([]byte("not der at all")),
		"a certificate": est.EncodeBase64(ca.cert.Raw),
	}
	var form string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(forms[form])
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leaf.key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ form, want string }{
		{"PEM", "the server's reply is PEM, not the base64 of DER (RFC 8951)"},
		{"DER", "the server's reply is raw DER, not its base64 (RFC 8951)"},
		{"HTML", `the server's reply is not base64 (RFC 8951): it begins "<html><body>502 Bad Gateway</bod"`},
		{"empty", "the server's reply is empty, not the base64 of DER (RFC 8951)"},
		// r92 D12: base64, but not of a certs-only: the server's too.
		{"not DER", "the server's reply is not a PKCS#7 certs-only (RFC 7030 section 4.1.3)"},
		{"a certificate", "the server's reply is not a PKCS#7 certs-only (RFC 7030 section 4.1.3)"},
	} {
		form = tt.form
		c := &EST{URL: srv.URL, Roots: roots, Now: func() time.Time { return trustNow }}
		_, err := c.CACerts(context.Background())
		if err == nil || err.Error() != "cacerts: "+tt.want && !strings.HasPrefix(err.Error(), "cacerts: "+tt.want+":") {
			t.Errorf("%s: cacerts: %v, want %q", tt.form, err, "cacerts: "+tt.want)
		}
		_, err = c.Enroll(context.Background(), ESTRequest{Op: est.OpSimpleEnroll, MakeCSR: func([]byte) ([]byte, error) { return csrDER, nil }})
		if err == nil || !strings.HasPrefix(err.Error(), "simpleenroll: "+tt.want) {
			t.Errorf("%s: simpleenroll: %v, want %q", tt.form, err, "simpleenroll: "+tt.want)
		}
	}
	form = "base64"
	if certs, err := (&EST{URL: srv.URL, Roots: roots, Now: func() time.Time { return trustNow }}).CACerts(context.Background()); err != nil || len(certs) != 1 {
		t.Errorf("base64: %d certificates, %v", len(certs), err)
	}
}
