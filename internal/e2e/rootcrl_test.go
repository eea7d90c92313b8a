package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRootCRLForStrictRelyingParties: a relying party that demands a CRL
// for every certificate of the chain (openssl verify -crl_check_all, as
// strongSwan's strictcrlpolicy=yes) fails on the issuing CA until the root
// publishes a CRL; `scepter ca root crl` beside the running server signs
// one, the server serves it at the root's CRL URL, and the chain then
// verifies.
func TestRootCRLForStrictRelyingParties(t *testing.T) {
	t.Parallel()
	need(t, "openssl")
	e := startEST(t, estOpts{prepared: true, challenge: "root-crl-secret", config: lifecycleConfig})
	dir := t.TempDir()
	if r := enroll(t, dir, e.URL, e.Challenge, "CN=root-crl-device,O=Acme"); r.err != nil {
		t.Fatalf("enroll:\n%s", r)
	}
	cert := e.Verify(filepath.Join(dir, "cert.pem"))
	root := readCert(t, e.CAFile("root.crt"))
	sum := sha256.Sum256(root.Raw)
	rootCRLURL := e.Base + "/crl/" + hex.EncodeToString(sum[:]) + ".crl"

	issuingCRL := filepath.Join(dir, "issuing.crl")
	waitCRL(t, cert.CRLDistributionPoints[0], issuingCRL, func(string) bool { return true })

	// Before: 404 saying what to do, and the strict check fails.
	code, body, err := httpGet(rootCRLURL)
	if err != nil || code != 404 || !strings.Contains(string(body), "scepter ca root crl") {
		t.Fatalf("the root's CRL before one is signed: %d %v %q", code, err, body)
	}
	r := run(t, runOpts{}, "openssl", "verify", "-crl_check_all", "-CAfile", e.CAFile("root.crt"), "-untrusted", e.CAFile("issuing.crt"),
		"-CRLfile", pemCRL(t, issuingCRL), filepath.Join(dir, "cert.pem"))
	expectContains(t, "openssl verify -crl_check_all without a root CRL", expectFailed(t, r, "a chain verified strictly without the root's CRL"), "unable to get certificate CRL")

	// Signed beside the running server (its data directory holds the
	// root key in this test), then served.
	r = e.cli(t, "ca", "root", "crl")
	if r.err != nil {
		t.Fatalf("ca root crl:\n%s", r)
	}
	expectContains(t, "ca root crl", r.stdout, "Root CRL 1 signed", rootCRLURL)
	rootCRL := filepath.Join(dir, "root.crl")
	waitCRL(t, rootCRLURL, rootCRL, func(string) bool { return true })
	r = run(t, runOpts{}, "openssl", "verify", "-crl_check_all", "-CAfile", e.CAFile("root.crt"), "-untrusted", e.CAFile("issuing.crt"),
		"-CRLfile", pemCRL(t, issuingCRL), "-CRLfile", pemCRL(t, rootCRL), filepath.Join(dir, "cert.pem"))
	if r.err != nil || !strings.Contains(r.stdout, ": OK") {
		t.Fatalf("openssl verify -crl_check_all with the root's CRL:\n%s", r)
	}
}

// pemCRL converts a DER CRL file to PEM beside it, for openssl verify's
// -CRLfile, which reads PEM only.
func pemCRL(t *testing.T, der string) string {
	t.Helper()
	b, err := os.ReadFile(der)
	if err != nil {
		t.Fatal(err)
	}
	out := der + ".pem"
	writePEM(t, out, "X509 CRL", b)
	return out
}
