package pki

import "crypto"

// SamePublicKey reports whether a and b are the same public key. Every key
// type of the standard library has an Equal method; a key without one, or
// a nil b, is never the same.
func SamePublicKey(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && e.Equal(b)
}
