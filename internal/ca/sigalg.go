package ca

import (
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidRSASSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
)

// signatureAlgorithmNames name signature algorithms crypto/x509 does not
// read, which clients do send: a refusal names what was sent rather than
// give advice meant for another one.
var signatureAlgorithmNames = map[string]string{
	"1.3.101.113":            "Ed448",
	"1.2.840.113549.1.1.14":  "sha224WithRSAEncryption",
	"1.2.840.10045.4.3.1":    "ecdsa-with-SHA224",
	"2.16.840.1.101.3.4.3.1": "dsa-with-SHA224",
	"1.2.156.10197.1.501":    "SM2 with SM3",
	"1.2.643.7.1.1.3.2":      "GOST R 34.10-2012 with GOST R 34.11-2012 (256 bits)",
	"1.2.643.7.1.1.3.3":      "GOST R 34.10-2012 with GOST R 34.11-2012 (512 bits)",
}

// hashNames and hashSizes are the hashes of RSASSA-PSS parameters, by OID.
var (
	hashNames = map[string]string{
		"1.3.14.3.2.26":           "SHA-1",
		"2.16.840.1.101.3.4.2.4":  "SHA-224",
		"2.16.840.1.101.3.4.2.1":  "SHA-256",
		"2.16.840.1.101.3.4.2.2":  "SHA-384",
		"2.16.840.1.101.3.4.2.3":  "SHA-512",
		"2.16.840.1.101.3.4.2.8":  "SHA3-256",
		"2.16.840.1.101.3.4.2.9":  "SHA3-384",
		"2.16.840.1.101.3.4.2.10": "SHA3-512",
	}
	hashSizes = map[string]int{"SHA-1": 20, "SHA-224": 28, "SHA-256": 32, "SHA-384": 48, "SHA-512": 64, "SHA3-256": 32, "SHA3-384": 48, "SHA3-512": 64}
	// pssHashes are the hashes crypto/x509 reads RSASSA-PSS with.
	pssHashes = map[string]bool{"SHA-256": true, "SHA-384": true, "SHA-512": true}
)

// unknownSignatureAlgorithm says, of a PKCS#10 request (der) whose
// signature algorithm crypto/x509 does not read, which algorithm it is
// and, for RSASSA-PSS, which of its parameters (hash, mask generation,
// salt length) crypto/x509 does not take, and what to use instead: ""
// when der does not say (not PKCS#10's shape).
func unknownSignatureAlgorithm(der []byte) string {
	input := cryptobyte.String(der)
	var req, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !input.ReadASN1(&req, cbasn1.SEQUENCE) || !req.SkipASN1(cbasn1.SEQUENCE) ||
		!req.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return ""
	}
	if oid.Equal(oidRSASSAPSS) {
		return pssProblem(alg)
	}
	const advice = "; use RSA PKCS #1 v1.5, RSASSA-PSS or ECDSA, with SHA-256 or stronger"
	if name := signatureAlgorithmNames[oid.String()]; name != "" {
		return "it is signed with " + name + ", which this CA does not accept" + advice
	}
	return "it is signed with an algorithm this CA does not know (OID " + oid.String() + ")" + advice
}

// pssProblem names what crypto/x509 does not take in RSASSA-PSS
// parameters (RFC 4055 section 3.1): a hash other than SHA-256, -384 or
// -512, a mask generation other than MGF1 with the same hash, or a salt
// whose length is not the hash's. Absent fields take RFC 4055's defaults
// (SHA-1, MGF1 with SHA-1, 20 bytes).
func pssProblem(params cryptobyte.String) string {
	hash, mgfHash, salt := "SHA-1", "SHA-1", int64(20)
	var seq cryptobyte.String
	if !params.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return "it is signed with RSASSA-PSS without its parameters"
	}
	var field cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return "it is signed with RSASSA-PSS whose parameters are malformed"
	}
	if present {
		hash = hashOf(field)
	}
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return "it is signed with RSASSA-PSS whose parameters are malformed"
	}
	if present {
		var mgf cryptobyte.String
		var mgfOID asn1.ObjectIdentifier
		if !field.ReadASN1(&mgf, cbasn1.SEQUENCE) || !mgf.ReadASN1ObjectIdentifier(&mgfOID) {
			return "it is signed with RSASSA-PSS whose parameters are malformed"
		}
		mgfHash = "mask generation " + mgfOID.String()
		if mgfOID.Equal(oidMGF1) {
			mgfHash = hashOf(mgf)
		}
	}
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(2).Constructed().ContextSpecific()) {
		return "it is signed with RSASSA-PSS whose parameters are malformed"
	}
	if present && !field.ReadASN1Int64WithTag(&salt, cbasn1.INTEGER) {
		return "it is signed with RSASSA-PSS whose salt length is malformed"
	}
	sent := fmt.Sprintf("it is signed with RSASSA-PSS with %s and a salt of %d bytes", hash, salt)
	switch size := hashSizes[hash]; {
	case !pssHashes[hash]:
		return sent + "; RSASSA-PSS is accepted with SHA-256, SHA-384 or SHA-512 only"
	case mgfHash != hash:
		return sent + ", its mask generation (MGF1) with " + mgfHash + "; the mask generation must use the signature's hash"
	case salt != int64(size):
		return fmt.Sprintf("%s; the salt must be as long as the hash, %d bytes for %s (openssl: -sigopt rsa_pss_saltlen:digest)", sent, size, hash)
	}
	return sent + ", which this CA does not read"
}

// hashOf names the hash of an AlgorithmIdentifier (a SEQUENCE of its OID
// and NULL or absent parameters), as RSASSA-PSS parameters hold it.
func hashOf(s cryptobyte.String) string {
	var seq cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&oid) {
		return "a malformed hash"
	}
	if name, ok := hashNames[oid.String()]; ok {
		return name
	}
	return "hash " + oid.String()
}
