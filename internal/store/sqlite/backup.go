package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// Backups of the database file, for `scepter store backup` and `scepter
// store restore`. A copy of scepter.db made with cp misses the commits
// still only in scepter.db-wal, and a copy put back beside the old
// database's -wal has that log replayed onto it: these read and fold the
// log with SQLite itself, so that one file holds every commit.

// ErrNotStore: the file is not a database of scepter's store.
var ErrNotStore = errors.New("not a scepter database")

// ErrDamaged: SQLite's integrity check finds the file damaged.
var ErrDamaged = errors.New("the database is damaged")

// sqliteHeader opens every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// Backup writes a consistent copy of the database at path, with the
// commits still only in its write-ahead log, to dst, which must not exist
// or be empty (SQLite's VACUUM INTO). It reads in one transaction, so a
// server may go on writing meanwhile. dst is not synced: the caller syncs
// it before renaming it into place. A database that is not there is an
// error, never created.
func Backup(ctx context.Context, path, dst string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("sqlite: backup %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("sqlite: backup %s: %w", path, err)
	}
	// A writable connection: SQLite refuses VACUUM INTO on a query_only
	// one. Nothing is written to the database through it.
	db, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return fmt.Errorf("sqlite: backup %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := connect(ctx, db); err != nil {
		return fmt.Errorf("sqlite: backup %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("sqlite: backup %s to %s: %w", path, dst, err)
	}
	return nil
}

// FoldWAL copies the write-ahead log of the database at path back into
// the file and empties it (a TRUNCATE checkpoint), so that the file alone
// holds every commit. It fails when another connection keeps the
// checkpoint from finishing; the log is then kept as it was.
func FoldWAL(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("sqlite: fold the log of %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("sqlite: fold the log of %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return fmt.Errorf("sqlite: fold the log of %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := connect(ctx, db); err != nil {
		return fmt.Errorf("sqlite: fold the log of %s: %w", path, err)
	}
	// Another connection's checkpoint (a server's, a CLI command's) holds
	// the checkpoint lock for a moment, and SQLite then answers busy at
	// once, without waiting: so a few retries, bounded by the busy timeout.
	deadline := time.Now().Add(busyTimeoutMS * time.Millisecond)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		var busy, logFrames, copied int
		if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &copied); err != nil {
			return fmt.Errorf("sqlite: fold the log of %s: %w", path, err)
		}
		if busy == 0 && logFrames == copied {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sqlite: fold the log of %s: another process keeps the database open (a reader, or a writer that stays)", path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// FileFacts is what Inspect reads of a database file.
type FileFacts struct {
	// SchemaVersion is the newest migration the file records.
	SchemaVersion int
	Certificates  int64
	// CARoots are the root fingerprints ("sha256:HEX") of the CA
	// generations the file records: none before a server recorded its CA.
	CARoots []string
	// NewestCRLs is the number of each issuer's newest CRL, by issuer ID.
	NewestCRLs map[string]int64
	// Issuers are the issuer IDs the file's certificates name, sorted:
	// what tells whose CA a file that records none (CARoots) is of.
	Issuers []string
}

// Inspect checks that the file at path is a database of scepter's store
// that this binary can open, and reads its FileFacts. It reads the file
// alone, as it is, without changing it or reading a write-ahead log
// beside it (immutable): that file alone is what a restore puts in place.
// A file that is no SQLite database, or has not scepter's schema, is
// ErrNotStore; one SQLite's integrity check finds damaged is ErrDamaged;
// one a newer scepter migrated wraps migrate.ErrDatabaseTooNew. Errors
// do not name path: it may be a copy, and the caller names the original.
func Inspect(ctx context.Context, path string) (FileFacts, error) {
	var facts FileFacts
	wrap := func(err error) error { return fmt.Errorf("sqlite: %w", err) }
	if err := checkHeader(path); err != nil {
		return facts, wrap(err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return facts, wrap(err)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=ro&immutable=1"}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return facts, wrap(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := integrityCheck(ctx, db); err != nil {
		return facts, wrap(err)
	}
	if facts.SchemaVersion, err = schemaVersion(ctx, db); err != nil {
		return facts, wrap(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM certificates`).Scan(&facts.Certificates); err != nil {
		return facts, wrap(err)
	}
	if ok, err := hasTable(ctx, db, "ca_generations"); err != nil {
		return facts, wrap(err)
	} else if ok {
		if facts.CARoots, err = queryAll(ctx, db, scanText, `SELECT DISTINCT root_fingerprint FROM ca_generations ORDER BY root_fingerprint`); err != nil {
			return facts, wrap(err)
		}
	}
	if facts.Issuers, err = queryAll(ctx, db, scanText, `SELECT DISTINCT issuer_id FROM certificates ORDER BY issuer_id`); err != nil {
		return facts, wrap(err)
	}
	if facts.NewestCRLs, err = sqlstore.NewestCRLs(ctx, db, hasTable); err != nil {
		return facts, wrap(err)
	}
	return facts, nil
}

// checkHeader refuses a file that does not start as an SQLite database
// does, before SQLite is handed it.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: not a regular file", ErrNotStore)
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte(sqliteHeader)) {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		return fmt.Errorf("%w: not an SQLite database", ErrNotStore)
	}
	return nil
}

// integrityCheck runs PRAGMA integrity_check; what it finds (its first
// lines) is ErrDamaged, and so is SQLite failing to read the file.
func integrityCheck(ctx context.Context, db *sql.DB) error {
	lines, err := queryAll(ctx, db, scanText, `PRAGMA integrity_check(10)`)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	if len(lines) == 1 && lines[0] == "ok" {
		return nil
	}
	return fmt.Errorf("%w: integrity_check: %s", ErrDamaged, strings.Join(lines, "; "))
}

// schemaVersion is the newest migration the database records, after
// checking that it records scepter's migrations, each under the name this
// binary gives it, and none this binary lacks.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	for _, table := range []string{"schema_migrations", "certificates"} {
		if ok, err := hasTable(ctx, db, table); err != nil {
			return 0, err
		} else if !ok {
			return 0, fmt.Errorf("%w: an SQLite database without scepter's tables (no %s)", ErrNotStore, table)
		}
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return 0, err
	}
	ms, err := migrate.Load(sub)
	if err != nil {
		return 0, err
	}
	known := map[int]string{}
	latest := 0
	for _, m := range ms {
		known[m.Version] = m.Name
		latest = max(latest, m.Version)
	}
	rows, err := db.QueryContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	version, newestName := 0, ""
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			return 0, err
		}
		if v > version {
			version, newestName = v, name
		}
		switch want, ok := known[v]; {
		case ok && want != name:
			return 0, fmt.Errorf("%w: it records schema version %d as %q, which this binary calls %q", ErrNotStore, v, name, want)
		case !ok && v < latest:
			return 0, fmt.Errorf("%w: it records schema version %d (%s), which this binary does not have", ErrNotStore, v, name)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	switch {
	case version == 0:
		return 0, fmt.Errorf("%w: it records no schema version", ErrNotStore)
	case version > latest:
		return 0, fmt.Errorf("%w: it is at version %d (%s), this binary knows up to %d: use the scepter that wrote it, or a newer one",
			migrate.ErrDatabaseTooNew, version, newestName, latest)
	}
	return version, nil
}

func hasTable(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n)
	return n > 0, err
}

// scanText scans a row of one text column (queryAll).
func scanText(sc sqlstore.Scanner) (string, error) {
	var s string
	return s, sc.Scan(&s)
}
