package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// ErrNoChain: the database file predates the audit trail's hash chain
// (schema version 6); the first server that opens it chains its records.
var ErrNoChain = errors.New("its audit trail predates the hash chain")

// FileTrail is the audit trail of a database file read as it is, without
// migrating it or reading a log beside it (immutable), as Inspect reads
// it: what `store restore` checks in a backup, which it puts in place at
// the backup's schema version. It is an audit.Trail; its
// ListCertificates answers only what audit.CheckStart asks.
type FileTrail struct {
	db *sql.DB
}

// OpenFileTrail opens the trail of the database file at path; a file
// whose schema has no chain yet is ErrNoChain. Errors do not name path
// (Inspect's reason).
func OpenFileTrail(ctx context.Context, path string) (*FileTrail, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=ro&immutable=1"}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	if ok, err := hasTable(ctx, db, "audit_head"); err != nil || !ok {
		db.Close()
		if err == nil {
			err = ErrNoChain
		}
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return &FileTrail{db: db}, nil
}

// Close closes the file.
func (t *FileTrail) Close() error { return t.db.Close() }

// AuditChain is Store.AuditChain on the file.
func (t *FileTrail) AuditChain(ctx context.Context, afterID int64, limit int) ([]pki.AuditEvent, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT `+sqlstore.AuditColumns+`, prev_hash, hash FROM audit_events
		WHERE id > ? OR (? AND id = ?) ORDER BY id LIMIT ?`, afterID, afterID == math.MinInt64, afterID, min(max(limit, 1), 10000))
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit chain: %w", err)
	}
	out, err := scanAudit(rows, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit chain: %w", err)
	}
	return out, nil
}

// AuditHead is Store.AuditHead on the file.
func (t *FileTrail) AuditHead(ctx context.Context) (store.AuditHead, error) {
	h, err := auditHead(ctx, t.db)
	if err != nil {
		return h, fmt.Errorf("sqlite: %w", err)
	}
	return h, nil
}

// ListCertificates lists the file's certificates (issuer, serial and
// time recorded) by f's Limit, IssuedAfter and IssuedBefore, all that
// audit.CheckStart asks; any other filter is refused.
func (t *FileTrail) ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error) {
	rest := f
	rest.Limit, rest.IssuedAfter, rest.IssuedBefore = 0, time.Time{}, time.Time{}
	if !reflect.DeepEqual(rest, store.CertFilter{}) {
		return nil, "", errors.New("sqlite: list certificates of a file: only Limit, IssuedAfter and IssuedBefore are read")
	}
	q, args := `SELECT issuer_id, serial_hex, created_at FROM certificates WHERE 1 = 1`, []any{}
	if !f.IssuedAfter.IsZero() {
		q, args = q+` AND created_at >= ?`, append(args, sqlstore.Micros(f.IssuedAfter))
	}
	if !f.IssuedBefore.IsZero() {
		q, args = q+` AND created_at < ?`, append(args, sqlstore.Micros(f.IssuedBefore))
	}
	q, args = q+` LIMIT ?`, append(args, sqlstore.PageLimit(f.Limit))
	rows, err := t.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list certificates: %w", err)
	}
	defer rows.Close()
	var out []pki.Certificate
	for rows.Next() {
		var c pki.Certificate
		var created int64
		if err := rows.Scan(&c.IssuerID, &c.SerialHex, &created); err != nil {
			return nil, "", fmt.Errorf("sqlite: list certificates: %w", err)
		}
		c.CreatedAt = sqlstore.FromMicros(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list certificates: %w", err)
	}
	return out, "", nil
}
