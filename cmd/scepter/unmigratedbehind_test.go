package main

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// A store put back at an older schema ('store restore' says the older
// scepter serves it as it is) and behind this node's CRL marks: the start
// that is refused leaves it as it was, unmigrated, so that the older
// scepter can still open it; with --store-restored it is migrated and
// served (r115 D1).
func TestRefusedStartLeavesAnOlderStoreUnmigrated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   []string
		refused bool
	}{
		{"refused", nil, true},
		{"acknowledged", []string{"--store-restored"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			path := filepath.Join(data, "scepter.db")
			serveArgs := append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}, tc.flags...)
			// A node that served (its CA made, CRLs published), then had
			// its store replaced by one of an older schema.
			first := serveInProcess(t, nil, serveArgs[:len(serveArgs)-len(tc.flags)]...)
			if first.ended {
				t.Fatalf("first start: %v", first.err)
			}
			if err := first.stop(); err != nil {
				t.Fatal(err)
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_txlock=immediate")
			if err != nil {
				t.Fatal(err)
			}
			have, want := upToPrevious(t, db, sqlite.Migrations(), "sqlite")
			before := schemaVersions(t, db)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			sum := func() [32]byte {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return sha256.Sum256(b)
			}
			fileBefore := sum()
			// This node published CRL 3 of its issuing CA, of which the
			// store holds none.
			numbers := crl.NewNumbers(filepath.Join(data, crl.NumbersDir))
			marks, err := os.ReadDir(numbers.Dir())
			if err != nil || len(marks) == 0 {
				t.Fatalf("no CRL marks after the first start: %v", err)
			}
			issuer := marks[0].Name()
			if err := numbers.Put(issuer, 3); err != nil {
				t.Fatal(err)
			}

			s := serveInProcess(t, nil, serveArgs...)
			if !tc.refused {
				if s.ended {
					t.Fatalf("serve %v: %v\n%s", tc.flags, s.err, s.errb.String())
				}
				if err := s.stop(); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(s.errb.String(), fmt.Sprintf("from_schema=%d to_schema=%d", have, want)) {
					t.Errorf("no migration logged:\n%s", s.errb.String())
				}
				return
			}
			if !s.ended || s.err == nil {
				t.Fatal("serve started on a store behind the CRLs this node published")
			}
			if exitCode(s.err) != 1 {
				t.Errorf("exit code %d, want 1", exitCode(s.err))
			}
			msg := s.err.Error()
			for _, w := range []string{"it holds no CRL of issuer " + issuer[:16] + ", but number 3 was published",
				fmt.Sprintf("the store is left as it is, at schema version %d", have), "--store-restored",
				fmt.Sprintf("migrates it to schema version %d", want)} {
				if !strings.Contains(msg, w) {
					t.Errorf("the refusal does not say %q: %s", w, msg)
				}
			}
			if strings.Contains(s.errb.String(), "store migrated") {
				t.Errorf("the refused start migrated the store:\n%s", s.errb.String())
			}
			db, err = sql.Open("sqlite", "file:"+path+"?mode=ro")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if after := schemaVersions(t, db); !slices.Equal(after, before) {
				t.Errorf("schema versions after the refused start: %v, want %v", after, before)
			}
			if sum() != fileBefore {
				t.Error("the refused start changed scepter.db")
			}
		})
	}
}

// The same with a PostgreSQL store: a database at an older schema (one
// restored from a dump of the older scepter's) behind this node's CRL
// marks is refused before it is migrated, and left at its schema; with
// --store-restored it is migrated and served.
func TestRefusedStartLeavesAnOlderPostgresStoreUnmigrated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   []string
		refused bool
	}{
		{"refused", nil, true},
		{"acknowledged", []string{"--store-restored"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			serveArgs := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
			// A node that served (its CA made, CRLs published) ...
			first := serveInProcess(t, nil, append(serveArgs, "--store", pgtest.Database(t))...)
			if first.ended {
				t.Fatalf("first start: %v", first.err)
			}
			if err := first.stop(); err != nil {
				t.Fatal(err)
			}
			// ... is then given a database of an older schema.
			url := pgtest.Database(t)
			db, err := sql.Open("pgx", url)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			have, want := upToPrevious(t, db, postgres.Migrations(), "postgres")
			before := schemaVersions(t, db)
			// This node published CRL 3 of its issuing CA, of which the
			// store holds none.
			numbers := crl.NewNumbers(filepath.Join(data, crl.NumbersDir))
			marks, err := os.ReadDir(numbers.Dir())
			if err != nil || len(marks) == 0 {
				t.Fatalf("no CRL marks after the first start: %v", err)
			}
			issuer := marks[0].Name()
			if err := numbers.Put(issuer, 3); err != nil {
				t.Fatal(err)
			}

			s := serveInProcess(t, nil, append(append(serveArgs, "--store", url), tc.flags...)...)
			if !tc.refused {
				if s.ended {
					t.Fatalf("serve %v: %v\n%s", tc.flags, s.err, s.errb.String())
				}
				if err := s.stop(); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(s.errb.String(), fmt.Sprintf("from_schema=%d to_schema=%d", have, want)) {
					t.Errorf("no migration logged:\n%s", s.errb.String())
				}
				return
			}
			if !s.ended || s.err == nil {
				t.Fatal("serve started on a store behind the CRLs this node published")
			}
			if exitCode(s.err) != 1 {
				t.Errorf("exit code %d, want 1", exitCode(s.err))
			}
			msg := s.err.Error()
			for _, w := range []string{"it holds no CRL of issuer " + issuer[:16] + ", but number 3 was published",
				fmt.Sprintf("the store is left as it is, at schema version %d", have), "--store-restored",
				fmt.Sprintf("migrates it to schema version %d", want)} {
				if !strings.Contains(msg, w) {
					t.Errorf("the refusal does not say %q: %s", w, msg)
				}
			}
			if strings.Contains(s.errb.String(), "store migrated") {
				t.Errorf("the refused start migrated the store:\n%s", s.errb.String())
			}
			if after := schemaVersions(t, db); !slices.Equal(after, before) {
				t.Errorf("schema versions after the refused start: %v, want %v", after, before)
			}
		})
	}
}
