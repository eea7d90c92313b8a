package keys

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func sameKey(t *testing.T, got, want crypto.Signer) {
	t.Helper()
	if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(want.Public()) {
		t.Fatal("decrypted key is not the key that was encrypted")
	}
}

// pemDER returns the bytes of the only PEM block of data.
func pemDER(t *testing.T, data []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("no PEM block in %.40q", data)
	}
	return b.Bytes
}

// The count scepter writes, as README and SECURITY say (600000), by
// MarshalEncryptedKeyPEM and, unless a test lowers it, a FileSource: the
// one place the tests pay for it (the others write MinPBKDF2Iterations).
func TestEncryptedKeyProductionIterations(t *testing.T) {
	if PBKDF2Iterations != 600000 {
		t.Errorf("PBKDF2Iterations = %d, README and SECURITY say 600000", PBKDF2Iterations)
	}
	if n := Files(t.TempDir()).pbkdf2Iterations(); n != PBKDF2Iterations {
		t.Errorf("a FileSource encrypts with %d iterations, want PBKDF2Iterations", n)
	}
	k, err := Generate(P256)
	if err != nil {
		t.Fatal(err)
	}
	data, err := MarshalEncryptedKeyPEM(rand.Reader, k, []byte("correct horse battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := parseEncryptedPKCS8(pemDER(t, data))
	if err != nil {
		t.Fatal(err)
	}
	if p.iterations != PBKDF2Iterations {
		t.Errorf("MarshalEncryptedKeyPEM wrote %d iterations, want %d", p.iterations, PBKDF2Iterations)
	}
}

// The count other packages' tests lower is checked: a key written with one
// that reading refuses would be lost.
func TestEncryptedKeyIterationsGiven(t *testing.T) {
	k, err := Generate(P256)
	if err != nil {
		t.Fatal(err)
	}
	pass := []byte("correct horse")
	for _, tc := range []struct {
		iterations int
		ok         bool
	}{
		{MinPBKDF2Iterations - 1, false},
		{MinPBKDF2Iterations, true},
		{maxPBKDF2Iterations + 1, false},
		{-1, false},
	} {
		t.Run(fmt.Sprint(tc.iterations), func(t *testing.T) {
			data, err := MarshalEncryptedKeyPEMIterations(rand.Reader, k, pass, tc.iterations)
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "would not read back") {
					t.Errorf("err = %v, want a refusal", err)
				}
				dir := t.TempDir()
				if _, err := (&FileSource{Dir: dir, Passphrase: pass, Iterations: tc.iterations}).Create("root", P256); err == nil {
					t.Error("FileSource.Create accepted the count")
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("FileSource.Create left %v", entries)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := parseEncryptedPKCS8(pemDER(t, data))
			if err != nil || p.iterations != tc.iterations {
				t.Errorf("iterations %d, %v; want %d", p.iterations, err, tc.iterations)
			}
		})
	}
}

func TestEncryptedKeyRoundTrip(t *testing.T) {
	ed := mustEd25519(t)
	for _, kt := range []string{"p256", "p384", "rsa2048", "ed25519"} {
		t.Run(kt, func(t *testing.T) {
			t.Parallel()
			var k crypto.Signer = ed
			if kt != "ed25519" {
				var err error
				if k, err = Generate(kt); err != nil {
					t.Fatal(err)
				}
			}
			pass := []byte("correct horse battery staple")
			// The format, not the cost: production's count is
			// TestEncryptedKeyProductionIterations'.
			data, err := marshalEncryptedKeyPEM(rand.Reader, k, pass, MinPBKDF2Iterations)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")) {
				t.Fatalf("not an encrypted PKCS#8 PEM: %.50q", data)
			}
			p, ct, err := parseEncryptedPKCS8(pemDER(t, data))
			if err != nil {
				t.Fatal(err)
			}
			if p.iterations != MinPBKDF2Iterations || p.prfName != "hmacWithSHA256" || p.cipherName != "aes-256-cbc" ||
				p.keyLen != 32 || len(p.salt) != 16 || len(p.iv) != 16 || len(ct)%16 != 0 {
				t.Errorf("parameters %+v", p)
			}
			got, err := ParseKeyPEMWithPassphrase(data, pass)
			if err != nil {
				t.Fatal(err)
			}
			sameKey(t, got, k)

			if _, err := ParseKeyPEM(data); !errors.Is(err, ErrEncryptedKey) {
				t.Errorf("without a passphrase: err = %v, want ErrEncryptedKey", err)
			}
			if _, err := ParseKeyPEMWithPassphrase(data, []byte("Correct horse battery staple")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: err = %v, want ErrWrongPassphrase", err)
			}
			// Salt and IV are fresh each time.
			again, _ := marshalEncryptedKeyPEM(rand.Reader, k, pass, MinPBKDF2Iterations)
			q, _, _ := parseEncryptedPKCS8(pemDER(t, again))
			if bytes.Equal(p.salt, q.salt) || bytes.Equal(p.iv, q.iv) {
				t.Error("salt or IV repeated")
			}
		})
	}
	if _, err := MarshalEncryptedKeyPEM(rand.Reader, ed, nil); err == nil {
		t.Error("an empty passphrase was accepted")
	}
	if _, err := MarshalEncryptedKeyPEM(rand.Reader, signerOnly{ed}, []byte("x")); err == nil {
		t.Error("an opaque signer was encrypted")
	}
}

func mustEd25519(t *testing.T) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWriteEncryptedKeyFile(t *testing.T) {
	k, _ := Generate("p256")
	path := filepath.Join(t.TempDir(), "sub", "root.key")
	pass := []byte("s3cret")
	// The file, not the cost (TestEncryptedKeyProductionIterations, and
	// TestOpenSSLReadsOurEncryptedKeys reads what WriteEncryptedKeyFile writes).
	if err := writeEncryptedKeyFile(path, k, pass, MinPBKDF2Iterations); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("mode %o, want 600", m)
	}
	if enc, err := KeyFileEncrypted(path); err != nil || !enc {
		t.Errorf("KeyFileEncrypted = %v, %v", enc, err)
	}
	got, err := LoadKeyFileWithPassphrase(path, pass)
	if err != nil {
		t.Fatal(err)
	}
	sameKey(t, got, k)
	if _, err := LoadKeyFile(path); !errors.Is(err, ErrEncryptedKey) || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadKeyFile: err = %v", err)
	}
	// An unencrypted key is read whatever the passphrase.
	plain := filepath.Join(t.TempDir(), "plain.key")
	WriteKeyFile(plain, k)
	if got, err := LoadKeyFileWithPassphrase(plain, []byte("unused")); err != nil {
		t.Fatal(err)
	} else {
		sameKey(t, got, k)
	}
}

func openssl(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not found")
	}
	return bin
}

func runOpenSSL(t *testing.T, bin string, args ...string) ([]byte, error) {
	t.Helper()
	return exec.Command(bin, args...).CombinedOutput()
}

// openssl reads what we write, with the parameters we promise: the P-256
// key as WriteEncryptedKeyFile writes it, at 600000 iterations (0927C0);
// the others at the lowest count, which costs openssl and us a sixtieth,
// and changes nothing else in the file.
func TestOpenSSLReadsOurEncryptedKeys(t *testing.T) {
	bin := openssl(t)
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	os.WriteFile(passFile, []byte("a passphrase with spaces\nsecond line ignored\n"), 0o600)
	wrongFile := filepath.Join(dir, "wrong")
	os.WriteFile(wrongFile, []byte("a passphrase with space\n"), 0o600)
	pass, err := ReadPassphraseFile(passFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, kt := range []string{"p256", "rsa2048", "ed25519"} {
		t.Run(kt, func(t *testing.T) {
			var k crypto.Signer
			if kt == "ed25519" {
				k = mustEd25519(t)
			} else {
				k, _ = Generate(kt)
			}
			path := filepath.Join(dir, kt+".key")
			write, count := WriteEncryptedKeyFile, "0927C0"
			if kt != "p256" {
				write = func(path string, k crypto.Signer, pass []byte) error {
					return writeEncryptedKeyFile(path, k, pass, MinPBKDF2Iterations)
				}
				count = fmt.Sprintf("%X", MinPBKDF2Iterations) // 2710
			}
			if err := write(path, k, pass); err != nil {
				t.Fatal(err)
			}
			out, err := runOpenSSL(t, bin, "pkey", "-in", path, "-passin", "file:"+passFile, "-pubout")
			if err != nil {
				t.Fatalf("openssl pkey: %v\n%s", err, out)
			}
			spki, _ := x509.MarshalPKIXPublicKey(k.Public())
			want := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
			if !bytes.Equal(out, want) {
				t.Errorf("openssl's public key:\n%s\nwant:\n%s", out, want)
			}
			if out, err := runOpenSSL(t, bin, "pkey", "-in", path, "-passin", "file:"+wrongFile, "-noout"); err == nil {
				t.Errorf("openssl accepted a wrong passphrase:\n%s", out)
			}
			asn, err := runOpenSSL(t, bin, "asn1parse", "-in", path)
			if err != nil {
				t.Fatalf("openssl asn1parse: %v\n%s", err, asn)
			}
			for _, want := range []string{":PBES2", ":PBKDF2", ":hmacWithSHA256", ":aes-256-cbc", "INTEGER           :" + count} {
				if !strings.Contains(string(asn), want) {
					t.Errorf("openssl asn1parse lacks %q:\n%s", want, asn)
				}
			}
		})
	}
}

// We read what openssl writes, and refuse its weaker choices by name.
func TestWeReadOpenSSLEncryptedKeys(t *testing.T) {
	bin := openssl(t)
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	os.WriteFile(passFile, []byte("openssl pass\n"), 0o600)
	k, _ := Generate("p256")
	plain := filepath.Join(dir, "plain.key")
	if err := WriteKeyFile(plain, k); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"pbes2 aes-256 sha256 600000", []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256", "-iter", "600000"}, ""},
		{"pbes2 aes-128 sha512 10000", []string{"pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512", "-iter", "10000"}, ""},
		{"pbes2 aes-192 sha384 20000", []string{"pkcs8", "-topk8", "-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA384", "-iter", "20000"}, ""},
		{"openssl pkey default iterations", []string{"pkey", "-aes256"}, "iteration count 2048 is too low"},
		{"9999 iterations", []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc", "-iter", "9999"}, "iteration count 9999 is too low"},
		{"hmacWithSHA1", []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1", "-iter", "600000"}, "hmacWithSHA1"},
		{"des3", []string{"pkcs8", "-topk8", "-v2", "des3", "-iter", "600000"}, "cipher des-ede3-cbc"},
		{"scrypt", []string{"pkcs8", "-topk8", "-scrypt"}, "key derivation function scrypt"},
		{"pbes1", []string{"pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES"}, "pbeWithSHAAnd3-KeyTripleDES-CBC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".key")
			args := append(append([]string{}, tt.args...), "-in", plain, "-out", out, "-passout", "file:"+passFile)
			if o, err := runOpenSSL(t, bin, args...); err != nil {
				t.Fatalf("openssl %v: %v\n%s", args, err, o)
			}
			pass, _ := ReadPassphraseFile(passFile)
			got, err := LoadKeyFileWithPassphrase(out, pass)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "openssl pkcs8 -topk8 -v2 aes-256-cbc") {
					t.Errorf("the refusal does not say how to re-encrypt: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameKey(t, got, k)
			if _, err := LoadKeyFileWithPassphrase(out, []byte("openssl pas")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: err = %v", err)
			}
			if _, err := LoadKeyFile(out); !errors.Is(err, ErrEncryptedKey) {
				t.Errorf("no passphrase: err = %v", err)
			}
		})
	}
}

// epki builds an EncryptedPrivateKeyInfo with the given parts; nil parts
// are left out.
type epki struct {
	scheme, kdf, prf, enc asn1.ObjectIdentifier
	salt, iv, ct          []byte
	iter, keyLen          int64
	prfNull               bool
}

func (e epki) der(t *testing.T) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(e.scheme)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(e.kdf)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1OctetString(e.salt)
						b.AddASN1Int64(e.iter)
						if e.keyLen != 0 {
							b.AddASN1Int64(e.keyLen)
						}
						if e.prf != nil {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(e.prf)
								if e.prfNull {
									b.AddASN1NULL()
								}
							})
						}
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(e.enc)
					b.AddASN1OctetString(e.iv)
				})
			})
		})
		b.AddASN1OctetString(e.ct)
	})
	der, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func goodEPKI() epki {
	return epki{scheme: oidPBES2, kdf: oidPBKDF2, prf: oidHMACWithSHA256, prfNull: true, enc: oidAES256CBC,
		salt: make([]byte, 16), iv: make([]byte, 16), ct: make([]byte, 48), iter: 600000}
}

func TestParseEncryptedPKCS8Parameters(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(e *epki)
		wantErr string
	}{
		{"ours", func(e *epki) {}, ""},
		{"prf without NULL", func(e *epki) { e.prfNull = false }, ""},
		{"matching key length", func(e *epki) { e.keyLen = 32 }, ""},
		{"minimum iterations", func(e *epki) { e.iter = MinPBKDF2Iterations }, ""},
		{"minimum salt", func(e *epki) { e.salt = make([]byte, 8) }, ""},
		{"too few iterations", func(e *epki) { e.iter = MinPBKDF2Iterations - 1 }, "too low"},
		{"zero iterations", func(e *epki) { e.iter = 0 }, "too low"},
		{"absurd iterations", func(e *epki) { e.iter = 1 << 40 }, "implausibly high"},
		{"short salt", func(e *epki) { e.salt = make([]byte, 7) }, "salt of 7 bytes is too short"},
		{"default prf (SHA-1)", func(e *epki) { e.prf = nil }, "hmacWithSHA1"},
		{"unknown prf", func(e *epki) { e.prf = asn1.ObjectIdentifier{1, 2, 3, 4} }, "PBKDF2 with 1.2.3.4 is not supported"},
		{"unknown cipher", func(e *epki) { e.enc = asn1.ObjectIdentifier{1, 2, 3, 4} }, "cipher 1.2.3.4 is not supported"},
		{"single DES", func(e *epki) { e.enc = oidDESCBC; e.iv = make([]byte, 8) }, "des-cbc"},
		{"unknown KDF", func(e *epki) { e.kdf = asn1.ObjectIdentifier{1, 2, 3, 4} }, "key derivation function 1.2.3.4"},
		{"unknown scheme", func(e *epki) { e.scheme = asn1.ObjectIdentifier{1, 2, 3, 4} }, "encryption scheme 1.2.3.4 is not supported"},
		{"key length mismatch", func(e *epki) { e.keyLen = 16 }, "key length 16 does not fit aes-256-cbc"},
		{"short IV", func(e *epki) { e.iv = make([]byte, 8) }, "IV"},
		{"partial block", func(e *epki) { e.ct = make([]byte, 47) }, "whole number of AES blocks"},
		{"no ciphertext", func(e *epki) { e.ct = nil }, "whole number of AES blocks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := goodEPKI()
			tt.mod(&e)
			_, _, err := parseEncryptedPKCS8(e.der(t))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	good := goodEPKI().der(t)
	for name, der := range map[string][]byte{
		"empty": nil, "truncated": good[:len(good)-1], "trailing data": append(append([]byte{}, good...), 0),
		"not a sequence": {0x04, 0x00},
	} {
		if _, _, err := parseEncryptedPKCS8(der); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// Weak parameters are refused before any key derivation, so also by
	// DecryptPKCS8 whatever the passphrase.
	e := goodEPKI()
	e.iter = 1000
	if _, err := DecryptPKCS8(e.der(t), []byte("x")); err == nil || !strings.Contains(err.Error(), "too low") {
		t.Errorf("DecryptPKCS8 of a weak key: %v", err)
	}
}

func TestReadPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		content string
		want    string // "" means an error
	}{
		{"secret\n", "secret"},
		{"secret", "secret"},
		{"two words\nsecond line\n", "two words"},
		{"windows\r\n", "windows\r"}, // as openssl -passin file: reads it
		{"\nsecret\n", ""},
		{"", ""},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, string(rune('a'+i)))
		os.WriteFile(path, []byte(tt.content), 0o600)
		got, err := ReadPassphraseFile(path)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %q", tt.content, got)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.content, got, err, tt.want)
		}
	}
	if _, err := ReadPassphraseFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file was read")
	}
}

func TestIsEncryptedKeyPEM(t *testing.T) {
	enc := func(typ string, h map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: []byte{1}, Headers: h})
	}
	tests := []struct {
		name    string
		data    []byte
		want    bool
		wantErr bool
	}{
		{"pkcs8", enc("PRIVATE KEY", nil), false, false},
		{"pkcs1", enc("RSA PRIVATE KEY", nil), false, false},
		{"sec1 after parameters", append(enc("EC PARAMETERS", nil), enc("EC PRIVATE KEY", nil)...), false, false},
		{"encrypted pkcs8", enc("ENCRYPTED PRIVATE KEY", nil), true, false},
		{"legacy encrypted", enc("RSA PRIVATE KEY", map[string]string{"Proc-Type": "4,ENCRYPTED"}), true, false},
		{"crlf, text before", []byte("a comment\r\n" + strings.ReplaceAll(string(enc("ENCRYPTED PRIVATE KEY", nil)), "\n", "\r\n")), true, false},
		{"legacy crlf", []byte(strings.ReplaceAll(string(enc("EC PRIVATE KEY", map[string]string{"Proc-Type": "4,ENCRYPTED"})), "\n", "\r\n")), true, false},
		{"certificate", enc("CERTIFICATE", nil), false, true},
		{"garbage", []byte("garbage"), false, true},
	}
	for _, tt := range tests {
		got, err := IsEncryptedKeyPEM(tt.data)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: %v, %v", tt.name, got, err)
		}
	}
	// KeyFileEncrypted reads only the head of a file, here a long one.
	k, _ := Generate("rsa4096")
	path := filepath.Join(t.TempDir(), "long.key")
	WriteKeyFile(path, k)
	if enc, err := KeyFileEncrypted(path); err != nil || enc {
		t.Errorf("KeyFileEncrypted(rsa4096) = %v, %v", enc, err)
	}
	if _, err := KeyFileEncrypted(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was read")
	}
}

func TestCheckKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		perm os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o700, true}, {0o640, false}, {0o604, false}, {0o644, false}, {0o660, false}, {0o610, false}, {0o601, false}} {
		path := filepath.Join(dir, "k")
		os.WriteFile(path, []byte("k"), 0o600)
		if err := os.Chmod(path, tt.perm); err != nil {
			t.Fatal(err)
		}
		err := CheckKeyFileMode(path)
		if tt.ok {
			if err != nil {
				t.Errorf("%04o: %v", tt.perm, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) || !strings.Contains(err.Error(), fmt.Sprintf("has mode %04o", tt.perm)) {
			t.Errorf("%04o: err = %v", tt.perm, err)
		}
	}
	if err := CheckKeyFileMode(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file passed")
	}
}

func TestWriteNewFileAndRemoveFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copy.key")
	if err := WriteNewFile(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("mode %o", m)
	}
	if err := WriteNewFile(path, []byte("two"), 0o600); err == nil {
		t.Error("an existing file was replaced")
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("content %q", b)
	}
	if err := RemoveFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("not removed")
	}
	if err := RemoveFile(path); err == nil {
		t.Error("removing a missing file succeeded")
	}
}

func FuzzParseEncryptedPKCS8(f *testing.F) {
	k, _ := Generate("p256")
	data, err := marshalEncryptedKeyPEM(rand.Reader, k, []byte("fuzz"), MinPBKDF2Iterations)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := pem.Decode(data)
	f.Add(b.Bytes)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		p, ct, err := parseEncryptedPKCS8(der)
		if err != nil {
			return
		}
		if p.iterations < MinPBKDF2Iterations || p.iterations > maxPBKDF2Iterations || len(p.salt) < minSaltLen ||
			len(p.iv) != 16 || p.prf == nil || (p.keyLen != 16 && p.keyLen != 24 && p.keyLen != 32) || len(ct) == 0 || len(ct)%16 != 0 {
			t.Fatalf("accepted parameters %+v, %d bytes", p, len(ct))
		}
	})
}
