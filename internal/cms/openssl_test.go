package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"testing"
)

// Interoperability with OpenSSL 3 `openssl cms`, both directions.

var opensslCipherFlag = map[ContentCipher]string{
	DESCBC: "-des", DES3CBC: "-des3", AES128CBC: "-aes128", AES192CBC: "-aes192", AES256CBC: "-aes256",
	AES128GCM: "-aes-128-gcm", AES256GCM: "-aes-256-gcm",
}

// legacyProvider returns the flags OpenSSL 3 needs for single DES.
func legacyProvider(c ContentCipher) []string {
	if c == DESCBC {
		return []string{"-provider", "legacy", "-provider", "default"}
	}
	return nil
}

func TestOpenSSLDecryptsOurEnvelopes(t *testing.T) {
	id := testIdentities(t)["rsa"]
	dir := t.TempDir()
	certPath, keyPath := writeIdentity(t, dir, id)
	content := []byte("certs-only reply\x00\x01 binary")
	for _, c := range allCiphers {
		for _, kt := range []struct {
			kt     KeyTransport
			h, mgf crypto.Hash
		}{{RSAPKCS1v15, 0, 0}, {RSAOAEP, 0, 0}, {RSAOAEP, crypto.SHA256, 0}, {RSAOAEP, crypto.SHA512, crypto.SHA1}} {
			t.Run(fmt.Sprintf("%v/%v/%s/MGF1-%s", c, kt.kt, hashName(kt.h), hashName(kt.mgf)), func(t *testing.T) {
				der, err := Encrypt(content, []*x509.Certificate{id.cert}, EncryptOptions{Cipher: c, KeyTransport: kt.kt, OAEPHash: kt.h, OAEPMGFHash: kt.mgf})
				if err != nil {
					t.Fatal(err)
				}
				in := writeFile(t, t.TempDir(), "env.der", der)
				args := append([]string{"cms", "-decrypt", "-inform", "DER", "-in", in, "-recip", certPath, "-inkey", keyPath}, legacyProvider(c)...)
				out, err := openssl(t, args...)
				if err != nil || !bytes.Equal(out, content) {
					t.Fatalf("openssl cms -decrypt: %v, got %q", err, out)
				}
			})
		}
	}
}

func TestWeDecryptOpenSSLEnvelopes(t *testing.T) {
	id := testIdentities(t)["rsa"]
	dir := t.TempDir()
	certPath, _ := writeIdentity(t, dir, id)
	content := bytes.Repeat([]byte("0123456789abcdef"), 300) // long enough for several stream segments
	contentPath := writeFile(t, dir, "content.bin", content)
	for _, c := range allCiphers {
		for _, mode := range []string{"pkcs1", "oaep", "oaep-sha256", "stream"} {
			t.Run(fmt.Sprintf("%v/%s", c, mode), func(t *testing.T) {
				out := writeFile(t, t.TempDir(), "env.der", nil)
				args := []string{"cms", "-encrypt", "-binary", "-outform", "DER", "-in", contentPath, "-out", out, opensslCipherFlag[c]}
				args = append(args, legacyProvider(c)...)
				args = append(args, "-recip", certPath)
				switch mode {
				case "oaep":
					args = append(args, "-keyopt", "rsa_padding_mode:oaep")
				case "oaep-sha256":
					args = append(args, "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256")
				case "stream":
					args = append(args, "-stream")
				}
				if _, err := openssl(t, args...); err != nil {
					t.Fatal("openssl cms -encrypt failed")
				}
				ed, err := ParseEnvelopedData(readFile(t, out))
				if err != nil {
					t.Fatal(err)
				}
				if ed.Cipher != c {
					t.Errorf("cipher %v", ed.Cipher)
				}
				got, err := ed.DecryptKeyTransport(id.cert, asDecrypter(t, id.key))
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("DecryptKeyTransport: %v", err)
				}
			})
		}
	}
}

func TestOpenSSLVerifiesOurSignatures(t *testing.T) {
	ids := testIdentities(t)
	content := []byte("pkiMessage content \x00\xff")
	for _, signer := range []string{"rsa", "p256", "p384"} {
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			for _, rsaOID := range []bool{false, true} {
				if rsaOID && signer != "rsa" {
					continue
				}
				t.Run(fmt.Sprintf("%s/%v/rsaEncryption=%v", signer, h, rsaOID), func(t *testing.T) {
					id := ids[signer]
					der, err := Sign(content, id.cert, id.key, nil, SignOptions{Digest: h, RSAEncryptionOID: rsaOID})
					if err != nil {
						t.Fatal(err)
					}
					in := writeFile(t, t.TempDir(), "sd.der", der)
					out, err := openssl(t, "cms", "-verify", "-noverify", "-inform", "DER", "-in", in)
					if err != nil || !bytes.Equal(out, content) {
						t.Fatalf("openssl cms -verify: %v, got %q", err, out)
					}
				})
			}
		}
	}
	// A degenerate certs-only message reads back in openssl too.
	der, err := DegenerateCertificates([]*x509.Certificate{ids["rsa"].cert, ids["p256"].cert})
	if err != nil {
		t.Fatal(err)
	}
	in := writeFile(t, t.TempDir(), "certs.der", der)
	out, err := openssl(t, "pkcs7", "-inform", "DER", "-in", in, "-print_certs")
	if err != nil || bytes.Count(out, []byte("BEGIN CERTIFICATE")) != 2 {
		t.Fatalf("openssl pkcs7 -print_certs: %v\n%s", err, out)
	}
}

func TestWeVerifyOpenSSLSignatures(t *testing.T) {
	ids := testIdentities(t)
	content := bytes.Repeat([]byte("signed by openssl "), 200)
	contentPath := writeFile(t, t.TempDir(), "content.bin", content)
	cases := []struct {
		name, signer, md string
		extra            []string
		sigAlg           string
	}{
		{"rsa-sha1", "rsa", "sha1", nil, ""},
		{"rsa-sha256", "rsa", "sha256", nil, ""},
		{"rsa-sha384", "rsa", "sha384", nil, ""},
		{"rsa-sha512", "rsa", "sha512", nil, ""},
		{"rsa-sha256-stream-ber", "rsa", "sha256", []string{"-stream"}, ""},
		{"rsa-sha256-noattr", "rsa", "sha256", []string{"-noattr"}, ""},
		{"rsa-pss-sha256", "rsa", "sha256", []string{"-keyopt", "rsa_padding_mode:pss"}, "pss"},
		{"rsa-pss-sha512-salt32", "rsa", "sha512", []string{"-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:32"}, "pss"},
		{"p256-sha256", "p256", "sha256", nil, ""},
		{"p384-sha384", "p384", "sha384", nil, ""},
		{"p256-sha1-noattr", "p256", "sha1", []string{"-noattr"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			certPath, keyPath := writeIdentity(t, dir, ids[tc.signer])
			out := writeFile(t, dir, "sd.der", nil)
			args := append([]string{"cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-in", contentPath, "-out", out,
				"-signer", certPath, "-inkey", keyPath, "-md", tc.md}, tc.extra...)
			if _, err := openssl(t, args...); err != nil {
				t.Fatal("openssl cms -sign failed")
			}
			sd, err := ParseSignedData(readFile(t, out))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sd.Content, content) {
				t.Fatalf("content differs (%d bytes)", len(sd.Content))
			}
			si := &sd.Signers[0]
			if tc.sigAlg == "pss" && !si.SignatureAlgorithm.Algorithm.Equal(oidRSASSAPSS) {
				t.Errorf("signatureAlgorithm %v, want PSS", si.SignatureAlgorithm.Algorithm)
			}
			cert, err := sd.SignerCertificate(si)
			if err != nil {
				t.Fatal(err)
			}
			if err := sd.Verify(si, cert); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestPasswordInteropWithOpenSSL(t *testing.T) {
	content := []byte("pwri content for an EC client")
	dir := t.TempDir()
	contentPath := writeFile(t, dir, "content.bin", content)
	for _, c := range []ContentCipher{DES3CBC, AES128CBC, AES192CBC, AES256CBC} {
		t.Run("openssl-to-us/"+c.String(), func(t *testing.T) {
			out := writeFile(t, t.TempDir(), "pw.der", nil)
			if _, err := openssl(t, "cms", "-encrypt", "-binary", "-outform", "DER", "-in", contentPath, "-out", out,
				opensslCipherFlag[c], "-pwri_password", "capture-secret"); err != nil {
				t.Fatal("openssl cms -encrypt -pwri_password failed")
			}
			ed, err := ParseEnvelopedData(readFile(t, out))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ed.DecryptPassword([]byte("capture-secret"))
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("DecryptPassword: %v", err)
			}
			if _, err := ed.DecryptPassword([]byte("capture-secreT")); err != ErrDecryption {
				t.Fatalf("wrong password: %v", err)
			}
		})
		t.Run("us-to-openssl/"+c.String(), func(t *testing.T) {
			der, err := EncryptPassword(content, []byte("capture-secret"), EncryptOptions{Cipher: c, PasswordIterations: 10000})
			if err != nil {
				t.Fatal(err)
			}
			in := writeFile(t, t.TempDir(), "pw.der", der)
			out, err := openssl(t, "cms", "-decrypt", "-inform", "DER", "-in", in, "-pwri_password", "capture-secret")
			if err != nil || !bytes.Equal(out, content) {
				t.Fatalf("openssl cms -decrypt -pwri_password: %v, got %q", err, out)
			}
		})
	}
}
