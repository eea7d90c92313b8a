package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTLSPair writes a self-signed certificate for --tls-cert (with the
// DNS and IP names given, none for none) and its key; valid from now for
// three years, so a server whose clock is a year ahead takes it too.
func writeTLSPair(t *testing.T, dns []string, ips []net.IP) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x1234), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(3 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: dns, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// A --tls-cert without a subjectAltName, which browsers, Go and scepter's
// own clients refuse, is warned about at start, naming the missing SAN,
// and the banner names its subject. The banner showed an empty name list
// ("HTTPS certificate:   , valid until …") and nothing was logged.
func TestServeWarnsOfATLSCertWithoutSAN(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dns    []string
		ips    []net.IP
		banner string
		warn   bool
	}{
		{"no SAN", nil, nil, "HTTPS certificate:   CN=localhost (no subjectAltName: most clients refuse it), valid until", true},
		{"DNS and IP", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, "HTTPS certificate:   localhost, 127.0.0.1, valid until", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, key := writeTLSPair(t, tc.dns, tc.ips)
			dir := filepath.Join(t.TempDir(), "data")
			stdout, stderr, err := serveOnceWith(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0",
				"--tls-cert", cert, "--tls-key", key, "--challenge", "test", "--public-url", "http://127.0.0.1:8080")
			if err != nil {
				t.Fatalf("serve: %v\n%s\n%s", err, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.banner) {
				t.Errorf("the banner lacks %q:\n%s", tc.banner, stdout)
			}
			warned := strings.Contains(stderr, "--tls-cert has no subjectAltName")
			if warned != tc.warn {
				t.Errorf("warned %v, want %v:\n%s", warned, tc.warn, stderr)
			}
			if tc.warn && (!strings.Contains(stderr, "level=WARN") || !strings.Contains(stderr, `subject="CN=localhost"`)) {
				t.Errorf("the warning is not a WARN naming the subject:\n%s", stderr)
			}
		})
	}
}
