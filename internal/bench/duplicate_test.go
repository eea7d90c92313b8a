package bench_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/bench"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// sameSerialEST is an EST server whose CA issues every certificate under
// one serial, a broken serial generator.
func sameSerialEST(t *testing.T) (url string, roots *x509.CertPool) {
	t.Helper()
	now := time.Now() // the load tool checks with its own clock (Options.Now unset)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Same Serial CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(tmpl *x509.Certificate, pub any) []byte {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
		if err != nil {
			t.Error(err)
		}
		return der
	}
	reply := func(w http.ResponseWriter, ders ...[]byte) {
		var certs []*x509.Certificate
		for _, d := range ders {
			c, _ := x509.ParseCertificate(d)
			certs = append(certs, c)
		}
		p7, _ := cms.DegenerateCertificates(certs)
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(est.EncodeBase64(p7))
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
		case est.OpCACerts:
			reply(w, caDER)
		case est.OpSimpleEnroll:
			req, ok := readCSR(w, r)
			if !ok {
				return
			}
			reply(w, issue(&x509.Certificate{SerialNumber: big.NewInt(7), Subject: req.Subject}, req.PublicKey))
		default:
			http.NotFound(w, r)
		}
	}))
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsDER := issue(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, tlsKey.Public())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return srv.URL, roots
}

// A certificate under a serial received before is a failed enrollment
// (verify:duplicate): not ok, not in the rate or the latencies, and the run
// fails even with --allow-failures.
func TestRunDuplicateSerialsFail(t *testing.T) {
	u, roots := sameSerialEST(t)
	var serials bytes.Buffer
	o := bench.Options{Protocol: "est", URLs: []string{u}, Challenge: "any", KeyType: "p256", Roots: roots,
		Count: 5, Concurrency: 1, Timeout: 20 * time.Second, SerialsOut: &serials}
	res := run(t, o)
	if res.OK != 1 || res.Failed != 4 || res.Attempted != 5 || res.Duplicates != 4 || res.BadCerts != 0 {
		t.Fatalf("ok %d failed %d attempted %d dup %d bad %d, want 1/4/5/4/0: %v %v",
			res.OK, res.Failed, res.Attempted, res.Duplicates, res.BadCerts, res.Failures, res.FirstErrors)
	}
	if res.Failures["verify:duplicate"] != 4 || res.PerURL[0].OK != 1 || res.PerURL[0].Failed != 4 {
		t.Errorf("failures %v, per URL %+v; want verify:duplicate 4, ok 1", res.Failures, res.PerURL)
	}
	if want := 1 / res.ElapsedSeconds; res.Rate > want*1.001 {
		t.Errorf("rate %.1f/s counts the duplicates (one ok in %.3fs)", res.Rate, res.ElapsedSeconds)
	}
	if len(res.FirstErrors) != 1 || !strings.Contains(res.FirstErrors[0], "verify:duplicate: verification (duplicate): serial (hex) 07 was received before") {
		t.Errorf("first errors %q", res.FirstErrors)
	}
	// Every certificate received is listed, the duplicates too, its
	// serial in whole bytes as scepter shows it elsewhere (r113: 7, and a
	// 31-digit serial without its leading 0).
	if n := strings.Count(serials.String(), "\n"); n != 5 {
		t.Errorf("%d serials listed, want 5:\n%s", n, serials.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(serials.String()), "\n") {
		if !strings.HasPrefix(line, "07 ") {
			t.Errorf("serials line %q, want serial 07", line)
		}
	}
	for _, allow := range []bool{false, true} {
		err := res.ExitError(allow)
		if err == nil || err.Error() != "4 duplicate serials" {
			t.Errorf("ExitError(%v) = %v, want only the 4 duplicate serials", allow, err)
		}
	}
}

// readCSR reads a test EST server's simpleenroll body, base64 of a CSR,
// answering 400 when it is none.
func readCSR(w http.ResponseWriter, r *http.Request) (*x509.CertificateRequest, bool) {
	body, _ := io.ReadAll(r.Body)
	der, err := est.DecodeBase64(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	return req, true
}
