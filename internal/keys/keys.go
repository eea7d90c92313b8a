// Package keys creates, stores and loads the private keys and certificates
// scepter's CA and RA use. A key is always a crypto.Signer (RSA keys are also
// crypto.Decrypter), whether it lives in a file or, later, in an HSM: nothing
// here or in callers takes *rsa.PrivateKey.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"

	"github.com/scepter/scepter/internal/pki"
)

// Key types accepted by Generate.
const (
	RSA2048 = "rsa2048"
	RSA3072 = "rsa3072"
	RSA4096 = "rsa4096"
	P256    = "p256"
	P384    = "p384"
)

// KeyTypes lists the key types Generate accepts, in a stable order.
var KeyTypes = []string{P256, P384, RSA2048, RSA3072, RSA4096}

// ValidKeyType reports whether Generate accepts s.
func ValidKeyType(s string) bool {
	switch s {
	case RSA2048, RSA3072, RSA4096, P256, P384:
		return true
	}
	return false
}

// Generate creates a new private key of the given type ("rsa2048",
// "rsa3072", "rsa4096", "p256", "p384").
func Generate(keyType string) (crypto.Signer, error) {
	switch keyType {
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case P256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case P384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("keys: unknown key type %q (want one of %s)", keyType, strings.Join(KeyTypes, ", "))
}

// KeyTypeOf names the type of a public key: "rsa2048" ("rsaNNNN" for any
// modulus size), "p224", "p256", "p384", "p521", "ed25519", or "unknown".
// It also accepts a crypto.Signer and names its public key.
func KeyTypeOf(pub crypto.PublicKey) string {
	if s, ok := pub.(crypto.Signer); ok {
		pub = s.Public()
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return "unknown"
		}
		return fmt.Sprintf("rsa%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return "unknown"
		}
		switch k.Curve {
		case elliptic.P224():
			return "p224"
		case elliptic.P256():
			return P256
		case elliptic.P384():
			return P384
		case elliptic.P521():
			return "p521"
		}
	case ed25519.PublicKey:
		return "ed25519"
	}
	return "unknown"
}

// Wrapped is wrap(key) when wrap is set and returns a key with key's public
// key, else key itself: a wrapper (OpenSSL for RSA key files, see
// keys/opensslrsa) may change how a key signs, never which key signs.
func Wrapped(key crypto.Signer, wrap func(crypto.Signer) crypto.Signer) crypto.Signer {
	if wrap == nil {
		return key
	}
	w := wrap(key)
	if w == nil {
		return key
	}
	if !pki.SamePublicKey(w.Public(), key.Public()) {
		return key
	}
	return w
}
