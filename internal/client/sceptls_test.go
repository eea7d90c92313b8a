package client

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
)

// tlsTestCA is a private CA (not a system root) and its key.
type tlsTestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTLSTestCA(t *testing.T, name string, now time.Time) *tlsTestCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &tlsTestCA{cert: cert, key: key}
}

// serverPair is a TLS certificate for 127.0.0.1 that the CA issues.
func (ca *tlsTestCA) serverPair(t *testing.T, now time.Time) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// An https SCEP server whose TLS certificate our own CA issued is trusted
// by the pinned fingerprint (bootstrapped from GetCACert) or by Roots; a
// server that relays the pinned CA's GetCACert behind a TLS certificate of
// another CA is not, nor is any with only the system roots.
func TestSCEPOverHTTPSTrustsThePinnedCA(t *testing.T) {
	now := time.Date(2031, 3, 14, 9, 0, 0, 0, time.UTC) // pinned; TLS checks run at the client's clock
	ours := newTLSTestCA(t, "Our CA", now)
	other := newTLSTestCA(t, "Another CA", now)
	start := func(t *testing.T, tlsBy *tlsTestCA) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Query().Get("operation") {
			case "GetCACaps":
				w.Write([]byte("POSTPKIOperation\nSHA-256\nAES\n"))
			case "GetCACert":
				der, _ := cms.DegenerateCertificates([]*x509.Certificate{ours.cert})
				w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
				w.Write(der)
			default:
				http.Error(w, "no", http.StatusBadRequest)
			}
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{tlsBy.serverPair(t, now)}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL + "/scep"
	}
	pool := func(c *x509.Certificate) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(c)
		return p
	}
	for _, tt := range []struct {
		name        string
		tlsBy       *tlsTestCA
		fingerprint string
		roots       *x509.CertPool
		// system stands in for the machine's roots.
		system *x509.CertPool
		want   string // in the error; "" for success
	}{
		{"fingerprint of our CA", ours, Fingerprint(ours.cert), nil, nil, ""},
		{"roots", ours, "", pool(ours.cert), nil, ""},
		{"roots win over the fingerprint", ours, Fingerprint(other.cert), pool(ours.cert), nil, ""},
		{"system roots only", ours, "", nil, nil, "certificate signed by unknown authority"},
		{"another CA's fingerprint", ours, Fingerprint(other.cert), nil, nil, "fingerprint"},
		{"TLS of another CA relaying our GetCACert", other, Fingerprint(ours.cert), nil, nil, "does not chain to the CA with fingerprint"},
		{"roots of another CA", ours, "", pool(other.cert), nil, "certificate signed by unknown authority"},
		{"system roots, no pin", other, "", nil, pool(other.cert), ""},
		// A pin means the pinned CA only, as for EST: a proxy (or anyone)
		// with a certificate from a public CA does not pass for our server.
		{"fingerprint, TLS of a system root's CA", other, Fingerprint(ours.cert), nil, pool(other.cert), "does not chain to the CA with fingerprint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &SCEP{URL: start(t, tt.tlsBy), Fingerprint: tt.fingerprint, Roots: tt.roots, Now: func() time.Time { return now },
				systemRoots: tt.system}
			caps, err := c.GetCACaps(context.Background())
			if err == nil {
				// A second operation, on the client's kept connection or a
				// new one, is held to the same trust.
				_, err = c.GetCACert(context.Background())
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.want == "" && !caps.Has("POSTPKIOperation"):
				t.Errorf("caps %v", caps)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

// A server certificate of the pinned CA for other names is said to be
// that, not a certificate that does not chain to the CA (Verify checks the
// name first); one of another CA still does not chain.
func TestVerifyPeerTellsNameFromChain(t *testing.T) {
	now := time.Date(2031, 3, 14, 9, 0, 0, 0, time.UTC)
	ours := newTLSTestCA(t, "Our CA", now)
	other := newTLSTestCA(t, "Another CA", now)
	for _, tt := range []struct {
		name  string
		by    *tlsTestCA
		host  string
		want  string
		notIn string
	}{
		{"ours, its name", ours, "127.0.0.1", "", ""},
		{"ours, another name", ours, "::1", "is from the CA with fingerprint", "does not chain"},
		{"another CA's, another name", other, "::1", "does not chain to the CA with fingerprint", ""},
	} {
		pair := tt.by.serverPair(t, now)
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ours.cert)
		err = verifyPeer(leaf, x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(), DNSName: tt.host, CurrentTime: now}, Fingerprint(ours.cert))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want one saying %q", tt.name, err, tt.want)
		case tt.notIn != "" && strings.Contains(err.Error(), tt.notIn):
			t.Errorf("%s: %v says %q", tt.name, err, tt.notIn)
		}
	}
}
