package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// CreateRequest implements store.Store. The request is stored pending (a
// zero Status means pending; any other is refused), and a zero ev.Time
// becomes r.CreatedAt. Its key is checked as RecordIssuance checks a
// client's (checkKeyNotCompromised, checkKeyNotOwn), in the same
// transaction: a request no approval could issue is not held.
func (s *Store) CreateRequest(ctx context.Context, r pki.EnrollmentRequest, consumeChallengeHash []byte, ev pki.AuditEvent) error {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: create request %s (transaction %q): %w", r.ID, r.TransactionID, err)
	}
	if err := sqlstore.CheckNewRequest(r); err != nil {
		return fail(err)
	}
	sans, err := sqlstore.EncodeSANs(r.SANs)
	if err != nil {
		return fail(err)
	}
	keyHash := store.RequestKeyHash(r.CSR)
	err = s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		if err := checkKeyNotCompromised(ctx, tx, keyHash); err != nil {
			return err
		}
		if store.RequestOwnKeyChecked(&r) {
			if err := checkKeyNotOwn(ctx, tx, keyHash); err != nil {
				return err
			}
		}
		if err := consumeChallenge(ctx, tx, consumeChallengeHash, sqlstore.Micros(r.CreatedAt), ""); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO enrollment_requests (
			id, transaction_id, profile, protocol, status, subject_dn, sans, csr, signer_cert,
			requester_addr, created_at, expires_at, renewed_from, challenge_hash, key_hash, client_key_hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.TransactionID, r.Profile, string(r.Protocol), string(pki.RequestPending), r.Subject,
			sans, r.CSR, sqlstore.NullBytes(r.ClientCert), r.RequesterAddr, sqlstore.Micros(r.CreatedAt), sqlstore.Micros(r.ExpiresAt),
			r.RenewedFrom, sqlstore.NullBytes(r.ChallengeHash),
			keyHash, sqlstore.NullBytes(store.RequestClientKeyHash(r.ClientCert)))
		if err != nil {
			// The ID is taken, or the partial unique index found a pending
			// request with this profile, transaction ID and key.
			return conflict(err)
		}
		return insertEvents(ctx, tx, r.CreatedAt, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// RequestByTransaction implements store.Store. Retention is enforced by
// PurgeExpired alone: a request past its ExpiresAt is returned until purged.
// A request held before schema version 27 has no key hashes; it is
// read and matched by its CSR and client certificate.
func (s *Store) RequestByTransaction(ctx context.Context, profile, transactionID string, keys store.RequestKeys) (*pki.EnrollmentRequest, error) {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: request of profile %q transaction %q: %w", profile, transactionID, err)
	}
	if keys.Any() {
		r, err := sqlstore.ScanRequest(s.readRow(ctx, requestByTransactionQuery, profile, transactionID))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fail(store.ErrNotFound)
		}
		if err != nil {
			return nil, fail(err)
		}
		return &r, nil
	}
	csrHash, clientHash := sqlstore.RequestKeysHashes(keys)
	rows, err := queryAll(ctx, s.r, sqlstore.ScanRequest, requestByTransactionKeyQuery, profile, transactionID, csrHash, clientHash)
	if err != nil {
		return nil, fail(err)
	}
	for i := range rows {
		if keys.Match(&rows[i]) {
			return &rows[i], nil
		}
	}
	return nil, fail(store.ErrNotFound)
}

// RequestsByKey implements store.Store. Requests held before schema
// version 27 have no key hash; they are read with the others of the
// profile and matched by their CSR.
func (s *Store) RequestsByKey(ctx context.Context, profile string, spki []byte) ([]pki.EnrollmentRequest, error) {
	keys := store.RequestKeys{CSR: spki}
	csrHash, _ := sqlstore.RequestKeysHashes(keys)
	rows, err := queryAll(ctx, s.r, sqlstore.ScanRequest, requestsByKeyQuery, profile, csrHash)
	if err != nil {
		return nil, fmt.Errorf("sqlite: requests of profile %q by key: %w", profile, err)
	}
	return slices.DeleteFunc(rows, func(r pki.EnrollmentRequest) bool { return !keys.Match(&r) }), nil
}

const (
	// requestsByKeyQuery reads the profile's requests by its (profile,
	// seq) index: a profile holds requests for a person to approve, kept
	// for their retention, so they are few.
	requestsByKeyQuery = `SELECT ` + sqlstore.RequestColumns + ` FROM enrollment_requests
		WHERE profile = ? AND (key_hash = ? OR key_hash IS NULL) ORDER BY seq DESC`
	requestByTransactionQuery = `SELECT ` + sqlstore.RequestColumns + ` FROM enrollment_requests
		WHERE profile = ? AND transaction_id = ? ORDER BY seq DESC LIMIT 1`
	requestByTransactionKeyQuery = `SELECT ` + sqlstore.RequestColumns + ` FROM enrollment_requests
		WHERE profile = ? AND transaction_id = ?
		AND (key_hash = ? OR client_key_hash = ? OR key_hash IS NULL) ORDER BY seq DESC`
	requestByIDQuery = `SELECT ` + sqlstore.RequestColumns + ` FROM enrollment_requests WHERE id = ?`
)

// Request implements store.Store.
func (s *Store) Request(ctx context.Context, id string) (*pki.EnrollmentRequest, error) {
	r, err := sqlstore.ScanRequest(s.readRow(ctx, requestByIDQuery, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: request %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: request %s: %w", id, err)
	}
	return &r, nil
}

// ListRequests implements store.Store: newest first (insertion order
// reversed), Limit default 100, at most 1000; with f.Now, each with its
// status at that time.
func (s *Store) ListRequests(ctx context.Context, f store.RequestFilter) ([]pki.EnrollmentRequest, string, error) {
	if err := sqlstore.CheckRequestFilter(f); err != nil {
		return nil, "", fmt.Errorf("sqlite: list requests: %w", err)
	}
	cur, err := sqlstore.ParseListCursor(f.Cursor, sqlstore.CursorRequest)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list requests: %w", err)
	}
	var (
		a   sqlstore.Args
		pos []sqlstore.Cursor
	)
	out, err := queryAll(ctx, s.r, func(sc sqlstore.Scanner) (pki.EnrollmentRequest, error) {
		p := sqlstore.Cursor{Kind: sqlstore.CursorRequest}
		r, err := sqlstore.ScanRequest(sqlstore.Prefixed(sc, &p.ID))
		pos = append(pos, p)
		return r, err
	}, sqlstore.RequestsQuery(f, cur.ID, &a), a.Values...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list requests: %w", err)
	}
	out, next := sqlstore.ListPage(out, pos, sqlstore.PageLimit(f.Limit))
	sqlstore.RequestsAt(out, f.Now)
	return out, next, nil
}

// RejectRequest implements store.Store. A zero ev.Time becomes at.
func (s *Store) RejectRequest(ctx context.Context, id, reason, by string, at time.Time, ev pki.AuditEvent) error {
	if at.IsZero() {
		return fmt.Errorf("sqlite: reject request %s: time is zero", id)
	}
	err := s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE enrollment_requests
			SET status = ?, reason = ?, decided_at = ?, decided_by = ?
			WHERE id = ? AND status = ?`,
			string(pki.RequestRejected), reason, sqlstore.Micros(at), by, id, string(pki.RequestPending))
		if err != nil {
			return err
		}
		if err := decidedOne(ctx, tx, res, id); err != nil {
			return err
		}
		return insertEvents(ctx, tx, at, []pki.AuditEvent{ev})
	})
	if err != nil {
		return fmt.Errorf("sqlite: reject request %s: %w", id, err)
	}
	return nil
}

// completeRequest marks a pending request issued inside RecordIssuance's
// transaction. The status condition in the UPDATE is the whole check: of
// concurrent approvals, which the write lock serialises, the first finds
// the request pending and every later one finds it issued.
func completeRequest(ctx context.Context, tx *wtx, in *store.Issuance) error {
	c := &in.Certificate
	res, err := tx.ExecContext(ctx, `UPDATE enrollment_requests
		SET status = ?, cert_issuer_id = ?, cert_serial_hex = ?, decided_at = ?, decided_by = ?
		WHERE id = ? AND status = ?`,
		string(pki.RequestIssued), c.IssuerID, c.SerialHex, sqlstore.Micros(in.Now), in.ApprovedBy,
		in.CompleteRequestID, string(pki.RequestPending))
	if err != nil {
		return fmt.Errorf("complete request %s: %w", in.CompleteRequestID, err)
	}
	if err := decidedOne(ctx, tx, res, in.CompleteRequestID); err != nil {
		return fmt.Errorf("complete request %s: %w", in.CompleteRequestID, err)
	}
	// The one-time challenge the request used up when it was held now
	// names the certificate it was used for, as one used at issuance does
	// (ChallengeIssued).
	if _, err := tx.ExecContext(ctx, `UPDATE challenges SET consumed_by = ?
		WHERE consumed_by = '' AND consumed_at IS NOT NULL
		AND hash = (SELECT challenge_hash FROM enrollment_requests WHERE id = ?)`,
		c.IssuerID+":"+c.SerialHex, in.CompleteRequestID); err != nil {
		return fmt.Errorf("complete request %s: the challenge it used: %w", in.CompleteRequestID, err)
	}
	return nil
}

// decidedOne checks that an UPDATE ... WHERE id = ? AND status = 'pending'
// changed the request, and otherwise tells an unknown request (ErrNotFound)
// from a decided one (ErrConflict). The write lock is held, so the answer
// cannot change before the rollback.
func decidedOne(ctx context.Context, tx *wtx, res sql.Result, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	var status string
	err = tx.QueryRowContext(ctx, `SELECT status FROM enrollment_requests WHERE id = ?`, id).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	}
	return fmt.Errorf("request is %s, not pending: %w", status, store.ErrConflict)
}

// supersede revokes the certificate a renewal replaces, inside
// RecordIssuance's transaction: reason 4 (superseded) at in.Now, unless it
// is revoked already, which is left as it is. It returns the revocation's
// audit event, nil when nothing changed.
func supersede(ctx context.Context, tx *wtx, in *store.Issuance) (*pki.AuditEvent, error) {
	ref := in.Supersede
	var subject, profile string
	err := tx.QueryRowContext(ctx, `UPDATE certificates
		SET status = ?, revoked_at = ?, revoke_reason = ?, revoked_by = ?
		WHERE issuer_id = ? AND serial_hex = ? AND status <> ?
		RETURNING subject_dn, profile`,
		string(pki.StatusRevoked), sqlstore.Micros(in.Now), sqlstore.ReasonSuperseded, sqlstore.SupersededBy, ref.IssuerID, ref.SerialHex,
		string(pki.StatusRevoked)).Scan(&subject, &profile)
	if err == nil {
		ev := sqlstore.SupersededEvent(in, subject, profile)
		return &ev, bumpRevocationState(ctx, tx, ref.IssuerID)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("supersede %s/%s: %w", ref.IssuerID, ref.SerialHex, err)
	}
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM certificates
		WHERE issuer_id = ? AND serial_hex = ?)`, ref.IssuerID, ref.SerialHex).Scan(&exists); err != nil {
		return nil, fmt.Errorf("supersede %s/%s: %w", ref.IssuerID, ref.SerialHex, err)
	}
	if !exists {
		return nil, fmt.Errorf("supersede %s/%s: %w", ref.IssuerID, ref.SerialHex, store.ErrNotFound)
	}
	return nil, nil // already revoked
}
