package enroll

import (
	"crypto"
	"fmt"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// generateFor makes the key of a server-side key generation: of the type and
// size of the CSR's own key when the profile accepts that (the CSR's key is
// the client's way of saying what it wants), otherwise the profile's first
// choice (P-256 when it takes EC keys, else RSA at its minimum size, at
// least 2048 bits).
func generateFor(p pki.Profile, csrKey crypto.PublicKey) (crypto.Signer, crypto.PublicKey, error) {
	kt := keys.KeyTypeOf(csrKey)
	if !keys.ValidKeyType(kt) || ca.CheckKey(p.Keys, csrKey) != nil {
		kt = defaultKeyType(p.Keys)
	}
	if kt == "" {
		return nil, nil, pki.Errorf(pki.EBadRequest, "profile %q accepts no key type the server can make", p.Name)
	}
	key, err := keys.Generate(kt)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: server-side key: %w", err)
	}
	return key, key.Public(), nil
}

func defaultKeyType(k pki.KeyPolicy) string {
	for _, c := range k.ECCurves {
		switch c {
		case "P-256", "p256", "P256":
			return keys.P256
		case "P-384", "p384", "P384":
			return keys.P384
		}
	}
	switch bits := k.RSAMinBits; {
	case bits == 0:
		return ""
	case bits <= 2048:
		return keys.RSA2048
	case bits <= 3072:
		return keys.RSA3072
	case bits <= 4096:
		return keys.RSA4096
	}
	return ""
}
