package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u pki.User, ev pki.AuditEvent) error {
	if err := sqlstore.CheckNewUser(u); err != nil {
		return pgError("postgres: create user %q: %w", u.Name, err)
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		// Two creations at once take turns, so each sees the other's name
		// (plain reads are not blocked).
		if _, err := tx.Exec(ctx, `LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var names []byte
		if err := tx.QueryRow(ctx, `SELECT coalesce(json_agg(name), '[]'::json)::text FROM users`).Scan(&names); err != nil {
			return err
		}
		if twin, err := sqlstore.CaseTwin(names, u.Name); err != nil || twin != "" {
			return errors.Join(err, sqlstore.CaseConflict("user", twin))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO users (name, role, password_hash, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5)`, u.Name, string(u.Role), u.PasswordHash, sqlstore.Micros(u.CreatedAt), u.CreatedBy); err != nil {
			return conflict(err)
		}
		return insertEvents(ctx, tx, u.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: create user %q: %w", u.Name, err)
	}
	return nil
}

// User implements store.Store.
func (s *Store) User(ctx context.Context, name string) (*pki.User, error) {
	name = key(name)
	u, err := sqlstore.ScanUser(s.queryRow(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, pgError("postgres: user %q: %w", name, err)
	}
	return &u, nil
}

// ListUsers implements store.Store, by name (byte order, as SQLite).
func (s *Store) ListUsers(ctx context.Context) ([]pki.User, error) {
	out, err := queryAll(ctx, s.pool, sqlstore.ScanUser, `SELECT `+sqlstore.UserColumns+` FROM users ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, pgError("postgres: list users: %w", err)
	}
	return out, nil
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, name string, ev pki.AuditEvent) error {
	name = key(name)
	if ev.Time.IsZero() {
		return pgError("postgres: delete user %q: the event has no time", name)
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		// Names are unique regardless of case (CreateUser), so ALICE is
		// alice; a name spelled exactly wins over a case twin from before
		// that rule.
		var stored string
		err := tx.QueryRow(ctx, `DELETE FROM users WHERE name = (SELECT name FROM users
			WHERE lower(name) = lower($1) ORDER BY name = $1 DESC LIMIT 1) RETURNING name`, name).Scan(&stored)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_name = $1`, stored); err != nil {
			return err
		}
		return insertEvents(ctx, tx, ev.Time, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: delete user %q: %w", name, err)
	}
	return nil
}

// RecordLogin implements store.Store. Each attempt is one UPDATE … RETURNING
// on the user's row, so concurrent attempts on several nodes each count.
func (s *Store) RecordLogin(ctx context.Context, name string, ok bool, at, lockUntil time.Time, ev pki.AuditEvent) (int, error) {
	name = key(name)
	var failed int
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		var row pgx.Row
		if ok {
			row = tx.QueryRow(ctx, `UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $1
				WHERE name = $2 RETURNING failed_logins`, sqlstore.Micros(at), name)
		} else {
			row = tx.QueryRow(ctx, `UPDATE users SET failed_logins = failed_logins + 1,
				locked_until = COALESCE($1::bigint, locked_until) WHERE name = $2 RETURNING failed_logins`, sqlstore.NullMicros(lockUntil), name)
		}
		if err := row.Scan(&failed); errors.Is(err, pgx.ErrNoRows) {
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
		return 0, pgError("postgres: record login of %q: %w", name, err)
	}
	return failed, nil
}

// ClaimLoginAttempt implements store.Store. The row is locked (FOR UPDATE)
// from the read to the update, so attempts on several nodes take turns.
func (s *Store) ClaimLoginAttempt(ctx context.Context, name string, at, expires time.Time, lockFor func(int) time.Duration) (store.LoginAttempt, error) {
	name = key(name)
	var a store.LoginAttempt
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		var failed int
		var locked, failuresExpire *int64
		err := tx.QueryRow(ctx, `SELECT failed_logins, locked_until, failures_expire_at FROM users WHERE name = $1 FOR UPDATE`, name).
			Scan(&failed, &locked, &failuresExpire)
		if errors.Is(err, pgx.ErrNoRows) {
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
		_, err = tx.Exec(ctx, `UPDATE users SET failed_logins = $1, locked_until = COALESCE($2::bigint, locked_until), failures_expire_at = $3
			WHERE name = $4`, a.Failures, sqlstore.NullMicros(a.LockedUntil), sqlstore.Micros(expires), name)
		return err
	})
	if err != nil {
		return store.LoginAttempt{}, pgError("postgres: claim a login attempt of %q: %w", name, err)
	}
	return a, nil
}

// ClaimUnknownLoginAttempt implements store.Store. The row is made first
// when missing and then locked (FOR UPDATE) from the read to the update,
// so attempts on several nodes take turns, the first ones too.
func (s *Store) ClaimUnknownLoginAttempt(ctx context.Context, nameKey []byte, at, expires time.Time, lockFor func(int) time.Duration) (store.LoginAttempt, error) {
	var a store.LoginAttempt
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO login_failures (name_key, failures, expires_at) VALUES ($1, 0, $2)
			ON CONFLICT (name_key) DO NOTHING`, nameKey, sqlstore.Micros(expires)); err != nil {
			return err
		}
		var failed int
		var locked *int64
		var expiresMicros int64
		if err := tx.QueryRow(ctx, `SELECT failures, locked_until, expires_at FROM login_failures WHERE name_key = $1 FOR UPDATE`, nameKey).
			Scan(&failed, &locked, &expiresMicros); err != nil {
			return err
		}
		if sqlstore.Micros(at) >= expiresMicros { // forgotten, as if purged
			failed, locked = 0, nil
		}
		a = sqlstore.NextLoginAttempt(failed, sqlstore.FromNullMicros(locked), at, lockFor)
		if a.Refused {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE login_failures SET failures = $1, locked_until = $2, expires_at = $3 WHERE name_key = $4`,
			a.Failures, sqlstore.NullMicros(a.LockedUntil), sqlstore.Micros(expires), nameKey)
		return err
	})
	if err != nil {
		return store.LoginAttempt{}, pgError("postgres: claim a login attempt of an unknown name: %w", err)
	}
	return a, nil
}

// LoginNameKey implements store.Store.
func (s *Store) LoginNameKey(ctx context.Context, candidate []byte) ([]byte, error) {
	var key []byte
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO login_name_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, candidate); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT key FROM login_name_key WHERE id = 1`).Scan(&key)
	})
	if err != nil {
		return nil, pgError("postgres: login name key: %w", err)
	}
	return key, nil
}

// CreateToken implements store.Store. A token's name, or one differing
// from it only in case, is ErrConflict while any token has it, revoked or
// not, also when both are created at once.
func (s *Store) CreateToken(ctx context.Context, t pki.APIToken, ev pki.AuditEvent) error {
	if err := sqlstore.CheckNewToken(t); err != nil {
		return pgError("postgres: create token %q: %w", t.Name, err)
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		// As in CreateUser: two creations at once take turns.
		if _, err := tx.Exec(ctx, `LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var names []byte
		if err := tx.QueryRow(ctx, `SELECT coalesce(json_agg(name), '[]'::json)::text FROM api_tokens`).Scan(&names); err != nil {
			return err
		}
		if taken, err := sqlstore.NameTaken(names, t.Name); err != nil || taken != "" {
			return errors.Join(err, sqlstore.CaseConflict("token", taken))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO api_tokens (id, name, role, hash, created_at, created_by, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, t.ID, t.Name, string(t.Role), t.Hash, sqlstore.Micros(t.CreatedAt), t.CreatedBy,
			sqlstore.NullMicros(t.ExpiresAt)); err != nil {
			return conflict(err)
		}
		return insertEvents(ctx, tx, t.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: create token %q: %w", t.Name, err)
	}
	return nil
}

// TokenByHash implements store.Store.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*pki.APIToken, error) {
	t, err := sqlstore.ScanToken(s.queryRow(ctx, `SELECT `+sqlstore.TokenColumns+` FROM api_tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, pgError("postgres: token: %w", err)
	}
	return &t, nil
}

// ListTokens implements store.Store.
func (s *Store) ListTokens(ctx context.Context) ([]pki.APIToken, error) {
	out, err := queryAll(ctx, s.pool, sqlstore.ScanToken, `SELECT `+sqlstore.TokenColumns+` FROM api_tokens ORDER BY created_at DESC, id COLLATE "C"`)
	if err != nil {
		return nil, pgError("postgres: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements store.Store. The UPDATE's condition (not revoked
// yet) decides: of concurrent revocations one changes the token and
// appends the event, the others find no live token.
func (s *Store) RevokeToken(ctx context.Context, idOrName string, at time.Time, ev pki.AuditEvent) (*pki.APIToken, error) {
	idOrName = key(idOrName)
	var out pki.APIToken
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		// One token: a name may be another token's ID, and the ID wins.
		// Both are matched regardless of case, as names are unique
		// regardless of case (CreateToken); a name spelled exactly wins
		// over a case twin from before that rule.
		t, err := sqlstore.ScanToken(tx.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = $1
			WHERE id = (SELECT id FROM api_tokens WHERE (lower(id) = lower($2) OR lower(name) = lower($2)) AND revoked_at IS NULL
				ORDER BY lower(id) = lower($2) DESC, name = $2 DESC LIMIT 1)
			AND revoked_at IS NULL RETURNING `+sqlstore.TokenColumns, sqlstore.Micros(at), idOrName))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		out = t
		e := ev
		if e.Detail == "" {
			e.Detail = "token " + t.ID + " (" + t.Name + ")"
		}
		return insertEvents(ctx, tx, at, []pki.AuditEvent{e})
	})
	if err != nil {
		return nil, pgError("postgres: revoke token %q: %w", idOrName, err)
	}
	return &out, nil
}

// TouchToken implements store.Store.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	id = key(id)
	err := s.withStatement(ctx, func(db execer) error {
		_, err := db.Exec(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE id = $2`, sqlstore.Micros(at), id)
		return err
	})
	if err != nil {
		return pgError("postgres: touch token %s: %w", id, err)
	}
	return nil
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, ses pki.Session) error {
	if err := sqlstore.CheckNewSession(ses); err != nil {
		return pgError("postgres: create session: %w", err)
	}
	err := s.withStatement(ctx, func(db execer) error {
		_, err := db.Exec(ctx, `INSERT INTO sessions (hash, user_name, created_at, expires_at, remote_addr)
			VALUES ($1, $2, $3, $4, $5)`, ses.Hash, ses.User, sqlstore.Micros(ses.CreatedAt), sqlstore.Micros(ses.ExpiresAt), ses.RemoteAddr)
		return conflict(err)
	})
	if err != nil {
		return pgError("postgres: create session: %w", err)
	}
	return nil
}

// Session implements store.Store.
func (s *Store) Session(ctx context.Context, hash []byte, now time.Time) (*pki.Session, error) {
	var ses pki.Session
	var created, expires int64
	err := s.queryRow(ctx, `SELECT hash, user_name, created_at, expires_at, remote_addr FROM sessions
		WHERE hash = $1 AND expires_at > $2`, hash, sqlstore.Micros(now)).Scan(&ses.Hash, &ses.User, &created, &expires, &ses.RemoteAddr)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, pgError("postgres: session: %w", err)
	}
	ses.CreatedAt, ses.ExpiresAt = sqlstore.FromMicros(created), sqlstore.FromMicros(expires)
	return &ses, nil
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	err := s.withStatement(ctx, func(db execer) error {
		_, err := db.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash)
		return err
	})
	if err != nil {
		return pgError("postgres: delete session: %w", err)
	}
	return nil
}

// DeleteChallenge implements store.Store.
func (s *Store) DeleteChallenge(ctx context.Context, id string, ev pki.AuditEvent) error {
	id = key(id)
	if ev.Time.IsZero() {
		return pgError("postgres: delete challenge %s: the event has no time", id)
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM challenges WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return insertEvents(ctx, tx, ev.Time, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: delete challenge %s: %w", id, err)
	}
	return nil
}

// RenewalsOf implements store.Store.
func (s *Store) RenewalsOf(ctx context.Context, issuerID, serialHex string) ([]pki.Certificate, error) {
	issuerID, serialHex = key(issuerID), key(serialHex)
	a := sqlstore.Args{Numbered: true}
	certs, _, err := s.queryCerts(ctx, sqlstore.RenewalsQuery(issuerID, serialHex, &a), a.Values...)
	if err != nil {
		return nil, pgError("postgres: renewals of %s/%s: %w", issuerID, serialHex, err)
	}
	return certs, nil
}

// Dashboard implements store.Store.
func (s *Store) Dashboard(ctx context.Context, now time.Time, days int) (store.Dashboard, error) {
	d := sqlstore.NewDashboard(now, days)
	rows, err := s.query(ctx, `SELECT profile, status, expiry_day, n FROM certificate_counts WHERE n <> 0`)
	if err != nil {
		return d.Dashboard, pgError("postgres: dashboard: %w", err)
	}
	for rows.Next() {
		var profile, status string
		var expiry, n int64
		if err := rows.Scan(&profile, &status, &expiry, &n); err != nil {
			rows.Close()
			return d.Dashboard, pgError("postgres: dashboard: %w", err)
		}
		d.AddCertificates(profile, status, expiry, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d.Dashboard, pgError("postgres: dashboard: %w", err)
	}
	a := sqlstore.Args{Numbered: true}
	rows, err = s.query(ctx, d.EdgeQuery(&a), a.Values...)
	if err != nil {
		return d.Dashboard, pgError("postgres: dashboard: %w", err)
	}
	for rows.Next() {
		var profile string
		var within int
		var n int64
		if err := rows.Scan(&profile, &within, &n); err != nil {
			rows.Close()
			return d.Dashboard, pgError("postgres: dashboard: %w", err)
		}
		d.AddEdge(profile, within, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d.Dashboard, pgError("postgres: dashboard: %w", err)
	}
	if err := s.queryRow(ctx, `SELECT count(*) FROM enrollment_requests WHERE status = $1 AND expires_at > $2`,
		string(pki.RequestPending), sqlstore.Micros(now)).Scan(&d.Pending); err != nil {
		return d.Dashboard, pgError("postgres: dashboard: %w", err)
	}
	rows, err = s.query(ctx, `SELECT day, kind, n FROM daily_counts WHERE day >= $1 AND day <= $2`, d.First, d.Today)
	if err != nil {
		return d.Dashboard, pgError("postgres: dashboard: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var day, n int64
		var kind string
		if err := rows.Scan(&day, &kind, &n); err != nil {
			return d.Dashboard, pgError("postgres: dashboard: %w", err)
		}
		d.AddDay(day, kind, n)
	}
	if err := rows.Err(); err != nil {
		return d.Dashboard, pgError("postgres: dashboard: %w", err)
	}
	return d.Dashboard, nil
}
