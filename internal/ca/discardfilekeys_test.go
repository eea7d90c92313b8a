package ca

import (
	"crypto"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// r87 D2: the key files of dir/ca/next are listed with their public keys
// before a discard, and afterwards each that is gone is reported, with
// where a removal that failed half-way left it; a copy an earlier discard
// left, holding another key, is not taken for it.
func TestDiscardedFileKeys(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	nextDir := filepath.Join(caDir, NextDir)
	if err := os.MkdirAll(nextDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(path string) crypto.PublicKey {
		t.Helper()
		k, err := keys.Generate("p256")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := keys.WriteKeyFile(path, k); err != nil {
			t.Fatal(err)
		}
		return k.Public()
	}
	issPub := write(filepath.Join(nextDir, IssuingKeyFile))
	raPub := write(filepath.Join(nextDir, RAKeyFile))
	// An earlier discard's leftover: another RA key under the same name.
	write(filepath.Join(caDir, ".next-discarded-old", RAKeyFile))

	listed, err := NextFileKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed[0].RA || !pki.SamePublicKey(listed[0].Public, issPub) || !listed[1].RA || !pki.SamePublicKey(listed[1].Public, raPub) {
		t.Fatalf("NextFileKeys = %+v, want issuing.key then ra.key with their public keys", listed)
	}
	if got := DiscardedFileKeys(dir, listed); len(got) != 0 {
		t.Errorf("before a discard: %+v, want none gone", got)
	}
	// A discard whose removal stopped half-way: ra.key is gone, issuing.key
	// is left in the renamed copy.
	gone := filepath.Join(caDir, ".next-discarded-new")
	if err := os.Rename(nextDir, gone); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(gone, RAKeyFile)); err != nil {
		t.Fatal(err)
	}
	got := DiscardedFileKeys(dir, listed)
	if len(got) != 2 || got[0].Left != filepath.Join(gone, IssuingKeyFile) || got[1].Left != "" {
		t.Errorf("after a half-done discard: %+v, want issuing.key left in %s and ra.key destroyed", got, gone)
	}
}
