package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// pssParams are RSASSA-PSS parameters (RFC 4055 section 3.1), each field
// left out when zero, as its default.
// (encoding/asn1 writes a RawValue's FullBytes as they are, without
// its field's tag: each field is a struct, explicitly tagged.)
type pssParams struct {
	Hash pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:0"`
	MGF  mgfID                    `asn1:"optional,explicit,tag:1"`
	Salt int                      `asn1:"optional,explicit,tag:2"`
}

type mgfID struct {
	Algorithm asn1.ObjectIdentifier
	Hash      pkix.AlgorithmIdentifier
}

func hashID(_ *testing.T, oid asn1.ObjectIdentifier) pkix.AlgorithmIdentifier {
	return pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue}
}

func mgf1(t *testing.T, hash asn1.ObjectIdentifier) mgfID {
	return mgfID{Algorithm: oidMGF1, Hash: hashID(t, hash)}
}

// signedWith is a PKCS#10 request whose signatureAlgorithm is alg: the
// signature algorithm crypto/x509 then reads, and the request's bytes.
func signedWith(t *testing.T, alg pkix.AlgorithmIdentifier) *x509.CertificateRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alg"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		t.Fatal(err)
	}
	req.Algorithm = alg
	if der, err = asn1.Marshal(req); err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// r136 D4: a signature algorithm crypto/x509 does not read is named, as
// sent: Ed448, or RSASSA-PSS with the hash and salt length found and the
// one required; not one fixed text that gives an Ed448 client advice on
// PSS salts.
func TestUnknownSignatureAlgorithmIsNamed(t *testing.T) {
	sha1 := asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	sha256 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	pss := func(p pssParams) pkix.AlgorithmIdentifier {
		der, err := asn1.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return pkix.AlgorithmIdentifier{Algorithm: oidRSASSAPSS, Parameters: asn1.RawValue{FullBytes: der}}
	}
	tests := []struct {
		name string
		alg  pkix.AlgorithmIdentifier
		want []string
	}{
		{"Ed448", pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 101, 113}}, []string{"signed with Ed448, which this CA does not accept"}},
		{"RSASSA-PSS, SHA-256, salt 16", pss(pssParams{Hash: hashID(t, sha256), MGF: mgf1(t, sha256), Salt: 16}),
			[]string{"RSASSA-PSS with SHA-256 and a salt of 16 bytes", "the salt must be as long as the hash, 32 bytes for SHA-256", "rsa_pss_saltlen:digest"}},
		{"RSASSA-PSS, SHA-256, OpenSSL's longest salt", pss(pssParams{Hash: hashID(t, sha256), MGF: mgf1(t, sha256), Salt: 222}),
			[]string{"a salt of 222 bytes", "32 bytes for SHA-256"}},
		{"RSASSA-PSS with every default (SHA-1)", pss(pssParams{}),
			[]string{"RSASSA-PSS with SHA-1 and a salt of 20 bytes", "SHA-256, SHA-384 or SHA-512 only"}},
		{"RSASSA-PSS, SHA-256, MGF1 with SHA-1", pss(pssParams{Hash: hashID(t, sha256), MGF: mgf1(t, sha1), Salt: 32}),
			[]string{"its mask generation (MGF1) with SHA-1"}},
		{"an unknown algorithm", pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 3, 4}}, []string{"does not know (OID 1.2.3.4)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := signedWith(t, tt.alg)
			if req.SignatureAlgorithm != x509.UnknownSignatureAlgorithm {
				t.Fatalf("crypto/x509 reads it as %s", req.SignatureAlgorithm)
			}
			err := CheckSignatureAlgorithm(req, true)
			msg := pki.ErrorMessage(err)
			if codeOf(err) != pki.EBadAlg {
				t.Fatalf("%v, want bad_alg", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			if tt.name == "Ed448" && strings.Contains(msg, "salt") {
				t.Errorf("%q gives an Ed448 client advice on PSS salts", msg)
			}
		})
	}
}
