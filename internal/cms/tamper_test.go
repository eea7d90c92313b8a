package cms

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

func signForTamper(t *testing.T) ([]byte, testIdentity, []byte) {
	t.Helper()
	id := testIdentities(t)["rsa"]
	content := []byte("the content that was signed")
	tx, err := NewAttribute(oidTransactionID, asn1.RawValue{Tag: asn1.TagPrintableString, Bytes: []byte("TX-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	der, err := Sign(content, id.cert, id.key, []Attribute{tx}, SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return der, id, content
}

// flipAt flips one bit at the first occurrence of marker (plus offset).
func flipAt(t *testing.T, der, marker []byte, offset int) []byte {
	t.Helper()
	i := bytes.Index(der, marker)
	if i < 0 {
		t.Fatalf("marker %q not found", marker)
	}
	out := bytes.Clone(der)
	out[i+offset] ^= 0x01
	return out
}

func TestTamperedSignedData(t *testing.T) {
	der, id, content := signForTamper(t)
	sig := func() []byte {
		sd, err := ParseSignedData(der)
		if err != nil {
			t.Fatal(err)
		}
		return sd.Signers[0].Signature
	}()
	cases := map[string][]byte{
		"content":                  flipAt(t, der, content, 3),
		"signature":                flipAt(t, der, sig, 17),
		"signed attr value":        flipAt(t, der, []byte("TX-0123456789"), 4),
		"content-type attr":        flipAt(t, der, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03, 0x31}, 21),
		"message-digest attr":      flipAt(t, der, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04, 0x31}, 15),
		"eContentType id-data -> ": flipAt(t, der, []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0}, 10),
	}
	for name, tampered := range cases {
		t.Run(name, func(t *testing.T) {
			sd, err := ParseSignedData(tampered)
			if err != nil {
				t.Fatalf("tampered message no longer parses: %v", err)
			}
			if err := sd.Verify(&sd.Signers[0], id.cert); !errors.Is(err, ErrVerification) {
				t.Fatalf("Verify: %v, want ErrVerification", err)
			}
		})
	}
}

func TestVerifyAlgorithmErrors(t *testing.T) {
	der, id, _ := signForTamper(t)
	parse := func() (*SignedData, *SignerInfo) {
		sd, err := ParseSignedData(der)
		if err != nil {
			t.Fatal(err)
		}
		return sd, &sd.Signers[0]
	}
	sd, si := parse()
	si.DigestAlgorithm.Algorithm = oidMD5
	if err := sd.Verify(si, id.cert); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("MD5 digest: %v", err)
	}
	if sd.Digest(si) != 0 {
		t.Errorf("Digest(MD5) = %v", sd.Digest(si))
	}
	sd, si = parse()
	si.SignatureAlgorithm.Algorithm = oidMD5WithRSA
	if err := sd.Verify(si, id.cert); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("md5WithRSA: %v", err)
	}
	sd, si = parse()
	si.SignatureAlgorithm.Algorithm = asn1.ObjectIdentifier{1, 2, 3, 4}
	if err := sd.Verify(si, id.cert); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("unknown signature algorithm: %v", err)
	}
	sd, si = parse()
	si.SignatureAlgorithm.Algorithm = oidECDSAWithSHA256
	if err := sd.Verify(si, testIdentities(t)["p256"].cert); !errors.Is(err, ErrVerification) {
		t.Errorf("ECDSA label on an RSA signature: %v", err)
	}
	// ECDSA with a hash that disagrees with digestAlgorithm is refused.
	p256 := testIdentities(t)["p256"]
	ecDER, err := Sign([]byte("x"), p256.cert, p256.key, nil, SignOptions{Digest: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	sd, err = ParseSignedData(ecDER)
	if err != nil {
		t.Fatal(err)
	}
	sd.Signers[0].SignatureAlgorithm.Algorithm = oidECDSAWithSHA384
	if err := sd.Verify(&sd.Signers[0], p256.cert); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("ecdsa-with-SHA384 over SHA-256: %v", err)
	}
}

func TestSignerNotFound(t *testing.T) {
	der, _, _ := signForTamper(t)
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	sd.Certificates = []*x509.Certificate{testIdentities(t)["rsa2"].cert}
	if _, err := sd.SignerCertificate(&sd.Signers[0]); !errors.Is(err, ErrVerification) {
		t.Fatalf("SignerCertificate: %v", err)
	}
}

func TestWrongKeyDecryption(t *testing.T) {
	wrong := asDecrypter(t, testIdentities(t)["rsa2"].key)
	cert := testIdentities(t)["rsa"].cert
	// Deterministic failures: OAEP, and GCM whose tag catches the random key.
	for _, tc := range []struct {
		c  ContentCipher
		kt KeyTransport
	}{{AES128CBC, RSAOAEP}, {DES3CBC, RSAOAEP}, {AES256GCM, RSAPKCS1v15}, {AES128GCM, RSAOAEP}} {
		ed := mustEnvelope(t, tc.c, tc.kt)
		if _, err := ed.DecryptKeyTransport(cert, wrong); err != ErrDecryption {
			t.Errorf("%v/%v: %v, want exactly ErrDecryption", tc.c, tc.kt, err)
		}
	}
	// PKCS #1 v1.5 + CBC: the random substitute key passes the CBC padding
	// check about once in 256 tries; the content must still never come out.
	for _, c := range []ContentCipher{DESCBC, DES3CBC, AES128CBC, AES256CBC} {
		ed := mustEnvelope(t, c, RSAPKCS1v15)
		failures := 0
		for range 8 {
			out, err := ed.DecryptKeyTransport(cert, wrong)
			switch {
			case err == ErrDecryption:
				failures++
			case err != nil:
				t.Fatalf("%v: %v", c, err)
			case bytes.Equal(out, []byte("secret content")):
				t.Fatalf("%v: decrypted with the wrong key", c)
			}
		}
		if failures == 0 {
			t.Errorf("%v: wrong key never failed", c)
		}
	}
}

// rawRSA encrypts m (as a big-endian number) with textbook RSA, to build
// PKCS #1 blocks with chosen (bad) padding.
func rawRSA(pub *rsa.PublicKey, m []byte) []byte {
	c := new(big.Int).Exp(new(big.Int).SetBytes(m), big.NewInt(int64(pub.E)), pub.N)
	return c.FillBytes(make([]byte, pub.Size()))
}

func TestNoPaddingOracle(t *testing.T) {
	id := testIdentities(t)["rsa"]
	pub := id.cert.PublicKey.(*rsa.PublicKey)
	k := id.key.(*rsa.PrivateKey)

	// Reference: correct key transport, CBC padding broken by flipping the
	// last byte of the next-to-last ciphertext block.
	badCBC := func(c ContentCipher) error {
		ed := mustEnvelope(t, c, RSAPKCS1v15)
		bs := blockSize(c)
		n := len(ed.ciphertext)
		// "secret content" is 14 bytes; the final plaintext byte is padding p.
		p := byte(bs - 14%bs)
		if n >= 2*bs {
			ed.ciphertext[n-bs-1] ^= p // last plaintext byte becomes 0: invalid
		} else {
			ed.iv[bs-1] ^= p
		}
		_, err := ed.DecryptKeyTransport(id.cert, opaqueDecrypter{k})
		return err
	}

	for _, c := range []ContentCipher{DES3CBC, AES128CBC, AES256CBC} {
		ref := badCBC(c)
		if ref != ErrDecryption {
			t.Fatalf("%v: bad CBC padding gave %v", c, ref)
		}
		variants := map[string]func(ed *EnvelopedData){
			"bad PKCS#1 block type": func(ed *EnvelopedData) {
				m := make([]byte, pub.Size())
				m[1] = 0x01 // signature block type in an encryption block
				rand.Read(m[2:])
				ed.Recipients[0].encryptedKey = rawRSA(pub, m)
			},
			"PKCS#1 without zero separator": func(ed *EnvelopedData) {
				m := make([]byte, pub.Size())
				m[1] = 0x02
				for i := 2; i < len(m); i++ {
					m[i] = 0x5a
				}
				ed.Recipients[0].encryptedKey = rawRSA(pub, m)
			},
			"valid PKCS#1, wrong key length": func(ed *EnvelopedData) {
				ek, err := rsa.EncryptPKCS1v15(rand.Reader, pub, make([]byte, c.KeySize()-3))
				if err != nil {
					t.Fatal(err)
				}
				ed.Recipients[0].encryptedKey = ek
			},
			"garbage ciphertext": func(ed *EnvelopedData) {
				ed.Recipients[0].encryptedKey = bytes.Repeat([]byte{0x42}, pub.Size())
			},
		}
		for name, mutate := range variants {
			for _, dec := range []crypto.Decrypter{opaqueDecrypter{k}, strictHSM{k}} {
				// The random substitute key may pass the CBC check (~1/256):
				// retry until it fails, then compare with the reference.
				var err error
				for range 16 {
					ed := mustEnvelope(t, c, RSAPKCS1v15)
					mutate(ed)
					if _, err = ed.DecryptKeyTransport(id.cert, dec); err != nil {
						break
					}
				}
				if err != ref || !errors.Is(err, ErrDecryption) || err.Error() != ref.Error() {
					t.Errorf("%v/%s/%T: %v, want %v", c, name, dec, err, ref)
				}
			}
		}
	}
}

func TestTamperedEnvelopes(t *testing.T) {
	id := testIdentities(t)["rsa"]
	dec := asDecrypter(t, id.key)
	// GCM: any change to ciphertext, tag or nonce is caught.
	for _, c := range []ContentCipher{AES128GCM, AES256GCM} {
		for _, mutate := range []func(*EnvelopedData){
			func(ed *EnvelopedData) { ed.ciphertext[0] ^= 1 },
			func(ed *EnvelopedData) { ed.mac[0] ^= 1 },
			func(ed *EnvelopedData) { ed.iv[0] ^= 1 },
		} {
			ed := mustEnvelope(t, c, RSAOAEP)
			mutate(ed)
			if _, err := ed.DecryptKeyTransport(id.cert, dec); err != ErrDecryption {
				t.Errorf("%v: %v", c, err)
			}
		}
	}
	// Truncated CBC ciphertext.
	ed := mustEnvelope(t, AES128CBC, RSAOAEP)
	ed.ciphertext = ed.ciphertext[:len(ed.ciphertext)-1]
	if _, err := ed.DecryptKeyTransport(id.cert, dec); err != ErrDecryption {
		t.Errorf("truncated: %v", err)
	}
	// A zero EnvelopedData must not panic.
	if _, err := (&EnvelopedData{}).DecryptKeyTransport(id.cert, dec); err == nil {
		t.Error("empty EnvelopedData decrypted")
	}
	if _, err := (&EnvelopedData{Cipher: AES128CBC, Recipients: []Recipient{{Kind: RecipientKeyTransport, KeyTransport: RSAOAEP}}}).DecryptKeyTransport(id.cert, dec); err == nil {
		t.Error("hand-made EnvelopedData decrypted")
	}
	if _, err := (&EnvelopedData{Cipher: AES128CBC, Recipients: []Recipient{{Kind: RecipientPassword}}}).DecryptPassword([]byte("x")); err == nil {
		t.Error("hand-made pwri decrypted")
	}
}

func TestRecipientSelection(t *testing.T) {
	ids := testIdentities(t)
	der, err := Encrypt([]byte("x"), []*x509.Certificate{ids["rsa"].cert, ids["rsa2"].cert}, EncryptOptions{KeyTransport: RSAOAEP})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := ParseEnvelopedData(der)
	if err != nil {
		t.Fatal(err)
	}
	// Two recipients, none matching: no guessing.
	stranger := loadCert(t, filepath.Join(scepDir, "ca/ca-cert.pem"))
	if _, err := ed.DecryptKeyTransport(stranger, asDecrypter(t, ids["rsa"].key)); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("no match among two: %v", err)
	}
	// One recipient that does not match by name is still tried.
	der, err = Encrypt([]byte("x"), []*x509.Certificate{ids["rsa"].cert}, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ed, err = ParseEnvelopedData(der); err != nil {
		t.Fatal(err)
	}
	if out, err := ed.DecryptKeyTransport(stranger, asDecrypter(t, ids["rsa"].key)); err != nil || string(out) != "x" {
		t.Errorf("single recipient fallback: %v", err)
	}
	// Match by subjectKeyIdentifier.
	ed.Recipients[0].IssuerAndSerial = nil
	ed.Recipients[0].SubjectKeyID = ids["rsa"].cert.SubjectKeyId
	ed.Recipients = append(ed.Recipients, Recipient{Kind: RecipientKeyTransport, SubjectKeyID: []byte{1}})
	if out, err := ed.DecryptKeyTransport(ids["rsa"].cert, asDecrypter(t, ids["rsa"].key)); err != nil || string(out) != "x" {
		t.Errorf("SKI match: %v", err)
	}
}

// A signer that sends its signed attributes out of DER order but signed the
// DER (sorted) encoding still verifies; a real change still does not.
func TestUnsortedSignedAttrs(t *testing.T) {
	der, id, _ := signForTamper(t)
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	raw := sd.Signers[0].RawSignedAttrs
	h, _ := readHeader(raw)
	var elems [][]byte
	for c := raw[h.hdrLen:]; len(c) > 0; {
		eh, _ := readHeader(c)
		elems = append(elems, c[:eh.hdrLen+eh.length])
		c = c[eh.hdrLen+eh.length:]
	}
	if len(elems) < 3 {
		t.Fatalf("%d attributes", len(elems))
	}
	reversed := bytes.Clone(raw[:h.hdrLen])
	for i := len(elems) - 1; i >= 0; i-- {
		reversed = append(reversed, elems[i]...)
	}
	unsorted := bytes.Replace(der, raw, reversed, 1)
	sd, err = ParseSignedData(unsorted)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sd.Signers[0].RawSignedAttrs, raw) {
		t.Fatal("attributes were not reordered")
	}
	if err := sd.Verify(&sd.Signers[0], id.cert); err != nil {
		t.Fatalf("unsorted attributes: %v", err)
	}
}

func TestPBKDF2Bounds(t *testing.T) {
	der, err := EncryptPassword([]byte("x"), []byte("pw"), EncryptOptions{PasswordIterations: 100000})
	if err != nil {
		t.Fatal(err)
	}
	// 100000 is INTEGER 02 03 01 86 a0; make it 8388607.
	hostile := bytes.Replace(der, []byte{0x02, 0x03, 0x01, 0x86, 0xa0}, []byte{0x02, 0x03, 0x7f, 0xff, 0xff}, 1)
	if bytes.Equal(hostile, der) {
		t.Fatal("iteration count not found")
	}
	ed, err := ParseEnvelopedData(hostile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ed.DecryptPassword([]byte("pw")); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("8388607 iterations: %v", err)
	}
	// The work budget spans recipients.
	ed, err = ParseEnvelopedData(der)
	if err != nil {
		t.Fatal(err)
	}
	r := ed.Recipients[0]
	r.kdfIter = maxPBKDF2Iter
	ed.Recipients = []Recipient{r, r}
	if _, err := ed.DecryptPassword([]byte("wrong")); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("second recipient over budget: %v", err)
	}
}

// lostToken is a key whose token is gone: every use fails the same way,
// whatever the ciphertext.
type lostToken struct{ pub crypto.PublicKey }

func (l lostToken) Public() crypto.PublicKey { return l.pub }
func (l lostToken) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	return nil, fmt.Errorf("pkcs11: token lost: %w", pki.ErrUnavailable)
}

// A key that cannot be used at all is said so, not reported as a bad
// envelope: the SCEP server answers "try again later", and a device does
// not take a FAILURE for its good request as final.
func TestUnavailableKeyIsNotADecryptionFailure(t *testing.T) {
	id := testIdentities(t)["rsa"]
	key := lostToken{pub: id.cert.PublicKey}
	for _, kt := range []KeyTransport{RSAPKCS1v15, RSAOAEP} {
		ed := mustEnvelope(t, AES128CBC, kt)
		_, err := ed.DecryptKeyTransport(id.cert, key)
		if !errors.Is(err, pki.ErrUnavailable) || errors.Is(err, ErrDecryption) {
			t.Errorf("%v: %v, want the key's unavailability", kt, err)
		}
	}
}
