package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/store/migrate"
)

// olderDatabase builds at path a database with every migration but the
// last, as the binary before this one left it, and returns the newest
// version it has and the one this binary has.
func olderDatabase(t *testing.T, path string) (have, want int) {
	t.Helper()
	ms, err := migrate.Load(Migrations())
	if err != nil {
		t.Fatal(err)
	}
	have, want = ms[len(ms)-2].Version, ms[len(ms)-1].Version
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := migrate.UpTo(context.Background(), db, Migrations(), dialect(), have); err != nil {
		t.Fatal(err)
	}
	return have, want
}

// TestOpenWithoutMigrating: a database an older binary left is refused by
// an Open WithoutMigrating (what every CLI command does), naming both
// versions and leaving the schema as it was; an Open that migrates (the
// server's) brings it up and reports from which version to which; then
// WithoutMigrating opens it.
func TestOpenWithoutMigrating(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	have, want := olderDatabase(t, path)
	before := versionsAt(t, path)

	_, err := Open(ctx, path, migrate.WithoutMigrating())
	var old *migrate.TooOldError
	if !errors.Is(err, migrate.ErrDatabaseTooOld) || !errors.As(err, &old) {
		t.Fatalf("Open WithoutMigrating of an older database: %v, want ErrDatabaseTooOld", err)
	}
	if old.Have != have || old.Want != want {
		t.Errorf("refusal says versions %d and %d, want %d and %d", old.Have, old.Want, have, want)
	}
	if got := versionsAt(t, path); !slices.Equal(got, before) {
		t.Errorf("schema_migrations after the refusal = %v, want %v unchanged", got, before)
	}

	var reports [][2]int
	s, err := Open(ctx, path, migrate.OnMigrate(func(from, to int) { reports = append(reports, [2]int{from, to}) }))
	if err != nil {
		t.Fatalf("Open that migrates: %v", err)
	}
	s.Close()
	if !slices.Equal(reports, [][2]int{{have, want}}) {
		t.Errorf("OnMigrate reported %v, want [[%d %d]]", reports, have, want)
	}
	if got := versionsAt(t, path); !slices.Equal(got, allMigrations(t)) {
		t.Errorf("schema_migrations after migrating = %v, want %v", got, allMigrations(t))
	}

	reports = nil
	s, err = Open(ctx, path, migrate.WithoutMigrating(), migrate.OnMigrate(func(from, to int) { reports = append(reports, [2]int{from, to}) }))
	if err != nil {
		t.Fatalf("Open WithoutMigrating of a current database: %v", err)
	}
	s.Close()
	s, err = Open(ctx, path, migrate.OnMigrate(func(from, to int) { reports = append(reports, [2]int{from, to}) }))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if reports != nil {
		t.Errorf("OnMigrate called on a current database: %v", reports)
	}
}

// TestOpenWithoutMigratingNewFile: an empty file (or one Open creates) is
// at version 0 and refused, with no table created in it.
func TestOpenWithoutMigratingNewFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	_, err := Open(ctx, path, migrate.WithoutMigrating())
	if err == nil || !strings.Contains(err.Error(), "at version 0,") {
		t.Fatalf("Open WithoutMigrating of a new file: %v, want a refusal at version 0", err)
	}
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d tables (%v) after the refusal, want none", n, err)
	}
}

func versionsAt(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return appliedVersions(t, db)
}
