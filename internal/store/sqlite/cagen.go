package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// CAGenerations implements store.Store.
func (s *Store) CAGenerations(ctx context.Context) ([]store.CAGeneration, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT issuer_id, root_fingerprint, issuer_der, ra_der, switch_at,
		published_at, published_by, promoted_at FROM ca_generations ORDER BY switch_at, issuer_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: CA generations: %w", err)
	}
	defer rows.Close()
	var out []store.CAGeneration
	for rows.Next() {
		var g store.CAGeneration
		var switchAt, publishedAt int64
		var promotedAt sql.NullInt64
		if err := rows.Scan(&g.IssuerID, &g.RootFingerprint, &g.IssuerDER, &g.RADER, &switchAt, &publishedAt, &g.PublishedBy, &promotedAt); err != nil {
			return nil, fmt.Errorf("sqlite: CA generations: %w", err)
		}
		g.SwitchAt, g.PublishedAt, g.PromotedAt = caTime(switchAt), fromMicros(publishedAt), fromNullMicros(promotedAt)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: CA generations: %w", err)
	}
	return out, nil
}

// caTime reads a switch time: 0 is the first generation's zero time.
func caTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return fromMicros(us)
}

func caMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

// PublishCAGeneration implements store.Store. The write lock (BEGIN
// IMMEDIATE) makes the root check and the insert one step.
func (s *Store) PublishCAGeneration(ctx context.Context, g store.CAGeneration, ev pki.AuditEvent) (bool, error) {
	var inserted bool
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		inserted = false
		var root string
		switch err := tx.QueryRowContext(ctx, `SELECT root_fingerprint FROM ca_generations LIMIT 1`).Scan(&root); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case root != g.RootFingerprint:
			return fmt.Errorf("the store's CA has root %s, not %s: %w", root, g.RootFingerprint, store.ErrConflict)
		}
		var der []byte
		var switchAt int64
		switch err := tx.QueryRowContext(ctx, `SELECT issuer_der, switch_at FROM ca_generations WHERE issuer_id = ?`, g.IssuerID).Scan(&der, &switchAt); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case !bytes.Equal(der, g.IssuerDER) || switchAt != caMicros(g.SwitchAt):
			return fmt.Errorf("issuing CA %s is recorded with another certificate or switch time: %w", g.IssuerID, store.ErrConflict)
		default:
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ca_generations
			(issuer_id, root_fingerprint, issuer_der, ra_der, switch_at, published_at, published_by)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			g.IssuerID, g.RootFingerprint, g.IssuerDER, nullBytes(g.RADER), caMicros(g.SwitchAt), micros(g.PublishedAt), g.PublishedBy); err != nil {
			return conflict(err)
		}
		inserted = true
		return insertEvents(ctx, tx, g.PublishedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: publish CA generation: %w", err)
	}
	return inserted, nil
}

// PromoteCAGeneration implements store.Store.
func (s *Store) PromoteCAGeneration(ctx context.Context, issuerID string, at time.Time, ev pki.AuditEvent) (bool, error) {
	var promoted bool
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		promoted = false
		res, err := tx.ExecContext(ctx, `UPDATE ca_generations SET promoted_at = ?
			WHERE issuer_id = ? AND promoted_at IS NULL AND switch_at > 0 AND switch_at <= ?`,
			micros(at), issuerID, micros(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			promoted = true
			return insertEvents(ctx, tx, at, []pki.AuditEvent{ev})
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM ca_generations WHERE issuer_id = ?`, issuerID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("issuing CA %s: %w", issuerID, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: promote CA generation: %w", err)
	}
	return promoted, nil
}

// nullBytes stores an empty blob as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
