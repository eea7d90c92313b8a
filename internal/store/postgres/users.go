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

// CreateESTUser implements store.Store. A zero ev.Time becomes u.CreatedAt.
// A name that differs from a user's only in case is ErrConflict.
func (s *Store) CreateESTUser(ctx context.Context, u pki.ESTUser, ev pki.AuditEvent) error {
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		// As in CreateUser: two creations at once take turns.
		if _, err := tx.Exec(ctx, `LOCK TABLE est_users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var names []byte
		if err := tx.QueryRow(ctx, `SELECT coalesce(json_agg(name), '[]'::json)::text FROM est_users`).Scan(&names); err != nil {
			return err
		}
		if twin, err := sqlstore.CaseTwin(names, u.Name); err != nil || twin != "" {
			return errors.Join(err, sqlstore.CaseConflict("EST user", twin))
		}
		_, err := tx.Exec(ctx, `INSERT INTO est_users (name, password_hash, profile, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5)`, u.Name, u.PasswordHash, u.Profile, sqlstore.Micros(u.CreatedAt), u.CreatedBy)
		if err != nil {
			return conflict(err)
		}
		return insertEvents(ctx, tx, u.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: create EST user %q: %w", u.Name, err)
	}
	return nil
}

// ESTUser implements store.Store.
func (s *Store) ESTUser(ctx context.Context, name string) (*pki.ESTUser, error) {
	name = key(name)
	u, err := sqlstore.ScanESTUser(s.queryRow(ctx, `SELECT `+sqlstore.ESTUserColumns+` FROM est_users WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pgError("postgres: EST user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, pgError("postgres: EST user %q: %w", name, err)
	}
	return &u, nil
}

// ListESTUsers implements store.Store, by name (byte order, as SQLite).
func (s *Store) ListESTUsers(ctx context.Context) ([]pki.ESTUser, error) {
	out, err := queryAll(ctx, s.pool, sqlstore.ScanESTUser, `SELECT `+sqlstore.ESTUserColumns+` FROM est_users ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, pgError("postgres: list EST users: %w", err)
	}
	return out, nil
}

// DeleteESTUser implements store.Store. A zero ev.Time becomes at.
func (s *Store) DeleteESTUser(ctx context.Context, name string, at time.Time, ev pki.AuditEvent) error {
	name = key(name)
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM est_users WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return insertEvents(ctx, tx, at, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: delete EST user %q: %w", name, err)
	}
	return nil
}
