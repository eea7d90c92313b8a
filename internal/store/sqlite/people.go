package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u pki.User, ev pki.AuditEvent) error {
	if err := sqlstore.CheckNewUser(u); err != nil {
		return fmt.Errorf("sqlite: create user %q: %w", u.Name, err)
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		var names []byte
		if err := tx.QueryRowContext(ctx, `SELECT json_group_array(name) FROM users`).Scan(&names); err != nil {
			return err
		}
		if twin, err := sqlstore.CaseTwin(names, u.Name); err != nil || twin != "" {
			return errors.Join(err, sqlstore.CaseConflict("user", twin))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, role, password_hash, created_at, created_by)
			VALUES (?, ?, ?, ?, ?)`, u.Name, string(u.Role), u.PasswordHash, sqlstore.Micros(u.CreatedAt), u.CreatedBy); err != nil {
			return conflict(err)
		}
		return insertEvents(ctx, tx, u.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: create user %q: %w", u.Name, err)
	}
	return nil
}

// User implements store.Store.
func (s *Store) User(ctx context.Context, name string) (*pki.User, error) {
	u, err := sqlstore.ScanUser(s.readRow(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: user %q: %w", name, err)
	}
	return &u, nil
}

// ListUsers implements store.Store.
func (s *Store) ListUsers(ctx context.Context) ([]pki.User, error) {
	out, err := queryAll(ctx, s.r, sqlstore.ScanUser, `SELECT `+sqlstore.UserColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return out, nil
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, name string, ev pki.AuditEvent) error {
	if ev.Time.IsZero() {
		return fmt.Errorf("sqlite: delete user %q: the event has no time", name)
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		// Names are unique regardless of case (CreateUser), so ALICE is
		// alice; a name spelled exactly wins over a case twin from before
		// that rule.
		var stored string
		err := tx.QueryRowContext(ctx, `DELETE FROM users WHERE name = (SELECT name FROM users
			WHERE lower(name) = lower(?1) ORDER BY name = ?1 DESC LIMIT 1) RETURNING name`, name).Scan(&stored)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_name = ?`, stored); err != nil {
			return err
		}
		return insertEvents(ctx, tx, ev.Time, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete user %q: %w", name, err)
	}
	return nil
}

// RecordLogin implements store.Store.
func (s *Store) RecordLogin(ctx context.Context, name string, ok bool, at, lockUntil time.Time, ev pki.AuditEvent) (int, error) {
	var failed int
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		var row *sql.Row
		if ok {
			row = tx.QueryRowContext(ctx, `UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ?
				WHERE name = ? RETURNING failed_logins`, sqlstore.Micros(at), name)
		} else {
			row = tx.QueryRowContext(ctx, `UPDATE users SET failed_logins = failed_logins + 1,
				locked_until = COALESCE(?, locked_until) WHERE name = ? RETURNING failed_logins`, sqlstore.NullMicros(lockUntil), name)
		}
		if err := row.Scan(&failed); errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		if ev.Type == "" {
			return nil
		}
		return insertEvents(ctx, tx, at, []pki.AuditEvent{ev})
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: record login of %q: %w", name, err)
	}
	return failed, nil
}

// ClaimLoginAttempt implements store.Store. The writer connection runs one
// transaction at a time, so the read and the update see no other attempt
// between them.
func (s *Store) ClaimLoginAttempt(ctx context.Context, name string, at, expires time.Time, lockFor func(int) time.Duration) (store.LoginAttempt, error) {
	var a store.LoginAttempt
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		var failed int
		var locked, failuresExpire *int64
		err := tx.QueryRowContext(ctx, `SELECT failed_logins, locked_until, failures_expire_at FROM users WHERE name = ?`, name).
			Scan(&failed, &locked, &failuresExpire)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		if failuresExpire != nil && sqlstore.Micros(at) >= *failuresExpire {
			failed, locked = 0, nil
		}
		a = sqlstore.NextLoginAttempt(failed, sqlstore.FromNullMicros(locked), at, lockFor)
		if a.Refused {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET failed_logins = ?, locked_until = COALESCE(?, locked_until), failures_expire_at = ?
			WHERE name = ?`, a.Failures, sqlstore.NullMicros(a.LockedUntil), sqlstore.Micros(expires), name)
		return err
	})
	if err != nil {
		return store.LoginAttempt{}, fmt.Errorf("sqlite: claim a login attempt of %q: %w", name, err)
	}
	return a, nil
}

// ClaimUnknownLoginAttempt implements store.Store. As in
// ClaimLoginAttempt, the writer connection's one transaction at a time
// makes the read and the write one step.
func (s *Store) ClaimUnknownLoginAttempt(ctx context.Context, nameKey []byte, at, expires time.Time, lockFor func(int) time.Duration) (store.LoginAttempt, error) {
	var a store.LoginAttempt
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		failed, locked := 0, time.Time{}
		var lockedMicros *int64
		var expiresMicros int64
		err := tx.QueryRowContext(ctx, `SELECT failures, locked_until, expires_at FROM login_failures WHERE name_key = ?`, nameKey).
			Scan(&failed, &lockedMicros, &expiresMicros)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case sqlstore.Micros(at) < expiresMicros: // else forgotten, as if purged
			locked = sqlstore.FromNullMicros(lockedMicros)
		default:
			failed = 0
		}
		a = sqlstore.NextLoginAttempt(failed, locked, at, lockFor)
		if a.Refused {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO login_failures (name_key, failures, locked_until, expires_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (name_key) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until, expires_at = excluded.expires_at`,
			nameKey, a.Failures, sqlstore.NullMicros(a.LockedUntil), sqlstore.Micros(expires))
		return err
	})
	if err != nil {
		return store.LoginAttempt{}, fmt.Errorf("sqlite: claim a login attempt of an unknown name: %w", err)
	}
	return a, nil
}

// LoginNameKey implements store.Store.
func (s *Store) LoginNameKey(ctx context.Context, candidate []byte) ([]byte, error) {
	var key []byte
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO login_name_key (id, key) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`, candidate); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT key FROM login_name_key WHERE id = 1`).Scan(&key)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: login name key: %w", err)
	}
	return key, nil
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t pki.APIToken, ev pki.AuditEvent) error {
	if err := sqlstore.CheckNewToken(t); err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", t.Name, err)
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		var names []byte
		if err := tx.QueryRowContext(ctx, `SELECT json_group_array(name) FROM api_tokens`).Scan(&names); err != nil {
			return err
		}
		if taken, err := sqlstore.NameTaken(names, t.Name); err != nil || taken != "" {
			return errors.Join(err, sqlstore.CaseConflict("token", taken))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (id, name, role, hash, created_at, created_by, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, t.ID, t.Name, string(t.Role), t.Hash, sqlstore.Micros(t.CreatedAt), t.CreatedBy,
			sqlstore.NullMicros(t.ExpiresAt)); err != nil {
			return conflict(err)
		}
		return insertEvents(ctx, tx, t.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", t.Name, err)
	}
	return nil
}

// TokenByHash implements store.Store.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*pki.APIToken, error) {
	t, err := sqlstore.ScanToken(s.readRow(ctx, `SELECT `+sqlstore.TokenColumns+` FROM api_tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: token: %w", err)
	}
	return &t, nil
}

// ListTokens implements store.Store.
func (s *Store) ListTokens(ctx context.Context) ([]pki.APIToken, error) {
	out, err := queryAll(ctx, s.r, sqlstore.ScanToken, `SELECT `+sqlstore.TokenColumns+` FROM api_tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements store.Store.
func (s *Store) RevokeToken(ctx context.Context, idOrName string, at time.Time, ev pki.AuditEvent) (*pki.APIToken, error) {
	var out pki.APIToken
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		// One token: a name may be another token's ID, and the ID wins.
		// Both are matched regardless of case, as names are unique
		// regardless of case (CreateToken); a name spelled exactly wins
		// over a case twin from before that rule.
		t, err := sqlstore.ScanToken(tx.QueryRowContext(ctx, `UPDATE api_tokens SET revoked_at = ?1
			WHERE id = (SELECT id FROM api_tokens WHERE (lower(id) = lower(?2) OR lower(name) = lower(?2)) AND revoked_at IS NULL
				ORDER BY lower(id) = lower(?2) DESC, name = ?2 DESC LIMIT 1)
			AND revoked_at IS NULL RETURNING `+sqlstore.TokenColumns, sqlstore.Micros(at), idOrName))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		out = t
		if ev.Detail == "" {
			ev.Detail = "token " + t.ID + " (" + t.Name + ")"
		}
		return insertEvents(ctx, tx, at, []pki.AuditEvent{ev})
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: revoke token %q: %w", idOrName, err)
	}
	return &out, nil
}

// TouchToken implements store.Store.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, sqlstore.Micros(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: touch token %s: %w", id, err)
	}
	return nil
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, ses pki.Session) error {
	if err := sqlstore.CheckNewSession(ses); err != nil {
		return fmt.Errorf("sqlite: create session: %w", err)
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (hash, user_name, created_at, expires_at, remote_addr)
			VALUES (?, ?, ?, ?, ?)`, ses.Hash, ses.User, sqlstore.Micros(ses.CreatedAt), sqlstore.Micros(ses.ExpiresAt), ses.RemoteAddr)
		return conflict(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create session: %w", err)
	}
	return nil
}

// Session implements store.Store.
func (s *Store) Session(ctx context.Context, hash []byte, now time.Time) (*pki.Session, error) {
	var ses pki.Session
	var created, expires int64
	err := s.readRow(ctx, `SELECT hash, user_name, created_at, expires_at, remote_addr FROM sessions
		WHERE hash = ? AND expires_at > ?`, hash, sqlstore.Micros(now)).Scan(&ses.Hash, &ses.User, &created, &expires, &ses.RemoteAddr)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: session: %w", err)
	}
	ses.CreatedAt, ses.ExpiresAt = sqlstore.FromMicros(created), sqlstore.FromMicros(expires)
	return &ses, nil
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	return nil
}

// DeleteChallenge implements store.Store.
func (s *Store) DeleteChallenge(ctx context.Context, id string, ev pki.AuditEvent) error {
	if ev.Time.IsZero() {
		return fmt.Errorf("sqlite: delete challenge %s: the event has no time", id)
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM challenges WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return insertEvents(ctx, tx, ev.Time, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete challenge %s: %w", id, err)
	}
	return nil
}

// RenewalsOf implements store.Store.
func (s *Store) RenewalsOf(ctx context.Context, issuerID, serialHex string) ([]pki.Certificate, error) {
	var a sqlstore.Args
	certs, _, err := s.queryCerts(ctx, sqlstore.RenewalsQuery(issuerID, serialHex, &a), a.Values...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: renewals of %s/%s: %w", issuerID, serialHex, err)
	}
	return certs, nil
}

// Dashboard implements store.Store.
func (s *Store) Dashboard(ctx context.Context, now time.Time, days int) (store.Dashboard, error) {
	d := sqlstore.NewDashboard(now, days)
	rows, err := s.r.QueryContext(ctx, `SELECT profile, status, expiry_day, n FROM certificate_counts WHERE n <> 0`)
	if err != nil {
		return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var profile, status string
		var expiry, n int64
		if err := rows.Scan(&profile, &status, &expiry, &n); err != nil {
			return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
		}
		d.AddCertificates(profile, status, expiry, n)
	}
	if err := rows.Err(); err != nil {
		return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
	}
	rows.Close()
	var a sqlstore.Args
	rows, err = s.r.QueryContext(ctx, d.EdgeQuery(&a), a.Values...)
	if err != nil {
		return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var profile string
		var within int
		var n int64
		if err := rows.Scan(&profile, &within, &n); err != nil {
			return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
		}
		d.AddEdge(profile, within, n)
	}
	if err := rows.Err(); err != nil {
		return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
	}
	rows.Close()
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM enrollment_requests WHERE status = ? AND expires_at > ?`,
		string(pki.RequestPending), sqlstore.Micros(now)).Scan(&d.Pending); err != nil {
		return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
	}
	rows, err = s.r.QueryContext(ctx, `SELECT day, kind, n FROM daily_counts WHERE day >= ? AND day <= ?`, d.First, d.Today)
	if err != nil {
		return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var day, n int64
		var kind string
		if err := rows.Scan(&day, &kind, &n); err != nil {
			return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
		}
		d.AddDay(day, kind, n)
	}
	if err := rows.Err(); err != nil {
		return d.Dashboard, fmt.Errorf("sqlite: dashboard: %w", err)
	}
	return d.Dashboard, nil
}

// queryAll runs a query (on the reader pool or in a transaction) and scans
// every row with scan.
func queryAll[T any](ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, scan func(sqlstore.Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)

	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
