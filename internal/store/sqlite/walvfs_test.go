package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
)

// plainDB opens path with SQLite's default VFS: it reads what is in the
// files, never what the WAL VFS still holds in memory.
func plainDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	u := url.URL{Scheme: "file", Path: path, RawQuery: "_pragma=busy_timeout(5000)&_pragma=query_only(1)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// oneConn opens path as the store's writer does (dsn), on one connection
// kept open, so that setup's PRAGMAs hold for everything after, and runs
// setup on it.
func oneConn(t *testing.T, path string, setup ...string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	for _, q := range setup {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

func wantIntegrity(t *testing.T, db *sql.DB) {
	t.Helper()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Errorf("integrity_check = %q, %v", res, err)
	}
}

// openAt opens the store at path, closed when the test ends (Close may be
// called again).
func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Every commit, durable or ordered, is in the log file when it returns, in
// one or two writes rather than two per page; the safety net never has to
// act.
func TestWALCommitsAreInTheFileWhenTheyReturn(t *testing.T) {
	v, err := registeredWALVFS()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	s := openAt(t, path)
	plain := plainDB(t, path)
	s.stopSearchIndexer() // its commits would blur the count

	const n = 40
	net0, flushes0 := v.netFlushes.Load(), v.flushes.Load()
	commits0, _ := s.CommitStats()
	for i := range n {
		serial := fmt.Sprintf("%04x", i)
		// An ordered commit (not fsync'd), then a durable one.
		if err := s.ReserveSerial(ctx, "issuer", serial+"ff", nil, t0); err != nil {
			t.Fatal(err)
		}
		var got int
		if err := plain.QueryRow(`SELECT count(*) FROM serials WHERE serial_hex = ?`, serial+"ff").Scan(&got); err != nil || got != 1 {
			t.Fatalf("ordered commit %d: %d rows in the file (%v), want 1", i, got, err)
		}
		record(t, s, serial)
		if err := plain.QueryRow(`SELECT count(*) FROM certificates WHERE serial_hex = ?`, serial).Scan(&got); err != nil || got != 1 {
			t.Fatalf("durable commit %d: %d rows in the file (%v), want 1", i, got, err)
		}
	}
	commits1, _ := s.CommitStats()
	commits := commits1 - commits0
	flushes := v.flushes.Load() - flushes0
	if net := v.netFlushes.Load() - net0; net != 0 {
		t.Errorf("the safety net wrote frames %d times: a commit frame went undetected", net)
	}
	// A certificate's commit touches a dozen pages or more: 24 writes and
	// more without gathering, one here (two when it outgrows maxWALGather).
	if commits < 2*n || flushes > 2*commits {
		t.Errorf("%d commits took %d writes of gathered frames, want at least %d commits and at most 2 writes each", commits, flushes, 2*n)
	}
	t.Logf("%d commits, %d writes of gathered frames", commits, flushes)
	wantIntegrity(t, plain)
}

// With commit frames not detected, the barrier SQLite passes before it
// publishes frames writes them out: another connection never reads a frame
// that is not in the file.
func TestWALSafetyNetWritesFramesBeforeTheyArePublished(t *testing.T) {
	v, err := registeredWALVFS()
	if err != nil {
		t.Fatal(err)
	}
	v.detectCommits.Store(false)
	defer v.detectCommits.Store(true)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	s := openAt(t, path)
	plain := plainDB(t, path)
	// With a size limit, the first commit after the log starts over asks
	// for the log's size before it publishes, which writes the frames out
	// too (correctly, but not by the net this test is about).
	if _, err := s.w.ExecContext(ctx, `PRAGMA journal_size_limit = -1`); err != nil {
		t.Fatal(err)
	}

	net0 := v.netFlushes.Load()
	for i := range 20 {
		serial := fmt.Sprintf("%04x", i)
		// Ordered commits are not synced: only the net writes their frames.
		if err := s.ReserveSerial(ctx, "issuer", serial, nil, t0); err != nil {
			t.Fatal(err)
		}
		var got int
		if err := plain.QueryRow(`SELECT count(*) FROM serials WHERE serial_hex = ?`, serial).Scan(&got); err != nil || got != 1 {
			t.Fatalf("commit %d: %d rows in the file (%v), want 1", i, got, err)
		}
	}
	if v.netFlushes.Load()-net0 < 20 {
		t.Errorf("the safety net wrote frames %d times for 20 ordered commits, want at least 20", v.netFlushes.Load()-net0)
	}
	wantIntegrity(t, plain)
}

// A transaction larger than maxWALGather, one that spills pages before its
// commit and writes some of them again (SQLite then rewrites their frames
// in place and rereads the log for their checksums), comes out byte for byte.
func TestWALLargeTransactionWithSpills(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "big.db")
	db := oneConn(t, path, `PRAGMA cache_size = 10`, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)`)
	want := make([][]byte, 60)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i] = make([]byte, 3000+i*700)
		rand.Read(want[i])
		if _, err := tx.ExecContext(ctx, `INSERT INTO blobs (id, b) VALUES (?, ?)`, i, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range want { // again, over pages already spilled to the log
		want[i][0] ^= 0xff
		if _, err := tx.ExecContext(ctx, `UPDATE blobs SET b = ? WHERE id = ?`, want[i], i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	plain := plainDB(t, path)
	rows, err := plain.Query(`SELECT id, b FROM blobs ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want[id]) {
			t.Errorf("row %d: %d bytes differ from the %d written", id, len(b), len(want[id]))
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("%d rows, want %d", n, len(want))
	}
	wantIntegrity(t, plain)
}

// Commits of every size from one page to several times maxWALGather, not
// synced (so only commit detection or the net writes their frames out):
// whichever frame fills the gather buffer, the commit frame's page still
// writes the frames out, and the net never acts.
func TestWALCommitsOfEverySizeNeedNoNet(t *testing.T) {
	v, err := registeredWALVFS()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sizes.db")
	db := oneConn(t, path, `PRAGMA synchronous = NORMAL`, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)`)
	plain := plainDB(t, path)
	net0 := v.netFlushes.Load()
	for i := range 100 {
		b := make([]byte, 1+i*3500)
		if _, err := db.ExecContext(ctx, `INSERT INTO blobs (id, b) VALUES (?, ?)`, i, b); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := plain.QueryRow(`SELECT length(b) FROM blobs WHERE id = ?`, i).Scan(&n); err != nil || n != len(b) {
			t.Fatalf("commit %d: length %d in the file (%v), want %d", i, n, err, len(b))
		}
	}
	if net := v.netFlushes.Load() - net0; net != 0 {
		t.Errorf("the safety net wrote frames %d times: a commit frame's page was not followed by a write", net)
	}
	wantIntegrity(t, plain)
}
