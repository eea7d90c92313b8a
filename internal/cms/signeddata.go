package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SignedData is a parsed CMS SignedData (RFC 5652 §5).
type SignedData struct {
	ContentType  asn1.ObjectIdentifier // eContentType
	Content      []byte                // eContent octets; nil if absent (degenerate / detached)
	Certificates []*x509.Certificate   // the certificates field, in message order
	RawCRLs      [][]byte              // the crls field, each element DER
	Signers      []SignerInfo
}

// SignerInfo is one signer of a SignedData.
type SignerInfo struct {
	Version         int
	IssuerAndSerial *IssuerAndSerial // sid: issuerAndSerialNumber
	SubjectKeyID    []byte           // sid: [0] subjectKeyIdentifier
	DigestAlgorithm pkix.AlgorithmIdentifier
	SignedAttrs     []Attribute
	// RawSignedAttrs is the signedAttrs element as received (tag [0]
	// IMPLICIT, after BER length normalisation); nil if absent.
	RawSignedAttrs     []byte
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
}

// ParseSignedData parses a ContentInfo holding a SignedData. BER (indefinite
// lengths, segmented OCTET STRINGs) is accepted. Every certificate in the
// certificates field must parse; attribute certificates and other
// CertificateChoices are skipped.
func ParseSignedData(der []byte) (*SignedData, error) {
	_, content, err := parseContentOf(der, oidSignedData)
	if err != nil {
		return nil, err
	}
	var sd, digestAlgs, eci cryptobyte.String
	var version int
	if !content.ReadASN1(&sd, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed("SignedData is not a SEQUENCE")
	}
	if !sd.ReadASN1Integer(&version) {
		return nil, malformed("SignedData version")
	}
	if !sd.ReadASN1(&digestAlgs, cbasn1.SET) {
		return nil, malformed("SignedData digestAlgorithms")
	}
	// digestAlgorithms only hints what signers use; check shape and count.
	for n := 0; !digestAlgs.Empty(); n++ {
		var ai pkix.AlgorithmIdentifier
		if n == maxDigestAlgs || !readAlgorithmIdentifier(&digestAlgs, &ai) {
			return nil, malformed("SignedData digestAlgorithms entry")
		}
	}

	out := &SignedData{}
	if !sd.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1ObjectIdentifier(&out.ContentType) {
		return nil, malformed("encapContentInfo")
	}
	if !eci.Empty() {
		var wrapper, octets cryptobyte.String
		if !eci.ReadASN1(&wrapper, tagExplicit0) || !eci.Empty() ||
			!wrapper.ReadASN1(&octets, cbasn1.OCTET_STRING) || !wrapper.Empty() {
			return nil, malformed("eContent is not [0] EXPLICIT OCTET STRING")
		}
		out.Content = append(make([]byte, 0, len(octets)), octets...) // non-nil even when empty
	}

	if sd.PeekASN1Tag(tagExplicit0) {
		var certs cryptobyte.String
		sd.ReadASN1(&certs, tagExplicit0)
		for !certs.Empty() {
			var elem cryptobyte.String
			var tag cbasn1.Tag
			if !certs.ReadAnyASN1Element(&elem, &tag) {
				return nil, malformed("certificates entry")
			}
			if tag != cbasn1.SEQUENCE {
				continue // attribute certificate or other choice: not ours to use
			}
			if len(out.Certificates) == maxCerts {
				return nil, malformed("more than %d certificates", maxCerts)
			}
			cert, err := x509.ParseCertificate(elem)
			if err != nil {
				return nil, fmt.Errorf("%w: certificate %d: %v", ErrMalformed, len(out.Certificates), err)
			}
			out.Certificates = append(out.Certificates, cert)
		}
	}
	if sd.PeekASN1Tag(tagExplicit1) {
		var crls cryptobyte.String
		sd.ReadASN1(&crls, tagExplicit1)
		for !crls.Empty() {
			var elem cryptobyte.String
			if len(out.RawCRLs) == maxCRLs || !crls.ReadAnyASN1Element(&elem, nil) {
				return nil, malformed("crls entry")
			}
			out.RawCRLs = append(out.RawCRLs, clone(elem))
		}
	}

	var signerInfos cryptobyte.String
	if !sd.ReadASN1(&signerInfos, cbasn1.SET) || !sd.Empty() {
		return nil, malformed("SignedData signerInfos")
	}
	for !signerInfos.Empty() {
		if len(out.Signers) == maxSigners {
			return nil, malformed("more than %d signers", maxSigners)
		}
		si, err := parseSignerInfo(&signerInfos)
		if err != nil {
			return nil, err
		}
		out.Signers = append(out.Signers, *si)
	}
	return out, nil
}

func parseSignerInfo(s *cryptobyte.String) (*SignerInfo, error) {
	var seq cryptobyte.String
	si := &SignerInfo{}
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(&si.Version) {
		return nil, malformed("SignerInfo")
	}
	var err error
	if si.IssuerAndSerial, si.SubjectKeyID, err = readIdentifier(&seq, "SignerInfo sid"); err != nil {
		return nil, err
	}
	if !readAlgorithmIdentifier(&seq, &si.DigestAlgorithm) {
		return nil, malformed("SignerInfo digestAlgorithm")
	}
	if seq.PeekASN1Tag(tagExplicit0) {
		var raw cryptobyte.String
		seq.ReadASN1Element(&raw, tagExplicit0)
		si.RawSignedAttrs = clone(raw)
		var attrs cryptobyte.String
		raw.ReadASN1(&attrs, tagExplicit0)
		var err error
		if si.SignedAttrs, err = parseAttributes(attrs); err != nil {
			return nil, fmt.Errorf("signedAttrs: %w", err)
		}
	}
	var sig cryptobyte.String
	if !readAlgorithmIdentifier(&seq, &si.SignatureAlgorithm) ||
		!seq.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, malformed("SignerInfo signature")
	}
	si.Signature = clone(sig)
	if !seq.SkipOptionalASN1(tagExplicit1) || !seq.Empty() { // unsignedAttrs: unused
		return nil, malformed("SignerInfo trailing data")
	}
	return si, nil
}

// Attr returns the first value of the signed attribute oid.
func (si *SignerInfo) Attr(oid asn1.ObjectIdentifier) (asn1.RawValue, bool) {
	if si == nil {
		return asn1.RawValue{}, false
	}
	for _, a := range si.SignedAttrs {
		if a.Type.Equal(oid) && len(a.Values) > 0 {
			return a.Values[0], true
		}
	}
	return asn1.RawValue{}, false
}

// SignerCertificate returns the certificate in sd.Certificates that si's
// sid names.
func (sd *SignedData) SignerCertificate(si *SignerInfo) (*x509.Certificate, error) {
	if si == nil {
		return nil, errors.New("cms: nil SignerInfo")
	}
	for _, c := range sd.Certificates {
		if matchesCert(si.IssuerAndSerial, si.SubjectKeyID, c) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: signer certificate not in message", ErrVerification)
}

func matchesCert(ias *IssuerAndSerial, ski []byte, c *x509.Certificate) bool {
	if c == nil {
		return false
	}
	if ias != nil {
		return ias.Serial != nil && c.SerialNumber != nil &&
			ias.Serial.Cmp(c.SerialNumber) == 0 && bytes.Equal(ias.RawIssuer, c.RawIssuer)
	}
	return len(ski) > 0 && bytes.Equal(ski, c.SubjectKeyId)
}

// Digest returns the hash named by si's digestAlgorithm, or 0 if it is not
// supported.
func (sd *SignedData) Digest(si *SignerInfo) crypto.Hash {
	if si == nil {
		return 0
	}
	h, err := hashForDigestOID(si.DigestAlgorithm.Algorithm)
	if err != nil {
		return 0
	}
	return h
}

// Verify checks signer si of sd against cert: with signed attributes, that
// content-type equals sd.ContentType, message-digest equals the digest of
// sd.Content and the signature covers the DER SET OF signed attributes;
// without, that the signature covers sd.Content directly. It does not
// validate cert itself (chain, validity, usage): that is the caller's policy.
//
// Errors wrap ErrUnsupportedAlgorithm (algorithm or key type not supported)
// or ErrVerification (the message does not verify).
func (sd *SignedData) Verify(si *SignerInfo, cert *x509.Certificate) error {
	if si == nil || cert == nil {
		return errors.New("cms: Verify needs a SignerInfo and a certificate")
	}
	h, err := hashForDigestOID(si.DigestAlgorithm.Algorithm)
	if err != nil {
		return err
	}
	var msgs [][]byte
	if si.RawSignedAttrs != nil {
		if msgs, err = sd.checkSignedAttrs(si, h); err != nil {
			return err
		}
	} else {
		// RFC 5652 §5.3: signed attributes are mandatory unless eContentType is id-data.
		if !sd.ContentType.Equal(oidData) {
			return fmt.Errorf("%w: content type %v without signed attributes", ErrVerification, sd.ContentType)
		}
		if sd.Content == nil {
			return fmt.Errorf("%w: no encapsulated content (detached signatures are not supported)", ErrVerification)
		}
		msgs = [][]byte{sd.Content}
	}
	var lastErr error
	for _, m := range msgs {
		if lastErr = verifySignature(cert.PublicKey, si.SignatureAlgorithm, h, m, si.Signature); lastErr == nil {
			return nil
		}
		if errors.Is(lastErr, ErrUnsupportedAlgorithm) {
			return lastErr
		}
	}
	return lastErr
}

// checkSignedAttrs checks the content-type and message-digest attributes,
// re-parsed from RawSignedAttrs so that what is checked is what was signed,
// and returns the candidate encodings the signature may cover: the bytes
// as received with a SET tag, then (if different) the DER-sorted SET for
// signers that sent them unsorted but signed the DER form.
func (sd *SignedData) checkSignedAttrs(si *SignerInfo, h crypto.Hash) ([][]byte, error) {
	raw := cryptobyte.String(si.RawSignedAttrs)
	var content cryptobyte.String
	if !raw.ReadASN1(&content, tagExplicit0) || !raw.Empty() {
		return nil, malformed("signedAttrs")
	}
	attrs, err := parseAttributes(content)
	if err != nil {
		return nil, err
	}
	var ctype, mdigest, stime *Attribute
	for i := range attrs {
		a := &attrs[i]
		var slot **Attribute
		switch {
		case a.Type.Equal(oidContentType):
			slot = &ctype
		case a.Type.Equal(oidMessageDigest):
			slot = &mdigest
		case a.Type.Equal(oidSigningTime):
			slot = &stime
		default:
			continue
		}
		// RFC 5652 §11: these attributes occur once, with a single value.
		if *slot != nil {
			return nil, signedAttrsError("the %s attribute appears more than once; RFC 5652 section 11 allows it once", attrName(a.Type))
		}
		if len(a.Values) != 1 {
			return nil, signedAttrsError("the %s attribute has %d values; RFC 5652 section 11 allows one", attrName(a.Type), len(a.Values))
		}
		*slot = a
	}
	for _, required := range []struct {
		attr *Attribute
		oid  asn1.ObjectIdentifier
	}{{ctype, oidContentType}, {mdigest, oidMessageDigest}} {
		if required.attr == nil {
			return nil, signedAttrsError("the signed attributes have no %s attribute; RFC 5652 section 5.3 requires it", attrName(required.oid))
		}
	}
	var ct asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(ctype.Values[0].FullBytes, &ct); err != nil || len(rest) != 0 {
		return nil, signedAttrsError("the contentType attribute is not an OBJECT IDENTIFIER")
	}
	if !ct.Equal(sd.ContentType) {
		return nil, signedAttrsError("the contentType attribute is %s, where the signed content is %s; RFC 5652 section 11.1 requires them to match",
			contentTypeName(ct), contentTypeName(sd.ContentType))
	}
	md := mdigest.Values[0]
	if md.Class != asn1.ClassUniversal || md.Tag != asn1.TagOctetString || md.IsCompound {
		return nil, signedAttrsError("the messageDigest attribute is not an OCTET STRING")
	}
	if sd.Content == nil {
		return nil, fmt.Errorf("%w: no encapsulated content (detached signatures are not supported)", ErrVerification)
	}
	if subtle.ConstantTimeCompare(md.Bytes, digest(h, sd.Content)) != 1 {
		return nil, signedAttrsError("the messageDigest attribute is not the %s digest of the signed content", h)
	}

	asSent := clone(si.RawSignedAttrs)
	asSent[0] = 0x31 // [0] IMPLICIT -> SET
	msgs := [][]byte{asSent}
	if sorted := sortedSet(content); sorted != nil && !bytes.Equal(sorted, asSent) {
		msgs = append(msgs, sorted)
	}
	return msgs, nil
}

// attrName is the RFC 5652 name of the signed attributes checkSignedAttrs
// checks, with its OID.
func attrName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(oidContentType):
		return "contentType"
	case oid.Equal(oidMessageDigest):
		return "messageDigest"
	case oid.Equal(oidSigningTime):
		return "signingTime"
	}
	return oid.String()
}

// contentTypeName is a content type's OID, with its name when it is one
// SCEP uses.
func contentTypeName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(oidData):
		return "data (" + oid.String() + ")"
	case oid.Equal(oidSignedData):
		return "signedData (" + oid.String() + ")"
	case oid.Equal(oidEnvelopedData):
		return "envelopedData (" + oid.String() + ")"
	}
	return oid.String()
}

// sortedSet re-encodes the elements in s as a DER SET OF (sorted).
func sortedSet(s cryptobyte.String) []byte {
	var elems [][]byte
	for !s.Empty() {
		var e cryptobyte.String
		if !s.ReadAnyASN1Element(&e, nil) {
			return nil
		}
		elems = append(elems, e)
	}
	slices.SortFunc(elems, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, e := range elems {
			b.AddBytes(e)
		}
	})
	out, err := b.Bytes()
	if err != nil {
		return nil
	}
	return out
}

// verifySignature checks sig over msg. h is the SignerInfo digest algorithm;
// the signature algorithm must agree with it where it names a hash.
// MaxRSABits bounds the RSA keys whose signatures are verified, as the
// key policy bounds the keys certified.
const MaxRSABits = 8192

func verifySignature(pub crypto.PublicKey, alg pkix.AlgorithmIdentifier, h crypto.Hash, msg, sig []byte) error {
	if k, ok := pub.(*rsa.PublicKey); ok && k.N != nil && k.N.BitLen() > MaxRSABits {
		// A signer's certificate travels in the message, unauthenticated:
		// verifying with a key of a million bits (it fits in a SCEP
		// message) costs half a minute of CPU.
		return fmt.Errorf("%w: an RSA key of %d bits (at most %d are verified)", ErrUnsupportedAlgorithm, k.N.BitLen(), MaxRSABits)
	}
	oid := alg.Algorithm
	switch {
	case oid.Equal(oidRSAEncryption), oid.Equal(oidSHA1WithRSA), oid.Equal(oidSHA256WithRSA),
		oid.Equal(oidSHA384WithRSA), oid.Equal(oidSHA512WithRSA):
		// The PKCS #1 v1.5 DigestInfo binds the hash actually used, so the
		// digestAlgorithm decides it; a disagreeing shaXWithRSA label is harmless.
		rsaPub, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: RSA signature but certificate key is %T", ErrVerification, pub)
		}
		if err := rsa.VerifyPKCS1v15(rsaPub, h, digest(h, msg), sig); err != nil {
			return fmt.Errorf("%w: RSA PKCS #1 v1.5 signature: %v", ErrVerification, err)
		}
		return nil
	case oid.Equal(oidRSASSAPSS):
		rsaPub, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: RSASSA-PSS signature but certificate key is %T", ErrVerification, pub)
		}
		opts, err := parsePSSParams(alg, h)
		if err != nil {
			return err
		}
		if err := rsa.VerifyPSS(rsaPub, h, digest(h, msg), sig, opts); err != nil {
			return fmt.Errorf("%w: RSASSA-PSS signature: %v", ErrVerification, err)
		}
		return nil
	case oid.Equal(oidECDSAWithSHA1), oid.Equal(oidECDSAWithSHA256), oid.Equal(oidECDSAWithSHA384),
		oid.Equal(oidECDSAWithSHA512), oid.Equal(oidECPublicKey):
		// ECDSA does not bind the hash, so a disagreeing label is refused.
		if want := ecdsaHash(oid); want != 0 && want != h {
			return fmt.Errorf("%w: signature algorithm %v with digest %v", ErrUnsupportedAlgorithm, oid, h)
		}
		ecPub, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: ECDSA signature but certificate key is %T", ErrVerification, pub)
		}
		if !ecdsa.VerifyASN1(ecPub, digest(h, msg), sig) {
			return fmt.Errorf("%w: ECDSA signature", ErrVerification)
		}
		return nil
	case oid.Equal(oidMD5WithRSA):
		return fmt.Errorf("%w: md5WithRSAEncryption refused", ErrUnsupportedAlgorithm)
	}
	return fmt.Errorf("%w: signature algorithm %v", ErrUnsupportedAlgorithm, oid)
}

func ecdsaHash(oid asn1.ObjectIdentifier) crypto.Hash {
	switch {
	case oid.Equal(oidECDSAWithSHA1):
		return crypto.SHA1
	case oid.Equal(oidECDSAWithSHA256):
		return crypto.SHA256
	case oid.Equal(oidECDSAWithSHA384):
		return crypto.SHA384
	case oid.Equal(oidECDSAWithSHA512):
		return crypto.SHA512
	}
	return 0 // id-ecPublicKey used as a signature algorithm: digest decides
}

// parsePSSParams parses RSASSA-PSS-params (RFC 4055). crypto/rsa uses MGF1
// with the message hash, so anything else is unsupported.
func parsePSSParams(alg pkix.AlgorithmIdentifier, h crypto.Hash) (*rsa.PSSOptions, error) {
	hash, mgfHash, salt, trailer := crypto.SHA1, crypto.SHA1, 20, 1
	if hasParams(alg) {
		s := cryptobyte.String(alg.Parameters.FullBytes)
		var seq cryptobyte.String
		if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
			return nil, fmt.Errorf("%w: RSASSA-PSS parameters", ErrVerification)
		}
		var err error
		if seq.PeekASN1Tag(tagExplicit0) {
			var w cryptobyte.String
			var ai pkix.AlgorithmIdentifier
			if !seq.ReadASN1(&w, tagExplicit0) || !readAlgorithmIdentifier(&w, &ai) || !w.Empty() {
				return nil, fmt.Errorf("%w: RSASSA-PSS hashAlgorithm", ErrVerification)
			}
			if hash, err = hashForDigestOID(ai.Algorithm); err != nil {
				return nil, err
			}
		}
		if seq.PeekASN1Tag(tagExplicit1) {
			var w cryptobyte.String
			if !seq.ReadASN1(&w, tagExplicit1) {
				return nil, fmt.Errorf("%w: RSASSA-PSS maskGenAlgorithm", ErrVerification)
			}
			if mgfHash, err = readMGF1(&w); err != nil || !w.Empty() {
				return nil, fmt.Errorf("%w: RSASSA-PSS maskGenAlgorithm (%v)", ErrUnsupportedAlgorithm, err)
			}
		}
		if seq.PeekASN1Tag(tagExplicit2) {
			var w cryptobyte.String
			if !seq.ReadASN1(&w, tagExplicit2) || !w.ReadASN1Integer(&salt) || !w.Empty() || salt < 0 {
				return nil, fmt.Errorf("%w: RSASSA-PSS saltLength", ErrVerification)
			}
		}
		if seq.PeekASN1Tag(tagExplicit3) {
			var w cryptobyte.String
			if !seq.ReadASN1(&w, tagExplicit3) || !w.ReadASN1Integer(&trailer) || !w.Empty() {
				return nil, fmt.Errorf("%w: RSASSA-PSS trailerField", ErrVerification)
			}
		}
		if !seq.Empty() {
			return nil, fmt.Errorf("%w: RSASSA-PSS parameters trailing data", ErrVerification)
		}
	}
	if hash != h || mgfHash != h || trailer != 1 {
		return nil, fmt.Errorf("%w: RSASSA-PSS with hash %v, MGF1 %v, trailer %d and digest %v",
			ErrUnsupportedAlgorithm, hash, mgfHash, trailer, h)
	}
	if salt == 0 {
		salt = rsa.PSSSaltLengthAuto // 0 means "auto" to crypto/rsa; auto accepts an empty salt
	}
	return &rsa.PSSOptions{SaltLength: salt, Hash: h}, nil
}

// readMGF1 reads an AlgorithmIdentifier that must be MGF1 with a hash.
func readMGF1(s *cryptobyte.String) (crypto.Hash, error) {
	var ai pkix.AlgorithmIdentifier
	if !readAlgorithmIdentifier(s, &ai) {
		return 0, malformed("mask generation AlgorithmIdentifier")
	}
	if !ai.Algorithm.Equal(oidMGF1) {
		return 0, fmt.Errorf("%w: mask generation function %v", ErrUnsupportedAlgorithm, ai.Algorithm)
	}
	p := cryptobyte.String(ai.Parameters.FullBytes)
	var inner pkix.AlgorithmIdentifier
	if !readAlgorithmIdentifier(&p, &inner) || !p.Empty() {
		return 0, malformed("MGF1 parameters")
	}
	return hashForDigestOID(inner.Algorithm)
}

// readIdentifier reads the SignerIdentifier / RecipientIdentifier CHOICE:
// issuerAndSerialNumber, or [0] subjectKeyIdentifier.
func readIdentifier(s *cryptobyte.String, what string) (*IssuerAndSerial, []byte, error) {
	switch {
	case s.PeekASN1Tag(cbasn1.SEQUENCE):
		ias, ok := readIssuerAndSerial(s)
		if !ok {
			return nil, nil, malformed("%s issuerAndSerialNumber", what)
		}
		return ias, nil, nil
	case s.PeekASN1Tag(tagImplicit0):
		var ski cryptobyte.String
		if !s.ReadASN1(&ski, tagImplicit0) || len(ski) == 0 {
			return nil, nil, malformed("%s subjectKeyIdentifier", what)
		}
		return nil, clone(ski), nil
	}
	return nil, nil, malformed("%s", what)
}
