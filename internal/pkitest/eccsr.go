package pkitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
)

// Curves crypto/x509 does not read, by their OIDs (RFC 5639, SEC 2).
var (
	OIDBrainpoolP256r1 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}
	OIDSecp256k1       = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

// CSRWithECParameters is a PKCS#10 request for cn, signed with a P-256
// key, whose SubjectPublicKeyInfo names, as its curve, params instead of
// P-256's OID: another named curve's OID (the request is then as a
// device with that curve's key makes it, bar the signature, which nobody
// can check without reading the curve), or ExplicitP256 (the key as
// openssl writes it with ec_param_enc:explicit).
func CSRWithECParameters(t testing.TB, cn string, params any) []byte {
	t.Helper()
	p, err := asn1.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return CSRWithEditedECKey(t, cn, func(_ *ecdsa.PrivateKey, parameters *asn1.RawValue, _ *asn1.BitString) {
		*parameters = asn1.RawValue{FullBytes: p}
	})
}

// CSRWithEditedECKey is a PKCS#10 request for cn, signed with a fresh
// P-256 key, whose SubjectPublicKeyInfo edit changed after signing: its
// algorithm's parameters (the curve) or its key's bits (a compressed
// point, say). The signature no longer covers what the request says, as
// for a key nobody can read there is no checking it anyway.
func CSRWithEditedECKey(t testing.TB, cn string, edit func(key *ecdsa.PrivateKey, parameters *asn1.RawValue, point *asn1.BitString)) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		Info struct {
			Raw     asn1.RawContent
			Version int
			Subject asn1.RawValue
			SPKI    struct {
				Algorithm struct {
					Algorithm  asn1.ObjectIdentifier
					Parameters asn1.RawValue
				}
				Key asn1.BitString
			}
			Attributes asn1.RawValue `asn1:"tag:0"`
		}
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		t.Fatal(err)
	}
	edit(key, &req.Info.SPKI.Algorithm.Parameters, &req.Info.SPKI.Key)
	req.Info.Raw = nil
	if der, err = asn1.Marshal(req); err != nil {
		t.Fatal(err)
	}
	return der
}

// ExplicitP256 is P-256's ECParameters spelt out (RFC 3279 section
// 2.3.5), as openssl's ec_param_enc:explicit writes them.
func ExplicitP256() any {
	c := elliptic.P256().Params()
	pad := func(n *big.Int) []byte { return n.FillBytes(make([]byte, 32)) }
	a := new(big.Int).Sub(c.P, big.NewInt(3))
	base := append([]byte{4}, append(pad(c.Gx), pad(c.Gy)...)...)
	return struct {
		Version int
		FieldID struct {
			FieldType asn1.ObjectIdentifier
			Prime     *big.Int
		}
		Curve struct {
			A, B []byte
		}
		Base     []byte
		Order    *big.Int
		Cofactor int
	}{
		Version: 1,
		FieldID: struct {
			FieldType asn1.ObjectIdentifier
			Prime     *big.Int
		}{asn1.ObjectIdentifier{1, 2, 840, 10045, 1, 1}, c.P},
		Curve: struct{ A, B []byte }{pad(a), pad(c.B)},
		Base:  base, Order: c.N, Cofactor: 1,
	}
}
