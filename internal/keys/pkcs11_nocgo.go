//go:build !cgo

package keys

// PKCS11Supported reports whether this build can use PKCS#11 tokens: not
// without cgo.
const PKCS11Supported = false

// OpenPKCS11 fails in a build without cgo: PKCS#11 modules are C
// libraries. The error says so (ErrNoPKCS11).
func OpenPKCS11(cfg PKCS11Config) (Token, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, ErrNoPKCS11
}
