// Package ocsp is scepter's OCSP responder (RFC 6960, with the RFC 5019
// lightweight profile's HTTP caching): it parses requests, answers good,
// revoked or unknown from the inventory, signs with a delegated responder
// certificate per issuing CA, echoes nonces (RFC 8954) and serves nonce-less
// answers from a cache until a revocation or their refresh time.
//
// golang.org/x/crypto/ocsp parses requests and responses (the tests use it
// as an independent reader), but it reads only the first request of an
// OCSPRequest, none of its extensions, and builds responses with the nonce
// in singleExtensions where RFC 8954 and OpenSSL want it in
// responseExtensions, and with a producedAt from the wall clock. So the
// wire format is done here, on x/crypto/cryptobyte, and checked against
// both x/crypto/ocsp and `openssl ocsp`.
package ocsp

import (
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Limits on what a request may carry.
const (
	// MaxRequestBytes bounds a request body (a GET's decoded path too).
	// A request for one certificate is about 100 bytes; with a nonce and
	// a signature, well under 4 KB.
	MaxRequestBytes = 8 << 10
	// MaxCertIDs bounds the certificates one request may ask about.
	MaxCertIDs = 8
	// MaxNonceBytes bounds the nonce extension's value: RFC 8954 allows a
	// nonce of 1 to 32 octets, which its OCTET STRING wrapping makes 34.
	MaxNonceBytes = 34
	// maxNonceContent is RFC 8954's bound on the nonce itself, wrapped or
	// bare.
	maxNonceContent = 32
)

// ErrMalformed is wrapped by every error of ParseRequest: the answer is
// malformedRequest.
var ErrMalformed = errors.New("ocsp: malformed request")

// CertID names one certificate (RFC 6960 §4.1.1).
type CertID struct {
	// Raw is the CertID as the client encoded it: the response echoes it
	// byte for byte, so the client matches it whatever it encoded.
	Raw []byte
	// Hash is the algorithm of NameHash and KeyHash: SHA-1, SHA-256,
	// SHA-384 or SHA-512 (a CertID under another is malformed).
	Hash     crypto.Hash
	NameHash []byte
	KeyHash  []byte
	Serial   *big.Int
}

// Request is a parsed OCSPRequest.
type Request struct {
	CertIDs []CertID
	// Nonce is the extnValue of the nonce extension, echoed as it came;
	// nil when there is none.
	Nonce []byte
}

var (
	oidNonce  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

func hashOf(oid asn1.ObjectIdentifier) crypto.Hash {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1
	case oid.Equal(oidSHA256):
		return crypto.SHA256
	case oid.Equal(oidSHA384):
		return crypto.SHA384
	case oid.Equal(oidSHA512):
		return crypto.SHA512
	}
	return 0
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Context-specific tags of OCSPRequest.
var (
	tag0 = cbasn1.Tag(0).Constructed().ContextSpecific()
	tag1 = cbasn1.Tag(1).Constructed().ContextSpecific()
	tag2 = cbasn1.Tag(2).Constructed().ContextSpecific()
)

// ParseRequest reads a DER OCSPRequest:
//
//	OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
//	TBSRequest  ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] EXPLICIT GeneralName OPTIONAL,
//	                           requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
//	Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
//	CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
//	                           issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
//
// A signature is accepted and not checked (RFC 6960 lets a responder ignore
// it: nothing here is secret). Unknown non-critical extensions are ignored;
// an unknown critical one is malformed.
func ParseRequest(der []byte) (*Request, error) {
	if len(der) > MaxRequestBytes {
		return nil, malformed("%d bytes, more than %d", len(der), MaxRequestBytes)
	}
	input := cryptobyte.String(der)
	var outer, tbs cryptobyte.String
	if !input.ReadASN1(&outer, cbasn1.SEQUENCE) || !input.Empty() {
		return nil, malformed("not a single DER SEQUENCE")
	}
	if !outer.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, malformed("no tbsRequest")
	}
	if !outer.Empty() {
		var sig cryptobyte.String
		if !outer.ReadASN1(&sig, tag0) || !outer.Empty() {
			return nil, malformed("trailing data after tbsRequest")
		}
	}
	if tbs.PeekASN1Tag(tag0) {
		var v cryptobyte.String
		var version int64
		if !tbs.ReadASN1(&v, tag0) || !v.ReadASN1Integer(&version) || !v.Empty() {
			return nil, malformed("bad version")
		}
		if version != 0 {
			return nil, malformed("version %d, only v1 (0) exists", version)
		}
	}
	if tbs.PeekASN1Tag(tag1) {
		var name cryptobyte.String
		if !tbs.ReadASN1(&name, tag1) {
			return nil, malformed("bad requestorName")
		}
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, malformed("no requestList")
	}
	req := &Request{}
	for !list.Empty() {
		if len(req.CertIDs) == MaxCertIDs {
			return nil, malformed("more than %d certificates in one request", MaxCertIDs)
		}
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return nil, malformed("bad Request")
		}
		id, err := parseCertID(&one)
		if err != nil {
			return nil, err
		}
		if one.PeekASN1Tag(tag0) {
			var exts cryptobyte.String
			if !one.ReadASN1(&exts, tag0) {
				return nil, malformed("bad singleRequestExtensions")
			}
			if _, err := parseExtensions(exts); err != nil {
				return nil, err
			}
		}
		if !one.Empty() {
			return nil, malformed("trailing data in Request")
		}
		req.CertIDs = append(req.CertIDs, id)
	}
	if len(req.CertIDs) == 0 {
		return nil, malformed("empty requestList")
	}
	if tbs.PeekASN1Tag(tag2) {
		var exts cryptobyte.String
		if !tbs.ReadASN1(&exts, tag2) {
			return nil, malformed("bad requestExtensions")
		}
		nonce, err := parseExtensions(exts)
		if err != nil {
			return nil, err
		}
		req.Nonce = nonce
	}
	if !tbs.Empty() {
		return nil, malformed("trailing data in tbsRequest")
	}
	return req, nil
}

func parseCertID(s *cryptobyte.String) (CertID, error) {
	var raw, body, alg cryptobyte.String
	if !s.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
		return CertID{}, malformed("bad CertID")
	}
	id := CertID{Raw: append([]byte(nil), raw...)}
	element := raw
	var oid asn1.ObjectIdentifier
	if !element.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return CertID{}, malformed("bad CertID hashAlgorithm")
	}
	if !alg.Empty() {
		var params cryptobyte.String
		if !alg.ReadASN1(&params, cbasn1.NULL) || !params.Empty() || !alg.Empty() {
			return CertID{}, malformed("hashAlgorithm parameters must be absent or NULL")
		}
	}
	// A hash we do not compute is a request we cannot process as sent
	// (RFC 6960 §2.3: malformedRequest), not a CA we do not serve:
	// unauthorized would tell the client to look elsewhere.
	if id.Hash = hashOf(oid); id.Hash == 0 {
		return CertID{}, malformed("CertID hash algorithm %s is not SHA-1, SHA-256, SHA-384 or SHA-512", oid)
	}
	var nameHash, keyHash cryptobyte.String
	id.Serial = new(big.Int)
	if !body.ReadASN1(&nameHash, cbasn1.OCTET_STRING) || !body.ReadASN1(&keyHash, cbasn1.OCTET_STRING) ||
		!body.ReadASN1Integer(id.Serial) || !body.Empty() {
		return CertID{}, malformed("bad CertID")
	}
	if len(nameHash) != id.Hash.Size() || len(keyHash) != id.Hash.Size() {
		return CertID{}, malformed("CertID hashes are not %s-sized", id.Hash)
	}
	id.NameHash, id.KeyHash = append([]byte(nil), nameHash...), append([]byte(nil), keyHash...)
	return id, nil
}

// parseExtensions reads Extensions and returns the nonce's extnValue.
func parseExtensions(exts cryptobyte.String) (nonce []byte, err error) {
	var seq cryptobyte.String
	if !exts.ReadASN1(&seq, cbasn1.SEQUENCE) || !exts.Empty() {
		return nil, malformed("bad Extensions")
	}
	seen := 0
	for !seq.Empty() {
		var ext, value, inner cryptobyte.String
		var oid asn1.ObjectIdentifier
		critical := false
		// critical is a plain BOOLEAN DEFAULT FALSE (cryptobyte's
		// ReadOptionalASN1Boolean reads an explicitly tagged one).
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) ||
			(ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical)) ||
			!ext.ReadASN1(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
			return nil, malformed("bad Extension")
		}
		if seen++; seen > 16 {
			return nil, malformed("too many extensions")
		}
		switch {
		case oid.Equal(oidNonce):
			if nonce != nil {
				return nil, malformed("two nonces")
			}
			// Most clients wrap the nonce in an OCTET STRING (RFC 8954),
			// some send it bare; either is echoed as it came, and either
			// holds 1 to 32 bytes.
			n := len(value)
			if v := cryptobyte.String(value); v.ReadASN1(&inner, cbasn1.OCTET_STRING) && v.Empty() {
				n = len(inner)
			}
			if n == 0 || n > maxNonceContent || len(value) > MaxNonceBytes {
				return nil, malformed("nonce of %d bytes; RFC 8954 allows 1 to %d", n, maxNonceContent)
			}
			nonce = append([]byte(nil), value...)
		case critical:
			return nil, malformed("unknown critical extension %s", oid)
		}
	}
	return nonce, nil
}
