package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// A first start that makes its CA but cannot record its creation (the
// ca.initialized event: a full disk, r78) removes that CA and fails; it
// does not leave it for the next start to take up as a CA the trail never
// saw made. The next start, once the store can write, makes a new CA and
// records it.
func TestFirstStartThatCannotRecordItsCARemovesIt(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(data, "scepter.db")
	sqlitetest.Create(t, dbPath)
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// The write that fails is the CA's creation record alone.
	exec(`CREATE TRIGGER refuse_ca_initialized BEFORE INSERT ON audit_events WHEN NEW.type = '` + pki.EventCAInitialized + `'
		BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`)

	_, stderr, err := serveOnce(t, "--data-dir", data)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "the CA this start made was removed, unrecorded") {
		t.Fatalf("serve: %v (exit %d)\n%s", err, exitCode(err), stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "ca")); !os.IsNotExist(err) {
		t.Errorf("the unrecorded CA is left in %s (%v)", filepath.Join(data, "ca"), err)
	}

	exec(`DROP TRIGGER refuse_ca_initialized`)
	db.Close()
	out, stderr, err := serveOnce(t, "--data-dir", data)
	if err != nil {
		t.Fatalf("the next start: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "Created a new CA") {
		t.Errorf("the next start does not say it created the CA:\n%s", out)
	}
	e, listed, _ := testEnv(nil)
	if err := run(t.Context(), e, []string{"audit", "list", "--data-dir", data, "--type", pki.EventCAInitialized}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(listed.String(), pki.EventCAInitialized) != 1 {
		t.Errorf("want one ca.initialized in the trail:\n%s", listed)
	}
}
