package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// TestSearchTriggersSpellSearchText: the triggers of 0016 index the same
// text as the background indexer (a contentless FTS5 row is deleted with
// the text it was indexed with).
func TestSearchTriggersSpellSearchText(t *testing.T) {
	body, err := migrationFiles.ReadFile("migrations/0016_search_unescaped.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"new.", "old."} {
		if !strings.Contains(string(body), sqlstore.SearchText(prefix)) {
			t.Errorf("0016 does not spell sqlstore.SearchText(%q):\n%s", prefix, sqlstore.SearchText(prefix))
		}
	}
}

// TestUpgradeIndexesUnescapedSubjects: a certificate indexed before 0016,
// with its subject's escapes, is found after the upgrade by the subject as
// it reads.
func TestUpgradeIndexesUnescapedSubjects(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	v15 := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() >= "0016" {
			continue
		}
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		v15[e.Name()] = &fstest.MapFile{Data: body}
	}
	if _, err := migrate.Up(ctx, db, v15, dialect()); err != nil {
		t.Fatal(err)
	}
	// Recorded and indexed as version 15 did.
	for _, stmt := range []string{
		`INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after, status, created_at, der)
			VALUES ('issuer', '01', 'CN=Doe\, John,O=Acme\, Inc', 0, 1, 'valid', 0, x'30')`,
		`INSERT INTO certificates_search (rowid, text) SELECT id, lower(subject_dn || ' ' || sans || ' ' || serial_hex) FROM certificates`,
		`UPDATE certificates_search_progress SET indexed_upto = (SELECT MAX(id) FROM certificates)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version 15 database: %v", err)
	}
	defer s.Close()
	for _, term := range []string{"Doe, John", `Doe\, John`, "acme, inc"} {
		if got := searchSerials(t, s, term); got != "[01]" {
			t.Errorf("search %q after the upgrade = %s, want [01]", term, got)
		}
	}
}
