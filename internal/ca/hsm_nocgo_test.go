//go:build !cgo

package ca

import (
	"testing"

	"github.com/scepter/scepter/internal/keys"
)

// caToken skips the test: PKCS#11 modules are loaded through cgo.
func caToken(t *testing.T) (keys.Token, keys.PKCS11Config) {
	t.Helper()
	t.Skip("a PKCS#11 token needs cgo")
	return nil, keys.PKCS11Config{}
}
