package keys

import (
	"crypto"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	s := Files(dir)
	var _ Source = s
	if ok, err := s.Has("issuing"); ok || err != nil {
		t.Fatalf("Has on an empty dir = %v, %v", ok, err)
	}
	if _, err := s.Open("issuing"); !errors.Is(err, ErrKeyNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing key: %v, want ErrKeyNotFound", err)
	}
	k, err := s.Create("issuing", P256)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "issuing.key")
	if s.Path("issuing") != path || s.Where("issuing") != path {
		t.Errorf("Path = %s, Where = %s, want %s", s.Path("issuing"), s.Where("issuing"), path)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if _, err := s.Create("issuing", P256); !errors.Is(err, ErrKeyExists) {
		t.Errorf("Create over an existing key: %v, want ErrKeyExists", err)
	}
	back, err := s.Open("issuing")
	if err != nil || !pki.SamePublicKey(back.Public(), k.Public()) {
		t.Fatalf("Open: %v (same key: %v)", err, err == nil && pki.SamePublicKey(back.Public(), k.Public()))
	}
	// The file is today's format: LoadKeyFile reads it.
	if f, err := LoadKeyFile(path); err != nil || !pki.SamePublicKey(f.Public(), k.Public()) {
		t.Errorf("LoadKeyFile: %v", err)
	}
	// A key file others may read is refused, naming the chmod.
	os.Chmod(path, 0o640)
	if _, err := s.Open("issuing"); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("Open of a 0640 key: %v", err)
	}
	os.Chmod(path, 0o600)
	if !s.Exportable() {
		t.Error("files are exportable")
	}
	if err := s.Remove("issuing"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("issuing"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("second Remove: %v", err)
	}
	// RSA keys are decrypters.
	r, err := s.Create("ra", RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(crypto.Decrypter); !ok {
		t.Error("an RSA file key is not a crypto.Decrypter")
	}
}

func TestFileSourcePassphrase(t *testing.T) {
	dir := t.TempDir()
	// The cheapest count read: what is checked here is the file
	// source, not the cost (TestEncryptedKeyProductionIterations).
	s := &FileSource{Dir: dir, Passphrase: []byte("correct horse"), Iterations: MinPBKDF2Iterations}
	k, err := s.Create("root", P256)
	if err != nil {
		t.Fatal(err)
	}
	if enc, err := KeyFileEncrypted(s.Path("root")); err != nil || !enc {
		t.Fatalf("root.key encrypted = %v, %v", enc, err)
	}
	if _, err := Files(dir).Open("root"); !errors.Is(err, ErrEncryptedKey) {
		t.Errorf("Open without the passphrase: %v, want ErrEncryptedKey", err)
	}
	if _, err := (&FileSource{Dir: dir, Passphrase: []byte("wrong")}).Open("root"); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open with a wrong passphrase: %v", err)
	}
	back, err := s.Open("root")
	if err != nil || !pki.SamePublicKey(back.Public(), k.Public()) {
		t.Fatalf("Open with the passphrase: %v", err)
	}
	if _, err := (&FileSource{Dir: dir, Passphrase: []byte{}}).Create("x", P256); err == nil {
		t.Error("an empty passphrase was accepted")
	}
}

func TestDirFilesOnly(t *testing.T) {
	dir := t.TempDir()
	d := &Dir{Path: dir}
	k, err := d.Create("ra", RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ra.key")); err != nil {
		t.Fatalf("no ra.key: %v", err)
	}
	if in, _ := d.InToken("ra"); in {
		t.Error("a key file counts as in a token")
	}
	back, err := d.Open("ra")
	if err != nil || !pki.SamePublicKey(back.Public(), k.Public()) {
		t.Fatalf("Open: %v", err)
	}
	if !d.Exportable() || d.Where("ra") != filepath.Join(dir, "ra.key") {
		t.Errorf("Exportable %v, Where %s", d.Exportable(), d.Where("ra"))
	}
}

func TestWithPrefix(t *testing.T) {
	dir := t.TempDir()
	s := WithPrefix(Files(dir), "ocsp-")
	if _, err := s.Create("abc", P256); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ocsp-abc.key")); err != nil {
		t.Error(err)
	}
	if ok, _ := s.Has("abc"); !ok || !s.Exportable() {
		t.Error("Has or Exportable wrong")
	}
	if _, created, err := OpenOrCreate(s, "abc", P256); created || err != nil {
		t.Errorf("OpenOrCreate of an existing key: created=%v err=%v", created, err)
	}
	if _, created, err := OpenOrCreate(s, "def", P256); !created || err != nil {
		t.Errorf("OpenOrCreate of a new key: created=%v err=%v", created, err)
	}
}

func TestParsePKCS11URI(t *testing.T) {
	slot := func(n int) *int { return &n }
	tests := []struct {
		uri  string
		want PKCS11Config
		err  string
	}{
		{"pkcs11:token=scepter;object=ca1?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/scepter/pin",
			PKCS11Config{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "scepter", PINFile: "/etc/scepter/pin", KeyPrefix: "ca1"}, ""},
		{"pkcs11:token=My%20Token;type=private?module-path=/m.so&pin-source=file:///run/pin",
			PKCS11Config{Module: "/m.so", TokenLabel: "My Token", PINFile: "/run/pin"}, ""},
		{"pkcs11:serial=5f2466ad37258e69?pin-source=/p", PKCS11Config{TokenSerial: "5f2466ad37258e69", PINFile: "/p"}, ""},
		{"pkcs11:slot-id=3", PKCS11Config{Slot: slot(3)}, ""},
		{"PKCS11:token=a", PKCS11Config{TokenLabel: "a"}, ""},
		{"pkcs11:token=a;pin-value=1234", PKCS11Config{}, "pin-value"},
		{"pkcs11:token=a?pin-value=1234", PKCS11Config{}, "pin-value"},
		{"pkcs11:token=a;id=%01", PKCS11Config{}, "id= is not supported"},
		{"pkcs11:token=a;colour=red", PKCS11Config{}, "unknown attribute"},
		{"pkcs11:token=a;token=b", PKCS11Config{}, "twice"},
		{"pkcs11:slot-id=x", PKCS11Config{}, "slot-id"},
		{"pkcs11:token=a?pin-source=https://x/pin", PKCS11Config{}, "only file:"},
		{"pkcs11:token=a?pin-source=file://localhost/run/pin", PKCS11Config{TokenLabel: "a", PINFile: "/run/pin"}, ""},
		{"pkcs11:token=a?pin-source=FILE:///run/pin", PKCS11Config{TokenLabel: "a", PINFile: "/run/pin"}, ""},
		{"pkcs11:token=a?pin-source=file://pinhost/run/pin", PKCS11Config{}, "names the host"},
		{"file:/x", PKCS11Config{}, "not a PKCS#11 URI"},
	}
	for _, tt := range tests {
		got, err := ParsePKCS11URI(tt.uri)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.uri, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.uri, err)
			continue
		}
		if got.Module != tt.want.Module || got.TokenLabel != tt.want.TokenLabel || got.TokenSerial != tt.want.TokenSerial ||
			got.PINFile != tt.want.PINFile || got.KeyPrefix != tt.want.KeyPrefix || (got.Slot == nil) != (tt.want.Slot == nil) ||
			got.Slot != nil && *got.Slot != *tt.want.Slot {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.uri, got, tt.want)
		}
	}
	// A reference names the token as configured, and round-trips odd labels.
	c := PKCS11Config{TokenLabel: "a;b?c"}
	ref := "pkcs11:" + c.tokenSelector() + ";object=" + pctEncode("scepter-x/y z")
	if label, err := c.refLabel(ref); err != nil || label != "scepter-x/y z" {
		t.Errorf("refLabel(%s) = %q, %v", ref, label, err)
	}
}

func TestPKCS11ConfigValidate(t *testing.T) {
	one := 1
	tests := []struct {
		c    PKCS11Config
		want string
	}{
		{PKCS11Config{TokenLabel: "t", PINFile: "p"}, "no module"},
		{PKCS11Config{Module: "m", PINFile: "p"}, "no token"},
		{PKCS11Config{Module: "m", TokenLabel: "t", Slot: &one, PINFile: "p"}, "more than once"},
		{PKCS11Config{Module: "m", TokenLabel: "t"}, "no PIN file"},
		{PKCS11Config{Module: "m", TokenLabel: "t", PINFile: "p"}, ""},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.c, err, tt.want)
		}
	}
}

func genKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := Generate(P256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
