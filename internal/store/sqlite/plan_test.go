package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlstore"
	"github.com/scepter/scepter/internal/store/storetest"
)

// queryPlan returns the EXPLAIN QUERY PLAN details of q, one per line.
func queryPlan(t testing.TB, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// fullTextLookup is the plan line of a MATCH on the search index.
var fullTextLookup = regexp.MustCompile(`^SCAN certificates_search VIRTUAL TABLE INDEX \d+:M`)

// ownSANs is the plan line of a search's walk of one certificate's SAN
// list (json_each(sans)).
var ownSANs = regexp.MustCompile(`^SCAN json_each VIRTUAL TABLE INDEX \d+:$`)

// badPlan names what makes a plan slow at a million rows: reading a whole
// table or index (SCAN), or sorting the matches, which reads all of them
// before LIMIT can stop anything.
func badPlan(plan string) string {
	for _, line := range strings.Split(plan, "\n") {
		switch {
		case fullTextLookup.MatchString(line):
			// An FTS5 index query (M: MATCH), in rowid order: not a scan.
		case ownSANs.MatchString(line):
			// The few values of one certificate's SANs: not a table.
		case strings.HasPrefix(line, "SCAN "):
			return "full scan: " + line
		case strings.Contains(line, "TEMP B-TREE"):
			return "sort: " + line
		}
	}
	return ""
}

// certFilters returns every combination of the CertFilter fields, each
// without and with a cursor of its order.
func certFilters() []store.CertFilter {
	now := t0
	var out []store.CertFilter
	for mask := range 1 << 5 {
		var f store.CertFilter
		if mask&1 != 0 {
			f.NotAfterBefore = now.Add(30 * 24 * time.Hour)
		}
		if mask&2 != 0 {
			f.NotAfterAfter = now
		}
		if mask&4 != 0 {
			f.Status = pki.StatusValid
		}
		if mask&8 != 0 {
			f.Profile = "default"
		}
		if mask&16 != 0 {
			f.IssuerID = "issuer"
		}
		out = append(out, f)
		if f.NotAfterBefore.IsZero() {
			f.Cursor = sqlstore.Cursor{Kind: sqlstore.CursorNewest, ID: 500}.String()
		} else {
			f.Cursor = sqlstore.Cursor{Kind: sqlstore.CursorExpiry, Time: now.UnixMicro(), ID: 500}.String()
		}
		out = append(out, f)
	}
	// The console's and the API's filters: protocol, issuance window,
	// search, alone and with the others, first and later pages.
	for _, f := range []store.CertFilter{
		{Protocol: pki.ProtocolEST},
		{Protocol: pki.ProtocolEST, Cursor: sqlstore.Cursor{Kind: sqlstore.CursorNewest, ID: 500}.String()},
		{IssuedAfter: now.Add(-24 * time.Hour), IssuedBefore: now},
		{IssuedAfter: now.Add(-24 * time.Hour), Cursor: sqlstore.Cursor{Kind: sqlstore.CursorIssued, Time: now.UnixMicro(), ID: 9}.String()},
		{IssuedBefore: now, Status: pki.StatusRevoked},
		{Search: "device-42"},
		{Search: "device-42", Cursor: sqlstore.Cursor{Kind: sqlstore.CursorNewest, ID: 500}.String()},
		{Search: "acme", Status: pki.StatusValid, Profile: "default"},
		// Serials as openssl prints them: the index finds them too.
		{Search: "06d566"},
		{Search: "06:d5:66", Cursor: sqlstore.Cursor{Kind: sqlstore.CursorNewest, ID: 500}.String()},
		// Renewed or not, alone, with the expiry window (the certificates
		// still to renew), with the issuance window and with a search.
		{Renewed: store.RenewedNo},
		{Renewed: store.RenewedYes, Cursor: sqlstore.Cursor{Kind: sqlstore.CursorNewest, ID: 500}.String()},
		{Renewed: store.RenewedNo, Status: pki.StatusValid, NotAfterAfter: now, NotAfterBefore: now.Add(30 * 24 * time.Hour)},
		{Renewed: store.RenewedNo, NotAfterAfter: now, NotAfterBefore: now.Add(30 * 24 * time.Hour),
			Cursor: sqlstore.Cursor{Kind: sqlstore.CursorExpiry, Time: now.UnixMicro(), ID: 500}.String()},
		{Renewed: store.RenewedYes, Profile: "default", NotAfterAfter: now, NotAfterBefore: now.Add(30 * 24 * time.Hour)},
		{Renewed: store.RenewedNo, IssuedAfter: now.Add(-24 * time.Hour), IssuedBefore: now},
		{Renewed: store.RenewedNo, Search: "device-42"},
		{Renewed: store.RenewedNo, Search: "acme", Status: pki.StatusValid},
	} {
		out = append(out, f)
	}
	return out
}

// TestQueryPlans checks that every inventory, request and audit listing,
// with every filter combination, reads an index range in output order, and
// that every point lookup and purge is an index search.
func TestQueryPlans(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	check := func(t *testing.T, s *Store, name, q string, args []any) {
		t.Helper()
		plan := queryPlan(t, s, q, args...)
		if why := badPlan(plan); why != "" {
			t.Errorf("%s: %s\nquery: %s\nplan:\n%s", name, why, q, plan)
		}
	}
	run := func(t *testing.T, s *Store) {
		for _, f := range certFilters() {
			q, args, _, err := listQuery(f)
			if err != nil {
				t.Fatal(err)
			}
			check(t, s, fmt.Sprintf("ListCertificates %+v", f), q, args)
			// Each row's renewal (and the renewed filter) is a search of
			// the partial index of renewals, never a walk of another.
			plan := queryPlan(t, s, q, args...)
			if got, want := strings.Count(plan, "INDEX certificates_renewed_from (renewed_from=?)"), 1+min(len(f.Renewed), 1); got != want {
				t.Errorf("ListCertificates %+v: %d searches of certificates_renewed_from, want %d\nplan:\n%s", f, got, want, plan)
			}
		}
		for _, f := range []store.AuditFilter{{}, {Type: "x"}, {SerialHex: "01"}, {Type: "x", SerialHex: "01"}, {BeforeID: 9, Type: "x"}} {
			var a sqlstore.Args
			q := sqlstore.AuditQuery(f, &a, nil)
			check(t, s, fmt.Sprintf("ListAudit %+v", f), q, a.Values)
		}
		for _, f := range requestFilters() {
			var a sqlstore.Args
			q := sqlstore.RequestsQuery(f, 0, &a)
			check(t, s, fmt.Sprintf("ListRequests %+v", f), q, a.Values)

		}
		point := []struct{ name, q string }{
			{"Certificate", `SELECT ` + sqlstore.CertColumns + ` FROM certificates WHERE issuer_id = ? AND serial_hex = ?`},
			{"LookupChallenge", `SELECT id FROM challenges WHERE hash = ? AND consumed_at IS NULL AND expires_at > ?`},
			{"PurgeExpired nonces", purgeNoncesQuery},
			{"RequestByTransaction", requestByTransactionQuery},
			{"RequestByTransaction by key", requestByTransactionKeyQuery},
			{"Request", requestByIDQuery},
			// Every append: the head, and the newest record's id by a
			// seek of the primary key.
			{"append's head", appendHeadQuery},
			// The existence checks behind ErrNotFound and ErrConflict, and
			// the updates of RejectRequest, CompleteRequestID and Supersede.
			{"request status", `SELECT status FROM enrollment_requests WHERE id = ?`},
			{"decide request", `UPDATE enrollment_requests SET status = 'x' WHERE id = ? AND status = ?`},
			{"supersede", `UPDATE certificates SET status = 'revoked' WHERE issuer_id = ? AND serial_hex = ? AND status <> ?`},
		}
		for _, p := range point {
			// Placeholder values: these are equality lookups on a key,
			// whose plan does not hinge on the value.
			args := make([]any, strings.Count(p.q, "?"))
			for i := range args {
				args[i] = "a"
			}
			check(t, s, p.name, p.q, args)
		}
		// The requests' purge compares times, given as the purge gives
		// them: a text placeholder compares above every integer, and
		// with the decided requests' condition the planner reads all.
		now := sqlstore.Micros(t0)
		check(t, s, "PurgeExpired requests", purgeRequestsQuery(), []any{now, now})
		// RenewalsOf searches the partial index of renewals (schema
		// version 13), which only a query saying that renewed_from is not
		// empty may use.
		var ra sqlstore.Args
		if plan := queryPlan(t, s, sqlstore.RenewalsQuery("issuer", "100000", &ra), ra.Values...); !strings.HasPrefix(plan,
			"SEARCH certificates USING INDEX certificates_renewed_from (renewed_from=?)") {
			t.Errorf("RenewalsOf: no search of certificates_renewed_from:\n%s", plan)
		}
		// CertificatesOfTransaction (on every SCEP enrollment at a static
		// or webhook profile) searches the index of the key hash and the
		// transaction ID: not every certificate of the key.
		var ta sqlstore.Args
		if plan := queryPlan(t, s, sqlstore.CertsOfTransactionQuery([]byte("hash"), "default", "tx-1", 0, &ta), ta.Values...); !strings.HasPrefix(plan,
			"SEARCH certificates USING INDEX certificates_key_hash (key_hash=? AND transaction_id=?)") || badPlan(plan) != "" {
			t.Errorf("CertificatesOfTransaction: no search of certificates_key_hash by key and transaction:\n%s", plan)
		}
		// The keyCompromise sweep searches the same index by the key alone.
		for _, status := range []string{siblingsValid, siblingsHeld} {
			q := keySiblingsUpdate(`revoked_by = ?`, status)
			args := make([]any, strings.Count(q, "?"))
			for i := range args {
				args[i] = "a"
			}
			if plan := queryPlan(t, s, q, args...); !strings.HasPrefix(plan,
				"SEARCH certificates USING INDEX certificates_key_hash (key_hash=?)") || badPlan(plan) != "" {
				t.Errorf("keyCompromise sweep (%s): no search of certificates_key_hash by key:\n%s", status, plan)
			}
		}
		// Every issuance to a client looks its key up among the server's
		// own certificates: in their partial index, not every certificate
		// of a key enrolled over and over; then among the issuing CAs, by
		// their key's index.
		if plan := queryPlan(t, s, ownKeyQuery, []byte("hash")); !strings.Contains(plan,
			"SEARCH certificates USING INDEX certificates_own_keys (key_hash=?)") || !strings.Contains(plan,
			"SEARCH ca_generations USING INDEX ca_generations_key_hash (key_hash=?)") || badPlan(plan) != "" {
			t.Errorf("own-key check: no search of certificates_own_keys and ca_generations_key_hash by key:\n%s", plan)
		}
		// The dashboard's exact counts read ranges of not_after within a
		// day (today's, and each window's last) by the (status,
		// not_after) index: never the inventory. Only today's rows are
		// grouped by profile.
		dash := sqlstore.NewDashboard(t0, 1)
		var da sqlstore.Args
		dashPlan := queryPlan(t, s, dash.EdgeQuery(&da), da.Values...)
		if strings.Count(dashPlan, "SEARCH certificates USING INDEX certificates_status_expiry (status=? AND not_after>? AND not_after<?)") != 4 {
			t.Errorf("Dashboard: not four searches of certificates_status_expiry by status and not_after:\n%s", dashPlan)
		}
		for _, line := range strings.Split(dashPlan, "\n") {
			if strings.HasPrefix(line, "SCAN ") {
				t.Errorf("Dashboard: full scan: %s\nplan:\n%s", line, dashPlan)
			}
		}
		// CertificatesBySerial walks the issuers (a table of one row per
		// issuer, built by index searches) and sorts its matches, at most
		// one per issuer. Every read of certificates is an index search:
		// of the key per issuer, or with statistics a skip-scan of the
		// key's issuers (ANY(issuer_id)), which is the same searches.
		var a sqlstore.Args
		plan := queryPlan(t, s, sqlstore.CertsBySerialQuery("a", &a), a.Values...)
		for _, line := range strings.Split(plan, "\n") {
			if strings.HasPrefix(line, "SCAN ") && line != "SCAN issuers" && !strings.HasPrefix(line, "SCAN issuers ") && line != "SCAN CONSTANT ROW" {
				t.Errorf("CertificatesBySerial: full scan: %s\nplan:\n%s", line, plan)
			}
		}
		if !strings.Contains(plan, "sqlite_autoindex_certificates_1 (issuer_id=? AND serial_hex=?)") &&
			!strings.Contains(plan, "sqlite_autoindex_certificates_1 (ANY(issuer_id) AND serial_hex=?)") {
			t.Errorf("CertificatesBySerial: no search of the (issuer_id, serial_hex) key:\n%s", plan)
		}
	}
	t.Run("empty", func(t *testing.T) { run(t, s) })

	// Statistics change the planner's choices; the plans must stay good
	// after ANALYZE (which PRAGMA optimize may run) on a skewed inventory.
	t.Run("analyzed", func(t *testing.T) { run(t, openAnalyzed(t)) })
}

// requestFilters returns every combination of the RequestFilter fields,
// with each status.
func requestFilters() []store.RequestFilter {
	var out []store.RequestFilter
	for _, st := range []pki.RequestStatus{"", pki.RequestPending, pki.RequestIssued, pki.RequestRejected} {
		for _, p := range []string{"", "default", "vpn"} {
			out = append(out, store.RequestFilter{Status: st, Profile: p})
		}
	}
	return out
}

// analyzedInventory is the bytes of a database holding what the plan
// tests analyse: fill's 3000 certificates, fillRequests' 3000 requests and
// 3000 notifications (one in ten pending), after ANALYZE. Made once per
// test binary: building it is some 5 s of CPU under the race detector,
// and TestQueryPlans and TestNotificationQueryPlans each open a copy of
// it (openAnalyzed) instead of building their own.
var analyzedInventory = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "sqlite-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "scepter.db")
	b, err := migratedDB()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := fillAnalyzed(s, 3000); err != nil {
		return nil, fmt.Errorf("analyzed inventory: %w", err)
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil, fmt.Errorf("%s-wal left with %d bytes after Close", path, fi.Size())
	}
	return os.ReadFile(path)
})

// fillAnalyzed fills s as analyzedInventory describes, n of each.
func fillAnalyzed(s *Store, n int) error {
	ctx := context.Background()
	if err := insertCertificates(ctx, s.w, n); err != nil {
		return err
	}
	if err := insertRequests(ctx, s.w, n); err != nil {
		return err
	}
	var ns []store.Notification
	for i := range n {
		ns = append(ns, store.Notification{NotificationKey: store.NotificationKey{IssuerID: "issuer",
			SerialHex: fmt.Sprintf("%x", i+0x100000), Threshold: 30 * 24 * time.Hour, Channel: "smtp"},
			Status: store.NotificationPending, CreatedAt: t0, NextAttemptAt: t0})
	}
	if _, err := s.RecordNotifications(ctx, ns); err != nil {
		return err
	}
	if _, err := s.w.Exec(`UPDATE notifications SET status = 'sent' WHERE serial_hex NOT LIKE '%0'`); err != nil {
		return err
	}
	_, err := s.w.Exec(`ANALYZE`)
	return err
}

// openAnalyzed opens a copy of analyzedInventory, closed when the test
// ends.
func openAnalyzed(t testing.TB) *Store {
	t.Helper()
	b, err := analyzedInventory()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "scepter.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path)
	// The copy's readers plan with the statistics ANALYZE gathered: what
	// the "analyzed" plan tests are about.
	for _, table := range []string{"certificates", "enrollment_requests", "notifications"} {
		var rows int
		if err := s.r.QueryRow(`SELECT max(CAST(stat AS INTEGER)) FROM sqlite_stat1 WHERE tbl = ?`, table).Scan(&rows); err != nil || rows != 3000 {
			t.Fatalf("sqlite_stat1 of %s: %d rows, %v; want 3000", table, rows, err)
		}
	}
	return s
}

// insertRequests inserts n enrollment requests shaped like a real backlog:
// most decided long ago and kept for their retention, a few pending, most
// of one profile, some transaction IDs repeated after a rejection.
func insertRequests(ctx context.Context, db *sql.DB, n int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare(`INSERT INTO enrollment_requests (id, transaction_id, profile, protocol, status,
		subject_dn, csr, created_at, expires_at) VALUES (?, ?, ?, 'scep', ?, ?, x'30', ?, ?)`)
	if err != nil {
		return err
	}
	for i := range n {
		status, profile := "issued", "default"
		switch {
		case i%100 == 0:
			status = "pending"
		case i%7 == 0:
			status = "rejected"
		}
		if i%10 == 0 {
			profile = "vpn"
		}
		created := t0.Add(time.Duration(i) * time.Minute)
		if _, err := stmt.Exec(fmt.Sprintf("req-%d", i), fmt.Sprintf("tx-%d", i/2), profile, status,
			fmt.Sprintf("CN=device-%d", i), sqlstore.Micros(created), sqlstore.Micros(created.Add(30*24*time.Hour))); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// fill inserts n certificates in one transaction (insertCertificates).
func fill(t testing.TB, s *Store, n int) {
	t.Helper()
	if err := insertCertificates(context.Background(), s.w, n); err != nil {
		t.Fatal(err)
	}
}

// insertCertificates inserts n certificates in one transaction, shaped
// like a real inventory: one issuer, most of them valid and of one
// profile, NotAfter spread over two years.
func insertCertificates(ctx context.Context, db *sql.DB, n int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare(`INSERT INTO certificates (issuer_id, serial_hex, issuer_dn, subject_dn, sans,
		not_before, not_after, status, profile, protocol, source, transaction_id, key_type, created_at, der, renewed_from)
		VALUES ('issuer', ?, 'CN=CA', ?, '["a.example"]', ?, ?, ?, ?, 'scep', 'issued', ?, 'p256', ?, ?, ?)`)
	if err != nil {
		return err
	}
	der := make([]byte, 700)
	for i := range n {
		notAfter := t0.Add(time.Duration(i%730) * 24 * time.Hour)
		status, profile := "valid", "default"
		if i%50 == 0 {
			status = "revoked"
		}
		if i%10 == 0 {
			profile = "vpn"
		}
		sn := strconv.FormatInt(int64(i)+0x100000, 16)
		renewedFrom := "" // one in twenty renews the one before it
		if i%20 == 1 {
			renewedFrom = "issuer:" + strconv.FormatInt(int64(i-1)+0x100000, 16)
		}
		if _, err := stmt.Exec(sn, "CN=device-"+sn, sqlstore.Micros(notAfter.Add(-365*24*time.Hour)), sqlstore.Micros(notAfter),
			status, profile, "tx-"+sn, sqlstore.Micros(t0), der, renewedFrom); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// BenchmarkRecordIssuance is storetest's, shared with the PostgreSQL store,
// on SQLite: every durable commit fsync'd (synchronous=FULL), the writes of
// concurrent callers committed together.
func BenchmarkRecordIssuance(b *testing.B) {
	storetest.BenchmarkRecordIssuance(b, func(b *testing.B) store.Store {
		s := openTemp(b)
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// BenchmarkListCertificates pages through a large inventory. The size is
// SCEPTER_BENCH_ROWS (default 100000; the roadmap's target is 1000000).
func BenchmarkListCertificates(b *testing.B) {
	rows := pkitest.BenchRows(b, 100000)
	s := openTemp(b)
	defer s.Close()
	fill(b, s, rows)
	ctx := context.Background()
	cases := []struct {
		name string
		f    store.CertFilter
	}{
		{"newest", store.CertFilter{}},
		{"unexpired", store.CertFilter{NotAfterAfter: t0.Add(365 * 24 * time.Hour)}},
		{"revoked", store.CertFilter{Status: pki.StatusRevoked}},
		{"profile vpn valid", store.CertFilter{Profile: "vpn", Status: pki.StatusValid}},
		{"expiring 30d", store.CertFilter{NotAfterAfter: t0.Add(400 * 24 * time.Hour), NotAfterBefore: t0.Add(430 * 24 * time.Hour)}},
		{"expiring 30d vpn", store.CertFilter{Profile: "vpn", NotAfterAfter: t0.Add(400 * 24 * time.Hour), NotAfterBefore: t0.Add(430 * 24 * time.Hour)}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			// Each op is one page of 100, continuing from the last; the walk
			// restarts at the end so late pages are measured too.
			f := tc.f
			f.Limit = 100
			for b.Loop() {
				certs, next, err := s.ListCertificates(ctx, f)
				if err != nil {
					b.Fatal(err)
				}
				if len(certs) == 0 {
					b.Fatal("empty page")
				}
				f.Cursor = next
			}
		})
	}
}

// BenchmarkDashboard reads the dashboard's counts (the console's, the
// API's and /metrics') of a large inventory, SCEPTER_BENCH_ROWS
// (default 100000; the roadmap's target is 1000000), a day's expiries
// being a 730th of it: the exact split of today and each window's last day
// reads those days' certificates only.
func BenchmarkDashboard(b *testing.B) {
	rows := pkitest.BenchRows(b, 100000)
	s := openTemp(b)
	defer s.Close()
	fill(b, s, rows)
	ctx := context.Background()
	now := t0.Add(400*24*time.Hour + 13*time.Hour)
	for b.Loop() {
		if _, err := s.Dashboard(ctx, now, 30); err != nil {
			b.Fatal(err)
		}
	}
}
