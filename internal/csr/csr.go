// Package csr reads and writes the PKCS#10 attributes that crypto/x509 does
// not expose: the challengePassword a SCEP or EST client sends, and a builder
// that puts one into a request.
package csr

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/url"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}
	oidExtensionRequest  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
)

// MaxChallengeLen bounds what we accept: PKCS #9 (RFC 2985,
// pkcs-9-ub-challengePassword) allows 255 characters.
const MaxChallengeLen = 255

// ChallengeTooLongError is a challengePassword of more than
// MaxChallengeLen characters. A client told only that the attribute is
// malformed would look for an encoding problem.
type ChallengeTooLongError struct {
	Length int // in characters
}

func (e *ChallengeTooLongError) Error() string {
	return fmt.Sprintf("csr: challengePassword of %d characters, over %d", e.Length, MaxChallengeLen)
}

// Problem says what is wrong, for the client.
func (e *ChallengeTooLongError) Problem() string {
	return fmt.Sprintf("the challengePassword attribute is %d characters long; PKCS #9 (RFC 2985) allows at most %d", e.Length, MaxChallengeLen)
}

// ChallengePassword returns the challengePassword attribute of a parsed
// request, or "" when it has none. A malformed or repeated attribute is an
// error, not a silent empty password.
func ChallengePassword(req *x509.CertificateRequest) (string, error) {
	attrs, err := rawAttributes(req.RawTBSCertificateRequest)
	if err != nil {
		return "", err
	}
	var found string
	seen := false
	for _, a := range attrs {
		if !a.oid.Equal(oidChallengePassword) {
			continue
		}
		if seen {
			return "", errors.New("csr: challengePassword attribute repeated")
		}
		seen = true
		values := cryptobyte.String(a.values)
		var count int
		for !values.Empty() {
			var tag cbasn1.Tag
			var v cryptobyte.String
			if !values.ReadAnyASN1(&v, &tag) {
				return "", errors.New("csr: malformed challengePassword value")
			}
			count++
			switch tag {
			case cbasn1.PrintableString, cbasn1.UTF8String, cbasn1.Tag(asn1.TagIA5String), cbasn1.Tag(asn1.TagT61String), cbasn1.Tag(asn1.TagBMPString):
			default:
				return "", fmt.Errorf("csr: challengePassword has unsupported string tag %d", tag)
			}
			s := string(v)
			if tag == cbasn1.Tag(asn1.TagBMPString) {
				s, err = decodeBMP(v)
				if err != nil {
					return "", err
				}
			}
			if !utf8.ValidString(s) {
				return "", errors.New("csr: challengePassword is not valid text")
			}
			if n := utf8.RuneCountInString(s); n > MaxChallengeLen {
				return "", &ChallengeTooLongError{Length: n}
			}
			found = s
		}
		if count != 1 {
			return "", errors.New("csr: challengePassword must have exactly one value")
		}
	}
	return found, nil
}

func decodeBMP(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", errors.New("csr: odd-length BMPString")
	}
	r := make([]rune, 0, len(b)/2)
	for i := 0; i < len(b); i += 2 {
		r = append(r, rune(b[i])<<8|rune(b[i+1]))
	}
	return string(r), nil
}

// WithoutChallengePassword returns the request with its challengePassword
// attribute removed, to be stored: the secret must not sit in a database.
// The result keeps the original signature, which no longer verifies: its
// proof of possession must have been checked before.
func WithoutChallengePassword(der []byte) ([]byte, error) {
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	attrs, err := rawAttributes(req.RawTBSCertificateRequest)
	if err != nil {
		return nil, err
	}
	found := false
	for _, a := range attrs {
		found = found || a.oid.Equal(oidChallengePassword)
	}
	if !found {
		return der, nil
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(info *cryptobyte.Builder) {
		info.AddASN1Int64(0)
		info.AddBytes(req.RawSubject)
		info.AddBytes(req.RawSubjectPublicKeyInfo)
		info.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(set *cryptobyte.Builder) {
			for _, a := range attrs {
				if a.oid.Equal(oidChallengePassword) {
					continue
				}
				a.addTo(set)
			}
		})
	})
	tbs, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("csr: encode request info: %w", err)
	}
	var outer struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	outer.Info = asn1.RawValue{FullBytes: tbs}
	return asn1.Marshal(outer)
}

// AttributeValues returns the DER values of the request's attribute of type
// oid; ok is false when the request has none. A repeated attribute is an
// error.
func AttributeValues(req *x509.CertificateRequest, oid asn1.ObjectIdentifier) (values [][]byte, ok bool, err error) {
	attrs, err := rawAttributes(req.RawTBSCertificateRequest)
	if err != nil {
		return nil, false, err
	}
	for _, a := range attrs {
		if !a.oid.Equal(oid) {
			continue
		}
		if ok {
			return nil, false, fmt.Errorf("csr: attribute %v repeated", oid)
		}
		ok = true
		set := cryptobyte.String(a.values)
		for !set.Empty() {
			var v cryptobyte.String
			if !set.ReadAnyASN1Element(&v, nil) {
				return nil, false, fmt.Errorf("csr: malformed value of attribute %v", oid)
			}
			values = append(values, []byte(v))
		}
	}
	return values, ok, nil
}

type rawAttribute struct {
	oid    asn1.ObjectIdentifier
	values []byte // contents of the SET OF values
}

// addTo re-encodes the attribute unchanged into a request's attribute set.
func (a rawAttribute) addTo(set *cryptobyte.Builder) {
	set.AddASN1(cbasn1.SEQUENCE, func(ab *cryptobyte.Builder) {
		ab.AddASN1ObjectIdentifier(a.oid)
		ab.AddASN1(cbasn1.SET, func(v *cryptobyte.Builder) { v.AddBytes(a.values) })
	})
}

// rawAttributes walks CertificationRequestInfo ::= SEQUENCE { version,
// subject, subjectPKInfo, attributes [0] IMPLICIT SET OF Attribute }.
func rawAttributes(tbs []byte) ([]rawAttribute, error) {
	in := cryptobyte.String(tbs)
	var info cryptobyte.String
	if !in.ReadASN1(&info, cbasn1.SEQUENCE) {
		return nil, errors.New("csr: malformed CertificationRequestInfo")
	}
	var version int64
	if !info.ReadASN1Integer(&version) || !info.SkipASN1(cbasn1.SEQUENCE) || !info.SkipASN1(cbasn1.SEQUENCE) {
		return nil, errors.New("csr: malformed CertificationRequestInfo")
	}
	var attrSet cryptobyte.String
	var present bool
	if !info.ReadOptionalASN1(&attrSet, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, errors.New("csr: malformed attributes")
	}
	var out []rawAttribute
	for !attrSet.Empty() {
		var attr, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrSet.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) || !attr.ReadASN1(&values, cbasn1.SET) {
			return nil, errors.New("csr: malformed attribute")
		}
		out = append(out, rawAttribute{oid: oid, values: values})
	}
	return out, nil
}

// Template describes a request to build.
type Template struct {
	Subject           pkix.Name
	RawSubject        []byte // used instead of Subject when set
	DNSNames          []string
	EmailAddresses    []string
	IPAddresses       []net.IP
	URIs              []*url.URL
	ChallengePassword string
	// ExtraExtensions are added to the extensionRequest (tests use this to
	// send extensions a server must ignore).
	ExtraExtensions []pkix.Extension
	// Attributes are added as they are (EST's AsymmetricDecryptKeyIdentifier,
	// for one). Each value is one DER-encoded attribute value.
	Attributes []Attribute
}

// Attribute is one PKCS#10 attribute: its type and its DER values.
type Attribute struct {
	Type   asn1.ObjectIdentifier
	Values [][]byte
}

// Create builds and signs a DER PKCS#10 request. crypto/x509 cannot write a
// challengePassword (it encodes attributes as AttributeTypeAndValue sets), so
// the request info is assembled here and signed with key.
func Create(t Template, key crypto.Signer) ([]byte, error) {
	// Let crypto/x509 encode subject, key, signature algorithm and the
	// extensionRequest; then splice in the challengePassword attribute and re-sign.
	base, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         t.Subject,
		RawSubject:      t.RawSubject,
		DNSNames:        t.DNSNames,
		EmailAddresses:  t.EmailAddresses,
		IPAddresses:     t.IPAddresses,
		URIs:            t.URIs,
		ExtraExtensions: t.ExtraExtensions,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("csr: create: %w", err)
	}
	if t.ChallengePassword == "" && len(t.Attributes) == 0 {
		return base, nil
	}
	parsed, err := x509.ParseCertificateRequest(base)
	if err != nil {
		return nil, fmt.Errorf("csr: reparse: %w", err)
	}
	attrs, err := rawAttributes(parsed.RawTBSCertificateRequest)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(info *cryptobyte.Builder) {
		info.AddASN1Int64(0)
		info.AddBytes(parsed.RawSubject)
		info.AddBytes(parsed.RawSubjectPublicKeyInfo)
		info.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(set *cryptobyte.Builder) {
			if t.ChallengePassword != "" {
				set.AddASN1(cbasn1.SEQUENCE, func(a *cryptobyte.Builder) {
					a.AddASN1ObjectIdentifier(oidChallengePassword)
					a.AddASN1(cbasn1.SET, func(v *cryptobyte.Builder) {
						v.AddASN1(cbasn1.UTF8String, func(s *cryptobyte.Builder) { s.AddBytes([]byte(t.ChallengePassword)) })
					})
				})
			}
			for _, a := range t.Attributes {
				set.AddASN1(cbasn1.SEQUENCE, func(ab *cryptobyte.Builder) {
					ab.AddASN1ObjectIdentifier(a.Type)
					ab.AddASN1(cbasn1.SET, func(v *cryptobyte.Builder) {
						for _, val := range a.Values {
							v.AddBytes(val)
						}
					})
				})
			}
			for _, a := range attrs {
				a.addTo(set)
			}
		})
	})
	tbs, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("csr: encode request info: %w", err)
	}
	sigAlg, hash, err := signatureAlgorithm(key.Public())
	if err != nil {
		return nil, err
	}
	h := hash.New()
	h.Write(tbs)
	sig, err := key.Sign(rand.Reader, h.Sum(nil), hash)
	if err != nil {
		return nil, fmt.Errorf("csr: sign: %w", err)
	}
	return asn1.Marshal(struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, sigAlg, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
}

// ExtensionRequestProblem says what is wrong with a parsed request's
// extensionRequest attributes: one that holds other than one value
// (PKCS #9, RFC 2985, defines it SINGLE VALUE). crypto/x509 reads each
// one's first value only, so the extensions of a second value would be
// dropped without a word. "" when there is nothing wrong (or no such
// attribute); a repeated attribute is crypto/x509's to judge (it reads
// them all, and refuses an extension found twice).
func ExtensionRequestProblem(req *x509.CertificateRequest) string {
	attrs, err := rawAttributes(req.RawTBSCertificateRequest)
	if err != nil {
		return ""
	}
	for _, a := range attrs {
		if !a.oid.Equal(oidExtensionRequest) {
			continue
		}
		values, count := cryptobyte.String(a.values), 0
		var v cryptobyte.String
		for !values.Empty() && values.ReadAnyASN1Element(&v, nil) {
			count++
		}
		if count != 1 {
			return fmt.Sprintf("its extensionRequest attribute holds %d values, and PKCS #9 (RFC 2985) allows exactly one: put every extension in one", count)
		}
	}
	return ""
}
