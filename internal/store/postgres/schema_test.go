package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// schemaIssuance is an issuance of serial: plain (with an event, the
// batched way) or, with renews, a renewal of that certificate (the
// transaction's way).
func schemaIssuance(serial string, renews *pki.Certificate) store.Issuance {
	c := testCert(serial)
	c.Subject = "CN=schema-" + serial
	in := store.Issuance{Certificate: c, Now: t0,
		Events: []pki.AuditEvent{{Type: pki.EventIssued, SerialHex: serial, IssuerID: c.IssuerID, Outcome: "success"}}}
	if renews != nil {
		in.Renews = &store.CertRef{IssuerID: renews.IssuerID, SerialHex: renews.SerialHex}
	}
	return in
}

// recordNewerVersion records in the database, as a newer binary's
// migration leaves it, a schema version above this binary's.
func recordNewerVersion(t *testing.T, q execer) {
	t.Helper()
	if _, err := q.Exec(context.Background(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', '2031-01-01T00:00:00Z')`,
		knownVersion()+1); err != nil {
		t.Fatal(err)
	}
}

// recordedState is what an issuance would change: the certificates, the
// serials and the audit trail's head.
type recordedState struct {
	certs, serials, headID int64
	headHash               string
}

func stateOf(t *testing.T, s *Store) recordedState {
	t.Helper()
	ctx := context.Background()
	var st recordedState
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM certificates), (SELECT count(*) FROM serials)`).Scan(&st.certs, &st.serials); err != nil {
		t.Fatal(err)
	}
	head, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.headID, st.headHash = head.LastID, fmt.Sprintf("%x", head.LastHash)
	return st
}

// wantSchemaAhead checks that err refuses an issuance as unavailable
// (a 503 at the protocol edges) and names both versions.
func wantSchemaAhead(t *testing.T, what string, err error) {
	t.Helper()
	var tooNew *migrate.TooNewError
	switch {
	case !errors.Is(err, store.ErrUnavailable) || pki.ErrorCode(err) != pki.EUnavailable:
		t.Errorf("%s: %v, want unavailable", what, err)
	case !errors.As(err, &tooNew) || tooNew.Have != knownVersion()+1 || tooNew.Known != knownVersion():
		t.Errorf("%s: %v, want a TooNewError at version %d, known %d", what, err, knownVersion()+1, knownVersion())
	case pki.ErrorMessage(err) != SchemaAheadMessageFor(knownVersion()+1):
		t.Errorf("%s: clients are told %q, want %q", what, pki.ErrorMessage(err), SchemaAheadMessageFor(knownVersion()+1))
	}
}

// TestIssuanceRefusedOnNewerSchema: a store opened at its own schema
// records issuances; once a newer binary's version is recorded in the
// database (by hand here), the next issuance, of either way (batched, or
// in a transaction of its own), fails as unavailable and records nothing,
// though nothing told the store beforehand: the read inside its
// transaction finds the version. Those after it are refused at once, and
// SchemaAhead says so. A store whose schema matches is unaffected.
func TestIssuanceRefusedOnNewerSchema(t *testing.T) {
	for _, way := range []string{"plain", "renewal", "several at once"} {
		t.Run(way, func(t *testing.T) {
			ctx := context.Background()
			s, dbURL := openFresh(t)
			first := schemaIssuance("a1", nil)
			if err := s.RecordIssuance(ctx, first); err != nil {
				t.Fatalf("issuance at the store's own schema: %v", err)
			}
			if err := s.CheckSchema(ctx); err != nil || s.SchemaAhead() != nil {
				t.Fatalf("CheckSchema at the store's own schema: %v, %v", err, s.SchemaAhead())
			}
			// Another node's pool, as the newer binary's.
			other, err := Open(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			recordNewerVersion(t, other.pool)
			before := stateOf(t, s)

			var ins []store.Issuance
			switch way {
			case "plain":
				ins = append(ins, schemaIssuance("b1", nil))
			case "renewal":
				ins = append(ins, schemaIssuance("b1", &first.Certificate))
			default:
				for i := range 6 {
					ins = append(ins, schemaIssuance(fmt.Sprintf("c%d", i), nil))
				}
			}
			errs := make([]error, len(ins))
			var wg sync.WaitGroup
			for i, in := range ins {
				wg.Go(func() { errs[i] = s.RecordIssuance(ctx, in) })
			}
			wg.Wait()
			for i, err := range errs {
				wantSchemaAhead(t, "issuance "+ins[i].Certificate.SerialHex, err)
			}
			if after := stateOf(t, s); after != before {
				t.Errorf("refused issuances changed the store: %+v, was %+v", after, before)
			}
			wantSchemaAhead(t, "SchemaAhead", s.SchemaAhead())
			wantSchemaAhead(t, "the next issuance", s.RecordIssuance(ctx, schemaIssuance("d1", nil)))
			if after := stateOf(t, s); after != before {
				t.Errorf("the next issuance changed the store: %+v, was %+v", after, before)
			}
		})
	}
}

// TestIssuanceWaitingForMigrationRefused: a migration that alters
// certificates holds its lock until it commits, and an older node's
// issuance that comes meanwhile waits for it; when the migration commits,
// the issuance fails as unavailable and records nothing, so that no row in
// the old shape follows the migration's backfill. (Without the read after
// the writes, the insert would go on once the lock is released.)
func TestIssuanceWaitingForMigrationRefused(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	if err := s.RecordIssuance(ctx, schemaIssuance("a1", nil)); err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, s) // before the migration locks certificates
	// The newer binary's node, migrating on a connection of its own.
	other, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `ALTER TABLE certificates ADD COLUMN from_the_future BYTEA`); err != nil {
		t.Fatal(err)
	}
	recordNewerVersion(t, tx)

	done := make(chan error, 1)
	go func() { done <- s.RecordIssuance(ctx, schemaIssuance("b1", nil)) }()
	// Until the issuance waits for the migration's lock on certificates.
	for waiting := false; !waiting; {
		select {
		case err := <-done:
			t.Fatalf("the issuance ended before the migration committed: %v", err)
		default:
		}
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE NOT l.granted AND c.relname = 'certificates')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantSchemaAhead(t, "the issuance that waited for the migration", <-done)
	if after := stateOf(t, s); after != before {
		t.Errorf("the refused issuance changed the store: %+v, was %+v", after, before)
	}
}

// TestCheckSchema: CheckSchema finds a newer version recorded while the
// store is open, and keeps saying so after it is gone: a restored older
// schema does not make this binary's rows right for the newer one it saw.
func TestCheckSchema(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("at the store's own schema: %v", err)
	}
	recordNewerVersion(t, s.pool)
	wantSchemaAhead(t, "CheckSchema", s.CheckSchema(ctx))
	if _, err := s.pool.Exec(ctx, `DELETE FROM schema_migrations WHERE version > $1`, knownVersion()); err != nil {
		t.Fatal(err)
	}
	wantSchemaAhead(t, "CheckSchema after the version was removed", s.CheckSchema(ctx))
}

// TestReservationRefusedOnNewerSchema: the serial reservation, which
// comes before the CA signs, reads the schema version in its own
// transaction. Once a newer binary's version is recorded, a reservation
// (with or without a claim on a transaction, and one whose transaction
// another holds) fails as unavailable though nothing told the store
// beforehand, and leaves no serial and no claim: the first issuance after
// a migration is refused before it is signed. The store remembers the
// version, as RecordIssuance's refusal makes it.
func TestReservationRefusedOnNewerSchema(t *testing.T) {
	claimOf := func(tx, claimant string) store.TransactionClaim {
		return store.TransactionClaim{KeyHash: []byte("key-" + tx), Profile: "default", TransactionID: tx,
			Claimant: []byte(claimant), At: t0, Expires: t0.Add(5 * time.Minute)}
	}
	for _, way := range []string{"plain", "claiming", "claimed by another"} {
		t.Run(way, func(t *testing.T) {
			ctx := context.Background()
			s, dbURL := openFresh(t)
			if _, err := s.ReserveSerialClaiming(ctx, claimOf("tx-other", "other-node"), "issuer-a", "a0", []byte("tbs")); err != nil {
				t.Fatalf("reservation at the store's own schema: %v", err)
			}
			other, err := Open(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			recordNewerVersion(t, other.pool)

			reserve := func(serial string) error {
				switch way {
				case "plain":
					return s.ReserveSerial(ctx, "issuer-a", serial, []byte("tbs"), t0)
				case "claiming":
					_, err := s.ReserveSerialClaiming(ctx, claimOf("tx-"+serial, "this-node"), "issuer-a", serial, []byte("tbs"))
					return err
				default:
					_, err := s.ReserveSerialClaiming(ctx, claimOf("tx-other", "this-node"), "issuer-a", serial, []byte("tbs"))
					return err
				}
			}
			wantSchemaAhead(t, "the first reservation after the migration", reserve("b1"))
			wantSchemaAhead(t, "SchemaAhead", s.SchemaAhead())
			wantSchemaAhead(t, "the next reservation", reserve("b2"))
			var serials, claims int
			if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM serials), (SELECT count(*) FROM transaction_claims)`).Scan(&serials, &claims); err != nil {
				t.Fatal(err)
			}
			if serials != 1 || claims != 1 {
				t.Errorf("after the refused reservations: %d serials and %d claims, want the 1 and 1 from before", serials, claims)
			}
		})
	}
}
