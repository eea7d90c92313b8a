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
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// CAGenerations implements store.Store.
func (s *Store) CAGenerations(ctx context.Context) ([]store.CAGeneration, error) {
	out, err := queryAll(ctx, s.r, sqlstore.ScanCAGeneration, `SELECT `+sqlstore.CAGenerationColumns+` FROM ca_generations ORDER BY switch_at, issuer_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: CA generations: %w", err)
	}
	return out, nil
}

// PublishCAGeneration implements store.Store. The write lock (BEGIN
// IMMEDIATE) makes the root check and the insert one step.
func (s *Store) PublishCAGeneration(ctx context.Context, g store.CAGeneration, ev pki.AuditEvent) (bool, error) {
	var inserted bool
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		inserted = false
		var root string
		switch err := tx.QueryRowContext(ctx, `SELECT root_fingerprint FROM ca_generations LIMIT 1`).Scan(&root); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case root != g.RootFingerprint:
			return fmt.Errorf("the store's CA has root %s, not %s: %w", root, g.RootFingerprint, store.ErrConflict)
		}
		if err := refuseDiscarded(tx.QueryRowContext(ctx, `SELECT discarded_at, discarded_by FROM ca_discarded WHERE issuer_id = ?`, g.IssuerID), g.IssuerID); err != nil {
			return err
		}
		var der []byte
		var switchAt int64
		switch err := tx.QueryRowContext(ctx, `SELECT issuer_der, switch_at FROM ca_generations WHERE issuer_id = ?`, g.IssuerID).Scan(&der, &switchAt); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case !bytes.Equal(der, g.IssuerDER) || switchAt != sqlstore.ZeroMicros(g.SwitchAt):
			return fmt.Errorf("issuing CA %s is recorded with another certificate or switch time: %w", g.IssuerID, store.ErrConflict)
		default:
			return nil
		}
		// key_hash: issuances to clients are refused this CA's key from
		// this commit on (checkKeyNotOwn), before any server reloads.
		if _, err := tx.ExecContext(ctx, `INSERT INTO ca_generations
			(issuer_id, root_fingerprint, issuer_der, ra_der, switch_at, published_at, published_by, key_hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			g.IssuerID, g.RootFingerprint, g.IssuerDER, sqlstore.NullBytes(g.RADER), sqlstore.ZeroMicros(g.SwitchAt), sqlstore.Micros(g.PublishedAt), g.PublishedBy,
			sqlstore.KeyHash(g.IssuerDER)); err != nil {
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

// backfillCAGenerationKeys hashes the keys of the generations recorded
// before schema version 29 wrote key_hash (checkKeyNotOwn looks them up
// by it). A few rows: once done, an open costs one read of them.
func (s *Store) backfillCAGenerationKeys(ctx context.Context) error {
	hashes, err := unhashedGenerations(ctx, s.w)
	if err != nil || len(hashes) == 0 {
		return err
	}
	err = s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		for _, g := range hashes {
			if _, err := tx.ExecContext(ctx, `UPDATE ca_generations SET key_hash = ? WHERE issuer_id = ? AND key_hash IS NULL`, g.KeyHash, g.IssuerID); err != nil {
				return fmt.Errorf("CA generation %s: %w", g.IssuerID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hash the CA generations' keys: %w", err)
	}
	return nil
}

// unhashedGenerations reads the generations whose key_hash is NULL and
// hashes their keys; one whose DER holds no key is left out (no key to
// refuse).
func unhashedGenerations(ctx context.Context, db *sql.DB) ([]sqlstore.GenerationKey, error) {
	out, err := queryAll(ctx, db, sqlstore.ScanGenerationKey, `SELECT issuer_id, issuer_der FROM ca_generations WHERE key_hash IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("hash the CA generations' keys: %w", err)
	}
	return sqlstore.HashedGenerations(out), nil
}

// PromoteCAGeneration implements store.Store.
func (s *Store) PromoteCAGeneration(ctx context.Context, issuerID string, at time.Time, ev pki.AuditEvent) (bool, error) {
	var promoted bool
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		promoted = false
		res, err := tx.ExecContext(ctx, `UPDATE ca_generations SET promoted_at = ?
			WHERE issuer_id = ? AND promoted_at IS NULL AND switch_at > 0 AND switch_at <= ?`,
			sqlstore.Micros(at), issuerID, sqlstore.Micros(at))
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

// DiscardCAGeneration implements store.Store, keeping the discard in
// ca_discarded. The conditional DELETE
// decides, under the write lock, against a promotion racing it.
func (s *Store) DiscardCAGeneration(ctx context.Context, issuerID string, now time.Time, ev pki.AuditEvent) error {
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM ca_generations
			WHERE issuer_id = ? AND promoted_at IS NULL AND switch_at > ?`, issuerID, sqlstore.Micros(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO ca_discarded (issuer_id, discarded_at, discarded_by) VALUES (?, ?, ?)
				ON CONFLICT (issuer_id) DO NOTHING`, issuerID, sqlstore.Micros(now), ev.Actor); err != nil {
				return err
			}
			return insertEvents(ctx, tx, now, []pki.AuditEvent{ev})
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM ca_generations WHERE issuer_id = ?`, issuerID).Scan(&one); err == nil {
			return fmt.Errorf("issuing CA %s is current or was: %w", issuerID, store.ErrConflict)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Never recorded: the discard is, so that no node holding a copy
		// records it later. One discarded before is ErrNotFound.
		res, err = tx.ExecContext(ctx, `INSERT INTO ca_discarded (issuer_id, discarded_at, discarded_by) VALUES (?, ?, ?)
			ON CONFLICT (issuer_id) DO NOTHING`, issuerID, sqlstore.Micros(now), ev.Actor)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("issuing CA %s: discarded before: %w", issuerID, store.ErrNotFound)
		}
		return insertEvents(ctx, tx, now, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: discard CA generation: %w", err)
	}
	return nil
}

// DiscardedCAGenerations implements store.Store.
func (s *Store) DiscardedCAGenerations(ctx context.Context) ([]store.DiscardedCAGeneration, error) {
	out, err := queryAll(ctx, s.r, scanDiscarded, `SELECT issuer_id, discarded_at, discarded_by FROM ca_discarded ORDER BY discarded_at, issuer_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: discarded CA generations: %w", err)
	}
	return out, nil
}

func scanDiscarded(sc sqlstore.Scanner) (store.DiscardedCAGeneration, error) {
	var d store.DiscardedCAGeneration
	var at int64
	err := sc.Scan(&d.IssuerID, &at, &d.DiscardedBy)
	d.DiscardedAt = sqlstore.FromMicros(at)
	return d, err
}

// refuseDiscarded is ErrConflict when row (discarded_at, discarded_by of
// ca_discarded) found issuerID: a discarded generation is never recorded
// again.
func refuseDiscarded(row *sql.Row, issuerID string) error {
	var at int64
	var by string
	switch err := row.Scan(&at, &by); {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("issuing CA %s was discarded at %s by %s: %w", issuerID,
		sqlstore.FromMicros(at).UTC().Format(time.RFC3339), by, store.ErrConflict)
}
