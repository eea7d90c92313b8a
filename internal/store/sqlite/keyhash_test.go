package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// migrationsBefore is the embedded migrations older than version.
func migrationsBefore(t *testing.T, version string) fstest.MapFS {
	t.Helper()
	old := fstest.MapFS{}
	ms, err := fs.Glob(migrationFiles, "migrations/00*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if name := filepath.Base(m); name < version {
			body, err := migrationFiles.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			old[name] = &fstest.MapFile{Data: body}
		}
	}
	return old
}

// testKeyHashBatch is the backfill's batch in the tests: the same code as
// production's sqlstore.KeyHashBatch (2000) runs over a few dozen rows
// instead of thousands, each UPDATE some 2 ms of CPU under the race
// detector. TestKeyHashBatchDefault checks that Open uses the constant.
const testKeyHashBatch = 10

// openKeyHashBatch opens path as Open does, with batches of
// testKeyHashBatch certificates.
func openKeyHashBatch(ctx context.Context, path string) (*Store, error) {
	tun := defaultTuning()
	tun.keyHashBatch = testKeyHashBatch
	return open(ctx, path, tun)
}

func TestKeyHashBatchDefault(t *testing.T) {
	if got := defaultTuning().keyHashBatch; got != sqlstore.KeyHashBatch {
		t.Errorf("Open backfills %d key hashes per transaction, want sqlstore.KeyHashBatch (%d)", got, sqlstore.KeyHashBatch)
	}
}

// TestKeyHashBackfill opens a database of schema version 20, whose
// certificates have no key_hash, more than two batches of them: Open
// hashes every one (a DER without a key stays NULL), so that a revocation
// for keyCompromise finds the key's older certificates too.
func TestKeyHashBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0021"), dialect()); err != nil {
		t.Fatal(err)
	}
	derA, keyA := testKeyCert(t)
	derB, keyB := testKeyCert(t)
	n := 2*testKeyHashBatch + 3
	insertOld(t, db, n, derA, derB)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := openKeyHashBatch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkKeyHashes(t, s.w, n, keyA, keyB, nil)
	var left int
	if err := s.w.QueryRow(`SELECT count(*) FROM certificates_key_hash_backfill`).Scan(&left); err != nil || left != 0 {
		t.Errorf("backfill rows left: %d, %v; want none", left, err)
	}

	// A keyCompromise revocation of the newest of key B takes the key's
	// older (backfilled) certificates along.
	newestB, ofB := 0, 0
	for i := range n {
		if i%3 == 1 {
			newestB, ofB = i, ofB+1
		}
	}
	r, err := s.Revoke(ctx, "issuer", serialOf(newestB), store.ReasonKeyCompromise, t0, pki.AuditEvent{Type: pki.EventRevoked})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.AlsoRevoked) != ofB-1 {
		t.Errorf("also revoked %d certificates, want the %d others of key B", len(r.AlsoRevoked), ofB-1)
	}
}

// TestKeyHashBackfillResumes: a backfill cut short after some batches
// goes on from where it stopped, without hashing those again.
func TestKeyHashBackfillResumes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0021"), dialect()); err != nil {
		t.Fatal(err)
	}
	derA, keyA := testKeyCert(t)
	derB, keyB := testKeyCert(t)
	n := testKeyHashBatch + 10
	insertOld(t, db, n, derA, derB)
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0022"), dialect()); err != nil {
		t.Fatal(err)
	}
	// As a first batch that committed would leave it (with a mark to see
	// that those rows are not hashed again).
	mark := []byte("done")
	if _, err := db.Exec(`UPDATE certificates SET key_hash = ? WHERE id <= 7`, mark); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE certificates_key_hash_backfill SET done_upto = 7`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := openKeyHashBatch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkKeyHashes(t, s.w, n, keyA, keyB, func(id int64) []byte {
		if id <= 7 {
			return mark
		}
		return nil
	})
}

func serialOf(i int) string { return fmt.Sprintf("%x", 0x1000+i) }

// insertOld inserts n certificates as schema 20 kept them: every third
// of key A, the next of key B, the next without a key in its DER.
func insertOld(t *testing.T, db *sql.DB, n int, derA, derB []byte) {
	t.Helper()
	// One statement for all n rows, in order (the ids follow i): n
	// separate INSERTs cost some 8 s of CPU under the race detector, the
	// driver's work per statement, not SQLite's. Row i is what
	// serialOf(i) names, as checkKeyHashes and the tests expect.
	if _, err := db.Exec(`INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after,
		status, created_at, der)
		WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?)
		SELECT 'issuer', printf('%x', ? + i), 'CN=old', 0, ?, 'valid', 0,
			CASE i % 3 WHEN 0 THEN ? WHEN 1 THEN ? ELSE x'30' END
		FROM seq ORDER BY i`,
		n, 0x1000, t0.Add(24*time.Hour).UnixMicro(), derA, derB); err != nil {
		t.Fatal(err)
	}
	// Each with its event, as scepter records them (a store whose
	// certificates have none had its trail wiped, and takes no change),
	// where no store was opened yet to chain them: Open chains them then.
	if _, err := db.Exec(`INSERT INTO audit_events (time, type, actor, serial_hex, issuer_id, outcome)
		SELECT 0, 'certificate.issued', 'scep:192.0.2.1', serial_hex, issuer_id, 'success' FROM certificates
		WHERE NOT EXISTS (SELECT 1 FROM audit_head) ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	var got, misnamed int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE serial_hex != printf('%x', ? + id - 1)) FROM certificates`, 0x1000).
		Scan(&got, &misnamed); err != nil || got != n || misnamed != 0 {
		t.Fatalf("%d certificates inserted, %d not in order (%v); want %d in order", got, misnamed, err, n)
	}
}

// checkKeyHashes checks each of the n certificates insertOld made has its
// key's hash (or override's answer, when not nil).
func checkKeyHashes(t *testing.T, db *sql.DB, n int, keyA, keyB []byte, override func(id int64) []byte) {
	t.Helper()
	rows, err := db.Query(`SELECT id, serial_hex, key_hash FROM certificates ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var id int64
		var serial string
		var got []byte
		if err := rows.Scan(&id, &serial, &got); err != nil {
			t.Fatal(err)
		}
		want := [][]byte{keyA, keyB, nil}[seen%3]
		if override != nil && override(id) != nil {
			want = override(id)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("certificate %s: key_hash %x, want %x", serial, got, want)
		}
		seen++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != n {
		t.Errorf("%d certificates, want %d", seen, n)
	}
}
