package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// olderDatabase migrates the database at dbURL with every migration but
// the last, as the binary before this one left it, and returns the newest
// version it has and the one this binary has.
func olderDatabase(t *testing.T, dbURL string) (have, want int) {
	t.Helper()
	ms, err := migrate.Load(Migrations())
	if err != nil {
		t.Fatal(err)
	}
	have, want = ms[len(ms)-2].Version, ms[len(ms)-1].Version
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if _, err := migrate.UpTo(context.Background(), db, Migrations(), dialect(), have); err != nil {
		t.Fatal(err)
	}
	return have, want
}

// versionsIn reads schema_migrations of the database at dbURL.
func versionsIn(t *testing.T, dbURL string) []string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	rows, err := db.Query(`SELECT version || '_' || name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenWithoutMigrating: a database an older binary left is refused by
// OpenExisting WithoutMigrating (what every CLI command does), naming both
// versions and leaving the schema as it was; an Open that migrates (a
// server's) brings it up and reports from which version to which; then
// WithoutMigrating opens it.
func TestOpenWithoutMigrating(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.Database(t)
	have, want := olderDatabase(t, dbURL)
	before := versionsIn(t, dbURL)

	_, err := OpenExisting(ctx, dbURL, migrate.WithoutMigrating())
	var old *migrate.TooOldError
	if !errors.Is(err, migrate.ErrDatabaseTooOld) || !errors.As(err, &old) {
		t.Fatalf("OpenExisting WithoutMigrating of an older database: %v, want ErrDatabaseTooOld", err)
	}
	if old.Have != have || old.Want != want {
		t.Errorf("refusal says versions %d and %d, want %d and %d", old.Have, old.Want, have, want)
	}
	if got := versionsIn(t, dbURL); !slices.Equal(got, before) {
		t.Errorf("schema_migrations after the refusal = %v, want %v unchanged", got, before)
	}

	var reports [][2]int
	report := migrate.OnMigrate(func(from, to int) { reports = append(reports, [2]int{from, to}) })
	s, err := Open(ctx, dbURL, report)
	if err != nil {
		t.Fatalf("Open that migrates: %v", err)
	}
	s.Close()
	if !slices.Equal(reports, [][2]int{{have, want}}) {
		t.Errorf("OnMigrate reported %v, want [[%d %d]]", reports, have, want)
	}
	if got := versionsIn(t, dbURL); !slices.Equal(got, allMigrations(t)) {
		t.Errorf("schema_migrations after migrating = %v, want %v", got, allMigrations(t))
	}

	reports = nil
	for _, open := range []func() (*Store, error){
		func() (*Store, error) { return OpenExisting(ctx, dbURL, migrate.WithoutMigrating(), report) },
		func() (*Store, error) { return Open(ctx, dbURL, report) },
	} {
		s, err := open()
		if err != nil {
			t.Fatalf("open of a current database: %v", err)
		}
		s.Close()
	}
	if reports != nil {
		t.Errorf("OnMigrate called on a current database: %v", reports)
	}
}

// TestOpenWithoutMigratingEmpty: Open WithoutMigrating of an empty
// database refuses it at version 0 and creates nothing in it.
func TestOpenWithoutMigratingEmpty(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.Database(t)
	_, err := Open(ctx, dbURL, migrate.WithoutMigrating())
	if err == nil || !strings.Contains(err.Error(), "at version 0,") {
		t.Fatalf("Open WithoutMigrating of an empty database: %v, want a refusal at version 0", err)
	}
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if ok, err := hasTable(ctx, db, "schema_migrations"); err != nil || ok {
		t.Errorf("schema_migrations exists (%v) after the refusal, want no table", err)
	}
}
