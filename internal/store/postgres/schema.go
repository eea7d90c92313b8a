package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// A schema migrated past this node while it runs.
//
// In a rolling upgrade the first node of a new version migrates the schema
// while nodes of the old version still serve. Open refuses a newer schema,
// but a running node never looked again, so an old node went on inserting
// certificates in the old shape after a migration's backfill had passed
// them (0021's key_hash: a keyCompromise revocation would miss them, and so
// would the compromised-key check at issuance). So, once it knows the
// schema is newer than its own, a node records no issuance: it learns so
// from CheckSchema, which the server calls every few seconds, and from
// every issuance, which reads the newest version inside its transaction,
// after its writes, and fails (nothing recorded) when it is newer. The
// serial reservation that comes before the CA signs reads it the same way
// (ReserveSerial, ReserveSerialClaiming), so that the first issuance after
// a migration, before the periodic check, is refused unsigned, its claim
// rolled back with it; RecordIssuance's read still covers a migration
// between the reservation and the record.
//
// The read inside the transaction closes the window the periodic check
// leaves for a migration that takes a lock the issuance's writes wait for:
// a migration that alters certificates (ALTER TABLE holds ACCESS
// EXCLUSIVE until its commit, which records its version too). The insert
// then waits for the migration's commit, and the read after it, in a
// statement of its own at READ COMMITTED, takes its snapshot after that
// commit and sees the new version. An insert that came first holds ROW
// EXCLUSIVE until its commit, so the migration waits for it and its
// backfill sees the row. A migration that only UPDATEs certificates takes
// no such lock: a backfilling migration should begin with
// LOCK TABLE certificates IN SHARE MODE (or alter the table) so that older
// nodes' writers are serialised with it; the periodic check is then the
// only bound.

// schemaCheckQuery fails with division_by_zero (sqlSchemaAhead) when the
// store records a schema version above $1, so that a batch that also
// commits stops there; it reads nothing else.
const schemaCheckQuery = `SELECT 1 / (coalesce((SELECT max(version) FROM schema_migrations), 0) <= $1)::int`

// sqlSchemaAhead is the SQLSTATE schemaCheckQuery fails with when the
// schema is newer; it is told apart from keyNotCompromisedQry's by its
// place in the batch.
const sqlSchemaAhead = "22012"

// SchemaAheadMessage begins what clients are told when this node refuses
// an issuance because the store's schema is newer than its own
// (SchemaAheadMessageFor): another node was upgraded and migrated the
// store, and may take the request; this one waits for its own upgrade.
const SchemaAheadMessage = "another node has upgraded the store's schema"

// SchemaAheadMessageFor is the whole message, with the store's version.
func SchemaAheadMessageFor(version int) string {
	return fmt.Sprintf("%s to version %d; upgrade this node (until then, try again later)", SchemaAheadMessage, version)
}

// schemaState is what a Store knows of the schema beyond its own: the
// newest version it has seen the store record above the one it knows, or
// 0. It never goes back: an older binary is not made safe again by the
// store going back (a restored backup), and the node must be restarted on
// a newer binary anyway.
type schemaState struct {
	ahead atomic.Int64 // the newest version seen above knownVersion, or 0
}

// knownVersion is the newest version of this binary's migrations, read
// once from the embedded files.
var knownVersion = sync.OnceValue(func() int {
	v, err := migrate.Latest(Migrations())
	if err != nil {
		panic(err) // the files are embedded and tested: only a build error gets here
	}
	return v
})

// note records that the store is at version have, when it is above
// knownVersion.
func (st *schemaState) note(have int) {
	if have <= knownVersion() {
		return
	}
	for {
		old := st.ahead.Load()
		if int64(have) <= old || st.ahead.CompareAndSwap(old, int64(have)) {
			return
		}
	}
}

// err is the error an issuance is refused with once the schema is known
// to be newer, or nil: unavailable, so that the protocol edges answer 503
// and the client comes back (to an upgraded node), with a message for the
// client and the versions for the log.
func (st *schemaState) err() error {
	have := int(st.ahead.Load())
	if have == 0 {
		return nil
	}
	return &pki.Error{Code: pki.EUnavailable, Message: SchemaAheadMessageFor(have),
		Err: fmt.Errorf("%w: %w; upgrade this node", store.ErrUnavailable, &migrate.TooNewError{Have: have, Known: knownVersion()})}
}

// CheckSchema reads the newest schema version the store records and
// returns an error wrapping a *migrate.TooNewError (and store.ErrUnavailable)
// when it is, or ever was while this Store was open, newer than this
// binary's; from then on RecordIssuance refuses every issuance with that
// error. A store that cannot be read returns its error.
func (s *Store) CheckSchema(ctx context.Context) error {
	var have int
	if err := s.queryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return pgError("postgres: read the schema version: %w", err)
	}
	s.schema.note(have)
	return s.schema.err()
}

// SchemaAhead returns CheckSchema's error without reading the store: what
// this Store last learnt, from CheckSchema or from an issuance that found
// the schema newer. It is nil until then.
func (s *Store) SchemaAhead() error { return s.schema.err() }

// schemaChecked is the outcome of schemaCheckQuery: errSchemaAhead when
// the store is newer.
func schemaChecked(_ pgconn.CommandTag, err error) error {
	if sqlState(err) == sqlSchemaAhead {
		return errSchemaAhead
	}
	if err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	return nil
}

// errSchemaAhead: an issuance's (or a serial reservation's) transaction
// found the schema newer than this binary's and recorded nothing. RecordIssuance turns it into the
// schemaState's error once it has read the version (schemaAhead). It is
// migrate.ErrDatabaseTooNew, as that error is, so that a caller tells the
// refusal (nothing recorded) apart from a failure however it is reported.
var errSchemaAhead = fmt.Errorf("%w (read in the issuance's transaction)", migrate.ErrDatabaseTooNew)

// checkSchemaInTx runs schemaCheckQuery in tx.
func (s *Store) checkSchemaInTx(ctx context.Context, tx pgx.Tx) error {
	return schemaChecked(tx.Exec(ctx, schemaCheckQuery, knownVersion()))
}

// schemaAhead turns errSchemaAhead into the error the issuance is refused
// with, reading the version the store is at for it (and so refusing the
// issuances that follow at once); other errors are returned as they are.
func (s *Store) schemaAhead(ctx context.Context, err error) error {
	if !errors.Is(err, errSchemaAhead) {
		return err
	}
	if cerr := s.CheckSchema(context.WithoutCancel(ctx)); cerr != nil && s.schema.err() != nil {
		return cerr
	}
	// The version read back is not above ours (the store went back
	// between the two reads, or cannot be read): still refused, as the
	// transaction was.
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}
