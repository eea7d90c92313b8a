package enroll

import (
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// ErrServerKeyType is wrapped in the refusal of a server-side key
// generation whose CSR key is of a type the server does not make at the
// profile: the request cannot be served as sent (EST answers 400).
var ErrServerKeyType = errors.New("enroll: the server makes no key of the request's key type")

// generateFor makes the key of a server-side key generation: of the type
// and size of the CSR's own key (the client's way of saying what it wants;
// RFC 7030 §4.4.1 has the server ignore the key's value, not what it is).
// A type the server does not make at the profile (RSA-8192, P-521, a size
// the profile refuses) is refused naming those it makes, never swapped for
// another without a word.
func generateFor(p pki.Profile, csrKey crypto.PublicKey) (crypto.Signer, crypto.PublicKey, error) {
	want := keys.KeyTypeOf(csrKey)
	makes := serverKeyTypes(p.Keys)
	if !slices.Contains(makes, want) {
		if len(makes) == 0 {
			return nil, nil, pki.Wrap(pki.EBadRequest, ErrServerKeyType, fmt.Sprintf("profile %q accepts no key type the server can make", p.Name))
		}
		return nil, nil, pki.Wrap(pki.EBadRequest, ErrServerKeyType, fmt.Sprintf(
			"the request's key is %s; at profile %q the server makes %s keys: send the request with a key of the type and size the new key should have",
			want, p.Name, strings.Join(makes, ", ")))
	}
	key, err := keys.Generate(want)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: server-side key: %w", err)
	}
	return key, key.Public(), nil
}

// rsaKeyBits are the RSA key types keys.Generate makes, by size.
var rsaKeyBits = map[string]int{keys.RSA2048: 2048, keys.RSA3072: 3072, keys.RSA4096: 4096}

// serverKeyTypes lists the key types the server makes that the profile's
// key policy accepts, in keys.KeyTypes order.
func serverKeyTypes(k pki.KeyPolicy) []string {
	var out []string
	for _, kt := range keys.KeyTypes {
		if bits, ok := rsaKeyBits[kt]; ok {
			if k.RSAMinBits > 0 && bits >= k.RSAMinBits && (k.RSAMaxBits <= 0 || bits <= k.RSAMaxBits) {
				out = append(out, kt)
			}
			continue
		}
		if slices.ContainsFunc(k.ECCurves, func(c string) bool { return strings.ToLower(strings.ReplaceAll(c, "-", "")) == kt }) {
			out = append(out, kt)
		}
	}
	return out
}
