package pkitest

import (
	"crypto"
	"testing"

	"github.com/scepter/scepter/internal/keys/opensslrsa"
)

// WrapKeyAsServe is serve's --rsa-backend auto for benchmarks: a function
// for ca.InitOptions.WrapKey (and the OCSP delegates) that puts RSA key
// files through OpenSSL when libcrypto.so.3 loads and passes its
// self-test with the key, and keeps the key as it is otherwise; nil when
// OpenSSL cannot be loaded. It logs when Go's crypto/rsa is used, so a
// benchmark's figures say which they are.
func WrapKeyAsServe(tb testing.TB) func(crypto.Signer) crypto.Signer {
	tb.Helper()
	lib, err := opensslrsa.Open()
	if err != nil {
		tb.Logf("RSA through Go's crypto/rsa: %v", err)
		return nil
	}
	return lib.WrapOrKeep(func(_ crypto.Signer, err error) {
		tb.Logf("RSA through Go's crypto/rsa: %v", err)
	})
}
