package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

var oidTransactionID = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}

func TestSignRoundTrip(t *testing.T) {
	ids := testIdentities(t)
	content := []byte("a pkcsPKIEnvelope stands here")
	txID, err := NewAttribute(oidTransactionID, asn1.RawValue{Tag: asn1.TagPrintableString, Bytes: []byte("abc123")})
	if err != nil {
		t.Fatal(err)
	}
	for _, signer := range []string{"rsa", "p256", "p384"} {
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			for _, rsaOID := range []bool{false, true} {
				if rsaOID && signer != "rsa" {
					continue
				}
				t.Run(fmt.Sprintf("%s/%v/rsaEncryption=%v", signer, h, rsaOID), func(t *testing.T) {
					id := ids[signer]
					st := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
					der, err := Sign(content, id.cert, opaqueSigner{id.key}, []Attribute{txID}, SignOptions{
						Digest: h, RSAEncryptionOID: rsaOID, SigningTime: st,
						ExtraCertificates: []*x509.Certificate{ids["rsa2"].cert, id.cert},
					})
					if err != nil {
						t.Fatal(err)
					}
					sd, err := ParseSignedData(der)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(sd.Content, content) || !sd.ContentType.Equal(OIDData) {
						t.Fatalf("content %q type %v", sd.Content, sd.ContentType)
					}
					if len(sd.Certificates) != 2 || !sd.Certificates[0].Equal(id.cert) {
						t.Fatalf("certificates: %d", len(sd.Certificates))
					}
					si := &sd.Signers[0]
					if sd.Digest(si) != h {
						t.Errorf("digest %v", sd.Digest(si))
					}
					wantAlg := map[bool]asn1.ObjectIdentifier{true: oidRSAEncryption}[rsaOID]
					if wantAlg != nil && !si.SignatureAlgorithm.Algorithm.Equal(wantAlg) {
						t.Errorf("signatureAlgorithm %v", si.SignatureAlgorithm.Algorithm)
					}
					cert, err := sd.SignerCertificate(si)
					if err != nil || !cert.Equal(id.cert) {
						t.Fatalf("SignerCertificate: %v", err)
					}
					if err := sd.Verify(si, cert); err != nil {
						t.Fatalf("Verify: %v", err)
					}
					v, ok := si.Attr(oidTransactionID)
					if !ok || string(v.Bytes) != "abc123" || v.Tag != asn1.TagPrintableString {
						t.Errorf("transactionID %+v", v)
					}
					v, ok = si.Attr(OIDSigningTime)
					var got time.Time
					if !ok {
						t.Fatal("no signingTime")
					}
					if _, err := asn1.Unmarshal(v.FullBytes, &got); err != nil || !got.Equal(st) {
						t.Errorf("signingTime %v %v", got, err)
					}
					// Verifying against another certificate must fail.
					if err := sd.Verify(si, ids["rsa2"].cert); !errors.Is(err, ErrVerification) {
						t.Errorf("Verify with wrong cert: %v", err)
					}
				})
			}
		}
	}
}

func TestSignRefusals(t *testing.T) {
	ids := testIdentities(t)
	id := ids["rsa"]
	if _, err := Sign(nil, id.cert, id.key, nil, SignOptions{Digest: crypto.MD5}); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("MD5: %v", err)
	}
	if _, err := Sign(nil, id.cert, ids["p256"].key, nil, SignOptions{}); err == nil {
		t.Errorf("key/cert mismatch accepted")
	}
	dup, _ := NewAttribute(OIDContentType, OIDData)
	if _, err := Sign(nil, id.cert, id.key, []Attribute{dup}, SignOptions{}); err == nil {
		t.Errorf("duplicate content-type accepted")
	}
	if _, err := Sign(nil, &x509.Certificate{}, id.key, nil, SignOptions{}); err == nil {
		t.Errorf("unparsed certificate accepted")
	}
}

func TestSignEmptyContent(t *testing.T) {
	id := testIdentities(t)["p256"]
	der, err := Sign(nil, id.cert, id.key, nil, SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	if sd.Content == nil || len(sd.Content) != 0 {
		t.Fatalf("content %v, want empty non-nil", sd.Content)
	}
	if err := sd.Verify(&sd.Signers[0], id.cert); err != nil {
		t.Fatal(err)
	}
}

func TestDegenerateRoundTrip(t *testing.T) {
	ids := testIdentities(t)
	certs := []*x509.Certificate{ids["rsa"].cert, ids["p256"].cert, ids["rsa2"].cert}
	der, err := DegenerateCertificates(certs)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]byte{der, toBER(t, der)} {
		sd, err := ParseSignedData(in)
		if err != nil {
			t.Fatal(err)
		}
		if sd.Content != nil || len(sd.Signers) != 0 || len(sd.Certificates) != 3 {
			t.Fatalf("content %v signers %d certs %d", sd.Content, len(sd.Signers), len(sd.Certificates))
		}
		for i := range certs {
			if !sd.Certificates[i].Equal(certs[i]) {
				t.Errorf("certificate %d out of order", i)
			}
		}
	}
	if der, err = DegenerateCertificates(nil); err != nil {
		t.Fatal(err)
	}
	if sd, err := ParseSignedData(der); err != nil || len(sd.Certificates) != 0 {
		t.Fatalf("empty: %v", err)
	}
}

var allCiphers = []ContentCipher{DESCBC, DES3CBC, AES128CBC, AES192CBC, AES256CBC, AES128GCM, AES256GCM}

func TestEncryptRoundTrip(t *testing.T) {
	ids := testIdentities(t)
	rsa1, rsa2 := ids["rsa"], ids["rsa2"]
	for _, c := range allCiphers {
		for _, tt := range []struct {
			kt KeyTransport
			// the OAEP and MGF1 hashes asked for, and those the
			// parameters must name
			oaepHash, mgfHash         crypto.Hash
			wantOAEPHash, wantMGFHash crypto.Hash
		}{
			{kt: RSAPKCS1v15},
			{kt: RSAOAEP, wantOAEPHash: crypto.SHA1, wantMGFHash: crypto.SHA1},
			{kt: RSAOAEP, oaepHash: crypto.SHA256, wantOAEPHash: crypto.SHA256, wantMGFHash: crypto.SHA256},
			{kt: RSAOAEP, oaepHash: crypto.SHA512, mgfHash: crypto.SHA1, wantOAEPHash: crypto.SHA512, wantMGFHash: crypto.SHA1},
			{kt: RSAOAEP, mgfHash: crypto.SHA256, wantOAEPHash: crypto.SHA1, wantMGFHash: crypto.SHA256},
		} {
			name := fmt.Sprintf("%v/%v", c, tt.kt)
			if tt.kt == RSAOAEP {
				name += fmt.Sprintf("/%s/MGF1-%s", hashName(tt.oaepHash), hashName(tt.mgfHash))
			}
			kt := tt.kt
			t.Run(name, func(t *testing.T) {
				for _, size := range []int{0, 1, 15, 16, 17, 1000} {
					content := bytes.Repeat([]byte{byte(size)}, size)
					der, err := Encrypt(content, []*x509.Certificate{rsa1.cert, rsa2.cert},
						EncryptOptions{Cipher: c, KeyTransport: kt, OAEPHash: tt.oaepHash, OAEPMGFHash: tt.mgfHash})
					if err != nil {
						t.Fatal(err)
					}
					ed, err := ParseEnvelopedData(der)
					if err != nil {
						t.Fatal(err)
					}
					if ed.Cipher != c || len(ed.Recipients) != 2 || ed.Recipients[1].KeyTransport != kt {
						t.Fatalf("parsed %v, %+v", ed.Cipher, ed.Recipients)
					}
					for _, r := range ed.Recipients {
						if r.OAEPHash != tt.wantOAEPHash || r.OAEPMGFHash != tt.wantMGFHash {
							t.Fatalf("OAEP %v with MGF1-%v, want %v with MGF1-%v", r.OAEPHash, r.OAEPMGFHash, tt.wantOAEPHash, tt.wantMGFHash)
						}
					}
					if ed.Authenticated != (c == AES128GCM || c == AES256GCM) {
						t.Errorf("Authenticated = %v", ed.Authenticated)
					}
					for _, id := range []testIdentity{rsa1, rsa2} {
						got, err := ed.DecryptKeyTransport(id.cert, asDecrypter(t, id.key))
						if err != nil || !bytes.Equal(got, content) {
							t.Fatalf("size %d: %v", size, err)
						}
					}
				}
			})
		}
	}
}

// hashName names an option's hash, zero for its default.
func hashName(h crypto.Hash) string {
	if h == 0 {
		return "default"
	}
	return h.String()
}

func TestEncryptRefusesNonRSA(t *testing.T) {
	ids := testIdentities(t)
	_, err := Encrypt([]byte("x"), []*x509.Certificate{ids["p256"].cert}, EncryptOptions{})
	if !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("EC recipient: %v", err)
	}
	ed := mustEnvelope(t, AES128CBC, RSAPKCS1v15)
	if _, err := ed.DecryptKeyTransport(ids["p256"].cert, ecDecrypter{ids["p256"].key.Public()}); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("EC decrypter: %v", err)
	}
}

type ecDecrypter struct{ pub crypto.PublicKey }

func (d ecDecrypter) Public() crypto.PublicKey { return d.pub }
func (ecDecrypter) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	return nil, errors.New("unreachable")
}

func mustEnvelope(t *testing.T, c ContentCipher, kt KeyTransport) *EnvelopedData {
	t.Helper()
	der, err := Encrypt([]byte("secret content"), []*x509.Certificate{testIdentities(t)["rsa"].cert},
		EncryptOptions{Cipher: c, KeyTransport: kt})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := ParseEnvelopedData(der)
	if err != nil {
		t.Fatal(err)
	}
	return ed
}

func TestPasswordRoundTrip(t *testing.T) {
	for _, c := range allCiphers {
		t.Run(c.String(), func(t *testing.T) {
			content := []byte("certs-only reply for an EC client")
			der, err := EncryptPassword(content, []byte("capture-secret"), EncryptOptions{Cipher: c, PasswordIterations: 10000})
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range [][]byte{der, toBER(t, der)} {
				ed, err := ParseEnvelopedData(in)
				if err != nil {
					t.Fatal(err)
				}
				if ed.Cipher != c || ed.Recipients[0].Kind != RecipientPassword {
					t.Fatalf("parsed %v %+v", ed.Cipher, ed.Recipients)
				}
				r := ed.Recipients[0]
				if r.kdfPRF != crypto.SHA256 || r.kdfIter != 10000 || len(r.kdfSalt) != 16 {
					t.Errorf("kdf %v %d %d", r.kdfPRF, r.kdfIter, len(r.kdfSalt))
				}
				got, err := ed.DecryptPassword([]byte("capture-secret"))
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("DecryptPassword: %v", err)
				}
				if _, err := ed.DecryptPassword([]byte("wrong")); err != ErrDecryption {
					t.Fatalf("wrong password: %v", err)
				}
				if _, err := ed.DecryptKeyTransport(nil, asDecrypter(t, testIdentities(t)["rsa"].key)); !errors.Is(err, ErrNoRecipient) {
					t.Fatalf("ktri on a pwri envelope: %v", err)
				}
			}
		})
	}
	if _, err := EncryptPassword([]byte("x"), []byte("pw"), EncryptOptions{PasswordIterations: 1000}); err == nil {
		t.Error("1000 iterations accepted")
	}
}

// One derived key serves many envelopes: they share the salt and the
// iteration count, every one has a content key, a wrap IV and a wrapped key
// of its own, and each opens with the password alone. A key derived for one
// content key size is refused for another.
func TestPasswordKeySharedByEnvelopes(t *testing.T) {
	for _, c := range allCiphers {
		t.Run(c.String(), func(t *testing.T) {
			key, err := NewPasswordKey([]byte("capture-secret"), c, 10000)
			if err != nil {
				t.Fatal(err)
			}
			var first Recipient
			var keys PasswordKEKs
			for i := range 3 {
				content := []byte(fmt.Sprintf("reply %d", i))
				der, err := EncryptPasswordKey(content, key, EncryptOptions{Cipher: c})
				if err != nil {
					t.Fatal(err)
				}
				ed, err := ParseEnvelopedData(der)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ed.DecryptPassword([]byte("capture-secret"))
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("envelope %d: DecryptPassword: %v", i, err)
				}
				// A client's store of KEKs derives the shared key once (and
				// the wrong password's once).
				got, err = ed.DecryptPasswordWith([]byte("capture-secret"), &keys)
				if want := min(i+1, 2); err != nil || !bytes.Equal(got, content) || len(keys.m) != want {
					t.Fatalf("envelope %d: DecryptPasswordWith: %v, %d keys kept, want %d", i, err, len(keys.m), want)
				}
				if _, err := ed.DecryptPasswordWith([]byte("wrong"), &keys); err != ErrDecryption || len(keys.m) != 2 {
					t.Fatalf("envelope %d: a wrong password with kept keys: %v, %d keys kept", i, err, len(keys.m))
				}
				r := ed.Recipients[0]
				if !bytes.Equal(r.kdfSalt, key.salt) || r.kdfIter != 10000 {
					t.Fatalf("envelope %d: salt %x iterations %d, want the key's %x 10000", i, r.kdfSalt, r.kdfIter, key.salt)
				}
				if i == 0 {
					first = r
					continue
				}
				if bytes.Equal(r.kekIV, first.kekIV) || bytes.Equal(r.encryptedKey, first.encryptedKey) {
					t.Fatalf("envelope %d repeats the first one's wrap IV or wrapped key", i)
				}
			}
		})
	}
	// The store of KEKs stays bounded whatever passwords are tried.
	der, err := EncryptPassword([]byte("x"), []byte("pw"), EncryptOptions{PasswordIterations: minPasswordIterations})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := ParseEnvelopedData(der)
	if err != nil {
		t.Fatal(err)
	}
	var keys PasswordKEKs
	for i := range maxPasswordKEKs + 6 {
		ed.DecryptPasswordWith([]byte(fmt.Sprint("guess-", i)), &keys)
	}
	if len(keys.m) > maxPasswordKEKs {
		t.Errorf("%d KEKs kept, want at most %d", len(keys.m), maxPasswordKEKs)
	}
	aes128, err := NewPasswordKey([]byte("pw"), AES128CBC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if aes128.iter != defaultPasswordIterations {
		t.Errorf("default iterations %d", aes128.iter)
	}
	if _, err := EncryptPasswordKey([]byte("x"), aes128, EncryptOptions{Cipher: AES256CBC}); err == nil {
		t.Error("an AES-128 KEK wrapped an AES-256 content key")
	}
	if _, err := EncryptPasswordKey([]byte("x"), aes128, EncryptOptions{Cipher: DESCBC}); err != nil {
		t.Errorf("single DES content keys take an AES-128 KEK: %v", err)
	}
	for _, bad := range []struct {
		password []byte
		iter     int
	}{{nil, 10000}, {[]byte("pw"), 1000}, {[]byte("pw"), maxPBKDF2Iter + 1}} {
		if _, err := NewPasswordKey(bad.password, AES128CBC, bad.iter); err == nil {
			t.Errorf("NewPasswordKey(%q, %d) accepted", bad.password, bad.iter)
		}
	}
}

func TestPWRIWrapVectors(t *testing.T) {
	// Wrap/unwrap agree for every key size and both block sizes, and a
	// corrupted check value is refused.
	for _, c := range []ContentCipher{DES3CBC, AES128CBC, AES256CBC} {
		kek := bytes.Repeat([]byte{7}, c.KeySize())
		iv := bytes.Repeat([]byte{9}, blockSize(c))
		for _, n := range []int{8, 16, 24, 32} {
			cek := bytes.Repeat([]byte{byte(n)}, n)
			w, err := pwriWrap(c, kek, iv, cek)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := pwriUnwrap(c, kek, iv, w)
			if !ok || !bytes.Equal(got, cek) {
				t.Fatalf("%v/%d: unwrap failed", c, n)
			}
			w[0] ^= 1
			if _, ok := pwriUnwrap(c, kek, iv, w); ok {
				t.Errorf("%v/%d: corrupted wrap accepted", c, n)
			}
		}
	}
}
