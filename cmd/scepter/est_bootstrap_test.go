package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// A failure of what comes before the enrollment (the --url check, the TLS
// handshake, /cacerts and the fingerprint pin) says what failed, not
// "csrattrs:", which README calls advice the client goes on without
// (r75 D5). A bad --url is a usage error (exit 2), found before anything
// is sent.
func TestESTBootstrapFailuresSayWhatFailed(t *testing.T) {
	s := startFakeEST(t, 204, "")
	now := pki.SystemClock{}.Now()
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Other CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, otherKey.Public(), otherKey)
	other, _ := x509.ParseCertificate(der)
	otherFile := filepath.Join(t.TempDir(), "other.pem")
	if err := keys.WriteCertFile(otherFile, other); err != nil {
		t.Fatal(err)
	}
	const wrongPin = "sha256:d812e5e31c785c697385315e55da98fe5ec9f0833af74c8845cbcf373876d958"
	for _, tt := range []struct {
		name  string
		trust []string
		url   string
		want  string
		exit  int
	}{
		{"plain http --url", []string{"--cacert", s.caFile}, "http://127.0.0.1:1", `--url: EST URL "http://127.0.0.1:1": want https://`, 2},
		{"wrong fingerprint", []string{"--ca-fingerprint", wrongPin}, s.url, "no certificate from the server matches CA fingerprint", 1},
		{"foreign --cacert", []string{"--cacert", otherFile}, s.url, "TLS handshake with 127.0.0.1:", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			args := append([]string{"est", "enroll", "--url", tt.url, "--subject", "CN=x",
				"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")}, tt.trust...)
			out, err := runCLI(args...)
			if err == nil {
				t.Fatalf("enrolled\n%s", out)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "csrattrs") || exitCode(err) != tt.exit {
				t.Errorf("%v (exit %d); want %q, exit %d, and no csrattrs", err, exitCode(err), tt.want, tt.exit)
			}
		})
	}
}
