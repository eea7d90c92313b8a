package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
)

var (
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// signatureAlgorithm matches what crypto/x509 picks for a key, so a request
// built here looks like one built by the standard library.
func signatureAlgorithm(pub crypto.PublicKey) (pkix.AlgorithmIdentifier, crypto.Hash, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA, Parameters: asn1.NullRawValue}, crypto.SHA256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P384():
			return pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA384}, crypto.SHA384, nil
		case elliptic.P521():
			return pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA512}, crypto.SHA512, nil
		}
		return pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}, crypto.SHA256, nil
	default:
		return pkix.AlgorithmIdentifier{}, 0, fmt.Errorf("csr: unsupported key type %T", pub)
	}
}
