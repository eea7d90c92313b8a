package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// walOnlyCommit records certificate "01", then "02" while a reader holds
// a snapshot taken between the two, so that no checkpoint can copy "02"
// into the file: it is in the write-ahead log only, as after a kill.
// release ends the reader.
func walOnlyCommit(t *testing.T, s *Store, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("01"), Now: t0}); err != nil {
		t.Fatal(err)
	}
	if err := FoldWAL(ctx, path); err != nil {
		t.Fatal(err)
	}
	reader, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := reader.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM certificates`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("02"), Now: t0}); err != nil {
		t.Fatal(err)
	}
	if f, err := Inspect(ctx, path); err != nil || f.Certificates != 1 {
		t.Fatalf("the file alone: %+v, %v; want certificate 02 in the log only", f, err)
	}
	return func() {
		tx.Rollback()
		reader.Close()
	}
}

// Backup copies the commits that are still only in the write-ahead log,
// while the store is open; the copy is a scepter database of its own.
func TestBackupHoldsTheLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "scepter.db")
	s := openAt(t, path)
	defer walOnlyCommit(t, s, path)()

	dst := filepath.Join(dir, "backup.db")
	if err := Backup(ctx, path, dst); err != nil {
		t.Fatal(err)
	}
	f, err := Inspect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if f.Certificates != 2 || f.SchemaVersion != len(allMigrations(t)) {
		t.Errorf("backup: %+v, want 2 certificates at version %d", f, len(allMigrations(t)))
	}
	if err := Backup(ctx, filepath.Join(dir, "missing.db"), filepath.Join(dir, "b2.db")); err == nil {
		t.Error("Backup of a missing database succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Backup created the missing database: %v", err)
	}
}

// FoldWAL does not finish while another connection keeps the log, and
// then leaves every commit in the file.
func TestFoldWAL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	s := openAt(t, path)
	release := walOnlyCommit(t, s, path)
	// The search index of the two certificates is written by the store
	// in the background: written before the fold, not after it, where it
	// left a few frames in the log (2 in 10 runs under -race on a busy
	// machine, before this stop's changes too).
	if err := s.catchUpSearch(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := FoldWAL(short, path); err == nil {
		t.Error("FoldWAL finished while a reader held the log")
	}
	release()
	if err := FoldWAL(ctx, path); err != nil {
		t.Fatal(err)
	}
	if f, err := Inspect(ctx, path); err != nil || f.Certificates != 2 {
		t.Errorf("the file after FoldWAL: %+v, %v; want both certificates", f, err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Errorf("the log holds %d bytes after FoldWAL", fi.Size())
	}
}

// Inspect refuses what is no database of scepter's store, a damaged one
// and one a newer scepter migrated, and reads what the store records.
func TestInspect(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s := openAt(t, good)
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("01"), Now: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`INSERT INTO crls (issuer_id, number, this_update, next_update, revocation_seq, entries, der, created_at)
		VALUES ('issuer', 7, 0, 0, 0, 0, x'30', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, err := Inspect(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if f.Certificates != 1 || f.NewestCRLs["issuer"] != 7 || len(f.CARoots) != 0 {
		t.Errorf("facts: %+v", f)
	}

	file := func(name string, make func(path string)) string {
		p := filepath.Join(dir, name)
		make(p)
		return p
	}
	write := func(data []byte) func(string) {
		return func(p string) {
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	exec := func(q string) func(string) {
		return func(p string) {
			db, err := sql.Open("sqlite", "file:"+p)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte{}, goodBytes...)
	// Every page but the first (the header and the schema) overwritten.
	for i := 4096; i < len(damaged); i++ {
		damaged[i] = 0xa5
	}
	newer := file("newer.db", func(p string) {
		write(goodBytes)(p)
		exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99999, 'from_the_future', '')`)(p)
	})
	for _, tc := range []struct {
		name string
		path string
		want error
	}{
		{"text", file("text", write([]byte("certificates: none\n"))), ErrNotStore},
		{"empty", file("empty", write(nil)), ErrNotStore},
		{"another SQLite database", file("other.db", exec(`CREATE TABLE t (x)`)), ErrNotStore},
		{"damaged", file("damaged.db", write(damaged)), ErrDamaged},
		{"newer", newer, migrate.ErrDatabaseTooNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Inspect(ctx, tc.path); !errors.Is(err, tc.want) {
				t.Errorf("Inspect: %v, want %v", err, tc.want)
			}
		})
	}
}
