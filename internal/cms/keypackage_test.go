package cms

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"testing"
)

// EST's encrypted server-generated key: a SignedData of another content
// type, inside an EnvelopedData to a bare key named by its key identifier.
func TestEncryptToKeyWithSignedContent(t *testing.T) {
	ids := testIdentities(t)
	signer, recip := ids["rsa"], ids["rsa2"]
	keyPackage := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 2, 1, 2, 78, 5}
	content := []byte{0x30, 0x03, 0x02, 0x01, 0x00}
	sd, err := Sign(content, signer.cert, signer.key, nil, SignOptions{ContentType: keyPackage})
	if err != nil {
		t.Fatal(err)
	}
	ski := []byte("client-key-identifier")
	der, err := EncryptToKey(sd, recip.key.Public().(*rsa.PublicKey), ski, EncryptOptions{Cipher: AES256CBC, ContentType: oidSignedData})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := ParseEnvelopedData(der)
	if err != nil {
		t.Fatal(err)
	}
	if !ed.ContentType.Equal(oidSignedData) || len(ed.Recipients) != 1 || !bytes.Equal(ed.Recipients[0].SubjectKeyID, ski) {
		t.Fatalf("envelope: content type %v, recipients %+v", ed.ContentType, ed.Recipients)
	}
	plain, err := ed.DecryptKeyTransport(&x509.Certificate{SubjectKeyId: ski}, asDecrypter(t, recip.key))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseSignedData(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.ContentType.Equal(keyPackage) || !bytes.Equal(parsed.Content, content) {
		t.Fatalf("inner: %v %x", parsed.ContentType, parsed.Content)
	}
	if err := parsed.Verify(&parsed.Signers[0], signer.cert); err != nil {
		t.Fatal(err)
	}
	// OpenSSL opens it too, with the key alone.
	dir := t.TempDir()
	_, keyPath := writeIdentity(t, dir, recip)
	in := writeFile(t, dir, "env.der", der)
	out, err := openssl(t, "cms", "-decrypt", "-inform", "DER", "-in", in, "-inkey", keyPath)
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("openssl cms -decrypt: %v", err)
	}
}
