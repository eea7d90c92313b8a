package scep_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/scep"
)

// benchCaptures holds the byte-exact captures of real SCEP clients; their
// CA (RSA-2048, the envelope recipient and CertRep signer there) and its
// key are published with them.
const benchCaptures = "../../testdata/captures/scep"

func readCapture(b *testing.B, parts ...string) []byte {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(append([]string{benchCaptures}, parts...)...))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func pemBlock(b *testing.B, raw []byte) []byte {
	b.Helper()
	blk, _ := pem.Decode(raw)
	if blk == nil {
		b.Fatal("no PEM block")
	}
	return blk.Bytes
}

// BenchmarkParse decodes real clients' PKCSReqs: the outer SignedData and
// the SCEP attributes (what scep.Parse does for every request), and with
// /verify also the signature check that must come before any decryption.
func BenchmarkParse(b *testing.B) {
	post := readCapture(b, "strongswan-pki-pkcsreq-aes", "request.body")
	get, err := scep.DecodeQueryMessage(string(readCapture(b, "certmonger-get-pkcsreq-rsa2048", "request.query")))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		der    []byte
		verify bool
	}{
		{"strongswan-pkcsreq", post, false},
		{"strongswan-pkcsreq/verify", post, true},
		{"certmonger-pkcsreq", get, false},
		{"certmonger-pkcsreq/verify", get, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				m, err := scep.Parse(c.der)
				if err != nil {
					b.Fatal(err)
				}
				if m.MessageType != scep.PKCSReq {
					b.Fatalf("message type %v", m.MessageType)
				}
				if c.verify {
					if err := m.Verify(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkBuildCertRep builds a SUCCESS CertRep as the handler does: the
// certificate in a certs-only SignedData, enveloped to the requester's
// RSA-2048 signer certificate (PKCS #1 v1.5 key transport, the request's
// cipher), signed by an RSA-2048 RA with SHA-256. The requester and the
// certificate are those of a captured strongSwan PKCSReq; the RA is the
// capture CA.
func BenchmarkBuildCertRep(b *testing.B) {
	raCert, err := x509.ParseCertificate(pemBlock(b, readCapture(b, "ca", "ca-cert.pem")))
	if err != nil {
		b.Fatal(err)
	}
	raKey, err := x509.ParsePKCS8PrivateKey(pemBlock(b, readCapture(b, "ca", "ca-key.pem")))
	if err != nil {
		b.Fatal(err)
	}
	req, err := scep.Parse(readCapture(b, "strongswan-pki-pkcsreq-aes", "request.body"))
	if err != nil {
		b.Fatal(err)
	}
	requester := req.SignerCert
	issued := requester // a certificate of the usual size, RSA-2048 key
	ra := scep.Identity{Cert: raCert, Key: raKey.(crypto.Signer)}
	signingTime := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, c := range []struct {
		name   string
		cipher cms.ContentCipher
	}{
		{"success-aes128-cbc", cms.AES128CBC},
		{"success-aes256-cbc", cms.AES256CBC},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				inner, err := cms.DegenerateCertificates([]*x509.Certificate{issued})
				if err != nil {
					b.Fatal(err)
				}
				env, err := cms.Encrypt(inner, []*x509.Certificate{requester}, cms.EncryptOptions{Cipher: c.cipher, KeyTransport: cms.RSAPKCS1v15})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := scep.BuildCertRep(scep.Reply{TransactionID: req.TransactionID, RecipientNonce: req.SenderNonce,
					Status: scep.StatusSuccess, Digest: crypto.SHA256, Envelope: env, SigningTime: signingTime}, ra); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
