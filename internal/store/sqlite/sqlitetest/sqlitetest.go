// Package sqlitetest gives tests a new, empty SQLite store without paying
// for its migrations each time. Applying every migration to a new database
// costs about 0.7 s of CPU under the race detector (the SQL parser and the
// schema reloads that follow each ALTER, all under checkptr), and a test
// binary that opens a store per test paid it hundreds of times. Here it is
// paid once per test binary: the first call migrates a database in a
// temporary directory and keeps its bytes, and every call writes them to
// the path it is given before sqlite.Open opens it, which then finds
// nothing to migrate.
//
// A copy is the database a fresh Open makes: the same schema and the same
// rows (the migrations' own, and the versions applied), with nothing in it
// that differs from one new database to another. Tests of the migrations
// themselves, and of opening a new database, must call sqlite.Open on a
// path that does not exist instead.
package sqlitetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/store/sqlite"
)

// migrated holds the bytes of a freshly migrated, empty database, made on
// first use in each test binary.
var migrated = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "sqlitetest-")
	if err != nil {
		return nil, fmt.Errorf("sqlitetest: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		return nil, fmt.Errorf("sqlitetest: migrate a new database: %w", err)
	}
	if err := st.Close(); err != nil {
		return nil, fmt.Errorf("sqlitetest: %w", err)
	}
	// Close checkpoints the log into the database file and removes it: a
	// log left behind would hold part of the schema.
	for _, suffix := range []string{"-wal", "-journal"} {
		if fi, err := os.Stat(path + suffix); err == nil && fi.Size() > 0 {
			return nil, fmt.Errorf("sqlitetest: %s%s left with %d bytes after Close", path, suffix, fi.Size())
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sqlitetest: %w", err)
	}
	return b, nil
})

// Create writes a new, migrated, empty database at path, which must not
// exist, for the test to open (with sqlite.Open, or through the code under
// test).
func Create(t testing.TB, path string) {
	t.Helper()
	b, err := migrated()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatalf("sqlitetest: %v", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		t.Fatalf("sqlitetest: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("sqlitetest: write %s: %v", path, err)
	}
}

// Open is Create and sqlite.Open: a new, empty store at path, closed when
// the test ends.
func Open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	Create(t, path)
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
