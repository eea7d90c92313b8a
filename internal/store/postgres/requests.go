package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// scanRequest is sqlstore.ScanRequest with the subject and reason decoded
// (see encText).
func scanRequest(sc sqlstore.Scanner) (pki.EnrollmentRequest, error) {
	r, err := sqlstore.ScanRequest(sc)
	r.Subject, r.Reason = decText(r.Subject), decText(r.Reason)
	return r, err
}

// CreateRequest implements store.Store. The request is stored pending (a
// zero Status means pending; any other is refused), and a zero ev.Time
// becomes r.CreatedAt. Of concurrent creations for one profile and
// transaction ID, the partial unique index lets one through: the others
// wait for it to commit and get ErrConflict. Its key is checked as
// RecordIssuance checks a client's (keyNotCompromisedNorOwnQry), so that a
// request no approval could issue is not held; the check, the challenge's
// consumption and the insert go in one batch, one round trip. It takes no
// key lock: a keyCompromise revocation that commits meanwhile is caught at
// the approval, by RecordIssuance.
func (s *Store) CreateRequest(ctx context.Context, r pki.EnrollmentRequest, consumeChallengeHash []byte, ev pki.AuditEvent) error {
	fail := func(err error) error {
		return pgError("postgres: create request %s (transaction %q): %w", r.ID, r.TransactionID, err)
	}
	if err := sqlstore.CheckNewRequest(r); err != nil {
		return fail(err)
	}
	sans, err := sqlstore.EncodeSANs(r.SANs)
	if err != nil {
		return fail(err)
	}
	guard := keyGuard{hash: store.RequestKeyHash(r.CSR), own: store.RequestOwnKeyChecked(&r)}
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		b.Queue(guard.query(), guard.hash)
		if consumeChallengeHash != nil {
			b.Queue(consumeChallengeQuery, sqlstore.Micros(r.CreatedAt), consumeChallengeHash, "")
		}
		b.Queue(`INSERT INTO enrollment_requests (
			id, transaction_id, profile, protocol, status, subject_dn, sans, csr, signer_cert,
			requester_addr, created_at, expires_at, renewed_from, challenge_hash, key_hash, client_key_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			r.ID, r.TransactionID, r.Profile, string(r.Protocol), string(pki.RequestPending), encText(r.Subject),
			sans, r.CSR, sqlstore.NullBytes(r.ClientCert), r.RequesterAddr, sqlstore.Micros(r.CreatedAt), sqlstore.Micros(r.ExpiresAt),
			r.RenewedFrom, sqlstore.NullBytes(r.ChallengeHash),
			guard.hash, sqlstore.NullBytes(store.RequestClientKeyHash(r.ClientCert)))
		if err := sendRequest(tx.SendBatch(ctx, &b), consumeChallengeHash != nil); err != nil {
			return err
		}
		return insertEvents(ctx, tx, r.CreatedAt, []pki.AuditEvent{ev})
	})
	if errors.Is(err, store.ErrOwnKey) {
		err = s.ownKeyError(ctx, guard.hash)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// sendRequest reads the results of CreateRequest's batch: the key's
// check, when consume the challenge's consumption, and the insert. The
// first that fails stops the batch, and the transaction is rolled back.
func sendRequest(br pgx.BatchResults, consume bool) (err error) {
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = conflict(cerr)
		}
	}()
	if err := keyChecked(br.Exec()); err != nil {
		return err
	}
	if consume {
		if err := consumed(br.Exec()); err != nil {
			return err
		}
	}
	if _, err := br.Exec(); err != nil {
		// The ID is taken, or the partial unique index found a pending
		// request with this profile, transaction ID and key.
		return conflict(err)
	}
	return nil
}

// RequestByTransaction implements store.Store. Retention is enforced by
// PurgeExpired alone: a request past its ExpiresAt is returned until purged.
// A request held before schema version 27 has no key hashes; it is
// read and matched by its CSR and client certificate.
func (s *Store) RequestByTransaction(ctx context.Context, profile, transactionID string, keys store.RequestKeys) (*pki.EnrollmentRequest, error) {
	profile, transactionID = key(profile), key(transactionID)
	fail := func(err error) error {
		return pgError("postgres: request of profile %q transaction %q: %w", profile, transactionID, err)
	}
	if keys.Any() {
		r, err := scanRequest(s.queryRow(ctx, `SELECT `+sqlstore.RequestColumns+` FROM enrollment_requests
			WHERE profile = $1 AND transaction_id = $2 ORDER BY seq DESC LIMIT 1`, profile, transactionID))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fail(store.ErrNotFound)
		}
		if err != nil {
			return nil, fail(err)
		}
		return &r, nil
	}
	csrHash, clientHash := sqlstore.RequestKeysHashes(keys)
	rows, err := queryAll(ctx, s.pool, scanRequest, `SELECT `+sqlstore.RequestColumns+` FROM enrollment_requests
		WHERE profile = $1 AND transaction_id = $2
		AND (key_hash = $3 OR client_key_hash = $4 OR key_hash IS NULL) ORDER BY seq DESC`,
		profile, transactionID, csrHash, clientHash)
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
// profile and matched by their CSR. The profile's (profile, seq) index
// serves: a profile holds requests for a person to approve, kept for
// their retention, so they are few.
func (s *Store) RequestsByKey(ctx context.Context, profile string, spki []byte) ([]pki.EnrollmentRequest, error) {
	profile = key(profile)
	keys := store.RequestKeys{CSR: spki}
	csrHash, _ := sqlstore.RequestKeysHashes(keys)
	rows, err := queryAll(ctx, s.pool, scanRequest, `SELECT `+sqlstore.RequestColumns+` FROM enrollment_requests
		WHERE profile = $1 AND (key_hash = $2 OR key_hash IS NULL) ORDER BY seq DESC`, profile, csrHash)
	if err != nil {
		return nil, pgError("postgres: requests of profile %q by key: %w", profile, err)
	}
	return slices.DeleteFunc(rows, func(r pki.EnrollmentRequest) bool { return !keys.Match(&r) }), nil
}

// Request implements store.Store.
func (s *Store) Request(ctx context.Context, id string) (*pki.EnrollmentRequest, error) {
	id = key(id)
	r, err := scanRequest(s.queryRow(ctx, `SELECT `+sqlstore.RequestColumns+` FROM enrollment_requests WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pgError("postgres: request %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, pgError("postgres: request %s: %w", id, err)
	}
	return &r, nil
}

// ListRequests implements store.Store: newest first (insertion order
// reversed), Limit default 100, at most 1000; with f.Now, each with its
// status at that time.
func (s *Store) ListRequests(ctx context.Context, f store.RequestFilter) ([]pki.EnrollmentRequest, string, error) {
	f.Profile = key(f.Profile)
	if err := sqlstore.CheckRequestFilter(f); err != nil {
		return nil, "", fmt.Errorf("postgres: list requests: %w", err)
	}
	cur, err := sqlstore.ParseListCursor(f.Cursor, sqlstore.CursorRequest)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list requests: %w", err)
	}
	var pos []sqlstore.Cursor
	a := sqlstore.Args{Numbered: true}
	// Planned for its values, as ListCertificates (customPlanMode).
	out, err := queryAll(ctx, s.pool, func(sc sqlstore.Scanner) (pki.EnrollmentRequest, error) {
		p := sqlstore.Cursor{Kind: sqlstore.CursorRequest}
		r, err := scanRequest(sqlstore.Prefixed(sc, &p.ID))
		pos = append(pos, p)
		return r, err
	}, sqlstore.RequestsQuery(f, cur.ID, &a), append([]any{s.listMode}, a.Values...)...)
	if err != nil {
		return nil, "", pgError("postgres: list requests: %w", err)
	}
	out, next := sqlstore.ListPage(out, pos, sqlstore.PageLimit(f.Limit))
	sqlstore.RequestsAt(out, f.Now)
	return out, next, nil
}

// RejectRequest implements store.Store. A zero ev.Time becomes at.
func (s *Store) RejectRequest(ctx context.Context, id, reason, by string, at time.Time, ev pki.AuditEvent) error {
	id = key(id)
	if at.IsZero() {
		return pgError("postgres: reject request %s: time is zero", id)
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE enrollment_requests
			SET status = $1, reason = $2, decided_at = $3, decided_by = $4
			WHERE id = $5 AND status = $6`,
			string(pki.RequestRejected), encText(reason), sqlstore.Micros(at), by, id, string(pki.RequestPending))
		if err != nil {
			return err
		}
		if err := decidedOne(ctx, tx, tag, id); err != nil {
			return err
		}
		return insertEvents(ctx, tx, at, []pki.AuditEvent{ev})
	})
	if err != nil {
		return pgError("postgres: reject request %s: %w", id, err)
	}
	return nil
}

// completeRequest marks a pending request issued inside RecordIssuance's
// transaction. The status condition in the UPDATE is the whole check: of
// concurrent approvals, the first takes the row lock and finds the request
// pending; every later one waits for it, re-evaluates the condition on the
// committed row, finds it issued and changes nothing.
func completeRequest(ctx context.Context, tx pgx.Tx, in *store.Issuance) error {
	c := &in.Certificate
	tag, err := tx.Exec(ctx, `UPDATE enrollment_requests
		SET status = $1, cert_issuer_id = $2, cert_serial_hex = $3, decided_at = $4, decided_by = $5
		WHERE id = $6 AND status = $7`,
		string(pki.RequestIssued), c.IssuerID, c.SerialHex, sqlstore.Micros(in.Now), in.ApprovedBy,
		in.CompleteRequestID, string(pki.RequestPending))
	if err != nil {
		return fmt.Errorf("complete request %s: %w", in.CompleteRequestID, err)
	}
	if err := decidedOne(ctx, tx, tag, in.CompleteRequestID); err != nil {
		return fmt.Errorf("complete request %s: %w", in.CompleteRequestID, err)
	}
	// The one-time challenge the request used up when it was held now
	// names the certificate it was used for, as one used at issuance does
	// (ChallengeIssued).
	if _, err := tx.Exec(ctx, `UPDATE challenges SET consumed_by = $1
		WHERE consumed_by = '' AND consumed_at IS NOT NULL
		AND hash = (SELECT challenge_hash FROM enrollment_requests WHERE id = $2)`,
		certRef(c), in.CompleteRequestID); err != nil {
		return fmt.Errorf("complete request %s: the challenge it used: %w", in.CompleteRequestID, err)
	}
	return nil
}

// decidedOne checks that an UPDATE … WHERE id = $n AND status = 'pending'
// changed the request, and otherwise tells an unknown request (ErrNotFound)
// from a decided one (ErrConflict); the transaction is rolled back either
// way.
func decidedOne(ctx context.Context, tx pgx.Tx, tag pgconn.CommandTag, id string) error {
	if tag.RowsAffected() == 1 {
		return nil
	}
	var status string
	err := tx.QueryRow(ctx, `SELECT status FROM enrollment_requests WHERE id = $1`, id).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
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
func supersede(ctx context.Context, tx pgx.Tx, in *store.Issuance) (*pki.AuditEvent, error) {
	ref := in.Supersede
	var subject, profile string
	err := tx.QueryRow(ctx, `UPDATE certificates
		SET status = $1, revoked_at = $2, revoke_reason = $3, revoked_by = $4
		WHERE issuer_id = $5 AND serial_hex = $6 AND status <> $1
		RETURNING subject_dn, profile`,
		string(pki.StatusRevoked), sqlstore.Micros(in.Now), sqlstore.ReasonSuperseded, sqlstore.SupersededBy, ref.IssuerID, ref.SerialHex).
		Scan(&subject, &profile)
	if err == nil {
		ev := sqlstore.SupersededEvent(in, subject, profile)
		return &ev, bumpRevocationState(ctx, tx, ref.IssuerID)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("supersede %s/%s: %w", ref.IssuerID, ref.SerialHex, err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certificates
		WHERE issuer_id = $1 AND serial_hex = $2)`, ref.IssuerID, ref.SerialHex).Scan(&exists); err != nil {
		return nil, fmt.Errorf("supersede %s/%s: %w", ref.IssuerID, ref.SerialHex, err)
	}
	if !exists {
		return nil, fmt.Errorf("supersede %s/%s: %w", ref.IssuerID, ref.SerialHex, store.ErrNotFound)
	}
	return nil, nil // already revoked
}
