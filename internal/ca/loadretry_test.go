package ca

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A read-only Load while a server promotes its next CA (the next
// generation's files copied into place, then next/ removed) finds the
// directory half-way: the current CA also in next/. It reads again while
// the directory changes, and loads the promoted CA; a directory that stays
// half-way is still refused.
func TestLoadReadsAgainWhileThePromotionMovesFiles(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0}); err != nil {
		t.Fatal(err)
	}
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(time.Hour)}, fixedClock{t0})
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "ca")
	halfway := func() {
		t.Helper()
		// Every file of the generation, the certificate last, as
		// installGeneration writes them; next/ itself stays.
		for _, name := range []string{RAKeyFile, RACertFile, ChainFile, IssuingKeyFile, IssuingCertFile} {
			data, err := os.ReadFile(filepath.Join(caDir, NextDir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(caDir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	halfway()
	stays := t0.Add(2 * time.Hour)
	if _, err := Load(dir, fixedClock{stays}); err == nil {
		t.Fatal("a CA directory left half-way through a promotion loaded")
	}

	removed := make(chan error, 1)
	go func() {
		time.Sleep(loadRetryWait / 2)
		removed <- os.RemoveAll(filepath.Join(caDir, NextDir))
	}()
	a, err := Load(dir, fixedClock{stays})
	if rerr := <-removed; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("Load while the promotion removed next/: %v", err)
	}
	if got, _ := a.Active(stays); got.ID != next.ID {
		t.Errorf("Load gave issuing CA %s, want the promoted %s", got.ID, next.ID)
	}
}
