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

// CreateESTUser implements store.Store. A zero ev.Time becomes u.CreatedAt.
// A name that differs from a user's only in case is ErrConflict.
func (s *Store) CreateESTUser(ctx context.Context, u pki.ESTUser, ev pki.AuditEvent) error {
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		var names []byte
		if err := tx.QueryRowContext(ctx, `SELECT json_group_array(name) FROM est_users`).Scan(&names); err != nil {
			return err
		}
		if twin, err := sqlstore.CaseTwin(names, u.Name); err != nil || twin != "" {
			return errors.Join(err, sqlstore.CaseConflict("EST user", twin))
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO est_users (name, password_hash, profile, created_at, created_by)
			VALUES (?, ?, ?, ?, ?)`, u.Name, u.PasswordHash, u.Profile, sqlstore.Micros(u.CreatedAt), u.CreatedBy)
		if err != nil {
			return conflict(err)
		}
		return insertEvents(ctx, tx, u.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: create EST user %q: %w", u.Name, err)
	}
	return nil
}

// ESTUser implements store.Store.
func (s *Store) ESTUser(ctx context.Context, name string) (*pki.ESTUser, error) {
	u, err := sqlstore.ScanESTUser(s.readRow(ctx, `SELECT `+sqlstore.ESTUserColumns+` FROM est_users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: EST user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: EST user %q: %w", name, err)
	}
	return &u, nil
}

// ListESTUsers implements store.Store.
func (s *Store) ListESTUsers(ctx context.Context) ([]pki.ESTUser, error) {
	out, err := queryAll(ctx, s.r, sqlstore.ScanESTUser, `SELECT `+sqlstore.ESTUserColumns+` FROM est_users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list EST users: %w", err)
	}
	return out, nil
}

// DeleteESTUser implements store.Store. A zero ev.Time becomes at.
func (s *Store) DeleteESTUser(ctx context.Context, name string, at time.Time, ev pki.AuditEvent) error {
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM est_users WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return insertEvents(ctx, tx, at, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete EST user %q: %w", name, err)
	}
	return nil
}
