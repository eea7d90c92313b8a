package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/store"
)

// A database file removed or replaced while the store has it open: the
// connections would go on writing to the file they hold, which no later
// start and no CLI command reads, so a certificate recorded there would be
// lost without a word. Every write is refused as unavailable instead (the
// protocol edges answer 503), and Ping fails, so /readyz says why.
func TestDatabaseFileRemovedOrReplaced(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"removed", func(t *testing.T, path string) {
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
		}},
		{"replaced by a copy", func(t *testing.T, path string) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tmp := path + ".restored"
			if err := os.WriteFile(tmp, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "scepter.db")
			s := openAt(t, path)
			if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("01"), Now: t0}); err != nil {
				t.Fatal(err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping before: %v", err)
			}

			tt.change(t, path)

			if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrFileGone) {
				t.Errorf("Ping: %v, want store.ErrUnavailable naming the file", err)
			}
			err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("02"), Now: t0})
			if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrFileGone) {
				t.Errorf("an issuance after: %v, want store.ErrUnavailable naming the file", err)
			}
			if err := s.RememberNonce(ctx, "tx", []byte("nonce"), t0, t0.Add(1e12)); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("an ordered write after: %v, want store.ErrUnavailable", err)
			}
		})
	}
}
