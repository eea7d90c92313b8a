package postgres

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// searchText is the expression the certificates_search trigram index is
// built on (migrations/0016_search_unescaped.sql: subject, SANs and serial,
// lower case, RFC 4514 escapes removed); queries spell it the same so that
// the planner matches them to the index.
var searchText = sqlstore.SearchText("")

// subjectText is a certificate's subject as a search matches it.
var subjectText = sqlstore.SubjectText()

// scanCert is sqlstore.ScanCert with the DNs decoded (see encText).
func scanCert(sc sqlstore.Scanner) (pki.Certificate, int64, error) {
	c, id, err := sqlstore.ScanCert(sc)
	c.Issuer, c.Subject = decText(c.Issuer), decText(c.Subject)
	return c, id, err
}

// scanListedCert is scanCert for a row of sqlstore.ListCertColumns.
func scanListedCert(sc sqlstore.Scanner) (pki.Certificate, int64, error) {
	c, id, err := sqlstore.ScanListedCert(sc)
	c.Issuer, c.Subject = decText(c.Issuer), decText(c.Subject)
	return c, id, err
}

// ReserveSerial implements store.Store. A second reservation of the same
// serial, concurrent or not, hits the primary key: ErrConflict. Its
// transaction ends, as an issuance's does, with schemaCheckQuery (same
// round trip): a store another node migrated past this binary refuses the
// reservation, before anything is signed, as RecordIssuance would refuse
// the issuance, and keeps no serial.
func (s *Store) ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error {
	if err := s.schema.err(); err != nil {
		return fmt.Errorf("postgres: reserve serial %s/%s: %w", issuerID, serialHex, err)
	}
	err := s.retry(ctx, func() error {
		return sendTx(ctx, s.pool, func(b *pgx.Batch) {
			b.Queue(`SET LOCAL synchronous_commit TO OFF`)
			b.Queue(`INSERT INTO serials (issuer_id, serial_hex, reserved_at, tbs) VALUES ($1, $2, $3, $4)`,
				issuerID, serialHex, sqlstore.Micros(at), sqlstore.NullBytes(tbs))
			// After the write: see schema.go.
			b.Queue(schemaCheckQuery, knownVersion())
		}, func(br pgx.BatchResults) error {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("set synchronous_commit: %w", err)
			}
			if _, err := br.Exec(); err != nil {
				return conflict(err)
			}
			return schemaChecked(br.Exec())
		})
	})
	if err != nil {
		err = s.schemaAhead(ctx, err)
		return pgError("postgres: reserve serial %s/%s: %w", issuerID, serialHex, err)
	}
	return nil
}

// ReserveSerialClaiming implements store.Store in one statement, an
// ordered (not flushed) transaction as ReserveSerial's: the claim, then the
// reservation only if the claim holds. A concurrent claim of the same
// transaction waits for this one's outcome, and then finds it live; a
// taken serial rolls the claim back with it. The claim's row is new when
// no transaction has touched it yet (xmax 0), and updated when it was
// taken over, whoever committed it just before. As ReserveSerial's, the
// transaction ends with schemaCheckQuery: a schema newer than this
// binary's rolls back the claim with the reservation.
func (s *Store) ReserveSerialClaiming(ctx context.Context, c store.TransactionClaim, issuerID, serialHex string, tbs []byte) (tookOver bool, _ error) {
	if err := s.schema.err(); err != nil {
		return false, fmt.Errorf("postgres: reserve serial %s/%s for transaction %q: %w", issuerID, serialHex, c.TransactionID, err)
	}
	at := sqlstore.Micros(c.At)
	err := s.retry(ctx, func() error {
		return sendTx(ctx, s.pool, func(b *pgx.Batch) {
			b.Queue(`SET LOCAL synchronous_commit TO OFF`)
			b.Queue(`WITH claim AS (
				INSERT INTO transaction_claims (key_hash, profile, transaction_id, claimant, claimed_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (key_hash, profile, transaction_id) DO UPDATE
				SET claimant = excluded.claimant, claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
				WHERE transaction_claims.expires_at <= $5 OR transaction_claims.claimant = excluded.claimant
				RETURNING xmax <> 0 AS took_over)
			INSERT INTO serials (issuer_id, serial_hex, reserved_at, tbs)
			SELECT $7::text, $8::text, $5::bigint, $9::bytea FROM claim
			RETURNING (SELECT took_over FROM claim)`,
				c.KeyHash, []byte(c.Profile), []byte(c.TransactionID), c.Claimant, at, sqlstore.Micros(c.Expires),
				issuerID, serialHex, sqlstore.NullBytes(tbs))
			// After the writes: see schema.go.
			b.Queue(schemaCheckQuery, knownVersion())
		}, func(br pgx.BatchResults) error {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("set synchronous_commit: %w", err)
			}
			err := br.QueryRow().Scan(&tookOver)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return conflict(err)
			}
			// Read even when the claim is another's: a node that may not
			// issue should say so rather than wait for that claim.
			if err := schemaChecked(br.Exec()); err != nil {
				return err
			}
			if err != nil {
				return store.ErrTransactionClaimed
			}
			return nil
		})
	})
	if err != nil {
		err = s.schemaAhead(ctx, err)
		return false, pgError("postgres: reserve serial %s/%s for transaction %q: %w", issuerID, serialHex, c.TransactionID, err)
	}
	return tookOver, nil
}

// ReleaseTransactionClaim implements store.Store: the claim ends at c.At
// and is kept, as a recorded one is (see endClaimQuery).
func (s *Store) ReleaseTransactionClaim(ctx context.Context, c store.TransactionClaim) error {
	err := s.withOrderedStatement(ctx, func(db execer) error {
		_, err := db.Exec(ctx, `UPDATE transaction_claims SET claimed_at = $1, expires_at = 0
			WHERE key_hash = $2 AND profile = $3 AND transaction_id = $4 AND claimant = $5 AND expires_at <> 0`,
			sqlstore.Micros(c.At), c.KeyHash, []byte(c.Profile), []byte(c.TransactionID), c.Claimant)
		return err
	})
	if err != nil {
		return pgError("postgres: release claim on transaction %q: %w", c.TransactionID, err)
	}
	return nil
}

// TransactionClaimOf implements store.Store: one primary-key read.
func (s *Store) TransactionClaimOf(ctx context.Context, keyHash []byte, profile, transactionID string) (*store.TransactionClaim, error) {
	c := store.TransactionClaim{KeyHash: keyHash, Profile: profile, TransactionID: transactionID}
	var at, expires int64
	err := s.queryRow(ctx, `SELECT claimant, claimed_at, expires_at FROM transaction_claims
		WHERE key_hash = $1 AND profile = $2 AND transaction_id = $3`,
		keyHash, []byte(profile), []byte(transactionID)).Scan(&c.Claimant, &at, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, pgError("postgres: claim on transaction %q: %w", transactionID, err)
	}
	c.At, c.Expires = sqlstore.FromMicros(at), sqlstore.FromZeroMicros(expires)
	return &c, nil
}

// RecordIssuance implements store.Store.
func (s *Store) RecordIssuance(ctx context.Context, in store.Issuance) error {
	c := &in.Certificate
	if err := s.schema.err(); err != nil {
		return fmt.Errorf("postgres: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	if err := sqlstore.CheckIssuance(&in); err != nil {
		return pgError("postgres: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	sans, err := sqlstore.EncodeSANs(c.SANs)
	if err != nil {
		return pgError("postgres: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	var reason any
	if c.Status == pki.StatusRevoked {
		reason = c.RevokeReason
	}
	now := sqlstore.Micros(in.Now)
	keyHash := sqlstore.IssuanceKeyHash(&in)
	issued := newClaimedIssuanceRows(c, keyHash, sans, reason, now, in.Claim)
	plain := in.CompleteRequestID == "" && c.Status != pki.StatusRevoked && in.Supersede == nil && in.Renews == nil && len(in.Events) > 0
	if plain {
		// Every first enrollment comes this way.
		err = s.issuePlain(ctx, &in, issued, now)
	}
	if !plain || errors.Is(err, errHeadMissing) {
		err = s.settle(ctx, c, false, func() error {
			return s.withTx(ctx, func(tx pgx.Tx) error {
				if err := recordIssuanceInTx(ctx, tx, &in, issued, now); err != nil {
					return err
				}
				// After the writes: see schema.go.
				return s.checkSchemaInTx(ctx, tx)
			})
		})
	}
	if errors.Is(err, store.ErrOwnKey) {
		err = s.ownKeyError(ctx, keyHash)
	}
	if err != nil {
		err = s.schemaAhead(ctx, err)
		return pgError("postgres: record issuance of %s/%s: %w", c.IssuerID, c.SerialHex, err)
	}
	return nil
}

// settle runs record, which records c in a transaction of its own (with
// retries), and settles what a lost connection leaves unknown. A
// transaction sent on a connection that fails before the server's answer
// comes back may have committed or not. Should record's run end so, it
// runs once more (again while that meets connections the server ended):
// that records c, or meets the first run's record (c's serial taken, its
// one-time challenge used up). Once an outcome was
// unknown (here, or as the caller says, a batch's), a failure is checked
// against the store: if c is recorded, byte for byte, it was this
// issuance's, and the caller hears so. Told of a failure instead, its
// client would come back to find its challenge used up, or the
// certificate it renews revoked.
func (s *Store) settle(ctx context.Context, c *pki.Certificate, unknown bool, record func() error) error {
	err := record()
	if err != nil && outcomeUnknown(ctx, err) {
		unknown = true
		err = record()
		// Ended with the first run's, the pool's idle connections may
		// all be: run once more on each until one reaches the server.
		for range s.deadConnRetries() {
			if !connEnded(ctx, err) {
				break
			}
			err = record()
		}
	}
	// The run after an unknown outcome may fail on the first run's
	// record: c's serial taken (a conflict), its challenge used up, the
	// certificate it renews revoked.
	if err != nil && unknown && s.recorded(ctx, c) {
		return nil
	}
	return err
}

// outcomeUnknown reports whether err may have come after a transaction
// was sent, with no answer from the server: not a refusal (every store
// error of a known outcome comes from one), not a failure to connect, and
// not the caller giving up. The server ending a connection it had accepted
// (connectionLost) is no refusal: it may come at any point of the
// transaction, after its commit included.
func outcomeUnknown(ctx context.Context, err error) bool {
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	switch {
	case err == nil, ctx.Err() != nil, errors.As(err, &ce), ranNothing(err):
		return false
	case connectionLost(err):
		return true
	case errors.As(err, &pe),
		errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrChallengeUnusable), errors.Is(err, store.ErrNotFound),
		errors.Is(err, store.ErrRenewsRevoked), errors.Is(err, store.ErrKeyCompromised), errors.Is(err, store.ErrOwnKey),
		errors.Is(err, errHeadMissing), errors.Is(err, store.ErrAuditTampered), errors.Is(err, pgx.ErrTxCommitRollback),
		errors.Is(err, errSchemaAhead):
		return false
	}
	return true
}

// connectionLost reports whether err is the server ending the session
// rather than refusing a statement: a FATAL or PANIC (an administrator's
// pg_terminate_backend, 57P01, or a shutdown, 57P02/57P03) or a connection
// class error (08xxx). A connection the server ended while it sat in the
// pool reports it too, before anything was sent: running the transaction
// again is then right as well.
func connectionLost(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	severity := cmp.Or(pe.SeverityUnlocalized, pe.Severity)
	return severity == "FATAL" || severity == "PANIC" || strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P0")
}

// connEnded reports whether err is a connection the server ended, or
// closed, when it was used (or one pgx closed already, which it reports
// before sending anything): not one that could not be made, and not the
// caller giving up. The next connection from the pool may be fine.
func connEnded(ctx context.Context, err error) bool {
	var ce *pgconn.ConnectError
	if err == nil || ctx.Err() != nil || errors.As(err, &ce) {
		return false
	}
	return connectionLost(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err)
}

// deadConnRetries is how many more times an operation runs after a
// connection the server ended (connEnded: settle, retry, queryRow, query).
// The server may have ended every idle connection of the pool with it
// (pg_terminate_backend on all of a role's backends, a restart), and the
// pool checks only those idle for a second before it hands them out: one
// more than the pool's size reaches a connection made afresh.
func (s *Store) deadConnRetries() int { return int(s.pool.Config().MaxConns) + 1 }

// recorded reports whether c is in the store as it is, byte for byte (the
// read runs again past connections the server ended: queryRow).
func (s *Store) recorded(ctx context.Context, c *pki.Certificate) bool {
	got, err := s.Certificate(ctx, c.IssuerID, c.SerialHex)
	return err == nil && bytes.Equal(got.DER, c.DER)
}

// issuanceRows queues the two inserts every issuance makes: the
// certificate and its serial.
type issuanceRows func(b *pgx.Batch)

func newIssuanceRows(c *pki.Certificate, keyHash any, sans string, reason any, now int64) issuanceRows {
	return newClaimedIssuanceRows(c, keyHash, sans, reason, now, nil)
}

// newClaimedIssuanceRows is newIssuanceRows for an issuance that ends its
// claim on a SCEP transaction (store.Issuance.Claim, when set): the claim
// ends with the serial's insert, in one statement, so that readers of
// the batch's results count two statements still.
//
// A claim ended (recorded or released) has expires_at 0, so that it is
// taken over at any time (another node's clock may lag), and claimed_at
// its end, from which PurgeExpired keeps it store.EndedClaimRetention.
// The record ends the claimant's own claim, or any ended or lapsed one, or
// makes a new ended row; another's live claim ends later by itself.
func newClaimedIssuanceRows(c *pki.Certificate, keyHash any, sans string, reason any, now int64, claim *store.TransactionClaim) issuanceRows {
	return func(b *pgx.Batch) {
		b.Queue(`INSERT INTO certificates (
			issuer_id, serial_hex, issuer_dn, subject_dn, sans, not_before, not_after,
			status, revoked_at, revoke_reason, profile, protocol, source, requester_addr,
			transaction_id, key_type, renewed_from, created_at, der, revoked_by, key_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
			c.IssuerID, c.SerialHex, encText(c.Issuer), encText(c.Subject), sans, sqlstore.Micros(c.NotBefore), sqlstore.Micros(c.NotAfter),
			string(c.Status), sqlstore.NullMicros(c.RevokedAt), reason, c.Profile, string(c.Protocol), string(c.Source),
			c.RequesterAddr, c.TransactionID, c.KeyType, c.RenewedFrom, sqlstore.Micros(c.CreatedAt), c.DER, c.RevokedBy,
			keyHash)
		// The serial registry holds every serial ever used, whether or not
		// it was reserved in a transaction of its own before.
		if claim == nil {
			b.Queue(`INSERT INTO serials (issuer_id, serial_hex, reserved_at) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, c.IssuerID, c.SerialHex, now)
			return
		}
		b.Queue(`WITH ended AS (
				INSERT INTO transaction_claims (key_hash, profile, transaction_id, claimant, claimed_at, expires_at)
				VALUES ($4, $5, $6, $7, $3, 0)
				ON CONFLICT (key_hash, profile, transaction_id) DO UPDATE
				SET claimant = excluded.claimant, claimed_at = excluded.claimed_at, expires_at = 0
				WHERE transaction_claims.claimant = excluded.claimant OR transaction_claims.expires_at <= $3)
			INSERT INTO serials (issuer_id, serial_hex, reserved_at) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, c.IssuerID, c.SerialHex, now,
			claim.KeyHash, []byte(claim.Profile), []byte(claim.TransactionID), claim.Claimant)
	}
}

// tryIssuances records plain issuances (no held request to complete, not
// revoked, superseding nothing, with audit events) in one READ COMMITTED
// transaction of one round trip (sendTx): BEGIN, the challenges, the inserts, an
// audit_append per event (which reads and locks the chain's head, links
// the event to it and moves it, inside the database) and COMMIT go in one
// batch. The head is held until the commit is flushed, and the issuances
// of every node take turns there; read by the node, it would cost each
// turn a round trip as well (and pgx.Tx one more each for BEGIN and
// COMMIT). Several issuances (groupissue.go) take one turn and one flush.
//
// Since COMMIT goes with the rest, whatever may stop an issuance fails
// inside the database (consume_challenge, audit_append, a key), and the
// server then skips the rest of the batch, COMMIT included: nothing of it
// is recorded. With the head's row gone it returns errHeadMissing.
//
// The rows every issuance locks are taken in one order by every
// transaction, so that two nodes' batches cannot wait for each other: the
// challenges (by hash), then the certificates with their per-day counts
// (by profile, status and expiry), then the chain's head. A single
// issuance, and a revocation (its certificate and counts, then the head),
// follow the same order. An issuance that supersedes another takes the new
// and the old certificate's counts in its own order; should a batch hold
// both of those days' rows in one profile, PostgreSQL breaks the deadlock
// after deadlock_timeout and the retries run both again.
func (s *Store) tryIssuances(ctx context.Context, items []*issueRequest) error {
	var challenges []*issueRequest
	for _, r := range items {
		if r.in.ConsumeChallengeHash != nil {
			challenges = append(challenges, r)
		}
	}
	slices.SortFunc(challenges, func(x, y *issueRequest) int {
		return bytes.Compare(x.in.ConsumeChallengeHash, y.in.ConsumeChallengeHash)
	})
	if len(items) > 1 {
		items = slices.Clone(items)
		slices.SortStableFunc(items, func(x, y *issueRequest) int {
			a, c := &x.in.Certificate, &y.in.Certificate
			return cmp.Or(strings.Compare(a.Profile, c.Profile), strings.Compare(string(a.Status), string(c.Status)),
				cmp.Compare(expiryDay(a.NotAfter), expiryDay(c.NotAfter)))
		})
	}
	keys := issuanceKeys(items)
	events := 0
	queue := func(b *pgx.Batch) {
		for _, k := range keys {
			b.Queue(lockKeyQuery, lockKeyArgs(k.hash)...)
		}
		for _, k := range keys {
			b.Queue(k.query(), k.hash)
		}
		for _, r := range challenges {
			b.Queue(consumeChallengeQuery, r.now, r.in.ConsumeChallengeHash, certRef(&r.in.Certificate))
		}
		for _, r := range items {
			r.issued(b)
		}
		for _, r := range items {
			for _, e := range r.in.Events {
				e = chainEvent(e, r.in.Now)
				b.Queue(auditAppendQuery, sqlstore.Micros(e.Time), encText(e.Type), encText(e.Actor), encText(e.Profile),
					encText(e.SerialHex), encText(e.IssuerID), encText(e.Subject), encText(e.TransactionID),
					encText(e.Outcome), encText(e.Reason), encText(e.Detail), pki.AuditChainTail(e))
				events++
			}
		}
		// Last, after every write: see schema.go.
		b.Queue(schemaCheckQuery, knownVersion())
	}
	return sendTx(ctx, s.pool, queue, func(br pgx.BatchResults) error {
		for range keys {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("lock key: %w", err)
			}
		}
		for range keys {
			if err := keyChecked(br.Exec()); err != nil {
				return err
			}
		}
		for range challenges {
			if err := consumed(br.Exec()); err != nil {
				return err
			}
		}
		for range items {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("insert certificate: %w", conflict(err))
			}
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("record serial: %w", err)
			}
		}
		for range events {
			if _, err := br.Exec(); err != nil {
				switch sqlState(err) {
				case sqlHeadMissing:
					return errHeadMissing
				case sqlRecordAfterHead:
					return fmt.Errorf("insert audit event: %s: %w", serverMessage(err), store.ErrAuditTampered)
				}
				return fmt.Errorf("insert audit event: %w", afterHead(err))
			}
		}
		return schemaChecked(br.Exec())
	})
}

// issuanceKeys are the keys items are guarded on (issuanceKeyGuard), each
// once, sorted: every batch takes their locks in one order. A key is
// checked against the server's own if any of its issuances asks.
func issuanceKeys(items []*issueRequest) []keyGuard {
	var keys []keyGuard
	for _, r := range items {
		if k := issuanceKeyGuard(r.in); k.hash != nil {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y keyGuard) int { return bytes.Compare(x.hash, y.hash) })
	out := keys[:0]
	for _, k := range keys {
		if n := len(out); n > 0 && bytes.Equal(out[n-1].hash, k.hash) {
			out[n-1].own = out[n-1].own || k.own
			continue
		}
		out = append(out, k)
	}
	return out
}

// expiryDay is the day certificate_counts files a certificate under
// (migrations: not_after / 86400000000).
func expiryDay(t time.Time) int64 { return sqlstore.Micros(t) / 86400000000 }

// auditAppendQuery is audit_append (migrations/0014_audit_append.sql).
const auditAppendQuery = `SELECT audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// errHeadMissing: tryIssuances found no audit chain head, and recorded
// nothing; withTx's way (lockAuditHead) refuses a trail that has records,
// or none beside certificates, or starts a wiped one of a store without
// certificates again.
var errHeadMissing = errors.New("audit chain head missing")

// committed is the outcome of a COMMIT sent in a batch: a transaction that
// failed is rolled back by it, and the tag says so.
func committed(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

// beginQuery starts tryIssuances' transaction, as withTx's.
const beginQuery = `BEGIN ISOLATION LEVEL READ COMMITTED`

// endTx rolls back what a failed tryIssuances left open and gives the
// connection back to the pool (which closes it, rather than reuse it,
// should the rollback fail too).
func endTx(ctx context.Context, conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() != 'I' {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
	}
	conn.Release()
}

// recordIssuanceInTx is RecordIssuance for the rest: a held request
// completed, a revoked certificate, a renewal, or no events.
func recordIssuanceInTx(ctx context.Context, tx pgx.Tx, in *store.Issuance, issued issuanceRows, now int64) error {
	c := &in.Certificate
	// The one-time challenge is consumed in the batch below, first,
	// unless a held request is completed too: then both go first, one
	// after the other, in the order they always had.
	consumeInBatch := in.ConsumeChallengeHash != nil && in.CompleteRequestID == ""
	if in.Renews != nil {
		// Locked until the commit: a revocation, or a renewal that
		// supersedes it, waits for this transaction, or this one for
		// theirs and then reads what they wrote.
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM certificates WHERE issuer_id = $1 AND serial_hex = $2 FOR UPDATE`,
			in.Renews.IssuerID, in.Renews.SerialHex).Scan(&status)
		if err := sqlstore.RenewableStatus(in.Renews, status, errors.Is(err, pgx.ErrNoRows), err); err != nil {
			return err
		}
	}
	// After the renewed certificate's lock, as a revocation takes its
	// certificate's and then the key's.
	if err := guardKey(ctx, tx, issuanceKeyGuard(in)); err != nil {
		return err
	}
	if !consumeInBatch {
		if err := consumeChallenge(ctx, tx, in.ConsumeChallengeHash, now, certRef(c)); err != nil {
			return err
		}
	}
	if in.CompleteRequestID != "" {
		if err := completeRequest(ctx, tx, in); err != nil {
			return err
		}
	}
	// The inserts go to the server together, one round trip, and with
	// them the read that locks the audit chain's head, unless the
	// certificate is revoked or supersedes another: those lock other
	// rows first (as a revocation does), and take the head after them.
	var b pgx.Batch
	if consumeInBatch {
		b.Queue(consumeChallengeQuery, now, in.ConsumeChallengeHash, certRef(c))
	}
	issued(&b)
	headFirst := c.Status != pki.StatusRevoked && in.Supersede == nil && len(in.Events) > 0
	if headFirst {
		b.Queue(lockHeadQuery)
	}
	var head store.AuditHead
	locked := false
	var readHead func(pgx.BatchResults) error
	if headFirst {
		readHead = func(br pgx.BatchResults) (err error) {
			head, locked, err = scanHead(br.QueryRow())
			return err
		}
	}
	if err := sendIssuance(ctx, tx, &b, consumeInBatch, readHead); err != nil {
		return err
	}
	if c.Status == pki.StatusRevoked {
		if err := bumpRevocationState(ctx, tx, c.IssuerID); err != nil {
			return err
		}
		if err := recordCompromisedKey(ctx, tx, c); err != nil {
			return err
		}
	}
	events := in.Events
	if in.Supersede != nil {
		ev, err := supersede(ctx, tx, in)
		if err != nil {
			return err
		}
		if ev != nil {
			// A copy: the transaction may be retried with in.
			events = append(slices.Clip(events), *ev)
		}
	}
	if !locked {
		return insertEvents(ctx, tx, in.Now, events)
	}
	return appendEvents(ctx, tx, head, in.Now, events)
}

// sendIssuance sends an issuance's batch inside its transaction and reads
// its results: when consume, the update that consumes the one-time
// challenge; the certificate and its serial; and then, when rest is not
// nil, whatever else the batch holds. A challenge
// that could not be consumed fails it with store.ErrChallengeUnusable; the
// inserts that ran after it are undone with the transaction.
func sendIssuance(ctx context.Context, tx pgx.Tx, b *pgx.Batch, consume bool, rest func(pgx.BatchResults) error) (err error) {
	br := tx.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("insert certificate: %w", conflict(cerr))
		}
	}()
	if consume {
		if err := consumed(br.Exec()); err != nil {
			return err
		}
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("insert certificate: %w", conflict(err))
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("record serial: %w", err)
	}
	if rest == nil {
		return nil
	}
	return rest(br)
}

// scanHead reads the locking read of the chain's head (lockHeadQuery).
// locked is false when the row is gone: insertEvents (lockAuditHead) then
// refuses a trail that has records, or starts an empty one again. A trail
// with a record after its head (renumbered or written outside scepter) is
// refused, store.ErrAuditTampered: chained on, the new records would fill
// the gap below it and lengthen a trail that no longer verifies.
func scanHead(row pgx.Row) (head store.AuditHead, locked bool, err error) {
	var newest int64
	err = row.Scan(&head.LastID, &head.LastHash, &head.Count, &newest)
	if errors.Is(err, pgx.ErrNoRows) {
		return head, false, nil
	}
	if err != nil {
		return head, false, fmt.Errorf("audit chain head: %w", err)
	}
	if newest > head.LastID {
		return head, false, fmt.Errorf("audit chain head: record %d comes after the head, record %d: %w",
			newest, head.LastID, store.ErrAuditTampered)
	}
	return head, true, nil
}

// Certificate implements store.Store.
func (s *Store) Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error) {
	issuerID, serialHex = key(issuerID), key(serialHex)
	row := s.queryRow(ctx, `SELECT `+sqlstore.CertColumns+` FROM certificates
		WHERE issuer_id = $1 AND serial_hex = $2`, issuerID, serialHex)
	c, _, err := scanCert(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pgError("postgres: certificate %s/%s: %w", issuerID, serialHex, store.ErrNotFound)
	}
	if err != nil {
		return nil, pgError("postgres: certificate %s/%s: %w", issuerID, serialHex, err)
	}
	return &c, nil
}

// CertificatesBySerial implements store.Store. Records come oldest first.
func (s *Store) CertificatesBySerial(ctx context.Context, serialHex string) ([]pki.Certificate, error) {
	serialHex = key(serialHex)
	a := sqlstore.Args{Numbered: true}
	certs, _, err := s.queryCerts(ctx, sqlstore.CertsBySerialQuery(serialHex, &a), a.Values...)
	if err != nil {
		return nil, pgError("postgres: certificates with serial %s: %w", serialHex, err)
	}
	return certs, nil
}

// CertificatesOfTransaction implements store.Store.
func (s *Store) CertificatesOfTransaction(ctx context.Context, keyHash []byte, profile, transactionID string, issuedAfter time.Time) ([]pki.Certificate, error) {
	a := sqlstore.Args{Numbered: true}
	certs, _, err := s.queryCerts(ctx, sqlstore.CertsOfTransactionQuery(keyHash, profile, transactionID, sqlstore.Micros(issuedAfter), &a), a.Values...)
	if err != nil {
		return nil, pgError("postgres: certificates of transaction %q: %w", transactionID, err)
	}
	return certs, nil
}

// ListCertificates implements store.Store with keyset pagination: each page
// continues strictly after the sort key of the previous page's last row, so
// pages neither skip nor repeat rows when others are inserted meanwhile, and
// a late page costs the same as the first.
//
// With NotAfterBefore set the order is (not_after, id) ascending; with an
// issuance window (and no search), (created_at, id) descending; otherwise
// id descending (newest first).
func (s *Store) ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error) {
	f.Profile, f.IssuerID, f.Protocol, f.Search = key(f.Profile), key(f.IssuerID), pki.Protocol(key(string(f.Protocol))), key(f.Search)
	q, args, order, err := listQuery(f)
	if err != nil {
		return nil, "", pgError("postgres: list certificates: %w", err)
	}
	certs, ids, err := s.queryCertsWith(ctx, scanListedCert, q, append([]any{s.listMode}, args...)...)
	if err != nil {
		return nil, "", pgError("postgres: list certificates: %w", err)
	}
	certs, next := sqlstore.NextPage(certs, ids, sqlstore.PageLimit(f.Limit), order,
		func(c pki.Certificate) pki.Certificate { return c })
	return certs, next, nil
}

// customPlanMode is how ListCertificates runs its query on connections of
// cc, so that PostgreSQL plans it for its values every time.
//
// pgx's default (QueryExecModeCacheStatement) prepares a statement under a
// name and reuses it on the connection, and after five runs PostgreSQL may
// give a prepared statement its generic plan, planned without the values,
// for good. A listing's values decide its best plan: a frequent term is
// read in id order up to LIMIT, a rare one looked up in the trigram index,
// and a rare profile or status read from its own index. The generic plan
// that a few such first runs make look cheap walks the ids and filters,
// through the whole table for the next search (TestSearchPlansStayCustom:
// a search of 1 ms took 70–180 ms on 20,000 certificates, 0.6 s on
// 100,000). QueryExecModeCacheDescribe
// runs it as the unnamed statement, which is planned for its values on
// every run, in one round trip with binary results as before: it costs a
// parse per run, small next to the planning every custom plan takes
// anyway, and less than a transaction to SET LOCAL plan_cache_mode.
//
// A mode chosen in the URL (default_query_exec_mode) prepares no named
// statement and is kept; without a description cache
// (description_cache_capacity=0), the statement is described on every run,
// a second round trip.
func customPlanMode(cc *pgx.ConnConfig) pgx.QueryExecMode {
	switch {
	case cc.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement:
		return cc.DefaultQueryExecMode
	case cc.DescriptionCacheCapacity == 0:
		return pgx.QueryExecModeDescribeExec
	default:
		return pgx.QueryExecModeCacheDescribe
	}
}

// listQuery builds the page query for f, separate from ListCertificates so
// the query-plan test sees exactly the SQL that runs.
//
// Every shape is a range read of an index in the output order (the
// indexes of migrations/0001_init.sql, one per equality filter and order)
// or, for a search of three characters or more, a lookup in the trigram
// index, and every one ends with LIMIT: the planner reads the index in
// order and stops at LIMIT when the filter matches much, and looks the
// term up in the trigram index when it matches little.
func listQuery(f store.CertFilter) (q string, args []any, order sqlstore.CursorKind, err error) {
	cur, err := sqlstore.ParseCursor(f.Cursor)
	if err != nil {
		return "", nil, 0, err
	}
	if err := sqlstore.CheckCertFilter(f); err != nil {
		return "", nil, 0, err
	}
	a := sqlstore.Args{Numbered: true}
	order, term := sqlstore.CertOrder(f)
	var where []string
	switch order {
	case sqlstore.CursorExpiry:
		if cur.Kind == sqlstore.CursorNewest || cur.Kind == sqlstore.CursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order, filter is by expiry", store.ErrBadCursor)
		}
		where = append(where, "not_after < "+a.Add(sqlstore.Micros(f.NotAfterBefore)))
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "not_after > "+a.Add(sqlstore.Micros(f.NotAfterAfter)))
		}
		if cur.Kind == sqlstore.CursorExpiry {
			where = append(where, "(not_after, id) > ("+a.Add(cur.Time)+", "+a.Add(cur.ID)+")")
		}
	case sqlstore.CursorIssued:
		if cur.Kind != sqlstore.CursorNone && cur.Kind != sqlstore.CursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order than issuance time", store.ErrBadCursor)
		}
		if cur.Kind == sqlstore.CursorIssued {
			where = append(where, "(created_at, id) < ("+a.Add(cur.Time)+", "+a.Add(cur.ID)+")")
		}
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "not_after > "+a.Add(sqlstore.Micros(f.NotAfterAfter)))
		}
	default:
		if cur.Kind == sqlstore.CursorExpiry || cur.Kind == sqlstore.CursorIssued {
			return "", nil, 0, fmt.Errorf("%w: cursor is for another order, filter is newest-first", store.ErrBadCursor)
		}
		// Always bounded, so the first page is the same index range read as
		// the later ones.
		id := int64(math.MaxInt64)
		if cur.Kind == sqlstore.CursorNewest {
			id = cur.ID
		}
		where = append(where, "id < "+a.Add(id))
		if !f.NotAfterAfter.IsZero() {
			where = append(where, "not_after > "+a.Add(sqlstore.Micros(f.NotAfterAfter)))
		}
	}
	where = sqlstore.CertFilterWhere(where, f, &a, "")
	if term != "" {
		var match string
		if len([]rune(term)) >= 3 {
			// LIKE on the indexed expression: the trigram index answers it
			// (and rechecks its candidates), whatever characters the term
			// holds.
			match = searchText + ` LIKE ` + a.Add("%"+sqlstore.EscapeLike(term)+"%")
		} else {
			// Too short for trigrams: a trigram index would have to read
			// all of itself. strpos is no index operator, so the planner
			// walks the order's index and stops at LIMIT instead.
			match = `strpos(` + searchText + `, ` + a.Add(term) + `) > 0`
		}
		// A term written as openssl prints a serial also matches the
		// stored serial. Every such serial holds the serial's core, so
		// the trigram index can still find the candidates (the term's or
		// the core's) before the conditions pick from them.
		serial, ok := sqlstore.SerialSearch(term)
		if ok {
			if core := serial.Core(); len([]rune(term)) >= 3 && len(core) >= 3 {
				where = append(where, "("+match+` OR `+searchText+` LIKE `+a.Add("%"+core+"%")+")")
			}
			match = "(" + strings.Join(append([]string{match}, serial.Conds(&a)...), " OR ") + ")"
		}
		// The search text only narrows the candidates (it holds the SANs'
		// JSON punctuation, and text across values); valueMatch, which
		// the planner tests after the cheaper conditions, picks from them.
		where = append(where, match, valueMatch(term, serial, &a))
	}
	orderBy := "id DESC"
	switch order {
	case sqlstore.CursorExpiry:
		orderBy = "not_after, id"
	case sqlstore.CursorIssued:
		orderBy = "created_at DESC, id DESC"
	}
	q = `SELECT ` + sqlstore.ListCertColumns("certificates") + ` FROM certificates WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + orderBy + ` LIMIT ` + a.Add(sqlstore.PageLimit(f.Limit)+1)
	return q, a.Values, order, nil

}

// valueMatch is the condition that a search term (sqlstore.SearchTerm's)
// is a substring of the serial, of the subject as a search reads it
// (sqlstore.SubjectText), or of one SAN, lower case; or that it is the
// serial as openssl prints it (serial: sqlstore.SerialSearch's, the zero
// SerialMatch for a term that is none). A SAN with a NUL, stored as the
// JSON escape \u0000, reads with U+FFFD in its place: PostgreSQL's text
// cannot hold a NUL, and would fail the whole search.
func valueMatch(term string, serial sqlstore.SerialMatch, a *sqlstore.Args) string {
	t := a.Add(term)
	conds := append([]string{
		`strpos(lower(serial_hex), ` + t + `) > 0`,
		`strpos(` + subjectText + `, ` + t + `) > 0`,
		`EXISTS (SELECT FROM json_array_elements_text(replace(sans, '\u0000', '\ufffd')::json) AS san(value)
			WHERE strpos(lower(san.value), ` + t + `) > 0)`,
	}, serial.Conds(a)...)
	return "(" + strings.Join(conds, " OR ") + ")"
}

func (s *Store) queryCerts(ctx context.Context, q string, args ...any) ([]pki.Certificate, []int64, error) {
	return s.queryCertsWith(ctx, scanCert, q, args...)
}

// queryCertsWith runs q and reads its rows with scan.
func (s *Store) queryCertsWith(ctx context.Context, scan func(sqlstore.Scanner) (pki.Certificate, int64, error), q string, args ...any) ([]pki.Certificate, []int64, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		certs []pki.Certificate
		ids   []int64
	)
	for rows.Next() {
		c, id, err := scan(rows)
		if err != nil {
			return nil, nil, err
		}
		certs = append(certs, c)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return certs, ids, nil
}

// consumeChallenge uses up a one-time challenge inside tx (nothing to do
// for a nil hash), for the certificate by ("issuerID:serialHex", or empty for
// a held request). The WHERE clause of consume_challenge is the whole
// check: a concurrent consumer waits for this transaction's row lock and
// then re-evaluates the clause on the committed row, which is consumed, so
// it changes nothing and raises sqlChallengeUnusable.
func consumeChallenge(ctx context.Context, tx pgx.Tx, hash []byte, now int64, by string) error {
	if hash == nil {
		return nil
	}
	return consumed(tx.Exec(ctx, consumeChallengeQuery, now, hash, by))
}

// certRef is the reference a challenge keeps of the certificate whose
// issuance used it up (challenges.consumed_by).
func certRef(c *pki.Certificate) string { return c.IssuerID + ":" + c.SerialHex }

// consumeChallengeQuery marks a usable one-time challenge consumed ($1 is
// now, $2 its hash, $3 the certificate it is used for), or fails with
// sqlChallengeUnusable, so that a batch that also commits stops there
// (migrations/0014_audit_append.sql and 0015 hold the rule; before them,
// an UPDATE here did, and its caller counted rows).
const consumeChallengeQuery = `SELECT consume_challenge($1, $2, $3)`

// The SQLSTATEs our functions raise (migrations/0014_audit_append.sql,
// 0031_audit_after_head.sql).
const (
	sqlChallengeUnusable = "SC001"
	sqlHeadMissing       = "SC002"
	sqlRecordAfterHead   = "SC003" // its message names the record and the head
)

// serverMessage is the message of the server's error in err alone, without
// the SQLSTATE that pgconn.PgError's text adds.
func serverMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

// sqlState is the SQLSTATE of the server's error in err, if any.
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// consumed is the outcome of consumeChallengeQuery.
func consumed(_ pgconn.CommandTag, err error) error {
	if sqlState(err) == sqlChallengeUnusable {
		return store.ErrChallengeUnusable
	}
	if err != nil {
		return fmt.Errorf("consume challenge: %w", err)
	}
	return nil
}
