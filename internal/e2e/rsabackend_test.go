package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRSABackends: an RSA CA acting as its own RA makes every private-key
// operation of an enrollment with RSA (the content key's decryption, the
// certificate's and the reply's signatures), through OpenSSL or Go's
// crypto/rsa as --rsa-backend says. Each must enroll our client with RSA-2048
// and RSA-3072 keys, and serve must say which it used. On CI (SCEPTER_E2E_REQUIRE=1)
// OpenSSL must be the one "auto" picks, so that the rest of the suite's real
// clients test it too.
func TestRSABackends(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ backend, says string }{
		{"go", "RSA key files used through Go's crypto/rsa (--rsa-backend go)"},
		{"openssl", "RSA key files used through OpenSSL"},
		{"auto", "RSA key files used through OpenSSL"},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverOpts{challenge: "backend-secret", args: []string{"--ca-key-type", "rsa2048", "--scep-ra", "ca", "--rsa-backend", tc.backend}})
			if !strings.Contains(s.Output(), tc.says) {
				if tc.backend == "go" || requireAll() {
					t.Fatalf("serve did not say %q:\n%s", tc.says, s.Output())
				}
				t.Skipf("OpenSSL 3 is not available here:\n%s", s.Output())
			}
			for i, keyType := range []string{"rsa2048", "rsa3072"} {
				dir := t.TempDir()
				cn := "backend-" + tc.backend + "-" + keyType
				r := enroll(t, dir, s.URL, "backend-secret", "CN="+cn, "--key-type", keyType)
				if r.err != nil {
					t.Fatalf("enroll %d:\n%s", i, r)
				}
				certPath := filepath.Join(dir, "cert.pem")
				opensslVerify(t, s.CAFile("root.crt"), s.CAFile("issuing.crt"), certPath)
				expectKeyMatches(t, readCert(t, certPath), filepath.Join(dir, "key.pem"))
			}
		})
	}
}
