package cms

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ContentCipher is a content-encryption algorithm.
type ContentCipher int

const (
	DESCBC ContentCipher = iota + 1 // single DES: decrypt for legacy clients; policy is the caller's
	DES3CBC
	AES128CBC
	AES192CBC
	AES256CBC
	AES128GCM
	AES256GCM
)

type cipherInfo struct {
	name     string
	oid      asn1.ObjectIdentifier
	keySize  int
	gcm      bool
	newBlock func([]byte) (cipher.Block, error)
}

func (c ContentCipher) info() (cipherInfo, bool) {
	switch c {
	case DESCBC:
		return cipherInfo{"DES-CBC", oidDESCBC, 8, false, des.NewCipher}, true
	case DES3CBC:
		return cipherInfo{"DES-EDE3-CBC", oidDES3CBC, 24, false, des.NewTripleDESCipher}, true
	case AES128CBC:
		return cipherInfo{"AES-128-CBC", oidAES128CBC, 16, false, aes.NewCipher}, true
	case AES192CBC:
		return cipherInfo{"AES-192-CBC", oidAES192CBC, 24, false, aes.NewCipher}, true
	case AES256CBC:
		return cipherInfo{"AES-256-CBC", oidAES256CBC, 32, false, aes.NewCipher}, true
	case AES128GCM:
		return cipherInfo{"AES-128-GCM", oidAES128GCM, 16, true, aes.NewCipher}, true
	case AES256GCM:
		return cipherInfo{"AES-256-GCM", oidAES256GCM, 32, true, aes.NewCipher}, true
	}
	return cipherInfo{}, false
}

func cipherForOID(oid asn1.ObjectIdentifier) ContentCipher {
	for c := DESCBC; c <= AES256GCM; c++ {
		if info, _ := c.info(); info.oid.Equal(oid) {
			return c
		}
	}
	return 0
}

// String returns the OpenSSL-style name, e.g. "AES-128-CBC".
func (c ContentCipher) String() string {
	if info, ok := c.info(); ok {
		return info.name
	}
	return fmt.Sprintf("ContentCipher(%d)", int(c))
}

// KeySize returns the key length in bytes, 0 for an unknown cipher.
func (c ContentCipher) KeySize() int {
	info, _ := c.info()
	return info.keySize
}

// KeyTransport is an RSA key-transport algorithm.
type KeyTransport int

const (
	RSAPKCS1v15 KeyTransport = iota + 1
	RSAOAEP
)

func (k KeyTransport) String() string {
	switch k {
	case RSAPKCS1v15:
		return "RSA-PKCS1v15"
	case RSAOAEP:
		return "RSA-OAEP"
	}
	return fmt.Sprintf("KeyTransport(%d)", int(k))
}

// RecipientKind says which RecipientInfo choice a recipient is.
type RecipientKind int

const (
	RecipientKeyTransport RecipientKind = iota + 1 // ktri
	RecipientPassword                              // pwri
	RecipientOther                                 // kari, kekri, ori: parsed over, not usable
)

// EnvelopedData is a parsed EnvelopedData, or an AuthEnvelopedData
// (RFC 5083, used for AES-GCM) with Authenticated set.
type EnvelopedData struct {
	Recipients    []Recipient
	Cipher        ContentCipher
	ContentType   asn1.ObjectIdentifier // of the encrypted content
	Authenticated bool                  // parsed from AuthEnvelopedData

	iv         []byte // CBC IV or GCM nonce
	tagLen     int    // GCM tag length
	ciphertext []byte // for EnvelopedData+GCM the tag is appended
	mac        []byte // AuthEnvelopedData tag
	aad        []byte // AuthEnvelopedData authAttrs as a DER SET
}

// Recipient is one RecipientInfo.
type Recipient struct {
	Kind            RecipientKind
	IssuerAndSerial *IssuerAndSerial // ktri rid
	SubjectKeyID    []byte           // ktri rid
	KeyTransport    KeyTransport     // ktri; 0 if the algorithm is not supported
	OAEPHash        crypto.Hash      // RSAOAEP: OAEP hash (ASN.1 default SHA-1)
	OAEPMGFHash     crypto.Hash      // RSAOAEP: MGF1's hash, which may differ (ASN.1 default SHA-1)

	encryptedKey []byte
	oaepLabel    []byte
	algErr       error // why this recipient cannot be used, found at parse time

	// pwri
	kdfSalt   []byte
	kdfIter   int
	kdfKeyLen int
	kdfPRF    crypto.Hash
	kekCipher ContentCipher
	kekIV     []byte
}

// ParseEnvelopedData parses a ContentInfo holding an EnvelopedData or an
// AuthEnvelopedData (BER accepted). An unknown content-encryption algorithm
// is an error wrapping ErrUnsupportedAlgorithm; an unusable recipient is not
// (its use fails later).
func ParseEnvelopedData(der []byte) (*EnvelopedData, error) {
	ct, content, err := parseContentOf(der, oidEnvelopedData, oidAuthEnvelopedData)
	if err != nil {
		return nil, err
	}
	ed := &EnvelopedData{Authenticated: ct.Equal(oidAuthEnvelopedData)}
	var seq, ris, eci cryptobyte.String
	var version int
	if !content.ReadASN1(&seq, cbasn1.SEQUENCE) || !content.Empty() ||
		!seq.ReadASN1Integer(&version) ||
		!seq.SkipOptionalASN1(tagExplicit0) || // originatorInfo: unused
		!seq.ReadASN1(&ris, cbasn1.SET) {
		return nil, malformed("EnvelopedData header")
	}
	for !ris.Empty() {
		if len(ed.Recipients) == maxRecipients {
			return nil, malformed("more than %d recipients", maxRecipients)
		}
		r, err := parseRecipientInfo(&ris)
		if err != nil {
			return nil, err
		}
		ed.Recipients = append(ed.Recipients, r)
	}
	if len(ed.Recipients) == 0 {
		return nil, malformed("no recipientInfos")
	}

	var alg pkix.AlgorithmIdentifier
	if !seq.ReadASN1(&eci, cbasn1.SEQUENCE) ||
		!eci.ReadASN1ObjectIdentifier(&ed.ContentType) ||
		!readAlgorithmIdentifier(&eci, &alg) {
		return nil, malformed("encryptedContentInfo")
	}
	switch {
	case eci.PeekASN1Tag(tagImplicit0):
		var c cryptobyte.String
		eci.ReadASN1(&c, tagImplicit0)
		ed.ciphertext = clone(c)
	case eci.PeekASN1Tag(tagExplicit0):
		// Constructed [0] IMPLICIT OCTET STRING: segments, already made
		// primitive by normalize.
		var c cryptobyte.String
		eci.ReadASN1(&c, tagExplicit0)
		ed.ciphertext = []byte{}
		for !c.Empty() {
			var seg cryptobyte.String
			if !c.ReadASN1(&seg, cbasn1.OCTET_STRING) {
				return nil, malformed("encryptedContent segment")
			}
			ed.ciphertext = append(ed.ciphertext, seg...)
		}
	default:
		return nil, malformed("encryptedContent absent (detached content is not supported)")
	}
	if !eci.Empty() {
		return nil, malformed("encryptedContentInfo trailing data")
	}

	if ed.Authenticated {
		if seq.PeekASN1Tag(tagExplicit1) { // authAttrs are the GCM AAD, as a DER SET
			var raw cryptobyte.String
			seq.ReadASN1Element(&raw, tagExplicit1)
			ed.aad = clone(raw)
			ed.aad[0] = 0x31
		}
		var mac cryptobyte.String
		if !seq.ReadASN1(&mac, cbasn1.OCTET_STRING) || !seq.SkipOptionalASN1(tagExplicit2) {
			return nil, malformed("AuthEnvelopedData mac")
		}
		ed.mac = clone(mac)
	} else if !seq.SkipOptionalASN1(tagExplicit1) { // unprotectedAttrs: unused
		return nil, malformed("EnvelopedData unprotectedAttrs")
	}
	if !seq.Empty() {
		return nil, malformed("EnvelopedData trailing data")
	}

	if err := ed.setCipher(alg); err != nil {
		return nil, err
	}
	return ed, nil
}

// setCipher resolves the content-encryption algorithm and its parameters.
func (ed *EnvelopedData) setCipher(alg pkix.AlgorithmIdentifier) error {
	c := cipherForOID(alg.Algorithm)
	info, ok := c.info()
	if !ok {
		return fmt.Errorf("%w: content encryption %v", ErrUnsupportedAlgorithm, alg.Algorithm)
	}
	params := cryptobyte.String(alg.Parameters.FullBytes)
	if !info.gcm {
		if ed.Authenticated {
			return fmt.Errorf("%w: %v in AuthEnvelopedData", ErrUnsupportedAlgorithm, info.name)
		}
		iv, err := readIV(params, c)
		if err != nil {
			return err
		}
		ed.Cipher, ed.iv = c, iv
		return nil
	}
	// GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
	var seq, nonce cryptobyte.String
	tagLen := 12
	if !params.ReadASN1(&seq, cbasn1.SEQUENCE) || !params.Empty() ||
		!seq.ReadASN1(&nonce, cbasn1.OCTET_STRING) {
		return malformed("GCM parameters")
	}
	if seq.PeekASN1Tag(cbasn1.INTEGER) && !seq.ReadASN1Integer(&tagLen) {
		return malformed("GCM ICVlen")
	}
	if !seq.Empty() {
		return malformed("GCM parameters trailing data")
	}
	if len(nonce) != 12 || tagLen < 12 || tagLen > 16 {
		return fmt.Errorf("%w: GCM with a %d-byte nonce and %d-byte tag", ErrUnsupportedAlgorithm, len(nonce), tagLen)
	}
	if ed.Authenticated && len(ed.mac) != tagLen {
		return malformed("GCM mac of %d bytes, ICVlen %d", len(ed.mac), tagLen)
	}
	ed.Cipher, ed.iv, ed.tagLen = c, clone(nonce), tagLen
	return nil
}

// readIV reads the OCTET STRING IV parameter of a CBC cipher.
func readIV(params cryptobyte.String, c ContentCipher) ([]byte, error) {
	var iv cryptobyte.String
	if !params.ReadASN1(&iv, cbasn1.OCTET_STRING) || !params.Empty() {
		return nil, malformed("%v IV parameter", c)
	}
	if len(iv) != blockSize(c) {
		return nil, malformed("%v IV of %d bytes", c, len(iv))
	}
	return clone(iv), nil
}

func blockSize(c ContentCipher) int {
	if c == DESCBC || c == DES3CBC {
		return des.BlockSize
	}
	return aes.BlockSize
}

func parseRecipientInfo(s *cryptobyte.String) (Recipient, error) {
	var body cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&body, &tag) {
		return Recipient{}, malformed("RecipientInfo")
	}
	switch tag {
	case cbasn1.SEQUENCE:
		return parseKTRI(body)
	case tagExplicit3:
		return parsePWRI(body)
	}
	return Recipient{Kind: RecipientOther}, nil
}

// parseKTRI parses the contents of a KeyTransRecipientInfo.
func parseKTRI(s cryptobyte.String) (Recipient, error) {
	r := Recipient{Kind: RecipientKeyTransport}
	var version int
	if !s.ReadASN1Integer(&version) {
		return r, malformed("ktri version")
	}
	var err error
	if r.IssuerAndSerial, r.SubjectKeyID, err = readIdentifier(&s, "ktri rid"); err != nil {
		return r, err
	}
	var alg pkix.AlgorithmIdentifier
	var ek cryptobyte.String
	if !readAlgorithmIdentifier(&s, &alg) || !s.ReadASN1(&ek, cbasn1.OCTET_STRING) || !s.Empty() {
		return r, malformed("ktri")
	}
	r.encryptedKey = clone(ek)
	switch {
	case alg.Algorithm.Equal(oidRSAEncryption):
		r.KeyTransport = RSAPKCS1v15
	case alg.Algorithm.Equal(oidRSAESOAEP):
		h, mgf, label, err := parseOAEPParams(alg)
		if err != nil {
			r.algErr = err
			return r, nil
		}
		r.KeyTransport, r.OAEPHash, r.OAEPMGFHash, r.oaepLabel = RSAOAEP, h, mgf, label
	default:
		r.algErr = fmt.Errorf("%w: key transport %v", ErrUnsupportedAlgorithm, alg.Algorithm)
	}
	return r, nil
}

// parseOAEPParams parses RSAES-OAEP-params (RFC 4055 §4.1); absent or NULL
// parameters mean all defaults (SHA-1, MGF1-SHA-1, empty label).
func parseOAEPParams(alg pkix.AlgorithmIdentifier) (hash, mgfHash crypto.Hash, label []byte, err error) {
	hash, mgfHash = crypto.SHA1, crypto.SHA1
	if !hasParams(alg) {
		return hash, mgfHash, nil, nil
	}
	bad := fmt.Errorf("%w: RSAES-OAEP parameters", ErrUnsupportedAlgorithm)
	s := cryptobyte.String(alg.Parameters.FullBytes)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return 0, 0, nil, bad
	}
	if seq.PeekASN1Tag(tagExplicit0) {
		var w cryptobyte.String
		var ai pkix.AlgorithmIdentifier
		if !seq.ReadASN1(&w, tagExplicit0) || !readAlgorithmIdentifier(&w, &ai) || !w.Empty() {
			return 0, 0, nil, bad
		}
		if hash, err = hashForDigestOID(ai.Algorithm); err != nil {
			return 0, 0, nil, err
		}
	}
	if seq.PeekASN1Tag(tagExplicit1) {
		var w cryptobyte.String
		if !seq.ReadASN1(&w, tagExplicit1) {
			return 0, 0, nil, bad
		}
		if mgfHash, err = readMGF1(&w); err != nil || !w.Empty() {
			return 0, 0, nil, fmt.Errorf("%w: RSAES-OAEP maskGenFunc (%v)", ErrUnsupportedAlgorithm, err)
		}
	}
	if seq.PeekASN1Tag(tagExplicit2) {
		var w cryptobyte.String
		var ai pkix.AlgorithmIdentifier
		if !seq.ReadASN1(&w, tagExplicit2) || !readAlgorithmIdentifier(&w, &ai) || !w.Empty() ||
			!ai.Algorithm.Equal(oidPSpecified) {
			return 0, 0, nil, bad
		}
		p := cryptobyte.String(ai.Parameters.FullBytes)
		var l cryptobyte.String
		if len(p) > 0 && (!p.ReadASN1(&l, cbasn1.OCTET_STRING) || !p.Empty()) {
			return 0, 0, nil, bad
		}
		if len(l) > 0 {
			label = clone(l)
		}
	}
	if !seq.Empty() {
		return 0, 0, nil, bad
	}
	return hash, mgfHash, label, nil
}

// parsePWRI parses the contents of a PasswordRecipientInfo (RFC 3211):
// PBKDF2 key derivation and id-alg-PWRI-KEK wrapping with a CBC cipher.
func parsePWRI(s cryptobyte.String) (Recipient, error) {
	r := Recipient{Kind: RecipientPassword}
	var version int
	var kdf, kek pkix.AlgorithmIdentifier
	var ek cryptobyte.String
	hasKDF := false
	if !s.ReadASN1Integer(&version) {
		return r, malformed("pwri version")
	}
	if s.PeekASN1Tag(tagExplicit0) { // [0] IMPLICIT AlgorithmIdentifier
		var c cryptobyte.String
		s.ReadASN1(&c, tagExplicit0)
		if !parseAlgorithmContents(c, &kdf) {
			return r, malformed("pwri keyDerivationAlgorithm")
		}
		hasKDF = true
	}
	if !readAlgorithmIdentifier(&s, &kek) || !s.ReadASN1(&ek, cbasn1.OCTET_STRING) || !s.Empty() {
		return r, malformed("pwri")
	}
	r.encryptedKey = clone(ek)
	if !hasKDF {
		r.algErr = fmt.Errorf("%w: pwri without keyDerivationAlgorithm", ErrUnsupportedAlgorithm)
		return r, nil
	}
	if err := r.parsePBKDF2(kdf); err != nil {
		if !isUnsupported(err) {
			return r, err
		}
		r.algErr = err
		return r, nil
	}
	if !kek.Algorithm.Equal(oidPWRIKEK) {
		r.algErr = fmt.Errorf("%w: pwri key encryption %v", ErrUnsupportedAlgorithm, kek.Algorithm)
		return r, nil
	}
	p := cryptobyte.String(kek.Parameters.FullBytes)
	var inner pkix.AlgorithmIdentifier
	if !readAlgorithmIdentifier(&p, &inner) || !p.Empty() {
		return r, malformed("PWRI-KEK parameters")
	}
	c := cipherForOID(inner.Algorithm)
	if info, ok := c.info(); !ok || info.gcm {
		r.algErr = fmt.Errorf("%w: PWRI-KEK cipher %v", ErrUnsupportedAlgorithm, inner.Algorithm)
		return r, nil
	}
	iv, err := readIV(cryptobyte.String(inner.Parameters.FullBytes), c)
	if err != nil {
		return r, err
	}
	r.kekCipher, r.kekIV = c, iv
	if r.kdfKeyLen != 0 && r.kdfKeyLen != c.KeySize() {
		return r, malformed("PBKDF2 keyLength %d for %v", r.kdfKeyLen, c)
	}
	return r, nil
}

// parsePBKDF2 parses PBKDF2-params (RFC 8018 §A.2).
func (r *Recipient) parsePBKDF2(kdf pkix.AlgorithmIdentifier) error {
	if !kdf.Algorithm.Equal(oidPBKDF2) {
		return fmt.Errorf("%w: key derivation %v", ErrUnsupportedAlgorithm, kdf.Algorithm)
	}
	s := cryptobyte.String(kdf.Parameters.FullBytes)
	var seq, salt cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return malformed("PBKDF2 parameters")
	}
	if !seq.PeekASN1Tag(cbasn1.OCTET_STRING) {
		return fmt.Errorf("%w: PBKDF2 salt from another source", ErrUnsupportedAlgorithm)
	}
	seq.ReadASN1(&salt, cbasn1.OCTET_STRING)
	var iter int64
	if !seq.ReadASN1Integer(&iter) {
		return malformed("PBKDF2 iterationCount")
	}
	if iter < 1 || iter > maxPBKDF2Iter {
		// Refused rather than run: a hostile count would pin a CPU.
		return fmt.Errorf("%w: PBKDF2 iteration count %d outside 1..%d", ErrUnsupportedAlgorithm, iter, maxPBKDF2Iter)
	}
	if len(salt) > maxSaltLen {
		return malformed("PBKDF2 salt of %d bytes", len(salt))
	}
	if seq.PeekASN1Tag(cbasn1.INTEGER) {
		var kl int64
		if !seq.ReadASN1Integer(&kl) || kl < 1 || kl > 64 {
			return malformed("PBKDF2 keyLength")
		}
		r.kdfKeyLen = int(kl)
	}
	r.kdfPRF = crypto.SHA1
	if !seq.Empty() {
		var prf pkix.AlgorithmIdentifier
		if !readAlgorithmIdentifier(&seq, &prf) || !seq.Empty() {
			return malformed("PBKDF2 prf")
		}
		switch {
		case prf.Algorithm.Equal(oidHMACWithSHA1):
			r.kdfPRF = crypto.SHA1
		case prf.Algorithm.Equal(oidHMACWithSHA256):
			r.kdfPRF = crypto.SHA256
		case prf.Algorithm.Equal(oidHMACWithSHA384):
			r.kdfPRF = crypto.SHA384
		case prf.Algorithm.Equal(oidHMACWithSHA512):
			r.kdfPRF = crypto.SHA512
		default:
			return fmt.Errorf("%w: PBKDF2 prf %v", ErrUnsupportedAlgorithm, prf.Algorithm)
		}
	}
	r.kdfSalt, r.kdfIter = clone(salt), int(iter)
	if r.kdfSalt == nil {
		r.kdfSalt = []byte{}
	}
	return nil
}
