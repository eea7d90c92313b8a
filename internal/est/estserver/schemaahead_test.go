package estserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// The first enrollment at a node after another node migrated its
// PostgreSQL store past this binary's schema, before the node's periodic
// check (and so its gate) knows, is refused at the serial reservation: a
// simpleenroll (no claim) and a simplereenroll (a claim on the renewal)
// alike get 503 with Retry-After and the upgrade message, no serial is
// reserved (nothing signed), no claim is left, and nothing is logged at
// ERROR (the service's WARN is enough).
func TestFirstEnrollmentAfterMigrationIsNotSigned(t *testing.T) {
	for _, op := range []string{"simpleenroll", "simplereenroll"} {
		t.Run(op, func(t *testing.T) {
			url := pgtest.Database(t)
			ctx := context.Background()
			pg, err := postgres.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pg.Close() })
			var log lockedBuffer
			renew := profile("renew", func(p *pki.Profile) { p.RenewalWindow = 1 })
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{renew}, logTo: &log, db: pg, issuanceGate: pg.SchemaAhead})
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			reserved := func() (serials, claims int) {
				t.Helper()
				if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM serials), (SELECT count(*) FROM transaction_claims)`).Scan(&serials, &claims); err != nil {
					t.Fatal(err)
				}
				return serials, claims
			}
			names := csr.Template{DNSNames: []string{"first-after.example"}}
			key := newKey(t)
			old := f.issued(f.post(f.httpClient(nil, 0), "renew/simpleenroll", "alice", userPassword, newCSR(t, key, "first-after", names), nil))
			serials, claims := reserved()
			known, err := migrate.Latest(postgres.Migrations())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', '2031-01-01T00:00:00Z')`, known+1); err != nil {
				t.Fatal(err)
			}

			var cert *tls.Certificate
			if op == "simplereenroll" {
				cert = tlsPair(old, key, f.auth.Issuer.Cert)
			}
			for i := range 2 { // the first meets the reservation's read, the next the gate
				req, err := http.NewRequest(http.MethodPost, f.url+est.PathPrefix+"renew/"+op, bytes.NewReader(newCSR(t, newKey(t), "first-after", names)))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", est.ContentTypePKCS10)
				if cert == nil {
					req.SetBasicAuth("alice", userPassword)
				}
				resp, err := f.httpClient(cert, 0).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), postgres.SchemaAheadMessage) {
					t.Fatalf("request %d after the migration: HTTP %d %q (Retry-After %q), want 503 %q", i, resp.StatusCode, body, resp.Header.Get("Retry-After"), postgres.SchemaAheadMessage)
				}
			}
			if s, c := reserved(); s != serials || c != claims {
				t.Errorf("after the refusals: %d serials and %d claims, want %d and %d as before", s, c, serials, claims)
			}
			if strings.Contains(log.String(), "level=ERROR") {
				t.Errorf("the refusals were logged at ERROR:\n%s", log.String())
			}
		})
	}
}
