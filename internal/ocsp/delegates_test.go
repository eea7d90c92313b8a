package ocsp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ocsp"
)

// TestRemoveDelegateLeavesTokenKeyWithoutToken: a discard run without the
// token's flags cannot destroy a responder key in the token. That is not
// a failure (the CA's own keys are left the same way): the reference file
// and certificate go, and the key's reference is returned for the
// operator, with no error.
func TestRemoveDelegateLeavesTokenKeyWithoutToken(t *testing.T) {
	dir := t.TempDir()
	issuerID := strings.Repeat("ab", 32)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const ref = "pkcs11:token=ca;object=scepter-ocsp-ab"
	src := &keys.Dir{Path: dir}
	if err := keys.WriteRefFile(src.RefPath(issuerID[:32]), ref, key.Public()); err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, issuerID[:32]+".crt")
	if err := os.WriteFile(certFile, []byte("certificate"), 0o600); err != nil {
		t.Fatal(err)
	}

	removed, left, _, err := ocsp.RemoveDelegate(dir, nil, issuerID)
	if err != nil {
		t.Fatalf("RemoveDelegate without the token: %v", err)
	}
	if !slices.Equal(left, []string{ref}) {
		t.Errorf("left = %q, want the token key's reference %q", left, ref)
	}
	for _, p := range []string{src.RefPath(issuerID[:32]), certFile} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there (err %v)", p, err)
		}
		if !slices.Contains(removed, p) {
			t.Errorf("removed = %q, want it to name %s", removed, p)
		}
	}

	// Run again: nothing left to do, and nothing reported.
	removed, left, _, err = ocsp.RemoveDelegate(dir, nil, issuerID)
	if err != nil || len(removed) != 0 || len(left) != 0 {
		t.Errorf("second run: removed %q, left %q, err %v; want nothing", removed, left, err)
	}
}
