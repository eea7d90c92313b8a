package sqlitetest_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// A copy is what a fresh sqlite.Open makes: the same schema, the same
// migrations recorded, the same rows in every table. Were it not (a
// migration that leaves a log behind, or a copy taken too early), tests
// that use it would run against a database production never has.
func TestCopyIsAFreshDatabase(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh")
	st, err := sqlite.Open(context.Background(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "copy")
	if err := sqlitetest.Open(t, copied).Close(); err != nil {
		t.Fatal(err)
	}
	want, got := contents(t, fresh), contents(t, copied)
	if len(want) == 0 {
		t.Fatal("a fresh database has no schema")
	}
	if !slices.Equal(got, want) {
		t.Errorf("copy:\n%q\nfresh database:\n%q", got, want)
	}
}

// contents lists the schema, the versions applied and the number of rows
// of every table of the database at path.
func contents(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out, tables []string
	rows, err := db.Query(`SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		out = append(out, typ+" "+name+": "+text)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	rows, err = db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, "applied "+v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, table := range tables {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM "` + table + `"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s: %d rows", table, n))
	}
	return out
}
