package cms_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/cms"
)

// captureDir holds real clients' requests, encrypted to the capture CA
// (RSA-2048), whose key is published with them.
const captureDir = "../../testdata/captures/scep"

// captureRA returns the capture CA as an RA: its certificate and its
// RSA-2048 key.
func captureRA(b *testing.B) (*x509.Certificate, crypto.Decrypter) {
	b.Helper()
	read := func(name string) []byte {
		raw, err := os.ReadFile(filepath.Join(captureDir, "ca", name))
		if err != nil {
			b.Fatal(err)
		}
		blk, _ := pem.Decode(raw)
		if blk == nil {
			b.Fatalf("%s: no PEM", name)
		}
		return blk.Bytes
	}
	cert, err := x509.ParseCertificate(read("ca-cert.pem"))
	if err != nil {
		b.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(read("ca-key.pem"))
	if err != nil {
		b.Fatal(err)
	}
	return cert, key.(crypto.Decrypter)
}

// BenchmarkDecryptEnvelope opens a PKCSReq's pkcsPKIEnvelope with the RA
// key, as the SCEP handler does: parse the EnvelopedData, unwrap the
// content key (RSA-2048, PKCS #1 v1.5) and decrypt the CSR. The CSR is the
// one strongSwan sent in a captured request, encrypted again per cipher.
func BenchmarkDecryptEnvelope(b *testing.B) {
	cert, key := captureRA(b)
	body, err := os.ReadFile(filepath.Join(captureDir, "strongswan-pki-pkcsreq-aes", "request.body"))
	if err != nil {
		b.Fatal(err)
	}
	sd, err := cms.ParseSignedData(body)
	if err != nil {
		b.Fatal(err)
	}
	captured, err := cms.ParseEnvelopedData(sd.Content)
	if err != nil {
		b.Fatal(err)
	}
	csr, err := captured.DecryptKeyTransport(cert, key)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := x509.ParseCertificateRequest(csr); err != nil {
		b.Fatalf("the captured envelope holds no CSR: %v", err)
	}
	for _, c := range []struct {
		name   string
		cipher cms.ContentCipher
	}{
		{"rsa2048-aes128-cbc", cms.AES128CBC},
		{"rsa2048-aes256-cbc", cms.AES256CBC},
	} {
		env, err := cms.Encrypt(csr, []*x509.Certificate{cert}, cms.EncryptOptions{Cipher: c.cipher, KeyTransport: cms.RSAPKCS1v15})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				ed, err := cms.ParseEnvelopedData(env)
				if err != nil {
					b.Fatal(err)
				}
				plain, err := ed.DecryptKeyTransport(cert, key)
				if err != nil || len(plain) != len(csr) {
					b.Fatalf("decrypt: %v (%d bytes, want %d)", err, len(plain), len(csr))
				}
			}
		})
	}
}
