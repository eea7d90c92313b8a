//go:build !cgo

package keys

import (
	"errors"
	"strings"
	"testing"
)

// Without cgo, a configured token is refused with a message that says why.
func TestOpenPKCS11WithoutCgo(t *testing.T) {
	_, err := OpenPKCS11(PKCS11Config{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "t", PINFile: "/p"})
	if !errors.Is(err, ErrNoPKCS11) || !strings.Contains(err.Error(), "built without PKCS#11 support") {
		t.Fatalf("err = %v, want ErrNoPKCS11", err)
	}
	if PKCS11Supported {
		t.Error("PKCS11Supported in a build without cgo")
	}
}
