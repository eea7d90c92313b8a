package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// A pin that matches nothing the server sent names what it did send (each
// certificate's subject and fingerprint), and when that is a CA below a
// root it did not send (step-ca's GetCACert: the intermediate alone),
// that pinning that CA, or --cacert with the root, works (r101 D7). Over
// SCEP and EST alike; pinning the certificate named then works.
func TestFingerprintMismatchNamesWhatWasSent(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "step root", nil, true, later)
	inter := issue(t, "step intermediate", root, true, later)
	ra := issue(t, "ra", inter, false, later)
	other := issue(t, "other root", nil, true, later)
	pin := Fingerprint(root.cert)
	const advice = "pin the CA certificate the server sends instead (--ca-fingerprint "
	for _, tt := range []struct {
		name   string
		certs  []*x509.Certificate
		pin    string
		want   []string
		advice bool
	}{
		{"the intermediate alone", []*x509.Certificate{inter.cert}, pin, []string{
			"no certificate from the server matches CA fingerprint " + pin + ": refusing to trust it; the server sent CN=step intermediate (" + Fingerprint(inter.cert) +
				", issued by CN=step root, which it did not send); if " + pin + " is the fingerprint of CN=step root, " + advice + Fingerprint(inter.cert) +
				": a pin need not be a root), or, over https, give --cacert with CN=step root's certificate instead of --ca-fingerprint"}, true},
		{"an RA and its CA, without the root", []*x509.Certificate{ra.cert, inter.cert}, pin, []string{
			"the server sent CN=ra (" + Fingerprint(ra.cert) + "), CN=step intermediate (" + Fingerprint(inter.cert) + ", issued by CN=step root, which it did not send)",
			advice + Fingerprint(inter.cert)}, true},
		{"the whole chain, another pin", []*x509.Certificate{inter.cert, root.cert}, Fingerprint(other.cert), []string{
			"the server sent CN=step intermediate (" + Fingerprint(inter.cert) + "), CN=step root (" + Fingerprint(root.cert) + ")"}, false},
		{"many", []*x509.Certificate{root.cert, root.cert, root.cert, root.cert, root.cert, root.cert, root.cert, root.cert}, Fingerprint(other.cert),
			[]string{"CN=step root (" + Fingerprint(root.cert) + "), and 2 more"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFingerprint(tt.certs, tt.pin)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant it to say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), advice) != tt.advice {
				t.Errorf("%v: the advice to pin the CA sent: %v, want %v", err, !tt.advice, tt.advice)
			}
		})
	}

	// Over SCEP: GetCACert sends the intermediate alone, as a single DER
	// certificate, as step-ca does.
	scepSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-x509-ca-cert")
		w.Write(inter.cert.Raw)
	}))
	defer scepSrv.Close()
	sc := &SCEP{URL: scepSrv.URL + "/scep", Now: func() time.Time { return trustNow }}
	sent, err := sc.GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TrustedCACerts(sent, pin, trustNow); err == nil || !strings.Contains(err.Error(), advice+Fingerprint(inter.cert)) {
		t.Errorf("SCEP, the root pinned: %v, want the advice to pin the intermediate", err)
	}
	if _, err := TrustedCACerts(sent, Fingerprint(inter.cert), trustNow); err != nil {
		t.Errorf("SCEP, the intermediate pinned as advised: %v", err)
	}

	// Over EST: /cacerts holds the intermediate alone, which issued the
	// server's TLS certificate.
	der, tlsKey := localhostTLSCert(t, inter, later)
	estSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := cms.DegenerateCertificates([]*x509.Certificate{inter.cert})
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(est.EncodeBase64(body))
	}))
	estSrv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, inter.cert.Raw}, PrivateKey: tlsKey}}}
	estSrv.StartTLS()
	defer estSrv.Close()
	_, err = (&EST{URL: estSrv.URL, Fingerprint: pin, Now: func() time.Time { return trustNow }}).CACerts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the server sent CN=step intermediate") || !strings.Contains(err.Error(), advice+Fingerprint(inter.cert)) {
		t.Errorf("EST, the root pinned: %v, want what the server sent and the advice to pin it", err)
	}
	if _, err := (&EST{URL: estSrv.URL, Fingerprint: Fingerprint(inter.cert), Now: func() time.Time { return trustNow }}).CACerts(context.Background()); err != nil {
		t.Errorf("EST, the intermediate pinned as advised: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.cert)
	if _, err := (&EST{URL: estSrv.URL, Roots: roots, Now: func() time.Time { return trustNow }}).CACerts(context.Background()); err != nil {
		t.Errorf("EST, the root given as --cacert as advised: %v", err)
	}
}
