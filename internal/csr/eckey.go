package csr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}

// curveNames name the curves of EC keys crypto/x509 does not read, which
// devices do send (a TPM's or a smart card's brainpool key, a wallet's
// secp256k1 one): a refusal names the curve as its maker does.
var curveNames = map[string]string{
	"1.2.840.10045.3.1.1":   "P-192",
	"1.3.132.0.10":          "secp256k1",
	"1.3.132.0.31":          "secp192k1",
	"1.3.132.0.32":          "secp224k1",
	"1.3.36.3.3.2.8.1.1.1":  "brainpoolP160r1",
	"1.3.36.3.3.2.8.1.1.3":  "brainpoolP192r1",
	"1.3.36.3.3.2.8.1.1.5":  "brainpoolP224r1",
	"1.3.36.3.3.2.8.1.1.7":  "brainpoolP256r1",
	"1.3.36.3.3.2.8.1.1.9":  "brainpoolP320r1",
	"1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
	"1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
	"1.2.156.10197.1.301":   "SM2",
}

// readCurves are the curves crypto/x509 reads: P-224, P-256, P-384, P-521.
var readCurves = map[string]elliptic.Curve{"1.3.132.0.33": elliptic.P224(), "1.2.840.10045.3.1.7": elliptic.P256(),
	"1.3.132.0.34": elliptic.P384(), "1.3.132.0.35": elliptic.P521()}

// UnreadableECKeyRefusal says why a PKCS#10 request that crypto/x509
// could not read, der, carries an EC key the server does not take, in the
// words of a key policy's refusal (ca.CheckKey): its curve is one
// crypto/x509 does not know (brainpoolP256r1, secp256k1), named, or it is
// given by explicit parameters, which RFC 5480 section 2.1.1 forbids; or
// it is on a curve crypto/x509 reads, uncompressed, but its point is not
// on that curve, said as ca.CheckKey says it of a key it reads (crypto/x509
// refuses such a key at parse, before any key policy sees it). The
// request is well formed: such a key is refused as P-224 is, by policy,
// not as a malformed body. allowed are the profile's curves (none: RSA
// only). "" when der is not one request in PKCS#10's shape (as
// SubjectStringProblem) or its key is no such EC key.
func UnreadableECKeyRefusal(der []byte, allowed []string) string {
	_, spki, ok := requestParts(der)
	var alg cryptobyte.String
	var algorithm asn1.ObjectIdentifier
	var point asn1.BitString
	if !ok || !spki.ReadASN1(&alg, cbasn1.SEQUENCE) || !spki.ReadASN1BitString(&point) || !spki.Empty() ||
		!alg.ReadASN1ObjectIdentifier(&algorithm) || !algorithm.Equal(oidECPublicKey) {
		return ""
	}
	allowedText := " (this profile takes RSA keys only)"
	if len(allowed) > 0 {
		allowedText = " (allowed: " + strings.Join(allowed, ", ") + ")"
	}
	switch {
	case alg.PeekASN1Tag(cbasn1.SEQUENCE):
		// ECParameters: the curve spelt out, whatever curve it is.
		return "the EC key's curve is given by explicit parameters, which RFC 5480 (section 2.1.1) does not allow: send it with its named curve " +
			"(openssl: -pkeyopt ec_param_enc:named_curve)" + allowedText
	case alg.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER):
		var curve asn1.ObjectIdentifier
		if !alg.ReadASN1ObjectIdentifier(&curve) || !alg.Empty() {
			return ""
		}
		if read, ok := readCurves[curve.String()]; ok {
			return offCurveRefusal(read, point, allowed, allowedText)
		}
		name, ok := curveNames[curve.String()]
		if !ok {
			name = curve.String()
		}
		if len(allowed) == 0 {
			return fmt.Sprintf("EC keys are not accepted by this profile (RSA only); this one is on curve %s", name)
		}
		return fmt.Sprintf("EC key on curve %s is not accepted by this profile%s", name, allowedText)
	}
	return ""
}

// offCurveRefusal says why an EC key on curve, one crypto/x509 reads,
// was not read, when that is its point: uncompressed, of the curve's
// length, but not a point on the curve (or the point at infinity). The
// profile's curves are looked at first, as ca.CheckKey does. "" for any
// other reason (a compressed point, which the caller names itself).
func offCurveRefusal(curve elliptic.Curve, point asn1.BitString, allowed []string, allowedText string) string {
	name := curve.Params().Name
	size := (curve.Params().BitSize + 7) / 8
	data := point.RightAlign()
	if point.BitLength%8 != 0 || len(data) != 1+2*size || data[0] != 4 {
		return ""
	}
	if _, err := ecdsa.ParseUncompressedPublicKey(curve, data); err == nil {
		return "" // crypto/x509 refused it for another reason
	}
	if !slices.ContainsFunc(allowed, func(c string) bool { return normalCurve(c) == normalCurve(name) }) {
		if len(allowed) == 0 {
			return fmt.Sprintf("EC keys are not accepted by this profile (RSA only); this one is on curve %s", name)
		}
		return fmt.Sprintf("EC key on curve %s is not accepted by this profile%s", name, allowedText)
	}
	return "the EC public key is not a valid point on " + name
}

// normalCurve is a curve's name as profiles may spell it ("P-256", "p256").
func normalCurve(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "-", ""))
}
