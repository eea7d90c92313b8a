package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// CAGenerations implements store.Store.
func (s *Store) CAGenerations(ctx context.Context) ([]store.CAGeneration, error) {
	out, err := queryAll(ctx, s.pool, sqlstore.ScanCAGeneration, `SELECT `+sqlstore.CAGenerationColumns+` FROM ca_generations ORDER BY switch_at, issuer_id`)
	if err != nil {
		return nil, pgError("postgres: CA generations: %w", err)
	}
	return out, nil
}

// PublishCAGeneration implements store.Store. The table is locked against
// other writers (EXCLUSIVE mode still lets readers in) for the root check
// and the insert, so two nodes creating a CA at once on an empty store do
// not both get theirs recorded: the second sees the first's root.
func (s *Store) PublishCAGeneration(ctx context.Context, g store.CAGeneration, ev pki.AuditEvent) (bool, error) {
	var inserted bool
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		inserted = false
		if _, err := tx.Exec(ctx, `LOCK TABLE ca_generations IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		var root string
		switch err := tx.QueryRow(ctx, `SELECT root_fingerprint FROM ca_generations LIMIT 1`).Scan(&root); {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case root != g.RootFingerprint:
			return fmt.Errorf("the store's CA has root %s, not %s: %w", root, g.RootFingerprint, store.ErrConflict)
		}
		if err := refuseDiscarded(tx.QueryRow(ctx, `SELECT discarded_at, discarded_by FROM ca_discarded WHERE issuer_id = $1`, g.IssuerID), g.IssuerID); err != nil {
			return err
		}
		var der []byte
		var switchAt int64
		switch err := tx.QueryRow(ctx, `SELECT issuer_der, switch_at FROM ca_generations WHERE issuer_id = $1`, g.IssuerID).Scan(&der, &switchAt); {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case !bytes.Equal(der, g.IssuerDER) || switchAt != sqlstore.ZeroMicros(g.SwitchAt):
			return fmt.Errorf("issuing CA %s is recorded with another certificate or switch time: %w", g.IssuerID, store.ErrConflict)
		default:
			return nil
		}
		// key_hash: issuances to clients are refused this CA's key from
		// this commit on (keyNotCompromisedNorOwnQry), before any node
		// reloads.
		if _, err := tx.Exec(ctx, `INSERT INTO ca_generations
			(issuer_id, root_fingerprint, issuer_der, ra_der, switch_at, published_at, published_by, key_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			g.IssuerID, g.RootFingerprint, g.IssuerDER, sqlstore.NullBytes(g.RADER), sqlstore.ZeroMicros(g.SwitchAt), sqlstore.Micros(g.PublishedAt), g.PublishedBy,
			sqlstore.KeyHash(g.IssuerDER)); err != nil {
			return conflict(err)
		}
		inserted = true
		return insertEvents(ctx, tx, g.PublishedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return false, pgError("postgres: publish CA generation: %w", err)
	}
	return inserted, nil
}

// backfillCAGenerationKeys hashes the keys of the generations recorded
// without key_hash: before schema version 29, or by a node of an older
// version since (keyNotCompromisedNorOwnQry looks them up by it). A few
// rows: once done, an open costs one read of them. Nodes opening at once
// write the same hashes.
func (s *Store) backfillCAGenerationKeys(ctx context.Context) error {
	gs, err := queryAll(ctx, s.pool, sqlstore.ScanGenerationKey, `SELECT issuer_id, issuer_der FROM ca_generations WHERE key_hash IS NULL`)
	if err != nil {
		return fmt.Errorf("hash the CA generations' keys: %w", err)
	}
	gs = sqlstore.HashedGenerations(gs)
	if len(gs) == 0 {
		return nil
	}
	ids := make([]string, len(gs))
	hashes := make([][]byte, len(gs))
	for i, g := range gs {
		ids[i], hashes[i] = g.IssuerID, g.KeyHash
	}
	if _, err := s.pool.Exec(ctx, `UPDATE ca_generations SET key_hash = v.h
		FROM unnest($1::text[], $2::bytea[]) AS v(id, h) WHERE ca_generations.issuer_id = v.id AND ca_generations.key_hash IS NULL`, ids, hashes); err != nil {
		return fmt.Errorf("hash the CA generations' keys: %w", err)
	}
	return nil
}

// PromoteCAGeneration implements store.Store. The conditional UPDATE
// decides: a node that waited for another's row lock re-reads promoted_at
// as committed and changes nothing.
func (s *Store) PromoteCAGeneration(ctx context.Context, issuerID string, at time.Time, ev pki.AuditEvent) (bool, error) {
	var promoted bool
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		promoted = false
		tag, err := tx.Exec(ctx, `UPDATE ca_generations SET promoted_at = $1
			WHERE issuer_id = $2 AND promoted_at IS NULL AND switch_at > 0 AND switch_at <= $1`,
			sqlstore.Micros(at), issuerID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			promoted = true
			return insertEvents(ctx, tx, at, []pki.AuditEvent{ev})
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM ca_generations WHERE issuer_id = $1`, issuerID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("issuing CA %s: %w", issuerID, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return false, pgError("postgres: promote CA generation: %w", err)
	}
	return promoted, nil
}

// DiscardCAGeneration implements store.Store, keeping the discard in
// ca_discarded. The conditional DELETE
// decides: a promotion that committed first leaves it nothing to delete.
func (s *Store) DiscardCAGeneration(ctx context.Context, issuerID string, now time.Time, ev pki.AuditEvent) error {
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM ca_generations
			WHERE issuer_id = $1 AND promoted_at IS NULL AND switch_at > $2`, issuerID, sqlstore.Micros(now))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			if _, err := tx.Exec(ctx, `INSERT INTO ca_discarded (issuer_id, discarded_at, discarded_by) VALUES ($1, $2, $3)
				ON CONFLICT (issuer_id) DO NOTHING`, issuerID, sqlstore.Micros(now), ev.Actor); err != nil {
				return err
			}
			return insertEvents(ctx, tx, now, []pki.AuditEvent{ev})
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM ca_generations WHERE issuer_id = $1`, issuerID).Scan(&one); err == nil {
			return fmt.Errorf("issuing CA %s is current or was: %w", issuerID, store.ErrConflict)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// Never recorded: the discard is, so that no node holding a copy
		// records it later. One discarded before is ErrNotFound.
		tag, err = tx.Exec(ctx, `INSERT INTO ca_discarded (issuer_id, discarded_at, discarded_by) VALUES ($1, $2, $3)
			ON CONFLICT (issuer_id) DO NOTHING`, issuerID, sqlstore.Micros(now), ev.Actor)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("issuing CA %s: discarded before: %w", issuerID, store.ErrNotFound)
		}
		return insertEvents(ctx, tx, now, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: discard CA generation: %w", err)
	}
	return nil
}

// DiscardedCAGenerations implements store.Store.
func (s *Store) DiscardedCAGenerations(ctx context.Context) ([]store.DiscardedCAGeneration, error) {
	out, err := queryAll(ctx, s.pool, scanDiscarded, `SELECT issuer_id, discarded_at, discarded_by FROM ca_discarded ORDER BY discarded_at, issuer_id`)
	if err != nil {
		return nil, pgError("postgres: discarded CA generations: %w", err)
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
// again. Read under PublishCAGeneration's table lock, which a discard's
// DELETE waits for (or the other way round).
func refuseDiscarded(row pgx.Row, issuerID string) error {
	var at int64
	var by string
	switch err := row.Scan(&at, &by); {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("issuing CA %s was discarded at %s by %s: %w", issuerID,
		sqlstore.FromMicros(at).UTC().Format(time.RFC3339), by, store.ErrConflict)
}
