package ca

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A command reading the CA while the server promotes its next generation
// can find the new issuing key beside the old certificate (the promotion
// writes the key first, then the certificate, each file atomically): the
// pair is read again until it matches, where before the command failed
// with "issuing.key does not match issuing.crt" (requests approve at a CA
// switch).
func TestLoadPairRereadsAPairBeingReplaced(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if _, _, err := LoadOrCreate(d, InitOptions{}, fixedClock{t0}); err != nil {
			t.Fatal(err)
		}
	}
	caDir, otherDir := filepath.Join(a, "ca"), filepath.Join(b, "ca")
	copyFile := func(name string) {
		data, err := os.ReadFile(filepath.Join(otherDir, name))
		if err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(filepath.Join(caDir, name), data, 0o600); err != nil {
			t.Error(err)
		}
	}
	copyFile(IssuingKeyFile) // the key of the other generation first
	written := make(chan struct{})
	go func() {
		defer close(written)
		time.Sleep(pairRereadWait / 2)
		copyFile(IssuingCertFile) // then its certificate
	}()
	cert, key, err := loadPair(caDir, IssuingCertFile, InitOptions{}.keysIn(caDir, "", loadMode{}), issuingKeyName)
	<-written
	if err != nil {
		t.Fatalf("loadPair while the pair was being replaced: %v", err)
	}
	want, err := loadCert(otherDir, IssuingCertFile)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(want) || key == nil {
		t.Errorf("loadPair returned a certificate other than the one written last")
	}

	// A pair that stays mismatched is still refused, after the rereads.
	rootKey, err := os.ReadFile(filepath.Join(caDir, RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caDir, IssuingKeyFile), rootKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadPair(caDir, IssuingCertFile, InitOptions{}.keysIn(caDir, "", loadMode{}), issuingKeyName); err == nil {
		t.Fatal("a mismatched pair loaded")
	}
}
