package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/storetest"
)

// openTemp opens a new, empty store in a temporary directory. The
// database file starts as a copy of one migrated once per test binary
// (migratedDB), so the tests that only need an empty store do not each pay
// for the migrations: some 0.7 s of CPU under the race detector, and the
// conformance suite alone opens hundreds. The copy is what a fresh Open
// makes (internal/store/sqlite/sqlitetest's TestCopyIsAFreshDatabase
// checks that of the same technique); the tests of migrating and of
// opening a new database call Open or openAt on a path that does not
// exist.
func openTemp(t testing.TB) *Store {
	t.Helper()
	return openCopyAt(t, filepath.Join(t.TempDir(), "scepter.db"))
}

// openCopyAt is openTemp at path, which must not exist yet: for tests of
// something else than migrating (backup, carry forward) that name their
// files.
func openCopyAt(t testing.TB, path string) *Store {
	t.Helper()
	b, err := migratedDB()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return openAt(t, path)
}

// migratedDB is the bytes of a database that Open made and Close closed
// (checkpointed, its log removed), made on first use.
var migratedDB = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "sqlite-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "scepter.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		return nil, err
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil, fmt.Errorf("%s-wal left with %d bytes after Close", path, fi.Size())
	}
	return os.ReadFile(path)
})

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testCert(serial string) pki.Certificate {
	return pki.Certificate{
		SerialHex: serial, IssuerID: "issuer", Subject: "CN=" + serial, NotBefore: t0,
		NotAfter: t0.Add(365 * 24 * time.Hour), Status: pki.StatusValid, Profile: "default",
		Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, CreatedAt: t0, DER: []byte("der"),
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("01"), Now: t0,
		Events: []pki.AuditEvent{{Type: pki.EventIssued}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReserveSerial(ctx, "issuer", "02", nil, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Certificate(ctx, "issuer", "01"); err != nil {
		t.Errorf("certificate lost on reopen: %v", err)
	}
	if err := s.ReserveSerial(ctx, "issuer", "02", nil, t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("serial reservation lost on reopen: %v", err)
	}
	if evs, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(evs) != 1 {
		t.Errorf("audit after reopen: %d events, %v", len(evs), err)
	}
}

func appliedVersions(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d_%s", v, name))
	}
	return out
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	for i := range 3 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if got := appliedVersions(t, s.w); !slices.Equal(got, allMigrations(t)) {
			t.Errorf("open %d: schema_migrations = %v, want %v", i, got, allMigrations(t))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUpgradeFromVersion1 opens a database written by a binary that knew
// only 0001: Open applies 0002, the inventory stays, and the new table works.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	v1 := fstest.MapFS{}
	body, err := migrationFiles.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	v1["0001_init.sql"] = &fstest.MapFile{Data: body}
	if _, err := migrate.Up(ctx, db, v1, dialect()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after, status, created_at, der)
		VALUES ('issuer', '01', 'CN=legacy-device', 0, 1, 'valid', 0, x'30')`); err != nil {
		t.Fatal(err)
	}
	// With its event, as version 1 recorded every issuance (a certificate
	// beside an empty trail is one whose records were removed).
	if _, err := db.Exec(`INSERT INTO audit_events (time, type, actor, serial_hex, issuer_id, outcome)
		VALUES (0, 'certificate.issued', 'scep:192.0.2.1', '01', 'issuer', 'success')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO serials (issuer_id, serial_hex, reserved_at) VALUES ('issuer', '01', 7), ('issuer', '02', 8)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version 1 database: %v", err)
	}
	defer s.Close()
	if got := appliedVersions(t, s.w); !slices.Equal(got, allMigrations(t)) {
		t.Errorf("schema_migrations = %v, want %v", got, allMigrations(t))
	}
	if _, err := s.Certificate(ctx, "issuer", "01"); err != nil {
		t.Errorf("certificate lost in the upgrade: %v", err)
	}
	// Indexed for search when 0008 built the index; 0010's mark covers it.
	if got := searchSerials(t, s, "legacy"); got != "[01]" {
		t.Errorf("search after the upgrade = %s, want [01]", got)
	}
	// 0011 moved the serial registry to a rowid table: every serial kept,
	// and still unique.
	var reserved int64
	if err := s.r.QueryRow(`SELECT SUM(reserved_at) FROM serials`).Scan(&reserved); err != nil || reserved != 15 {
		t.Errorf("serials after the upgrade: sum of reserved_at %d (%v), want 15", reserved, err)
	}
	if err := s.ReserveSerial(ctx, "issuer", "02", []byte{0x30}, t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ReserveSerial of a serial reserved before the upgrade = %v, want ErrConflict", err)
	}
	r := pki.EnrollmentRequest{ID: "r1", TransactionID: "tx", Profile: "default", CSR: []byte{0x30},
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateRequest(ctx, r, nil, pki.AuditEvent{Type: pki.EventRequestPending}); err != nil {
		t.Errorf("CreateRequest after the upgrade: %v", err)
	}
}

func TestFileMode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	loose := filepath.Join(dir, "loose.db")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fresh, loose} {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		// A write creates the -wal and -shm files.
		if err := s.ReserveSerial(ctx, "i", "01", nil, t0); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if mode := fi.Mode().Perm(); mode != 0o600 {
				t.Errorf("%s: mode %o, want 600", filepath.Base(p), mode)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewerDatabaseRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// One past the highest version, which may be above their count: a
	// version left out (two branches' numbers) is no migration to skip.
	all := allMigrations(t)
	newest, _, _ := strings.Cut(all[len(all)-1], "_")
	future, err := strconv.Atoi(newest)
	if err != nil {
		t.Fatal(err)
	}
	future++
	if _, err := s.w.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', '2031-01-01T00:00:00Z')`, future); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(ctx, path)
	if !errors.Is(err, migrate.ErrDatabaseTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrDatabaseTooNew", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("version %d", future)) {
		t.Errorf("error does not name the database's version: %v", err)
	}
}

func TestPathNeedsNoEscaping(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "my dir #1?x=y", "scepter 100%.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ReserveSerial(ctx, "i", "01", nil, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the given path: %v", err)
	}
}

func TestConnectionSettings(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		var mode string
		var syncMode, fk, busy, queryOnly int
		err := db.QueryRow(`SELECT
			(SELECT journal_mode FROM pragma_journal_mode),
			(SELECT synchronous FROM pragma_synchronous),
			(SELECT foreign_keys FROM pragma_foreign_keys),
			(SELECT timeout FROM pragma_busy_timeout),
			(SELECT query_only FROM pragma_query_only)`).Scan(&mode, &syncMode, &fk, &busy, &queryOnly)
		if err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || syncMode != 2 || fk != 1 || busy < 10000 {
			t.Errorf("%s: journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d; want wal, 2 (FULL), 1, >=10000",
				name, mode, syncMode, fk, busy)
		}
		if want := map[string]int{"writer": 0, "reader": 1}[name]; queryOnly != want {
			t.Errorf("%s: query_only=%d, want %d", name, queryOnly, want)
		}
	}
	// The writer keeps savepoint sub-journals in memory (see dsn).
	var tempStore int
	if err := s.w.QueryRow(`PRAGMA temp_store`).Scan(&tempStore); err != nil {
		t.Fatal(err)
	}
	if tempStore != 2 {
		t.Errorf("writer: temp_store=%d, want 2 (MEMORY)", tempStore)
	}
	if _, err := s.r.Exec(`DELETE FROM nonces`); err == nil {
		t.Error("the reader pool accepted a write")
	}
}

// TestWriteTransactionsBeginImmediate shows that _txlock=immediate took
// effect: a write transaction holds the database lock from BEGIN, so a
// second one (here from another Store, as another process would) waits in
// BEGIN rather than starting and failing later with SQLITE_BUSY when it
// upgrades its lock.
func TestWriteTransactionsBeginImmediate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	txA, err := a.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// txA has not written anything: with a deferred BEGIN it would hold no
	// lock at all.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	begun := time.Now()
	txB, err := b.w.BeginTx(short, nil)
	if err == nil {
		txB.Rollback()
		t.Fatal("second write transaction began while the first held the lock: BEGIN is not IMMEDIATE")
	}
	if waited := time.Since(begun); waited < 250*time.Millisecond {
		t.Errorf("second BEGIN failed after %v (%v); want it to wait for the lock", waited, err)
	}

	// Once the first ends, the second proceeds.
	done := make(chan error, 1)
	go func() { done <- b.ReserveSerial(ctx, "i", "01", nil, t0) }()
	time.Sleep(50 * time.Millisecond)
	if _, err := txA.Exec(`INSERT INTO serials (issuer_id, serial_hex, reserved_at) VALUES ('i', '02', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("queued writer: %v", err)
	}
}

// TestTwoProcesses runs writers through two Stores on one file, as a server
// and a CLI command would: they queue on the database lock and none fails.
func TestTwoProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for p, s := range stores {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					c := testCert(fmt.Sprintf("%d-%d-%d", p, w, i))
					if err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0,
						Events: []pki.AuditEvent{{Type: pki.EventIssued}}}); err != nil {
						errs <- err
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := stores[0].r.QueryRow(`SELECT count(*) FROM certificates`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2*workers*each {
		t.Errorf("%d certificates, want %d", n, 2*workers*each)
	}
}

// Processes opening one new database at once (a CLI command started with the
// first server) all succeed: the WAL switch's SQLITE_BUSY is retried.
func TestConcurrentOpenOfNewDatabase(t *testing.T) {
	for round := range 10 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("new-%d.db", round))
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				s, err := Open(context.Background(), path)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, opener %d: %v", round, i, err)
			}
		}
	}
}

// allMigrations lists the embedded migrations as schema_migrations names
// them ("1_init", …), in order.
func allMigrations(t *testing.T) []string {
	t.Helper()
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, rest, _ := strings.Cut(name, "_")
		n, err := strconv.Atoi(num)
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		out = append(out, fmt.Sprintf("%d_%s", n, rest))
	}
	return out
}

// The point lookups run through statements prepared once on the read pool:
// one per query however often and from however many goroutines it runs,
// still answering from the current data, and closed with the store.
func TestReadRowPreparesOnce(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	count := func() int {
		n := 0
		s.reads.Range(func(_, _ any) bool { n++; return true })
		return n
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := s.ESTUser(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("ESTUser: %v, want not found", err)
				}
			}
		})
	}
	wg.Wait()
	if n := count(); n != 1 {
		t.Fatalf("%d statements prepared for one query, want 1", n)
	}
	// A lookup runs without its context's cancellation, but not for a
	// context that has already ended.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.ESTUser(ended, "nobody"); !errors.Is(err, context.Canceled) {
		t.Errorf("ESTUser with an ended context: %v, want context.Canceled", err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := s.CreateESTUser(ctx, pki.ESTUser{Name: "dev", PasswordHash: "h", CreatedAt: now, CreatedBy: "test"},
		pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	if u, err := s.ESTUser(ctx, "dev"); err != nil || u.PasswordHash != "h" {
		t.Fatalf("ESTUser after the insert: %+v, %v", u, err)
	}
	if _, err := s.Certificate(ctx, "issuer", "01"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Certificate: %v, want not found", err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d statements prepared for two queries, want 2", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// No connection of the read pool stays open for its statements.
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, fd := range fds {
		if target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); strings.HasPrefix(target, filepath.Dir(s.path)) {
			t.Errorf("still open after Close: %s", target)
		}
	}
}

func TestAuditTampering(t *testing.T) {
	storetest.RunAuditTampering(t, func(t *testing.T) (store.Store, storetest.Exec) {
		s := openTemp(t)
		return s, func(t *testing.T, query string) {
			t.Helper()
			if _, err := s.w.ExecContext(context.Background(), query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
	})
}

func TestLegacyRequests(t *testing.T) {
	storetest.RunLegacyRequests(t, func(t *testing.T) (store.Store, storetest.Exec) {
		s := openTemp(t)
		return s, func(t *testing.T, query string) {
			t.Helper()
			if _, err := s.w.ExecContext(context.Background(), query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
	})
}
