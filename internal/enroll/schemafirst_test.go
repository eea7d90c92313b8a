package enroll_test

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// signCounter counts the signatures of the CA's keys.
type signCounter struct {
	crypto.Signer
	signed *atomic.Int32
}

func (s signCounter) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.signed.Add(1)
	return s.Signer.Sign(r, digest, opts)
}

// The first enrollment at a node after another node migrated the store's
// schema past this binary's, before the node's periodic check (and so its
// IssuanceGate) knows, is refused at the serial reservation: 503 with the
// upgrade message, a refusal the handlers log at WARN (Gated), nothing
// signed, and no serial or claim left in the store. With a claim on its
// SCEP transaction and without one (an EST enrollment) alike.
func TestFirstIssuanceAfterMigrationIsNotSigned(t *testing.T) {
	for _, c := range []struct {
		name     string
		protocol pki.Protocol
		tx       string
	}{
		{"claiming its transaction", pki.ProtocolSCEP, "tx-first-after"},
		{"without a claim", pki.ProtocolEST, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := pgtest.Database(t)
			ctx := context.Background()
			dir := t.TempDir()
			clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
			if _, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock); err != nil {
				t.Fatal(err)
			}
			var signed atomic.Int32
			auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{WrapKey: func(k crypto.Signer) crypto.Signer {
				if _, ra := k.(crypto.Decrypter); ra {
					return k // the RA's, which signs no certificate
				}
				return signCounter{Signer: k, signed: &signed}
			}}, clock)
			if err != nil {
				t.Fatal(err)
			}
			pg, err := postgres.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pg.Close() })
			var logged bytes.Buffer
			svc, err := enroll.New(pg, auth, clock, slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelError})),
				enroll.Config{StaticChallenge: static, IssuanceGate: pg.SchemaAhead})
			if err != nil {
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
			counts := func() (serials, claims int) {
				t.Helper()
				if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM serials), (SELECT count(*) FROM transaction_claims)`).Scan(&serials, &claims); err != nil {
					t.Fatal(err)
				}
				return serials, claims
			}
			// One issued before, to show that the count counts.
			ok := request(t, static, "ok.example")
			ok.Protocol, ok.TransactionID = c.protocol, ""
			if c.tx != "" {
				ok.TransactionID = c.tx + "-ok"
			}
			if res, err := svc.Enroll(ctx, ok); err != nil || res.Certificate == nil || signed.Load() == 0 {
				t.Fatalf("an enrollment before the migration: %+v, %v, %d signatures", res, err, signed.Load())
			}
			serials0, claims0 := counts()
			signed.Store(0)
			// The newer binary's migration, unknown to this node's gate.
			if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', '2031-01-01T00:00:00Z')`, known+1); err != nil {
				t.Fatal(err)
			}
			req := request(t, static, "dev.example")
			req.Protocol, req.TransactionID = c.protocol, c.tx
			_, err = svc.Enroll(ctx, req)
			if pki.ErrorCode(err) != pki.EUnavailable || pki.ErrorMessage(err) != postgres.SchemaAheadMessageFor(known+1) || !enroll.Gated(err) {
				t.Fatalf("the first enrollment after the migration: %v (gated %t), want 503 %q", err, enroll.Gated(err), postgres.SchemaAheadMessageFor(known+1))
			}
			if n := signed.Load(); n != 0 {
				t.Errorf("the CA key made %d signatures for the refused enrollment, want none", n)
			}
			if s, cl := counts(); s != serials0 || cl != claims0 {
				t.Errorf("after the refusal: %d serials and %d claims, want %d and %d", s, cl, serials0, claims0)
			}
			if logged.Len() > 0 {
				t.Errorf("the refusal was logged at ERROR:\n%s", logged.String())
			}
			if pg.SchemaAhead() == nil {
				t.Error("the store did not note the newer version: the next request would reach it again")
			}
		})
	}
}
