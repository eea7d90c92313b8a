package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A server of a private CA that the system's roots do not trust, asked
// without Roots or Fingerprint, is refused with the ways out (--cacert,
// --ca-fingerprint), not with Go's bare "certificate signed by unknown
// authority"; given either, a handshake failure is not told to give one.
func TestESTUntrustedServerSaysHowToTrustIt(t *testing.T) {
	srv, host, other := untrustedTLSServer(t)
	const advice = "the system's roots do not trust this server"
	_, err := (&EST{URL: srv.URL, Now: func() time.Time { return trustNow }}).CACerts(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "TLS handshake with "+host+": "+advice+" (") ||
		!strings.Contains(err.Error(), "give --cacert FILE (the CA's root, e.g. DATA_DIR/ca/root.crt) or --ca-fingerprint sha256:HEX") {
		t.Errorf("no anchors given: %v, want it to say the system's roots do not trust the server and what to give", err)
	}
	// The CA given is another: the advice to give one would mislead.
	roots := x509.NewCertPool()
	roots.AddCert(other)
	_, err = (&EST{URL: srv.URL, Roots: roots, Now: func() time.Time { return trustNow }}).CACerts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unknown authority") || strings.Contains(err.Error(), advice) {
		t.Errorf("another CA given: %v, want Go's unknown authority without the advice", err)
	}
	// Given from a file (--cacert), the error names it and what to check
	// (r92 D8).
	_, err = (&EST{URL: srv.URL, Roots: roots, RootsFile: "other.crt", Now: func() time.Time { return trustNow }}).CACerts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not chain to the CA(s) in --cacert other.crt: its chain leads to CN=private ca (") ||
		!strings.Contains(err.Error(), "check that the file holds that CA") || strings.Contains(err.Error(), advice) {
		t.Errorf("another CA given in a file: %v, want it to name the file, the issuer and what to check", err)
	}
}

// The SCEP client over https (scepter enroll and renew, which take the same
// --cacert and --ca-fingerprint) gives the same advice.
func TestSCEPUntrustedServerSaysHowToTrustIt(t *testing.T) {
	srv, _, other := untrustedTLSServer(t)
	const advice = "the system's roots do not trust this server"
	_, err := (&SCEP{URL: srv.URL + "/scep", Now: func() time.Time { return trustNow }}).GetCACaps(context.Background())
	if err == nil || !strings.Contains(err.Error(), advice) ||
		!strings.Contains(err.Error(), "give --cacert FILE (the CA's root, e.g. DATA_DIR/ca/root.crt) or --ca-fingerprint sha256:HEX") {
		t.Errorf("no anchors given: %v, want it to say the system's roots do not trust the server and what to give", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(other)
	_, err = (&SCEP{URL: srv.URL + "/scep", Roots: roots, Now: func() time.Time { return trustNow }}).GetCACaps(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unknown authority") || strings.Contains(err.Error(), advice) {
		t.Errorf("another CA given: %v, want Go's unknown authority without the advice", err)
	}
	_, err = (&SCEP{URL: srv.URL + "/scep", Roots: roots, RootsFile: "other.crt", Now: func() time.Time { return trustNow }}).GetCACaps(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not chain to the CA(s) in --cacert other.crt") {
		t.Errorf("another CA given in a file: %v, want it to name the file", err)
	}
	// A caller without --cacert (getcrl) is not told to give one (r92 D8).
	_, err = (&SCEP{URL: srv.URL + "/scep", NoCACertFlag: true, Now: func() time.Time { return trustNow }}).GetCACaps(context.Background())
	if err == nil || strings.Contains(err.Error(), "--cacert") || !strings.Contains(err.Error(), "give --ca-fingerprint sha256:HEX") ||
		!strings.Contains(err.Error(), "plain http:// SCEP URL") {
		t.Errorf("no --cacert to give: %v, want it to name --ca-fingerprint and the http:// URL only", err)
	}
}

// untrustedTLSServer is an HTTPS server on 127.0.0.1 whose certificate a
// private CA issued, its host:port, and another CA's certificate.
func untrustedTLSServer(t *testing.T) (*httptest.Server, string, *x509.Certificate) {
	t.Helper()
	later := trustNow.Add(time.Hour)
	ca := issue(t, "private ca", nil, true, later)
	other := issue(t, "other ca", nil, true, later)
	leaf := issue(t, "unused", nil, false, later)
	der, err := x509.CreateCertificate(nil, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: trustNow.Add(-time.Hour), NotAfter: later, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca.cert, leaf.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(http.NotFound))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leaf.key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, strings.TrimPrefix(srv.URL, "https://"), other.cert
}
