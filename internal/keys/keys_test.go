package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	tests := []struct {
		keyType string
		rsa     bool
	}{
		{"rsa2048", true}, {"rsa3072", true}, {"rsa4096", true}, {"p256", false}, {"p384", false},
	}
	for _, tt := range tests {
		t.Run(tt.keyType, func(t *testing.T) {
			t.Parallel()
			if !ValidKeyType(tt.keyType) {
				t.Fatalf("ValidKeyType(%q) = false", tt.keyType)
			}
			k, err := Generate(tt.keyType)
			if err != nil {
				t.Fatal(err)
			}
			if got := KeyTypeOf(k.Public()); got != tt.keyType {
				t.Errorf("KeyTypeOf = %q, want %q", got, tt.keyType)
			}
			if got := KeyTypeOf(k); got != tt.keyType {
				t.Errorf("KeyTypeOf(signer) = %q, want %q", got, tt.keyType)
			}
			_, isDecrypter := k.(crypto.Decrypter)
			if isDecrypter != tt.rsa {
				t.Errorf("crypto.Decrypter = %v, want %v", isDecrypter, tt.rsa)
			}
		})
	}
	for _, bad := range []string{"", "rsa1024", "p521", "ed25519", "RSA2048"} {
		if ValidKeyType(bad) {
			t.Errorf("ValidKeyType(%q) = true", bad)
		}
		if _, err := Generate(bad); err == nil {
			t.Errorf("Generate(%q) succeeded", bad)
		}
	}
}

func TestKeyTypeOf(t *testing.T) {
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	rsa1024 := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	tests := []struct {
		pub  crypto.PublicKey
		want string
	}{
		{p224.Public(), "p224"},
		{p521.Public(), "p521"},
		{ed, "ed25519"},
		{rsa1024, "rsa1024"},
		{nil, "unknown"},
		{"nonsense", "unknown"},
		{(*rsa.PublicKey)(nil), "unknown"},
	}
	for _, tt := range tests {
		if got := KeyTypeOf(tt.pub); got != tt.want {
			t.Errorf("KeyTypeOf(%T) = %q, want %q", tt.pub, got, tt.want)
		}
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestWriteLoadKeyFile(t *testing.T) {
	for _, kt := range []string{"p256", "p384", "rsa2048"} {
		t.Run(kt, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sub", "deeper", "k.key")
			k, err := Generate(kt)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteKeyFile(path, k); err != nil {
				t.Fatal(err)
			}
			if m := mode(t, path); m != 0o600 {
				t.Errorf("key mode %o, want 600", m)
			}
			if m := mode(t, filepath.Dir(path)); m != 0o700 {
				t.Errorf("created dir mode %o, want 700", m)
			}
			data, _ := os.ReadFile(path)
			if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
				t.Errorf("not PKCS#8 PEM: %.40q", data)
			}
			got, err := LoadKeyFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
				t.Error("loaded key differs")
			}
			// Overwrite atomically, leaving no temporary file behind.
			k2, _ := Generate(kt)
			if err := WriteKeyFile(path, k2); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries after overwrite, want 1", len(entries))
			}
			got, _ = LoadKeyFile(path)
			if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k2.Public()) {
				t.Error("overwritten key not loaded")
			}
		})
	}
}

// signerOnly hides the concrete key type, like an HSM-backed signer.
type signerOnly struct{ crypto.Signer }

func TestWriteKeyFileRefusesOpaqueSigner(t *testing.T) {
	k, _ := Generate("p256")
	if err := WriteKeyFile(filepath.Join(t.TempDir(), "k"), signerOnly{k}); err == nil {
		t.Fatal("an opaque signer was written")
	}
}

func TestLoadKeyFormats(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	enc := func(typ string, b []byte, h map[string]string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b, Headers: h}))
	}
	tests := []struct {
		name    string
		data    string
		want    crypto.PublicKey
		wantErr string
	}{
		{"pkcs1", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), nil), rsaKey.Public(), ""},
		{"sec1", enc("EC PRIVATE KEY", sec1, nil), ecKey.Public(), ""},
		{"sec1 with params", enc("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}, nil) + enc("EC PRIVATE KEY", sec1, nil), ecKey.Public(), ""},
		{"pkcs8", enc("PRIVATE KEY", pkcs8, nil), ecKey.Public(), ""},
		{"encrypted pkcs8", enc("ENCRYPTED PRIVATE KEY", []byte{1}, nil), nil, "encrypted"},
		{"encrypted legacy", enc("RSA PRIVATE KEY", []byte{1}, map[string]string{"Proc-Type": "4,ENCRYPTED"}), nil, "encrypted"},
		{"certificate", enc("CERTIFICATE", []byte{1}, nil), nil, "unexpected PEM block"},
		{"garbage", "not a key", nil, "no PEM private key"},
		{"corrupt", enc("PRIVATE KEY", []byte{0x30, 0x03, 1, 2, 3}, nil), nil, "parsing PRIVATE KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.pem")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadKeyFile(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want) {
				t.Error("wrong key loaded")
			}
		})
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file loaded")
	}
}

func selfSigned(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	k, _ := Generate("p256")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestWriteLoadCertFile(t *testing.T) {
	a, b := selfSigned(t, "a"), selfSigned(t, "b")
	dir := t.TempDir()
	path := filepath.Join(dir, "chain.pem")
	if err := WriteCertFile(path, a, b); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o644 {
		t.Errorf("cert mode %o, want 644", m)
	}
	got, err := LoadCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(a) || !got[1].Equal(b) {
		t.Fatalf("loaded %d certificates, want a then b", len(got))
	}
	// DER is accepted too.
	der := filepath.Join(dir, "a.der")
	os.WriteFile(der, a.Raw, 0o644)
	if got, err := LoadCertFile(der); err != nil || len(got) != 1 || !got[0].Equal(a) {
		t.Errorf("DER: %v", err)
	}
	if err := WriteCertFile(path); err == nil {
		t.Error("writing no certificate succeeded")
	}
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"), 0o644)
	if _, err := LoadCertFile(empty); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Errorf("file without certificates: err = %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		perm os.FileMode
	}{{"key", 0o600}, {"cert", 0o644}} {
		path := filepath.Join(dir, "sub", tt.name)
		for _, data := range []string{"first", "second, longer"} {
			if err := WriteFileAtomic(path, []byte(data), tt.perm); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != data {
				t.Errorf("%s: content %q, want %q", tt.name, got, data)
			}
			if m := mode(t, path); m != tt.perm {
				t.Errorf("%s: mode %o, want %o", tt.name, m, tt.perm)
			}
		}
	}
	if m := mode(t, filepath.Join(dir, "sub")); m != 0o700 {
		t.Errorf("created directory mode %o, want 700", m)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sub"))
	if len(entries) != 2 {
		t.Errorf("%d entries, want 2 (temporary file left behind?)", len(entries))
	}
}

// sameKeySigner is another crypto.Signer of the same key, as a wrapper is.
type sameKeySigner struct{ crypto.Signer }

func TestWrapped(t *testing.T) {
	key, err := Generate(P256)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Generate(P256)
	if err != nil {
		t.Fatal(err)
	}
	same := sameKeySigner{key}
	for _, c := range []struct {
		name string
		wrap func(crypto.Signer) crypto.Signer
		want crypto.Signer
	}{
		{"no wrapper", nil, key},
		{"the wrapper declines", func(crypto.Signer) crypto.Signer { return nil }, key},
		{"another key", func(crypto.Signer) crypto.Signer { return other }, key},
		{"the same key wrapped", func(crypto.Signer) crypto.Signer { return same }, same},
	} {
		if got := Wrapped(key, c.wrap); got != c.want {
			t.Errorf("%s: got %T", c.name, got)
		}
	}
}

// A PIN file that others may read is refused like a key file: the PIN
// opens every key of the token.
func TestReadPINRefusesReadableFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		perm os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, false}, {0o604, false}, {0o644, false}} {
		path := filepath.Join(dir, "pin")
		os.WriteFile(path, []byte("123456\n"), 0o600)
		if err := os.Chmod(path, tt.perm); err != nil {
			t.Fatal(err)
		}
		pin, err := PKCS11Config{PINFile: path}.readPIN()
		if tt.ok {
			if err != nil || pin != "123456" {
				t.Errorf("%04o: %q, %v", tt.perm, pin, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) || !strings.Contains(err.Error(), "PKCS#11 PIN") {
			t.Errorf("%04o: err = %v", tt.perm, err)
		}
	}
}
