package main

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// An upgrade puts the new binary in place before the server restarts. The
// new binary's CLI commands must not migrate the store under the old
// server: each refuses a store at an older schema, exit 1, naming both
// versions and what to do, and leaves it as it is; the new 'scepter serve'
// migrates it, saying so in its log, and the commands then work.
func TestCommandsRefuseAnOlderStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		// older leaves a store at the version before this binary's, and
		// returns the --store to pass (none for SQLite) and how to open it.
		older func(t *testing.T, dataDir string) (storeURL string, db *sql.DB, have, want int)
	}{
		{"sqlite", func(t *testing.T, dataDir string) (string, *sql.DB, int, int) {
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "scepter.db")+"?_pragma=journal_mode(WAL)&_txlock=immediate")
			if err != nil {
				t.Fatal(err)
			}
			have, want := upToPrevious(t, db, sqlite.Migrations(), "sqlite")
			return "", db, have, want
		}},
		{"postgres", func(t *testing.T, _ string) (string, *sql.DB, int, int) {
			url := pgtest.Database(t)
			db, err := sql.Open("pgx", url)
			if err != nil {
				t.Fatal(err)
			}
			have, want := upToPrevious(t, db, postgres.Migrations(), "postgres")
			return url, db, have, want
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dataDir := t.TempDir()
			url, db, have, want := tc.older(t, dataDir)
			defer db.Close()
			before := schemaVersions(t, db)
			var storeArgs []string
			if url != "" {
				storeArgs = []string{"--store", url}
			}

			for _, args := range storeCommands {
				a := append(append(append([]string{}, args...), "--data-dir", dataDir), storeArgs...)
				e, _, _ := testEnv(nil)
				err := run(ctx, e, a)
				wantMsg := fmt.Sprintf("the store is at schema version %d, this scepter expects %d: start the new 'scepter serve' first", have, want)
				if err == nil || !strings.Contains(err.Error(), wantMsg) {
					t.Fatalf("%s on an older store: err = %v, want %q", strings.Join(args, " "), err, wantMsg)
				}
				if exitCode(err) != 1 {
					t.Errorf("%s: exit code %d, want 1", strings.Join(args, " "), exitCode(err))
				}
			}
			if url == "" {
				// A backup of the old server's store is what to take
				// before the upgrade: it still works (read-only).
				e, _, _ := testEnv(nil)
				if err := run(ctx, e, []string{"store", "backup", "--data-dir", dataDir, "--out", filepath.Join(t.TempDir(), "backup.db")}); err != nil {
					t.Errorf("store backup of the older store: %v", err)
				}
			}
			if got := schemaVersions(t, db); !slices.Equal(got, before) {
				t.Fatalf("schema_migrations after the commands: %v, want %v unchanged", got, before)
			}

			serveArgs := append([]string{"--data-dir", dataDir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test"}, storeArgs...)
			if _, errOut, err := serveOnceWith(t, nil, serveArgs...); err != nil {
				t.Fatalf("serve on the older store: %v\n%s", err, errOut)
			} else if logLine := fmt.Sprintf("msg=\"store migrated\" from_schema=%d to_schema=%d", have, want); !strings.Contains(errOut, logLine) {
				t.Errorf("serve's log does not say %s:\n%s", logLine, errOut)
			}

			e, out, _ := testEnv(nil)
			if err := run(ctx, e, append([]string{"audit", "verify", "--data-dir", dataDir}, storeArgs...)); err != nil {
				t.Fatalf("audit verify after serve migrated: %v", err)
			}
			if !strings.Contains(out.String(), "intact") {
				t.Errorf("audit verify: %s", out)
			}
		})
	}
}

// upToPrevious migrates db with every migration of fsys but the last, and
// returns the version it is at and the one this binary expects.
func upToPrevious(t *testing.T, db *sql.DB, fsys fs.FS, dialect string) (have, want int) {
	t.Helper()
	ms, err := migrate.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	have, want = ms[len(ms)-2].Version, ms[len(ms)-1].Version
	if _, err := migrate.UpTo(context.Background(), db, fsys, migrate.Dialect{Name: dialect}, have); err != nil {
		t.Fatal(err)
	}
	return have, want
}

func schemaVersions(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
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
