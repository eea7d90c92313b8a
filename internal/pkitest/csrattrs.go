package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

// SignedCSR is a PKCS#10 request for cn with key (RSA or ECDSA, signed
// with SHA-256) whose attributes are attrs as given, each an Attribute's
// DER: what crypto/x509 will not write, such as one attribute with two
// values.
func SignedCSR(t testing.TB, key crypto.Signer, cn string, attrs ...[]byte) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	var set []byte
	for _, a := range attrs {
		set = append(set, a...)
	}
	info, err := asn1.Marshal(struct {
		Version    int
		Subject    asn1.RawValue
		SPKI       asn1.RawValue
		Attributes asn1.RawValue
	}{0, asn1.RawValue{FullBytes: subject}, asn1.RawValue{FullBytes: spki},
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: set}})
	if err != nil {
		t.Fatal(err)
	}
	alg := asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2} // ecdsa-with-SHA256
	var params asn1.RawValue
	if _, ok := key.Public().(*rsa.PublicKey); ok {
		alg, params = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, asn1.NullRawValue // sha256WithRSAEncryption
	} else if _, ok := key.Public().(*ecdsa.PublicKey); !ok {
		t.Fatalf("SignedCSR: a %T key", key.Public())
	}
	digest := sha256.Sum256(info)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: info}, pkix.AlgorithmIdentifier{Algorithm: alg, Parameters: params}, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// ExtensionRequestOfSANs is an extensionRequest attribute (PKCS #9) with
// one value per DNS name, each Extensions holding a subjectAltName of
// that name alone: with two names, the two-valued attribute PKCS #9
// forbids, whose second value crypto/x509 does not read.
func ExtensionRequestOfSANs(t testing.TB, dnsNames ...string) []byte {
	t.Helper()
	return extensionAttributeOfSANs(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}, dnsNames...)
}

// MicrosoftExtensionRequestOfSANs is ExtensionRequestOfSANs in Microsoft's
// extension-request attribute (1.3.6.1.4.1.311.2.1.14), which Windows'
// certreq sends instead; a name given as "" gives a value with no
// subjectAltName (an empty list of extensions).
func MicrosoftExtensionRequestOfSANs(t testing.TB, dnsNames ...string) []byte {
	t.Helper()
	return extensionAttributeOfSANs(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 14}, dnsNames...)
}

func extensionAttributeOfSANs(t testing.TB, oid asn1.ObjectIdentifier, dnsNames ...string) []byte {
	t.Helper()
	var values []byte
	for _, name := range dnsNames {
		san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(name)}})
		if err != nil {
			t.Fatal(err)
		}
		list := []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}
		if name == "" {
			list = []pkix.Extension{}
		}
		exts, err := asn1.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, exts...)
	}
	attr, err := asn1.Marshal(struct {
		Type   asn1.ObjectIdentifier
		Values asn1.RawValue
	}{oid, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: values}})
	if err != nil {
		t.Fatal(err)
	}
	return attr
}
