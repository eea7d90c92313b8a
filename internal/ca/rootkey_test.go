package ca

import (
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

const testPassphrase = "root key passphrase"

func passphrase(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

// encryptedInit makes a CA whose root.key is encrypted with testPassphrase
// at the lowest PBKDF2 count that reads back: these tests check what is
// done with an encrypted key, not its cost (600,000 iterations took
// seconds each under the race detector); production's count is
// TestEncryptedRootKeyProductionIterations'.
func encryptedInit() InitOptions {
	return InitOptions{RootKeyPassphrase: passphrase(testPassphrase), rootKeyIterations: keys.MinPBKDF2Iterations}
}

// cheapExport is opts encrypting a copy, if it does, cheaply (see
// encryptedInit).
func cheapExport(opts ExportRootKeyOptions) ExportRootKeyOptions {
	opts.iterations = keys.MinPBKDF2Iterations
	return opts
}

// pbkdf2Count is the PBKDF2 iteration count of the encrypted PKCS#8 key
// file at path.
func pbkdf2Count(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != keys.EncryptedKeyPEMType {
		t.Fatalf("%s is not an encrypted PKCS#8 PEM", path)
	}
	// EncryptedPrivateKeyInfo: PBES2 { PBKDF2 { salt, iterationCount, ... }, cipher }.
	var info struct {
		Algorithm struct {
			OID    asn1.ObjectIdentifier
			Params struct {
				KDF struct {
					OID    asn1.ObjectIdentifier
					Params struct {
						Salt       []byte
						Iterations int
					}
				}
			}
		}
	}
	if _, err := asn1.Unmarshal(block.Bytes, &info); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return info.Algorithm.Params.KDF.Params.Iterations
}

// What scepter writes, as README and SECURITY say: a new CA's encrypted
// root.key and a copy ExportRootKey encrypts are at keys.PBKDF2Iterations
// (600,000). The one test that pays for it; the others encrypt cheaply.
func TestEncryptedRootKeyProductionIterations(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{RootKeyPassphrase: passphrase(testPassphrase)}, clock)
	if n := pbkdf2Count(t, filepath.Join(dir, "ca", RootKeyFile)); n != keys.PBKDF2Iterations {
		t.Errorf("root.key of a new CA: %d iterations, want %d", n, keys.PBKDF2Iterations)
	}
	plainDir, _ := newCA(t, InitOptions{}, clock)
	out := filepath.Join(t.TempDir(), "copy.key")
	if _, err := ExportRootKey(plainDir, out, ExportRootKeyOptions{NewPassphrase: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if n := pbkdf2Count(t, out); n != keys.PBKDF2Iterations {
		t.Errorf("the encrypted copy: %d iterations, want %d", n, keys.PBKDF2Iterations)
	}
}

// noNext checks that a refused rollover left nothing behind.
func noNext(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "ca", NextDir)); err == nil {
		t.Error("next/ created")
	}
	if left := dotEntries(t, filepath.Join(dir, "ca")); len(left) != 0 {
		t.Errorf("temporary entries left: %v", left)
	}
}

// Loading (LoadOrCreate, Load, Reload, and the promotion of a due next CA)
// never reads root.key: a server starts, issues and switches CAs with
// root.key removed, replaced by garbage, or encrypted. The old code read it
// on every load.
func TestLoadNeverReadsRootKey(t *testing.T) {
	tests := []struct {
		name   string
		init   InitOptions
		damage func(t *testing.T, path string)
	}{
		{"removed", InitOptions{}, func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage", InitOptions{}, func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("not a key at all"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"encrypted", encryptedInit(), func(*testing.T, string) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := pkitest.NewClock(t0)
			dir, _ := newCA(t, tt.init, clock)
			switchAt := t0.Add(day)
			next, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt, RootKeyPassphrase: []byte(testPassphrase)}, clock)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, filepath.Join(dir, "ca", RootKeyFile))

			clock.Advance(time.Hour)
			a, created, err := LoadOrCreate(dir, InitOptions{}, clock) // a server start
			if err != nil || created {
				t.Fatalf("start: created=%v err=%v", created, err)
			}
			leaf := issueLeaf(t, a.Issuer, "device", clock.Now(), day)
			if iss, err := a.IssuedByUs(leaf, clock.Now()); err != nil || iss.ID != a.Issuer.ID {
				t.Errorf("issuance: %v", err)
			}
			if n, _, ok := a.Next(clock.Now()); !ok || n.ID != next.ID {
				t.Error("the pending next CA was not loaded")
			}
			if _, err := Load(dir, clock); err != nil {
				t.Fatalf("Load: %v", err)
			}
			// The switch: Reload promotes on disk, a start loads the result.
			clock.Set(switchAt.Add(time.Minute))
			if err := a.Reload(clock.Now()); err != nil {
				t.Fatalf("Reload with promotion: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "ca", NextDir)); err == nil {
				t.Error("not promoted")
			}
			b, _, err := LoadOrCreate(dir, InitOptions{}, clock)
			if err != nil || b.Issuer.ID != next.ID {
				t.Fatalf("start after the switch: %v", err)
			}
			issueLeaf(t, b.Issuer, "device 2", clock.Now(), day)
		})
	}
}

// A promotion at start (not by Reload) does not need root.key either.
func TestPromotionAtStartWithoutRootKey(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, old := newCA(t, InitOptions{}, clock)
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "ca", RootKeyFile))
	clock.Advance(2 * day)
	a, _, err := LoadOrCreate(dir, InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if a.Issuer.ID != next.ID || len(a.Previous()) != 1 || a.Previous()[0].ID != old.Issuer.ID {
		t.Error("not promoted")
	}
}

func TestCreateWithEncryptedRootKey(t *testing.T) {
	dir := t.TempDir()
	a, created, err := LoadOrCreate(dir, encryptedInit(), fixedClock{t0})
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	path := filepath.Join(dir, "ca", RootKeyFile)
	if m := perm(t, path); m != 0o600 {
		t.Errorf("root.key mode %o, want 600", m)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "-----BEGIN ENCRYPTED PRIVATE KEY-----\n") {
		t.Errorf("root.key is not an encrypted PKCS#8 PEM: %.40q", b)
	}
	key, err := keys.LoadKeyFileWithPassphrase(path, []byte(testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	if !pki.SamePublicKey(key.Public(), a.Root.PublicKey) {
		t.Error("root.key is not the root's key")
	}
	if info, err := RootKeyStatus(dir); err != nil || !info.Present || !info.Encrypted || info.Path != path {
		t.Errorf("RootKeyStatus = %+v, %v", info, err)
	}
	// The passphrase is asked for only when a CA is created.
	asked := func() ([]byte, error) { t.Error("passphrase asked for an existing CA"); return nil, errors.New("no") }
	if _, created, err := LoadOrCreate(dir, InitOptions{RootKeyPassphrase: asked}, fixedClock{t0}); err != nil || created {
		t.Fatalf("reload: created=%v err=%v", created, err)
	}

	for name, pf := range map[string]func() ([]byte, error){
		"unreadable": func() ([]byte, error) { return nil, errors.New("no such file") },
		"empty":      passphrase(""),
	} {
		empty := t.TempDir()
		if _, _, err := LoadOrCreate(empty, InitOptions{RootKeyPassphrase: pf}, fixedClock{t0}); err == nil || !strings.Contains(err.Error(), "passphrase") {
			t.Errorf("%s passphrase: err = %v", name, err)
		}
		if entries, _ := os.ReadDir(empty); len(entries) != 0 {
			t.Errorf("%s passphrase: something was created", name)
		}
	}
}

func TestRolloverRootKey(t *testing.T) {
	clock := pkitest.NewClock(t0)
	// A root key kept elsewhere, encrypted and not, and another CA's.
	plainDir, plainCA := newCA(t, InitOptions{}, clock)
	offline := t.TempDir()
	plainCopy := filepath.Join(offline, "plain.key")
	if _, err := ExportRootKey(plainDir, plainCopy, ExportRootKeyOptions{}); err != nil {
		t.Fatal(err)
	}
	encCopy := filepath.Join(offline, "enc.key")
	if _, err := ExportRootKey(plainDir, encCopy, cheapExport(ExportRootKeyOptions{NewPassphrase: []byte(testPassphrase)})); err != nil {
		t.Fatal(err)
	}
	otherDir, _ := newCA(t, InitOptions{}, clock)
	otherKey := filepath.Join(otherDir, "ca", RootKeyFile)

	tests := []struct {
		name    string
		init    InitOptions
		remove  bool // root.key taken off the server
		file    string
		pass    string
		wantErr error
		want    string
	}{
		{"on disk, encrypted", encryptedInit(), false, "", testPassphrase, nil, ""},
		{"on disk, encrypted, no passphrase", encryptedInit(), false, "", "", ErrRootKeyEncrypted, "root.key"},
		{"on disk, encrypted, wrong passphrase", encryptedInit(), false, "", "wrong", keys.ErrWrongPassphrase, "root.key"},
		{"on disk, not encrypted, passphrase unused", InitOptions{}, false, "", "unused", nil, ""},
		{"offline, no file given", InitOptions{}, true, "", "", ErrRootKeyMissing, "root.key does not exist"},
		{"offline, from a file", InitOptions{}, true, plainCopy, "", nil, ""},
		{"offline, from an encrypted file", InitOptions{}, true, encCopy, testPassphrase, nil, ""},
		{"offline, encrypted file, no passphrase", InitOptions{}, true, encCopy, "", ErrRootKeyEncrypted, "enc.key"},
		{"offline, encrypted file, wrong passphrase", InitOptions{}, true, encCopy, testPassphrase + "!", keys.ErrWrongPassphrase, "enc.key"},
		{"another CA's root key", InitOptions{}, false, otherKey, "", ErrRootKeyMismatch, "does not match root.crt"},
		{"a missing file", InitOptions{}, false, filepath.Join(offline, "missing.key"), "", nil, "missing.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dir string
			var a *Authority
			if tt.file == plainCopy || tt.file == encCopy {
				// These copies are of plainCA's root key: roll plainCA over,
				// in a copy of its directory.
				dir = t.TempDir()
				copyTree(t, plainDir, dir)
				a = plainCA
			} else {
				dir, a = newCA(t, tt.init, clock)
			}
			if tt.remove {
				os.Remove(filepath.Join(dir, "ca", RootKeyFile))
			}
			opts := RolloverOptions{SwitchAt: clock.Now().Add(day), RootKeyFile: tt.file}
			if tt.pass != "" {
				opts.RootKeyPassphrase = []byte(tt.pass)
			}
			next, _, err := Rollover(dir, opts, clock)
			if tt.wantErr == nil && tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := next.Cert.CheckSignatureFrom(a.Root); err != nil {
					t.Errorf("the next CA is not signed by the root: %v", err)
				}
				return
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.want)
			}
			noNext(t, dir)
		})
	}
}

// copyTree copies the files of a data directory, keeping their modes.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(dst, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestExportRootKey(t *testing.T) {
	tests := []struct {
		name      string
		init      InitOptions
		opts      ExportRootKeyOptions
		readWith  string // passphrase that reads the copy; "" for none
		encrypted bool
	}{
		{"plain, copied as is", InitOptions{}, ExportRootKeyOptions{}, "", false},
		{"plain, encrypted", InitOptions{}, ExportRootKeyOptions{NewPassphrase: []byte("new")}, "new", true},
		{"encrypted, copied as is", encryptedInit(), ExportRootKeyOptions{Passphrase: []byte(testPassphrase)}, testPassphrase, true},
		{"encrypted, re-encrypted", encryptedInit(), ExportRootKeyOptions{Passphrase: []byte(testPassphrase), NewPassphrase: []byte("new")}, "new", true},
		{"plain, removed", InitOptions{}, ExportRootKeyOptions{Remove: true}, "", false},
		{"encrypted, removed", encryptedInit(), ExportRootKeyOptions{Passphrase: []byte(testPassphrase), Remove: true}, testPassphrase, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := pkitest.NewClock(t0)
			dir, a := newCA(t, tt.init, clock)
			src := filepath.Join(dir, "ca", RootKeyFile)
			before, _ := os.ReadFile(src)
			out := filepath.Join(t.TempDir(), "root-offline.key")
			enc, err := ExportRootKey(dir, out, cheapExport(tt.opts))
			if err != nil {
				t.Fatal(err)
			}
			if enc != tt.encrypted {
				t.Errorf("encrypted = %v, want %v", enc, tt.encrypted)
			}
			if m := perm(t, out); m != 0o600 {
				t.Errorf("copy mode %o, want 600", m)
			}
			var pass []byte
			if tt.readWith != "" {
				pass = []byte(tt.readWith)
			}
			key, err := keys.LoadKeyFileWithPassphrase(out, pass)
			if err != nil {
				t.Fatal(err)
			}
			if !pki.SamePublicKey(key.Public(), a.Root.PublicKey) {
				t.Error("the copy is not the root key")
			}
			if got, _ := keys.KeyFileEncrypted(out); got != tt.encrypted {
				t.Errorf("copy encrypted = %v", got)
			}
			if tt.opts.NewPassphrase == nil {
				if after, _ := os.ReadFile(out); string(after) != string(before) {
					t.Error("not a byte-for-byte copy")
				}
			}
			_, err = os.Stat(src)
			if tt.opts.Remove != errors.Is(err, os.ErrNotExist) {
				t.Errorf("Remove=%v, but root.key: %v", tt.opts.Remove, err)
			}
			if info, _ := RootKeyStatus(dir); info.Present == tt.opts.Remove {
				t.Errorf("RootKeyStatus = %+v", info)
			}
			// The CA keeps working; a rollover takes the copy.
			if _, _, err := LoadOrCreate(dir, InitOptions{}, clock); err != nil {
				t.Fatal(err)
			}
			if tt.opts.Remove {
				if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock); !errors.Is(err, ErrRootKeyMissing) {
					t.Errorf("rollover without the key: %v", err)
				}
			}
			if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day), RootKeyFile: out, RootKeyPassphrase: pass}, clock); err != nil {
				t.Errorf("rollover with the copy: %v", err)
			}
		})
	}
}

func TestExportRootKeyRefuses(t *testing.T) {
	clock := pkitest.NewClock(t0)
	encDir, _ := newCA(t, encryptedInit(), clock)
	plainDir, _ := newCA(t, InitOptions{}, clock)
	gone, _ := newCA(t, InitOptions{}, clock)
	os.Remove(filepath.Join(gone, "ca", RootKeyFile))
	other, _ := newCA(t, InitOptions{}, clock)
	existing := filepath.Join(t.TempDir(), "existing.key")
	os.WriteFile(existing, []byte("keep me"), 0o600)

	tests := []struct {
		name    string
		dir     string
		out     string
		opts    ExportRootKeyOptions
		wantErr error
		want    string
	}{
		{"encrypted without its passphrase", encDir, "", ExportRootKeyOptions{Remove: true}, ErrRootKeyEncrypted, "root.key"},
		{"encrypted, wrong passphrase", encDir, "", ExportRootKeyOptions{Passphrase: []byte("wrong"), Remove: true}, keys.ErrWrongPassphrase, ""},
		{"no root key", gone, "", ExportRootKeyOptions{Remove: true}, ErrRootKeyMissing, ""},
		{"no CA", t.TempDir(), "", ExportRootKeyOptions{Remove: true}, ErrNoCA, ""},
		{"existing output", plainDir, existing, ExportRootKeyOptions{Remove: true}, nil, "exists"},
		{"empty new passphrase", plainDir, "", ExportRootKeyOptions{NewPassphrase: []byte{}, Remove: true}, nil, "empty passphrase"},
		{"root.key of another CA", other, "", ExportRootKeyOptions{Remove: true}, ErrRootKeyMismatch, ""},
	}
	// "root.key of another CA": plainDir's root key put into other.
	b, _ := os.ReadFile(filepath.Join(plainDir, "ca", RootKeyFile))
	os.WriteFile(filepath.Join(other, "ca", RootKeyFile), b, 0o600)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.out
			if out == "" {
				out = filepath.Join(t.TempDir(), "copy.key")
			}
			before, _ := os.ReadFile(filepath.Join(tt.dir, "ca", RootKeyFile))
			_, err := ExportRootKey(tt.dir, out, cheapExport(tt.opts))
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.want)
			}
			if out != existing {
				if _, err := os.Stat(out); err == nil {
					t.Error("a copy was left")
				}
			} else if b, _ := os.ReadFile(existing); string(b) != "keep me" {
				t.Error("an existing file was overwritten")
			}
			if after, _ := os.ReadFile(filepath.Join(tt.dir, "ca", RootKeyFile)); string(after) != string(before) {
				t.Error("root.key changed or removed")
			}
		})
	}
}

func TestRootKeyStatus(t *testing.T) {
	dir, _ := newCA(t, InitOptions{}, fixedClock{t0})
	path := filepath.Join(dir, "ca", RootKeyFile)
	if info, err := RootKeyStatus(dir); err != nil || !info.Present || info.Encrypted || info.Path != path {
		t.Errorf("plain: %+v, %v", info, err)
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if info, err := RootKeyStatus(dir); err == nil || !info.Present {
		t.Errorf("garbage: %+v, %v", info, err)
	}
	os.Remove(path)
	if info, err := RootKeyStatus(dir); err != nil || info.Present {
		t.Errorf("absent: %+v, %v", info, err)
	}
}

// Every key file of the CA directory that group or others may access is
// refused, by LoadOrCreate and Load, naming the file and the chmod; the old
// code loaded them without a word.
func TestKeyFileModesEnforced(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, old := newCA(t, InitOptions{}, clock)
	caDir := filepath.Join(dir, "ca")
	// A previous generation (after a promotion) and a pending next one.
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * day)
	if _, _, err := LoadOrCreate(dir, InitOptions{}, clock); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: clock.Now().Add(day)}, clock); err != nil {
		t.Fatal(err)
	}
	prev := filepath.Join(PreviousDir, old.Issuer.ID)
	files := []string{RootKeyFile, IssuingKeyFile, RAKeyFile,
		filepath.Join(NextDir, IssuingKeyFile), filepath.Join(NextDir, RAKeyFile),
		filepath.Join(prev, IssuingKeyFile), filepath.Join(prev, RAKeyFile)}
	for _, f := range files {
		for _, m := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
			t.Run(fmt.Sprintf("%s %04o", f, m), func(t *testing.T) {
				path := filepath.Join(caDir, f)
				if err := os.Chmod(path, m); err != nil {
					t.Fatal(err)
				}
				defer os.Chmod(path, 0o600)
				for name, load := range map[string]func() error{
					"LoadOrCreate": func() error { _, _, err := LoadOrCreate(dir, InitOptions{}, clock); return err },
					"Load":         func() error { _, err := Load(dir, clock); return err },
				} {
					err := load()
					if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o", m)) {
						t.Errorf("%s: err = %v", name, err)
					}
				}
			})
		}
	}
	// root.key is checked by its mode alone: its content is never read.
	path := filepath.Join(caDir, RootKeyFile)
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, _, err := LoadOrCreate(dir, InitOptions{}, clock); err != nil {
		t.Fatalf("garbage root.key, mode 600: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreate(dir, InitOptions{}, clock); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("garbage root.key, mode 644: %v", err)
	}
	os.Chmod(path, 0o600)
	// And all is well again.
	if _, _, err := LoadOrCreate(dir, InitOptions{}, clock); err != nil {
		t.Fatal(err)
	}
}
