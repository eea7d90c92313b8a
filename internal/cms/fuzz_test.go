package cms

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds returns every captured pkiMessage, reply and inner envelope,
// their BER forms, and messages we produce ourselves.
func fuzzSeeds(f *testing.F) (signed, enveloped [][]byte) {
	f.Helper()
	for _, tc := range captures {
		dir := filepath.Join(scepDir, tc.name)
		msgs := [][]byte{requestMessage(f, dir)}
		if b, err := os.ReadFile(filepath.Join(dir, "response.body")); err == nil && len(b) > 100 {
			msgs = append(msgs, b)
		}
		for _, m := range msgs {
			signed = append(signed, m)
			if sd, err := ParseSignedData(m); err == nil && len(sd.Content) > 0 {
				enveloped = append(enveloped, sd.Content, toBER(f, sd.Content))
			}
		}
	}
	signed = append(signed, toBER(f, signed[0]))
	ids := testIdentities(f)
	for _, signer := range []string{"rsa", "p256"} {
		der, err := Sign([]byte("seed"), ids[signer].cert, ids[signer].key, nil, SignOptions{})
		if err != nil {
			f.Fatal(err)
		}
		signed = append(signed, der)
	}
	if der, err := DegenerateCertificates([]*x509.Certificate{ids["rsa"].cert}); err == nil {
		signed = append(signed, der)
	}
	for _, c := range allCiphers {
		if der, err := Encrypt([]byte("seed"), []*x509.Certificate{ids["rsa"].cert}, EncryptOptions{Cipher: c, KeyTransport: RSAOAEP}); err == nil {
			enveloped = append(enveloped, der)
		}
		if der, err := EncryptPassword([]byte("seed"), []byte("pw"), EncryptOptions{Cipher: c, PasswordIterations: minPasswordIterations}); err == nil {
			enveloped = append(enveloped, der)
		}
	}
	return signed, enveloped
}

func FuzzParseSignedData(f *testing.F) {
	signed, _ := fuzzSeeds(f)
	for _, s := range signed {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, err := ParseSignedData(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped parse error: %v", err)
			}
			return
		}
		for i := range sd.Signers {
			si := &sd.Signers[i]
			si.Attr(OIDMessageDigest)
			sd.Digest(si)
			if cert, err := sd.SignerCertificate(si); err == nil {
				checkVerifyErr(t, sd.Verify(si, cert))
			}
			for _, c := range sd.Certificates {
				checkVerifyErr(t, sd.Verify(si, c))
			}
		}
		// The normalised form is a fixed point.
		if norm, err := normalize(data); err == nil {
			again, err := normalize(norm)
			if err != nil || !bytes.Equal(again, norm) {
				t.Fatalf("normalize is not idempotent: %v", err)
			}
		}
	})
}

func checkVerifyErr(t *testing.T, err error) {
	if err != nil && !errors.Is(err, ErrVerification) && !errors.Is(err, ErrUnsupportedAlgorithm) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("untyped Verify error: %v", err)
	}
}

func FuzzParseEnvelopedData(f *testing.F) {
	_, enveloped := fuzzSeeds(f)
	for _, s := range enveloped {
		f.Add(s)
	}
	caCert := loadCert(f, filepath.Join(scepDir, "ca/ca-cert.pem"))
	caKey := asDecrypter(f, loadKey(f, filepath.Join(scepDir, "ca/ca-key.pem")))
	rsaID := testIdentities(f)["rsa"]
	rsaKey := asDecrypter(f, rsaID.key)
	f.Fuzz(func(t *testing.T, data []byte) {
		ed, err := ParseEnvelopedData(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedAlgorithm) {
				t.Fatalf("untyped parse error: %v", err)
			}
			return
		}
		_ = ed.Cipher.String()
		check := func(_ []byte, err error) {
			if err != nil && err != ErrDecryption && !errors.Is(err, ErrNoRecipient) &&
				!errors.Is(err, ErrUnsupportedAlgorithm) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped decrypt error: %v", err)
			}
		}
		check(ed.DecryptKeyTransport(caCert, caKey))
		check(ed.DecryptKeyTransport(rsaID.cert, rsaKey))
		// Keep iterations cheap while fuzzing; the bound itself is tested.
		cheap := true
		for _, r := range ed.Recipients {
			if r.kdfIter > minPasswordIterations {
				cheap = false
			}
		}
		if cheap {
			check(ed.DecryptPassword([]byte("pw")))
		}
	})
}
