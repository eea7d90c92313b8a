package postgres

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlstore"
	"github.com/scepter/scepter/internal/store/storetest"
)

// testPoolSize keeps the conformance suite's parallel stores within the
// test server's max_connections on a machine with many CPUs; concurrency
// tests still run on several connections.
const testPoolSize = "8"

// openFresh opens a store on a database of its own, a copy of the
// migrated template, dropped at the end of the test.
func openFresh(t testing.TB) (*Store, string) {
	t.Helper()
	dbURL := pgtest.WithParam(t, migrated.Database(t), "pool_max_conns", testPoolSize)
	s, err := Open(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dbURL
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openFresh(t)
		return s
	})
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testCert(serial string) pki.Certificate {
	return pki.Certificate{
		SerialHex: serial, IssuerID: "issuer", Subject: "CN=" + serial, NotBefore: t0,
		NotAfter: t0.Add(365 * 24 * time.Hour), Status: pki.StatusValid, Profile: "default",
		Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, CreatedAt: t0, DER: []byte("der"),
	}
}

// TestMigrationsMatchSQLite: the PostgreSQL migrations carry the same
// versions and names as SQLite's, so a database of either driver records
// the same schema_migrations and a later migration is added to both.
func TestMigrationsMatchSQLite(t *testing.T) {
	ours, err := migrate.Load(must(fs.Sub(migrationFiles, "migrations")))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := migrate.Load(os.DirFS("../sqlite/migrations"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(ms []migrate.Migration) []string {
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%d_%s", m.Version, m.Name))
		}
		return out
	}
	if got, want := names(ours), names(theirs); !slices.Equal(got, want) {
		t.Errorf("postgres migrations %v, sqlite migrations %v: keep them aligned", got, want)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func appliedVersions(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d_%s", v, name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func allMigrations(t *testing.T) []string {
	t.Helper()
	ms, err := migrate.Load(must(fs.Sub(migrationFiles, "migrations")))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%d_%s", m.Version, m.Name))
	}
	return out
}

// TestConcurrentOpen: nodes starting together on a new database migrate
// one after the other under the advisory lock: every Open succeeds, each
// version is applied once, and the audit chain has one head.
func TestConcurrentOpen(t *testing.T) {
	dbURL := pgtest.WithParam(t, pgtest.Database(t), "pool_max_conns", "2")
	const nodes = 8
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range nodes {
		wg.Go(func() {
			<-gate
			stores[i], errs[i] = Open(context.Background(), dbURL)
		})
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	if got := appliedVersions(t, stores[0]); !slices.Equal(got, allMigrations(t)) {
		t.Errorf("schema_migrations = %v, want %v", got, allMigrations(t))
	}
	var heads int
	if err := stores[0].pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_head`).Scan(&heads); err != nil || heads != 1 {
		t.Errorf("audit_head rows: %d, %v; want 1", heads, err)
	}
	// Nothing holds the migration lock any more.
	var free bool
	if err := stores[0].pool.QueryRow(context.Background(), `SELECT pg_try_advisory_lock($1)`, migrationLockKey).Scan(&free); err != nil || !free {
		t.Errorf("migration lock still held after Open: %v, %v", free, err)
	}
}

// TestMigrationLockWaits: a migrator waits while another holds the lock
// (here a session that took it by hand), and proceeds once it is released.
func TestMigrationLockWaits(t *testing.T) {
	dbURL := pgtest.Database(t)
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if s, err := Open(short, dbURL); err == nil {
		s.Close()
		t.Fatal("Open migrated while another session held the migration lock")
	}
	done := make(chan error, 1)
	go func() {
		s, err := Open(ctx, dbURL)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Open returned while the lock was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Open after the lock was released: %v", err)
	}
}

// A node that must migrate while another session holds the migration
// lock says so (OnLockWait) at once, naming the holder, and migrates once
// it is released; one whose schema is current does not take the lock, and
// starts at once while another session holds it.
func TestMigrationLockWaitIsReported(t *testing.T) {
	ctx := context.Background()
	currentURL := pgtest.Database(t)
	current, err := Open(ctx, currentURL)
	if err != nil {
		t.Fatal(err)
	}
	current.Close()
	for _, tc := range []struct {
		name string
		url  string
		wait bool // it must migrate, so it waits for the lock
	}{
		{"a database to migrate", pgtest.Database(t), true},
		{"a current schema", currentURL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holder, err := pgx.Connect(ctx, pgtest.WithParam(t, tc.url, "application_name", "operator-psql"))
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Close(ctx)
			if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
				t.Fatal(err)
			}
			reports := make(chan string, 100)
			done := make(chan error, 1)
			bounded, cancel := context.WithTimeout(ctx, time.Minute) // a hang fails, not blocks
			defer cancel()
			go func() {
				s, err := Open(bounded, tc.url, migrate.OnLockWait(func(holder string, waited time.Duration) { reports <- holder }))
				if err == nil {
					s.Close()
				}
				done <- err
			}()
			if !tc.wait {
				if err := <-done; err != nil {
					t.Fatalf("Open of a current schema while another session holds the migration lock: %v", err)
				}
				if len(reports) != 0 {
					t.Errorf("Open of a current schema waited for the migration lock (held by %s)", <-reports)
				}
				return
			}
			select {
			case holder := <-reports:
				if !strings.Contains(holder, "pid ") || !strings.Contains(holder, "operator-psql") {
					t.Errorf("the wait names the holder %q, want its pid and application_name", holder)
				}
			case err := <-done:
				t.Fatalf("Open returned while the lock was held, without saying it waited: %v", err)
			}
			if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Errorf("Open after the lock was released: %v", err)
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	if err := s.RecordIssuance(ctx, store.Issuance{Certificate: testCert("01"), Now: t0,
		Events: []pki.AuditEvent{{Type: pki.EventIssued}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Certificate(ctx, "issuer", "01"); err != nil {
		t.Errorf("certificate lost on reopen: %v", err)
	}
	if got := appliedVersions(t, s); !slices.Equal(got, allMigrations(t)) {
		t.Errorf("schema_migrations = %v, want %v", got, allMigrations(t))
	}
	rep, err := audit.Verify(ctx, s)
	if err != nil || !rep.OK() || rep.Checked != 1 {
		t.Errorf("audit verify after reopen: %+v, %v", rep, err)
	}
}

func TestNewerDatabaseRefused(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	// One past the highest version, which may be above their count: a
	// version left out (two branches' numbers) is no migration to skip.
	all := allMigrations(t)
	newest, _, _ := strings.Cut(all[len(all)-1], "_")
	future, err := strconv.Atoi(newest)
	if err != nil {
		t.Fatal(err)
	}
	future++
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', '2031-01-01T00:00:00Z')`, future); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, dbURL)
	if !errors.Is(err, migrate.ErrDatabaseTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrDatabaseTooNew", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("version %d", future)) {
		t.Errorf("error does not name the database's version: %v", err)
	}
}

// TestTwoNodes runs two stores (two pools, as two scepter nodes would) on
// one database at once: issuances from both, all trying to consume one
// challenge as well as recording their own, and plain audit appends. One
// consumption wins, every other issuance is recorded, and the audit trail
// is one valid chain (internal/audit.Verify) holding every event.
func TestTwoNodes(t *testing.T) {
	ctx := context.Background()
	a, dbURL := openFresh(t)
	b, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	nodes := []*Store{a, b}
	ch := pki.Challenge{ID: "once", Hash: []byte("hash-once"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := a.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 20
	var consumed, unusable, events atomic.Int64
	events.Add(1) // challenge.created
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	gate := make(chan struct{})
	for n, s := range nodes {
		for w := range workers {
			wg.Go(func() {
				<-gate
				for i := range each {
					c := testCert(fmt.Sprintf("%d-%d-%d", n, w, i))
					in := store.Issuance{Certificate: c, Now: t0,
						Events: []pki.AuditEvent{{Type: pki.EventIssued, SerialHex: c.SerialHex}}}
					if i == 0 {
						in.ConsumeChallengeHash = ch.Hash
					}
					switch err := s.RecordIssuance(ctx, in); {
					case err == nil && i == 0:
						consumed.Add(1)
						events.Add(1)
					case err == nil:
						events.Add(1)
					case i == 0 && errors.Is(err, store.ErrChallengeUnusable):
						unusable.Add(1)
					default:
						errs <- err
					}
					if err := s.AppendAudit(ctx, pki.AuditEvent{Time: t0, Type: "test", Detail: c.SerialHex}); err != nil {
						errs <- err
					} else {
						events.Add(1)
					}
				}
			})
		}
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if consumed.Load() != 1 || unusable.Load() != 2*workers-1 {
		t.Errorf("challenge consumed %d times (%d refused), want once", consumed.Load(), unusable.Load())
	}
	for _, s := range nodes {
		rep, err := audit.Verify(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Checked != events.Load() {
			t.Errorf("audit verify: %+v (problem %v), want %d records and no problem", rep, rep.Problem, events.Load())
		}
	}
	var n int64
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM certificates`).Scan(&n); err != nil || n != 2*workers*each-(2*workers-1) {
		t.Errorf("%d certificates, %v; want %d", n, err, 2*workers*each-(2*workers-1))
	}
}

// TestDeadlockIsRetried: two transactions that lock two rows in opposite
// orders deadlock; PostgreSQL aborts one (40P01), withTx runs it again, and
// both succeed without the caller seeing an error.
func TestDeadlockIsRetried(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	for _, id := range []string{"x", "y"} {
		if _, err := s.pool.Exec(ctx, `INSERT INTO revocation_state (issuer_id, seq) VALUES ($1, 0)`, id); err != nil {
			t.Fatal(err)
		}
	}
	var runs atomic.Int32
	var both sync.WaitGroup
	both.Add(2)
	lockBoth := func(first, second string) error {
		return s.withTx(ctx, func(tx pgx.Tx) error {
			n := runs.Add(1)
			if _, err := tx.Exec(ctx, `UPDATE revocation_state SET seq = seq + 1 WHERE issuer_id = $1`, first); err != nil {
				return err
			}
			if n <= 2 {
				// The first run of each: wait until both hold their first
				// row, so that the second lock closes the cycle.
				both.Done()
				both.Wait()
			}
			_, err := tx.Exec(ctx, `UPDATE revocation_state SET seq = seq + 1 WHERE issuer_id = $1`, second)
			return err
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- lockBoth("x", "y") }()
	go func() { errs <- lockBoth("y", "x") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("withTx: %v", err)
		}
	}
	// At least one retry; a loaded machine may make PostgreSQL abort a
	// retry too (its deadlock check runs after deadlock_timeout in each
	// waiting backend), which the counters below still show as committed
	// once each.
	if r := runs.Load(); r < 3 {
		t.Errorf("%d runs, want 3 or more (a deadlock victim retried)", r)
	}
	var x, y int64
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT seq FROM revocation_state WHERE issuer_id = 'x'),
		(SELECT seq FROM revocation_state WHERE issuer_id = 'y')`).Scan(&x, &y); err != nil || x != 2 || y != 2 {
		t.Errorf("counters %d, %d (%v); want 2, 2: each transaction committed once", x, y, err)
	}
}

// TestSearchUsesTrigramIndex: with an analysed inventory, a search of three
// characters or more that matches few certificates is a lookup in the
// trigram index, and every search query ends with LIMIT.
func TestSearchUsesTrigramIndex(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	fillAnalyzed(t, s, generatedCerts{subject: `'CN=device-' || i || ',O=scepter'`, sans: `'["device-' || i || '.example"]'`})
	for _, f := range []store.CertFilter{
		{Search: "device-1234."},
		{Search: "DEVICE-777,"},
		{Search: "device-1999", Status: pki.StatusValid},
		{Search: "device-1234", NotAfterBefore: t0},
		// A serial as openssl prints it (1234 is 04:d2).
		{Search: "04d2"},
		{Search: "04:D2"},
	} {
		q, args, _, err := listQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		plan := explain(t, s, q, args...)
		if !strings.Contains(plan, "certificates_search") || !strings.HasPrefix(plan, "Limit") {
			t.Errorf("search %+v: plan does not use the trigram index under a Limit:\n%s", f, plan)
		}
		certs, _, err := s.ListCertificates(ctx, f)
		if err != nil || len(certs) == 0 {
			t.Errorf("search %+v: %d certificates, %v", f, len(certs), err)
		}
	}
	// A term that matches nearly everything is read in id order and stops
	// at LIMIT, like the SQLite store's.
	q, args, _, err := listQuery(store.CertFilter{Search: "device", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	// (The one sort is of each listed certificate's renewals, a few rows.)
	if plan := explain(t, s, q, args...); !strings.HasPrefix(plan, "Limit") || strings.Count(plan, "Sort Key") > len(renewalSort.FindAllString(plan, -1)) {
		t.Errorf("a frequent term: plan sorts or has no Limit on top:\n%s", plan)
	}
}

// TestCertificatesBySerialUsesKey: with no index on the serial alone
// (schema version 12), a lookup by serial walks the issuers and searches
// the (issuer_id, serial_hex) key under each, at any inventory size.
func TestCertificatesBySerialUsesKey(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	fillAnalyzed(t, s, generatedCerts{issuer: `'issuer-' || (i % 3)`})
	a := sqlstore.Args{Numbered: true}
	plan := explain(t, s, sqlstore.CertsBySerialQuery("4d2", &a), a.Values...)
	// Both columns in the Index Cond: a search of the key per issuer, not
	// one read of all of it filtered on the serial.
	if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "certificates_issuer_id_serial_hex_key") ||
		!strings.Contains(plan, "(issuer_id = issuers.issuer) AND (serial_hex = ") {
		t.Errorf("plan does not search the (issuer_id, serial_hex) key per issuer:\n%s", plan)
	}
	got, err := s.CertificatesBySerial(ctx, "4d2")
	if err != nil || len(got) != 1 || got[0].IssuerID != "issuer-1" {
		t.Errorf("CertificatesBySerial(4d2) = %d records, %v; want the one of issuer-1 (1234 mod 3)", len(got), err)
	}
}

// TestRenewalsUsePartialIndex: certificates_renewed_from holds the
// renewals only (schema version 13). RenewalsOf, the notifier's "renewed?"
// and the expiry scan's "not renewed" read it, never the table, on an
// analysed inventory where one certificate in twenty is a renewal.
func TestRenewalsUsePartialIndex(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	fillAnalyzed(t, s, generatedCerts{renewedFrom: `CASE WHEN i % 20 = 1 THEN 'issuer:' || to_hex(i - 1) ELSE '' END`})
	a := sqlstore.Args{Numbered: true}
	renewals := sqlstore.RenewalsQuery("issuer", "14", &a)
	expiring, expiringArgs, err := expiringQuery(store.ExpiryQuery{Now: time.UnixMicro(0), Within: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name string
		q    string
		args []any
	}{
		{"RenewalsOf", renewals, a.Values},
		{"renewed?", `SELECT ` + sqlstore.RenewedClause + ` FROM certificates c WHERE c.issuer_id = $1 AND c.serial_hex = $2`, []any{"issuer", "14"}},
		{"ExpiringCertificates", expiring, expiringArgs},
	} {
		plan := explain(t, s, q.q, q.args...)
		if !strings.Contains(plan, "certificates_renewed_from") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("%s: plan does not read certificates_renewed_from, or scans a table:\n%s", q.name, plan)
		}
	}
	got, err := s.RenewalsOf(ctx, "issuer", "14")
	if err != nil || len(got) != 1 || got[0].SerialHex != "15" {
		t.Errorf("RenewalsOf(issuer, 14) = %v, %v; want the certificate 15 (21 renews 20)", got, err)
	}
	// The inventory's lists name each certificate's renewal, and leave the
	// renewed ones out (or keep them alone), by a search of that index per
	// row read: every order still reads its own index and stops at LIMIT.
	within := store.CertFilter{Status: pki.StatusValid, NotAfterAfter: time.UnixMicro(0), NotAfterBefore: time.UnixMicro(0).Add(30 * 24 * time.Hour), Limit: 50}
	for _, f := range []store.CertFilter{
		{Limit: 50},
		{Renewed: store.RenewedNo, Limit: 50},
		{Renewed: store.RenewedYes, Profile: "default", Limit: 50},
		func() store.CertFilter { f := within; f.Renewed = store.RenewedNo; return f }(),
		{Renewed: store.RenewedNo, IssuedAfter: time.UnixMicro(100), IssuedBefore: time.UnixMicro(5000), Limit: 50},
		{Renewed: store.RenewedNo, Search: "device-1234", Limit: 50},
	} {
		q, args, _, err := listQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		plan := explain(t, s, q, args...)
		// The one sort allowed is of one certificate's renewals, newest
		// first (and a rare search term's few matches, as ever).
		sorts := strings.Count(plan, "Sort Key") - len(renewalSort.FindAllString(plan, -1))
		if !strings.Contains(plan, "certificates_renewed_from") || strings.Contains(plan, "Seq Scan") ||
			!strings.HasPrefix(plan, "Limit") || f.Search == "" && sorts > 0 {
			t.Errorf("ListCertificates %+v: plan does not read certificates_renewed_from under a Limit, or scans or sorts:\n%s", f, plan)
		}
	}
	listed, _, err := s.ListCertificates(ctx, store.CertFilter{IssuerID: "issuer", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range listed {
		if c.SerialHex == "14" && c.RenewedBy != "issuer:15" || c.SerialHex == "15" && c.RenewedBy != "" {
			t.Errorf("listed %s: renewed by %q; want 20 (14) renewed by 21 (issuer:15), and 21 by none", c.SerialHex, c.RenewedBy)
		}
	}
}

// renewalSort is the plan line of the sort of one certificate's renewals,
// newest first (table r, or r_1 beside the renewed filter's r).
var renewalSort = regexp.MustCompile(`Sort Key: r(_\d+)?\.id DESC`)

// generatedCerts are SQL expressions of i for the columns that the plan
// tests vary; an empty one takes its default.
type generatedCerts struct {
	issuer      string // default 'issuer'
	subject     string // default 'CN=device-' || i
	sans        string // default '[]'
	renewedFrom string // default '' (no renewal)
	keyHash     string // default NULL
	txID        string // default ''
	status      string // default 'valid'
	profile     string // default 'default'
}

// fillAnalyzed inserts 20,000 certificates (valid, of profile default,
// unless g says otherwise), i = 1…20,000, with serial to_hex(i) and
// not_after spread over 400 days, then runs VACUUM ANALYZE:
// VACUUM moves the new rows' trigram entries from the GIN pending list into
// the index (autovacuum would), and ANALYZE gives the planner statistics.
func fillAnalyzed(t testing.TB, s *Store, g generatedCerts) {
	t.Helper()
	or := func(expr, def string) string {
		if expr == "" {
			return def
		}
		return expr
	}
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `INSERT INTO certificates (issuer_id, serial_hex, subject_dn, sans, not_before,
		not_after, status, profile, protocol, created_at, der, renewed_from, key_hash, transaction_id)
		SELECT `+or(g.issuer, `'issuer'`)+`, to_hex(i), `+or(g.subject, `'CN=device-' || i`)+`, `+or(g.sans, `'[]'`)+`, 0,
			86400000000 * (i % 400), `+or(g.status, `'valid'`)+`, `+or(g.profile, `'default'`)+`, 'scep', i, '\x30', `+or(g.renewedFrom, `''`)+`,
			`+or(g.keyHash, `NULL`)+`, `+or(g.txID, `''`)+`
		FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE certificates`); err != nil {
		t.Fatal(err)
	}
}

// TestKeyHashSearches: the resend lookup searches the index of the key
// hash and the transaction ID (schema version 22), not every certificate
// of the key, and the keyCompromise sweep the same index by the key, not
// the valid certificates by expiry. Here every key has 400 certificates,
// of 400 transactions.
func TestKeyHashSearches(t *testing.T) {
	s, _ := openFresh(t)
	fillAnalyzed(t, s, generatedCerts{keyHash: `sha256(int8send(i % 50))`, txID: `'tx-' || (i / 50)`})
	hash := sha256.Sum256(binary.BigEndian.AppendUint64(nil, 7))
	a := sqlstore.Args{Numbered: true}
	plan := explain(t, s, sqlstore.CertsOfTransactionQuery(hash[:], "default", "tx-3", 0, &a), a.Values...)
	if !strings.Contains(plan, "certificates_key_hash") || !regexp.MustCompile(`Index Cond: .*transaction_id = `).MatchString(plan) {
		t.Errorf("CertificatesOfTransaction: no search of certificates_key_hash by key and transaction:\n%s", plan)
	}
	for _, q := range []struct {
		name string
		q    string
		args []any
	}{
		{"valid", revokeValidSiblings, []any{hash[:], 0, "i", "s", "revoked", 0, 1, "a", "valid"}},
		{"held", markHeldSiblings, []any{hash[:], 0, "i", "s", 1, "a", "revoked", 6}},
	} {
		// PostgreSQL weighs the indexes by its statistics: with no
		// certificate on hold, the one of status and expiry finds none
		// sooner, which is as good.
		if plan := explain(t, s, q.q, q.args...); (q.name == "valid" && !strings.Contains(plan, "certificates_key_hash")) || strings.Contains(plan, "Seq Scan") {
			t.Errorf("keyCompromise sweep (%s): no search of certificates_key_hash:\n%s", q.name, plan)
		}
	}
}

func explain(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `EXPLAIN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	return strings.Join(lines, "\n")
}

// TestOpenErrorsHideThePassword: a bad URL or an unreachable server is
// reported without the password.
func TestOpenErrorsHideThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, u := range []string{
		"postgres://scepter:s3cr3t-pw@127.0.0.1:1/scepter?connect_timeout=2",
		"postgres://scepter:s3cr3t-pw@127.0.0.1:1/scepter?pool_max_conns=lots",
		"postgres://scepter@127.0.0.1:1/scepter?password=s3cr3t-pw&connect_timeout=2",
		"postgres://scepter@127.0.0.1:1/scepter?sslpassword=s3cr3t-pw&connect_timeout=2",
		"postgres://scepter:s3cr3t-pw@[::1/scepter",
	} {
		_, err := Open(ctx, u)
		if err == nil {
			t.Errorf("Open(%s): no error", Redact(u))
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
	if got := Redact("postgres://u:pw@h:5/db?sslmode=require"); got != "postgres://u:xxxxx@h:5/db?sslmode=require" {
		t.Errorf("Redact = %q", got)
	}
	if got := Redact("postgres://u@h:5/db?sslpassword=keypw&password=pw&sslmode=verify-full"); strings.Contains(got, "pw") {
		t.Errorf("Redact = %q: a password shows", got)
	}
}

func TestPoolSize(t *testing.T) {
	s, dbURL := openFresh(t)
	if got := s.pool.Config().MaxConns; got != 8 {
		t.Errorf("pool_max_conns=8: MaxConns %d", got)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("pool_max_conns")
	u.RawQuery = q.Encode()
	plain := u.String()
	s2, err := Open(context.Background(), plain)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.pool.Config().MaxConns; got != defaultMaxConns() {
		t.Errorf("default MaxConns %d, want %d", got, defaultMaxConns())
	}
	var app string
	if err := s2.pool.QueryRow(context.Background(), `SHOW application_name`).Scan(&app); err != nil || app != "scepter" {
		t.Errorf("application_name %q, %v", app, err)
	}
}

// TestTextPostgresCannotHold: NUL characters and invalid UTF-8, which
// PostgreSQL's text refuses, round-trip in audit records (whose chain must
// verify), subjects and rejection reasons, and equality filters find them.
func TestTextPostgresCannotHold(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	odd := []string{"nul\x00inside", "bad \xff utf-8", escMarker + "looks escaped", escMarker, "plain"}
	for i, v := range odd {
		c := testCert(fmt.Sprintf("%02x", i))
		c.Subject, c.Issuer = "CN="+v, v
		ev := pki.AuditEvent{Type: v, Actor: v, Profile: v, SerialHex: v, IssuerID: v, Subject: v,
			TransactionID: v, Outcome: v, Reason: v, Detail: v}
		if err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0, Events: []pki.AuditEvent{ev}}); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		got, err := s.Certificate(ctx, c.IssuerID, c.SerialHex)
		if err != nil || got.Subject != c.Subject || got.Issuer != c.Issuer {
			t.Errorf("%q: certificate %+v, %v", v, got, err)
		}
		evs, err := s.ListAudit(ctx, store.AuditFilter{Type: v, SerialHex: v})
		if err != nil || len(evs) != 1 || evs[0].Detail != v || evs[0].Subject != v || evs[0].Actor != v {
			t.Errorf("%q: ListAudit by type and serial = %+v, %v", v, evs, err)
		}
		r := pki.EnrollmentRequest{ID: fmt.Sprintf("r%d", i), TransactionID: "tx", Profile: fmt.Sprint(i), Subject: "CN=" + v,
			CSR: []byte{0x30}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := s.CreateRequest(ctx, r, nil, pki.AuditEvent{Type: pki.EventRequestPending}); err != nil {
			t.Fatal(err)
		}
		if err := s.RejectRequest(ctx, r.ID, v, "cli:root", t0, pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Request(ctx, r.ID); err != nil || got.Subject != r.Subject || got.Reason != v {
			t.Errorf("%q: request %+v, %v", v, got, err)
		}
	}
	if rep, err := audit.Verify(ctx, s); err != nil || !rep.OK() {
		t.Errorf("audit verify: %+v, %v", rep, err)
	}
	if got := encText("plain"); got != "plain" {
		t.Errorf("encText(plain) = %q: ordinary text must be stored as it is", got)
	}
}

// TestIssuanceBatch: RecordIssuance sends BEGIN, the certificate, its
// serial, the event (audit_append) and COMMIT in one round trip. A
// duplicate serial is still a conflict that records nothing and leaves no
// transaction open on the connection it used, issuances append to the
// chain in order, with the head's row gone under records an issuance is
// refused (lockAuditHead's way), and on a trail wiped whole it starts
// again from the genesis hash.
func TestIssuanceBatch(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	issue := func(serial string) error {
		c := pki.Certificate{SerialHex: serial, IssuerID: "issuer-a", Issuer: "CN=CA", Subject: "CN=device-" + serial,
			NotBefore: now, NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid, Profile: "default",
			Protocol: pki.ProtocolEST, Source: pki.SourceIssued, KeyType: "p256", CreatedAt: now, DER: []byte{0x30, 0}}
		return s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: now, Events: []pki.AuditEvent{{
			Type: pki.EventIssued, Actor: "test", SerialHex: serial, IssuerID: c.IssuerID, Outcome: "success"}}})
	}
	lastPrev := func() []byte {
		var prev []byte
		if err := s.pool.QueryRow(ctx, `SELECT prev_hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&prev); err != nil {
			t.Fatal(err)
		}
		return prev
	}
	for _, serial := range []string{"01", "02"} {
		head, err := s.AuditHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := issue(serial); err != nil {
			t.Fatalf("issue %s: %v", serial, err)
		}
		if !bytes.Equal(lastPrev(), head.LastHash) {
			t.Errorf("issue %s: its event does not follow the head it found", serial)
		}
	}
	before, _ := s.AuditHead(ctx)
	if err := issue("02"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate serial: %v, want ErrConflict", err)
	}
	if after, _ := s.AuditHead(ctx); after.LastID != before.LastID || !bytes.Equal(after.LastHash, before.LastHash) {
		t.Errorf("a refused issuance moved the head: %+v, was %+v", after, before)
	}
	var open int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil || open != 0 {
		t.Errorf("%d connections left in a transaction after the refused issuance (%v)", open, err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM audit_head`); err != nil {
		t.Fatal(err)
	}
	if err := issue("03"); !errors.Is(err, store.ErrAuditTampered) {
		t.Fatalf("issue without a head row: %v, want ErrAuditTampered", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM audit_events`); err != nil {
		t.Fatal(err)
	}
	// Wiped beside the certificates recorded with its events: a trail
	// started again would look like a fresh store's.
	if err := issue("03"); !errors.Is(err, store.ErrAuditTampered) {
		t.Fatalf("issue on a trail wiped beside certificates: %v, want ErrAuditTampered", err)
	}
	// In a store without certificates (an issuance's own is one), the
	// trail starts again.
	if _, err := s.pool.Exec(ctx, `DELETE FROM certificates`); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, pki.AuditEvent{Time: t0, Type: pki.EventChallengeCreated, Actor: "cli:root", Outcome: "success"}); err != nil {
		t.Fatalf("append to a wiped trail in a store without certificates: %v", err)
	}
	if !bytes.Equal(lastPrev(), pki.AuditGenesis) {
		t.Error("on a wiped trail, the chain did not start again from the genesis hash")
	}
	if head, err := s.AuditHead(ctx); err != nil || head.Count != 1 {
		t.Errorf("head after the restart: %+v, %v; want a count of 1", head, err)
	}
}

// TestAuditAppendMatchesPki: audit_append (migration 0014) links an event
// to the chain inside the database, and its hash must be
// pki.AuditChainHash's byte for byte, for every field, text PostgreSQL
// cannot hold as it is (stored encoded, hashed as given), an event without
// a time of its own, and two events in one issuance (audit_append twice in
// one transaction).
func TestAuditAppendMatchesPki(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 987654321, time.UTC)
	full := pki.AuditEvent{Time: now.Add(-time.Second), Type: pki.EventIssued, Actor: "scep:203.0.113.7",
		Profile: "default", SerialHex: "0a0b", IssuerID: "issuer-a", Subject: "CN=dev\x00ice,O=\uFFFEodd",
		TransactionID: "tx\x00", Outcome: "success", Reason: "", Detail: "renews issuer-a:01 \xff"}
	for i, events := range [][]pki.AuditEvent{
		{full},
		{{Type: pki.EventIssued, SerialHex: "02"}}, // no time: now
		{full, {Type: pki.EventRefused, Detail: "second"}},
		{{Type: pki.EventRenewed, Actor: "est:user", SerialHex: "04", Outcome: "success"}},
	} {
		serial := fmt.Sprintf("%02x", i+1)
		c := pki.Certificate{SerialHex: serial, IssuerID: "issuer-a", Issuer: "CN=CA", Subject: "CN=device",
			NotBefore: now, NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid, Profile: "default",
			Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, KeyType: "rsa2048", CreatedAt: now, DER: []byte{0x30, 0}}
		if err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: now, Events: events}); err != nil {
			t.Fatalf("issuance %d: %v", i, err)
		}
	}
	rep, err := audit.Verify(ctx, s)
	if err != nil || !rep.OK() || rep.Checked != 5 {
		t.Fatalf("audit verify: %+v, %v; want 5 records and no problem", rep, err)
	}
	got := listAllAudit(t, s)
	if len(got) != 5 {
		t.Fatalf("%d events", len(got))
	}
	if e := got[0]; e.Subject != full.Subject || e.TransactionID != full.TransactionID || e.Detail != full.Detail ||
		!e.Time.Equal(full.Time.Truncate(time.Microsecond)) {
		t.Errorf("first event read back as %+v, want the fields of %+v", e, full)
	}
	if e := got[1]; !e.Time.Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("an event without a time got %v, want the issuance's %v", e.Time, now)
	}
	prev := pki.AuditGenesis
	for _, e := range got {
		if err := s.pool.QueryRow(ctx, `SELECT prev_hash, hash FROM audit_events WHERE id = $1`, e.ID).Scan(&e.PrevHash, &e.Hash); err != nil {
			t.Fatal(err)
		}
		if want := pki.AuditChainHash(prev, e); !bytes.Equal(e.Hash, want) || !bytes.Equal(e.PrevHash, prev) {
			t.Errorf("event %d: hash %x after %x, want %x after %x", e.ID, e.Hash, e.PrevHash, want, prev)
		}
		prev = e.Hash
	}
}

// listAllAudit is the whole trail, oldest first.
func listAllAudit(t *testing.T, s *Store) []pki.AuditEvent {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(evs, func(a, b pki.AuditEvent) int { return cmp.Compare(a.ID, b.ID) })
	return evs
}

// TestOrderedWrites: the replay nonce and the serial reservation commit
// without waiting for a WAL flush (synchronous_commit off in their own
// transaction, not on the connection), are visible at once, and a refused
// one leaves no connection inside a transaction.
func TestOrderedWrites(t *testing.T) {
	ctx := context.Background()
	// The test server does not flush at all; the store's sessions say
	// synchronous_commit on here, as a production server's do.
	dbURL := pgtest.WithParam(t, pgtest.WithParam(t, migrated.Database(t), "pool_max_conns", testPoolSize), "synchronous_commit", "on")
	s, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.pool.Exec(ctx, `CREATE TABLE seen (setting text)`); err != nil {
		t.Fatal(err)
	}
	err = s.withOrderedStatement(ctx, func(db execer) error {
		_, err := db.Exec(ctx, `INSERT INTO seen VALUES (current_setting('synchronous_commit'))`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := s.pool.QueryRow(ctx, `SELECT setting FROM seen`).Scan(&inside); err != nil || inside != "off" {
		t.Errorf("synchronous_commit inside an ordered write: %q (%v), want off", inside, err)
	}
	// Every pooled connection, including the one just used, is back to the
	// session's setting.
	conns := make([]*pgxpool.Conn, 0, 8)
	for range cap(conns) {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var after string
		if err := c.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&after); err != nil || after != "on" {
			t.Errorf("synchronous_commit on a pooled connection after an ordered write: %q (%v), want on", after, err)
		}
	}
	for _, c := range conns {
		c.Release()
	}

	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := s.RememberNonce(ctx, "tx-1", []byte("nonce"), now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RememberNonce(ctx, "tx-1", []byte("nonce"), now, now.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("replayed nonce: %v, want ErrConflict", err)
	}
	if err := s.ReserveSerial(ctx, "issuer-a", "0a", []byte{0x30, 0}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.ReserveSerial(ctx, "issuer-a", "0a", []byte{0x30, 0}, now); !errors.Is(err, store.ErrConflict) {
		t.Errorf("serial reserved twice: %v, want ErrConflict", err)
	}
	var open int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil || open != 0 {
		t.Errorf("%d connections left in a transaction after refused ordered writes (%v)", open, err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM nonces) + (SELECT count(*) FROM serials)`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows after the ordered writes: %d (%v), want 2", n, err)
	}
}

// plainIssuance is a plain issuance (an enrollment) of serial in profile,
// valid for days from now, with its rows for tryIssuances.
func plainIssuance(now time.Time, serial, profile string, days int) (*store.Issuance, issuanceRows) {
	c := pki.Certificate{SerialHex: serial, IssuerID: "issuer-a", Issuer: "CN=CA", Subject: "CN=device-" + serial,
		NotBefore: now, NotAfter: now.Add(time.Duration(days) * 24 * time.Hour), Status: pki.StatusValid, Profile: profile,
		Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, KeyType: "rsa2048", CreatedAt: now, DER: []byte{0x30, 0}}
	in := &store.Issuance{Certificate: c, Now: now, Events: []pki.AuditEvent{{
		Type: pki.EventIssued, Actor: "test", SerialHex: serial, IssuerID: c.IssuerID, Outcome: "success"}}}
	return in, newIssuanceRows(&in.Certificate, sqlstore.IssuanceKeyHash(in), "[]", nil, sqlstore.Micros(now)) // sqlstore.EncodeSANs(nil)
}

// TestIssuancesTogether: plain issuances that wait for a turn are recorded
// in one transaction, and one that fails in a batch fails alone: the others
// are recorded, and the audit chain holds exactly their events.
func TestIssuancesTogether(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	request := func(ctx context.Context, serial, profile string, days int, challenge []byte) *issueRequest {
		in, rows := plainIssuance(now, serial, profile, days)
		in.ConsumeChallengeHash = challenge
		return &issueRequest{ctx: ctx, in: in, issued: rows, now: sqlstore.Micros(now), done: make(chan error, 1)}
	}
	run := func(batch ...*issueRequest) []error {
		s.runIssues(batch)
		errs := make([]error, len(batch))
		for i, r := range batch {
			errs[i] = <-r.done
		}
		return errs
	}
	transactions := func(serials ...string) int {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT xmin::text) FROM certificates WHERE serial_hex = ANY($1)`,
			serials).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Different profiles and expiry days, in no particular order.
	errs := run(request(ctx, "01", "wifi", 30, nil), request(ctx, "02", "default", 365, nil),
		request(ctx, "03", "wifi", 1, nil), request(ctx, "04", "default", 365, nil))
	for i, err := range errs {
		if err != nil {
			t.Errorf("issuance %d of a good batch: %v", i, err)
		}
	}
	if n := transactions("01", "02", "03", "04"); n != 1 {
		t.Errorf("a batch of 4 took %d transactions, want 1", n)
	}

	ch := pki.Challenge{ID: "once", Hash: []byte("hash-once"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	errs = run(request(ctx, "05", "default", 365, ch.Hash), request(ctx, "01", "default", 365, nil),
		request(ctx, "06", "default", 365, nil), request(ctx, "07", "default", 365, ch.Hash),
		request(gone, "08", "default", 365, nil), request(ctx, "09", "wifi", 30, nil))
	want := []error{nil, store.ErrConflict, nil, store.ErrChallengeUnusable, context.Canceled, nil}
	for i, err := range errs {
		if (want[i] == nil) != (err == nil) || (want[i] != nil && !errors.Is(err, want[i])) {
			t.Errorf("issuance %d of a batch with failures: %v, want %v", i, err, want[i])
		}
	}
	var certs, events int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM certificates), (SELECT count(*) FROM audit_events)`).Scan(&certs, &events); err != nil {
		t.Fatal(err)
	}
	if certs != 7 || events != 8 {
		t.Errorf("%d certificates and %d events, want 7 (01-06, 09) and 8 (with the challenge's)", certs, events)
	}
	rep, err := audit.Verify(ctx, s)
	if err != nil || !rep.OK() || rep.Checked != 8 {
		t.Errorf("audit verify: %+v (%v), want 8 records and no problem", rep, err)
	}
	var counted int
	if err := s.pool.QueryRow(ctx, `SELECT sum(n) FROM certificate_counts`).Scan(&counted); err != nil || counted != 7 {
		t.Errorf("certificate_counts adds up to %d (%v), want 7", counted, err)
	}
}

// TestBatchContext: a batch's context ends when every caller's has, not
// before.
func TestBatchContext(t *testing.T) {
	a, cancelA := context.WithCancel(context.Background())
	b, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	ctx, stop := batchContext([]*issueRequest{{ctx: a}, {ctx: b}})
	defer stop()
	cancelA()
	time.Sleep(10 * time.Millisecond) // AfterFunc runs on a goroutine of its own
	if ctx.Err() != nil {
		t.Fatal("the batch ended when one of two callers gave up")
	}
	cancelB()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the batch went on after every caller gave up")
	}
	ctx2, stop2 := batchContext([]*issueRequest{{ctx: context.Background()}})
	stop2()
	if ctx2.Err() == nil {
		t.Error("stop did not end the batch's context")
	}
}

// TestIssuanceGivesUpInQueue: a caller that gives up while its issuance is
// queued behind a batch leaves the queue and is not recorded; when the lead
// had been handed to it, it hands the lead on.
func TestIssuanceGivesUpInQueue(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	plain := func(serial string) (*store.Issuance, issuanceRows) { return plainIssuance(now, serial, "default", 1) }
	queued := func() int {
		s.issues.mu.Lock()
		defer s.issues.mu.Unlock()
		return len(s.issues.queue)
	}
	waitQueued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); queued() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d queued, want %d", queued(), n)
			}
		}
	}

	// Another caller leads (its batch under way).
	s.issues.mu.Lock()
	s.issues.leading = true
	s.issues.mu.Unlock()
	giveUp, cancel := context.WithCancel(ctx)
	first := make(chan error, 1)
	go func() {
		in, rows := plain("01")
		first <- s.issuePlain(giveUp, in, rows, sqlstore.Micros(now))
	}()
	waitQueued(1)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("gave up while queued: %v, want context.Canceled", err)
	}
	if n := queued(); n != 0 {
		t.Fatalf("%d left in the queue", n)
	}

	// The lead is handed to a caller that then gives up: it hands the lead
	// on to the one behind it.
	r1 := &issueRequest{done: make(chan error, 1)}
	r2 := &issueRequest{done: make(chan error, 1)}
	q := &s.issues
	q.queue = []*issueRequest{r1, r2}
	q.mu.Lock()
	q.handOff()
	q.mu.Unlock()
	if !q.leave(r1) || len(q.queue) != 1 || q.queue[0] != r2 {
		t.Fatalf("leave: queue %v", q.queue)
	}
	select {
	case err := <-r2.done:
		if !errors.Is(err, errIssueLead) {
			t.Fatalf("the request behind got %v, want the lead", err)
		}
	default:
		t.Fatal("the lead was not handed on to the request behind")
	}
	if !q.leave(r2) || !q.leading {
		t.Fatal("a queued request without the lead left, and took the lead with it")
	}
	q.queue = []*issueRequest{r1}
	r1.done <- errIssueLead
	if !q.leave(r1) || q.leading {
		t.Fatal("the last queued request left with the lead, which stayed taken")
	}
	if q.leave(r1) {
		t.Fatal("a request no longer queued left again")
	}

	// A caller queued while the lead is free leads, and is recorded.
	in, rows := plain("02")
	if err := s.issuePlain(ctx, in, rows, sqlstore.Micros(now)); err != nil {
		t.Fatal(err)
	}
	var serials []string
	if err := s.pool.QueryRow(ctx, `SELECT array_agg(serial_hex ORDER BY serial_hex) FROM certificates`).Scan(&serials); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(serials, []string{"02"}) {
		t.Errorf("recorded %v, want [02]", serials)
	}
	s.issues.mu.Lock()
	defer s.issues.mu.Unlock()
	if s.issues.leading || len(s.issues.queue) != 0 {
		t.Errorf("after the last batch: leading %v, %d queued", s.issues.leading, len(s.issues.queue))
	}
}

// TestIssuanceBatchPanics: a batch that panics answers its callers with an
// error and gives the lead up, so later issuances are not held in the
// queue.
func TestIssuanceBatchPanics(t *testing.T) {
	ctx := context.Background()
	s, _ := openFresh(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	plain := func(serial string) (*store.Issuance, issuanceRows) { return plainIssuance(now, serial, "default", 1) }
	s.issues.mu.Lock()
	s.issues.leading = true // another caller's batch is under way
	s.issues.mu.Unlock()
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		in, _ := plain("01")
		_ = s.issuePlain(ctx, in, func(*pgx.Batch) { panic("boom") }, sqlstore.Micros(now))
	}()
	behind := make(chan error, 1)
	go func() {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			s.issues.mu.Lock()
			n := len(s.issues.queue)
			s.issues.mu.Unlock()
			if n == 1 || time.Now().After(deadline) {
				break
			}
		}
		in, rows := plain("02")
		behind <- s.issuePlain(ctx, in, rows, sqlstore.Micros(now))
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.issues.mu.Lock()
		n := len(s.issues.queue)
		s.issues.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want 2", n)
		}
	}
	s.issues.mu.Lock()
	s.issues.handOff() // the other caller's batch is done
	s.issues.mu.Unlock()
	if p := <-panicked; p != "boom" {
		t.Errorf("the panicking issuance's caller saw %v, want the panic", p)
	}
	if err := <-behind; err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("the issuance in the same batch: %v, want an error that says so", err)
	}
	in, rows := plain("03")
	if err := s.issuePlain(ctx, in, rows, sqlstore.Micros(now)); err != nil {
		t.Fatalf("an issuance after the panic: %v", err)
	}
}

func TestAuditTampering(t *testing.T) {
	storetest.RunAuditTampering(t, func(t *testing.T) (store.Store, storetest.Exec) {
		s, _ := openFresh(t)
		return s, func(t *testing.T, query string) {
			t.Helper()
			if _, err := s.pool.Exec(context.Background(), query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
	})
}

func TestLegacyRequests(t *testing.T) {
	storetest.RunLegacyRequests(t, func(t *testing.T) (store.Store, storetest.Exec) {
		s, _ := openFresh(t)
		return s, func(t *testing.T, query string) {
			t.Helper()
			if _, err := s.pool.Exec(context.Background(), query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
	})
}
