package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	_ "modernc.org/sqlite"

	"github.com/scepter/scepter/internal/store/migrate"
)

// openDB opens path the way the sqlite store does for writing: WAL, a busy
// timeout and transactions that begin IMMEDIATE, which is the lock the
// SQLite dialect relies on.
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// As the store's Open does: the first connection switches a new file to
	// WAL, and a concurrent switch answers SQLITE_BUSY without waiting.
	for i := 0; ; i++ {
		err := db.Ping()
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "SQLITE_BUSY") || i == 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return db
}

var sqlite = migrate.Dialect{Name: "sqlite"}

func files(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range m {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

var base = map[string]string{
	"0001_users.sql":  `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);`,
	"0002_groups.sql": `CREATE TABLE groups (id INTEGER PRIMARY KEY); CREATE INDEX users_name ON users (name);`,
	"README.md":       "not a migration",
}

func with(extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func versions(ms []migrate.Migration) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%d_%s", m.Version, m.Name))
	}
	return strings.Join(s, ",")
}

func recorded(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var s []string
	for rows.Next() {
		var v int
		var name, at string
		if err := rows.Scan(&v, &name, &at); err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
			t.Errorf("applied_at %q: %v", at, err)
		}
		s = append(s, fmt.Sprintf("%d_%s", v, name))
	}
	return strings.Join(s, ",")
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		want    string
		wantErr string
	}{
		{"sorted, other files ignored", with(map[string]string{"0010_later.sql": "", "0003_c.sql": ""}), "1_users,2_groups,3_c,10_later", ""},
		{"no files", map[string]string{}, "", ""},
		{"bad name", with(map[string]string{"3_no spaces.sql": ""}), "", "NNNN_name.sql"},
		{"no number", with(map[string]string{"init.sql": ""}), "", "NNNN_name.sql"},
		{"version 0", with(map[string]string{"0000_zero.sql": ""}), "", "positive"},
		{"duplicate version", with(map[string]string{"02_again.sql": ""}), "", "same version 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := migrate.Load(files(tc.files))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := versions(ms); got != tc.want {
				t.Errorf("versions %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUpAppliesInOrderOnce(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))

	applied, err := migrate.Up(ctx, db, files(base), sqlite)
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(applied); got != "1_users,2_groups" {
		t.Errorf("applied %q", got)
	}
	if got := recorded(t, db); got != "1_users,2_groups" {
		t.Errorf("recorded %q", got)
	}

	// Idempotent: nothing to do the second time (the files would fail if
	// run again: CREATE TABLE without IF NOT EXISTS).
	applied, err = migrate.Up(ctx, db, files(base), sqlite)
	if err != nil || len(applied) != 0 {
		t.Errorf("second Up: applied %q, %v", versions(applied), err)
	}

	// A new binary with one more file applies just that one.
	applied, err = migrate.Up(ctx, db, files(with(map[string]string{"0003_more.sql": `ALTER TABLE users ADD COLUMN email TEXT;`})), sqlite)
	if err != nil || versions(applied) != "3_more" {
		t.Errorf("Up with a new file: applied %q, %v", versions(applied), err)
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	bad := with(map[string]string{"0003_bad.sql": `CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1);`})
	applied, err := migrate.Up(ctx, db, files(bad), sqlite)
	if err == nil || !strings.Contains(err.Error(), "0003_bad") {
		t.Fatalf("error %v, want one naming 0003_bad", err)
	}
	if got := versions(applied); got != "1_users,2_groups" {
		t.Errorf("applied before the failure: %q", got)
	}
	if got := recorded(t, db); got != "1_users,2_groups" {
		t.Errorf("recorded %q", got)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the failed file's first statement was kept (%d, %v)", n, err)
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name     string
		recorded string // extra schema_migrations rows
		wantIs   error
		wantText string
	}{
		{"newer database", `(7, 'future', 'x')`, migrate.ErrDatabaseTooNew, "version 7"},
		// The newest version is named, not the first unknown one.
		{"several versions newer", `(5, 'five', 'x'), (9, 'nine', 'x'), (6, 'six', 'x')`, migrate.ErrDatabaseTooNew, "version 9 (nine)"},
		{"renamed file", `(3, 'old_name', 'x')`, nil, "old_name"},
		{"gap below applied", `(4, 'four', 'x')`, nil, "out of order"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t, filepath.Join(t.TempDir(), "db"))
			if _, err := migrate.Up(ctx, db, files(base), sqlite); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`INSERT INTO schema_migrations VALUES ` + tc.recorded); err != nil {
				t.Fatal(err)
			}
			binary := with(map[string]string{"0003_new_name.sql": "CREATE TABLE t3 (x);", "0004_four.sql": "CREATE TABLE t4 (x);"})
			if tc.wantIs != nil {
				binary = base
			}
			if tc.name == "gap below applied" {
				binary = with(map[string]string{"0003_missing.sql": "CREATE TABLE t3 (x);", "0004_four.sql": "CREATE TABLE t4 (x);"})
			}
			applied, err := migrate.Up(ctx, db, files(binary), sqlite)
			if err == nil || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantText)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			if len(applied) != 0 {
				t.Errorf("applied %q despite the refusal", versions(applied))
			}
		})
	}
}

func TestDialectHooks(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	var locks, releases, begins int
	var lockConn *sql.Conn
	d := migrate.Dialect{
		Name: "test",
		Lock: func(ctx context.Context, conn *sql.Conn) (func(context.Context) error, error) {
			locks++
			lockConn = conn
			return func(context.Context) error { releases++; return nil }, nil
		},
		Begin: func(ctx context.Context, conn *sql.Conn) (*sql.Tx, error) {
			if conn != lockConn {
				t.Error("Begin got another connection than Lock")
			}
			begins++
			return conn.BeginTx(ctx, nil)
		},
		Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	if _, err := migrate.Up(ctx, db, files(base), d); err != nil {
		t.Fatal(err)
	}
	// create table + two files + the final "nothing pending" check.
	if locks != 1 || releases != 1 || begins != 4 {
		t.Errorf("locks %d, releases %d, begins %d; want 1, 1, 4", locks, releases, begins)
	}
	var at string
	if err := db.QueryRow(`SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&at); err != nil || at != "2030-01-01T00:00:00Z" {
		t.Errorf("applied_at %q, %v: want the Dialect's clock", at, err)
	}

	// The lock is released when a migration fails, and a failed lock stops
	// the run before anything is read.
	bad := with(map[string]string{"0003_bad.sql": "SYNTAX ERROR"})
	if _, err := migrate.Up(ctx, db, files(bad), d); err == nil || releases != 2 {
		t.Errorf("failed run: err %v, releases %d; want an error and 2", err, releases)
	}
	d.Lock = func(context.Context, *sql.Conn) (func(context.Context) error, error) {
		return nil, errors.New("lock timeout")
	}
	if _, err := migrate.Up(ctx, db, files(bad), d); err == nil || !strings.Contains(err.Error(), "lock timeout") {
		t.Errorf("failed lock: %v", err)
	}
}

// TestConcurrentMigrators starts several migrators, each with its own pool
// as separate processes would have, on one new database: every file is
// applied exactly once (applying one twice would fail: CREATE TABLE without
// IF NOT EXISTS) and none of them fails.
func TestConcurrentMigrators(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	many := map[string]string{}
	for i := 1; i <= 20; i++ {
		many[fmt.Sprintf("%04d_t%d.sql", i, i)] = fmt.Sprintf("CREATE TABLE t%d (id INTEGER PRIMARY KEY);", i)
	}
	const migrators = 6
	dbs := make([]*sql.DB, migrators)
	for i := range dbs {
		dbs[i] = openDB(t, path)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := range migrators {
		wg.Go(func() {
			applied, err := migrate.Up(ctx, dbs[i], files(many), sqlite)
			if err != nil {
				t.Errorf("migrator %d: %v", i, err)
			}
			mu.Lock()
			total += len(applied)
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != len(many) {
		t.Errorf("%d files applied in all, want %d", total, len(many))
	}
}

// checking is the SQLite dialect with the HasTable that Check needs.
var checking = migrate.Dialect{Name: "sqlite", HasTable: func(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n)
	return n > 0, err
}}

// TestCheck: Check tells a current database from an older or a newer one,
// names both versions, and writes nothing (a database it refuses is left
// as it found it, schema_migrations not even created).
func TestCheck(t *testing.T) {
	v1 := map[string]string{"0001_users.sql": base["0001_users.sql"]}
	cases := []struct {
		name     string
		at       map[string]string // the migrations applied before Check; nil for none
		extra    string            // schema_migrations rows added after them
		want     int               // the version Check returns
		wantIs   error
		wantText string
	}{
		{name: "current", at: base, want: 2},
		{name: "one behind", at: v1, want: 1, wantIs: migrate.ErrDatabaseTooOld, wantText: "at version 1, this binary expects 2"},
		{name: "never migrated", want: 0, wantIs: migrate.ErrDatabaseTooOld, wantText: "at version 0, this binary expects 2"},
		{name: "newer", at: base, extra: `(3, 'future', '2031-01-01T00:00:00Z')`, wantIs: migrate.ErrDatabaseTooNew, wantText: "version 3 (future)"},
		{name: "renamed file", at: v1, extra: `(2, 'old_name', '2031-01-01T00:00:00Z')`, wantText: "old_name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t, filepath.Join(t.TempDir(), "db"))
			if tc.at != nil {
				if _, err := migrate.Up(ctx, db, files(tc.at), sqlite); err != nil {
					t.Fatal(err)
				}
			}
			if tc.extra != "" {
				if _, err := db.Exec(`INSERT INTO schema_migrations VALUES ` + tc.extra); err != nil {
					t.Fatal(err)
				}
			}
			var before string
			if tc.at != nil {
				before = recorded(t, db)
			}

			got, err := migrate.Check(ctx, db, files(base), checking)
			switch {
			case tc.wantText == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.wantText != "" && (err == nil || !strings.Contains(err.Error(), tc.wantText)):
				t.Fatalf("Check: %v, want an error containing %q", err, tc.wantText)
			case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
				t.Errorf("Check: %v is not %v", err, tc.wantIs)
			}
			if tc.wantIs == nil || errors.Is(err, migrate.ErrDatabaseTooOld) {
				if got != tc.want {
					t.Errorf("Check returned version %d, want %d", got, tc.want)
				}
			}
			if v, err := migrate.Version(ctx, db, checking); tc.wantText == "" && (err != nil || v != tc.want) {
				t.Errorf("Version = %d, %v; want %d", v, err, tc.want)
			}
			if tc.at == nil {
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil || n != 0 {
					t.Errorf("Check left %d tables (%v) in a database never migrated, want none", n, err)
				}
			} else if after := recorded(t, db); after != before {
				t.Errorf("schema_migrations %s after Check, was %s", after, before)
			}
		})
	}
}

// TestUpTo: UpTo applies the files up to a version and no further, and Up
// then applies the rest.
func TestUpTo(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	applied, err := migrate.UpTo(ctx, db, files(base), sqlite, 1)
	if err != nil || versions(applied) != "1_users" {
		t.Fatalf("UpTo 1 applied %q, %v; want 1_users", versions(applied), err)
	}
	if got := recorded(t, db); got != "1_users" {
		t.Errorf("recorded %q after UpTo 1, want 1_users", got)
	}
	applied, err = migrate.Up(ctx, db, files(base), sqlite)
	if err != nil || versions(applied) != "2_groups" {
		t.Errorf("Up after UpTo applied %q, %v; want 2_groups", versions(applied), err)
	}
}
