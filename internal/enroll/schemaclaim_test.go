package enroll_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// When the store refuses an issuance because another node migrated its
// schema past this binary's (found inside the issuance's transaction:
// nothing recorded; a migration between the serial reservation, which
// would have refused it too, and the record), the request's claim on its
// transaction is released,
// so that the client's next try, at an upgraded node on the same
// database, is served at once rather than told to retry until the claim
// lapses (5 minutes).
func TestSchemaRefusalReleasesTheClaim(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	dir := t.TempDir()
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if _, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock); err != nil {
		t.Fatal(err)
	}
	known, err := migrate.Latest(postgres.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The newer binary's migration, and then a store the upgraded node
	// (this binary, standing in for it) accepts.
	migrated := func() {
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', '2031-01-01T00:00:00Z')`, known+1); err != nil {
			t.Error(err)
		}
	}
	var nodes []*enroll.Service
	for i := range 2 {
		auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
		if err != nil {
			t.Fatal(err)
		}
		pg, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		var st store.Store = pg
		if i == 0 {
			st = &migratedAfterReservation{Store: pg, migrate: migrated}
		}
		svc, err := enroll.New(st, auth, clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
		if err != nil {
			t.Fatal(err)
		}
		svc.SetClaimWait(300 * time.Millisecond)
		nodes = append(nodes, svc)
	}
	older, upgraded := nodes[0], nodes[1]
	req := request(t, static, "dev.example")
	req.TransactionID = "tx-schema-refused"
	_, err = older.Enroll(ctx, req)
	if !errors.Is(err, migrate.ErrDatabaseTooNew) || pki.ErrorCode(err) != pki.EUnavailable {
		t.Fatalf("the older node: %v, want 503 for a newer schema", err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE version > $1`, known); err != nil {
		t.Fatal(err)
	}
	res, err := upgraded.Enroll(ctx, req)
	if err != nil || res.Certificate == nil || res.SentAgain {
		t.Fatalf("the same request at the upgraded node: %+v, %v; want a certificate at once", res, err)
	}
}

// migratedAfterReservation is a store at which a newer binary's migration
// is recorded (migrate) right after the first reservation that claims a
// transaction: the issuance meets it only inside RecordIssuance.
type migratedAfterReservation struct {
	store.Store
	migrate func()
	once    sync.Once
}

func (s *migratedAfterReservation) ReserveSerialClaiming(ctx context.Context, c store.TransactionClaim, issuerID, serialHex string, tbs []byte) (bool, error) {
	tookOver, err := s.Store.ReserveSerialClaiming(ctx, c, issuerID, serialHex, tbs)
	if err == nil {
		s.once.Do(s.migrate)
	}
	return tookOver, err
}
