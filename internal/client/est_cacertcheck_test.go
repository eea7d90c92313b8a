package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// With trust anchors given (--cacert), the CA /cacerts names must chain to
// them before anything else is asked: a server whose TLS certificate is
// of one CA and whose certificates are of another would issue one that
// CheckIssued then refuses (r101 D1). The refusal names where /cacerts
// leads (subject, fingerprint) and says to add it to the --cacert file.
func TestESTCheckCACertsBeforeAsking(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	rootA := issue(t, "root A", nil, true, later)
	interA := issue(t, "issuing A", rootA, true, later)
	rootB := issue(t, "root B", nil, true, later)
	der, tlsKey := localhostTLSCert(t, rootB, later)
	var cacerts atomic.Value
	var asked atomic.Int32 // requests other than /cacerts
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != est.PathPrefix+est.OpCACerts {
			asked.Add(1)
			http.NotFound(w, r)
			return
		}
		body, _ := cms.DegenerateCertificates(cacerts.Load().([]*x509.Certificate))
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(est.EncodeBase64(body))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	defer srv.Close()
	pool := func(certs ...*testCert) *x509.CertPool {
		p := x509.NewCertPool()
		for _, c := range certs {
			p.AddCert(c.cert)
		}
		return p
	}
	const advice = "a certificate it issued would be refused as not chaining to them, so nothing more was sent (no credentials, no request); " +
		"if you trust that CA for the certificates this server issues, add it to the --cacert file"
	for _, tt := range []struct {
		name    string
		cacerts []*testCert
		roots   *x509.CertPool
		pin     string
		want    []string // in the error; nil: none
	}{
		{"TLS of B, certificates of A, B given", []*testCert{interA, rootA}, pool(rootB), "", []string{
			"the server's /cacerts names a CA that the CA(s) in --cacert rootB.pem do not trust: its certificates lead to CN=root A (" + Fingerprint(rootA.cert) + ") (x509: certificate signed by unknown authority", advice}},
		{"the issuing CA alone, B given", []*testCert{interA}, pool(rootB), "", []string{
			"its certificates lead to CN=issuing A (" + Fingerprint(interA.cert) + "), issued by CN=root A (", advice}},
		{"both given", []*testCert{interA, rootA}, pool(rootB, rootA), "", nil},
		{"the issuing CA alone, both given", []*testCert{interA}, pool(rootB, rootA), "", nil},
		{"the issuing CA given", []*testCert{interA, rootA}, pool(rootB, interA), "", nil},
		{"a fingerprint: the bootstrap decides", []*testCert{interA, rootA}, nil, Fingerprint(rootB.cert), nil},
		{"the system's roots: nothing to check", []*testCert{interA, rootA}, nil, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var certs []*x509.Certificate
			for _, c := range tt.cacerts {
				certs = append(certs, c.cert)
			}
			cacerts.Store(certs)
			asked.Store(0)
			c := &EST{URL: srv.URL, Roots: tt.roots, RootsFile: "rootB.pem", Fingerprint: tt.pin, Now: func() time.Time { return trustNow }}
			if tt.roots == nil {
				c.RootsFile = ""
			}
			err := c.CheckCACerts(context.Background())
			if tt.want == nil {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("not refused")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant it to say %q", err, w)
				}
			}
			if n := asked.Load(); n != 0 {
				t.Errorf("%d requests besides /cacerts", n)
			}
		})
	}
}
