package api_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

// BenchmarkList1M: with 1,000,000 certificate rows (SCEPTER_BENCH_ROWS
// changes the count), the filtered, paginated list API and the dashboard
// answer each query shape; p50 and p99 over the iterations are reported
// per shape (the target is p99 under 50 ms). Through the real handler and
// store: HTTP, authentication, the query, JSON.
func BenchmarkList1M(b *testing.B) {
	rows := pkitest.BenchRows(b, 1_000_000)
	e := newEnv(b)
	start := time.Now()
	fill(b, filepath.Join(e.Dir, "scepter.db"), e.Issuer().ID, rows, e.Clock.Now())
	b.Logf("%d rows generated in %s", rows, time.Since(start).Round(time.Second))
	// fill writes past the store, so the search index, which a server fills
	// in the background as it records certificates, has none of them yet,
	// and the first search would index them all on its clock (36 s for a
	// million rows). One untimed search catches it up, as a server that
	// recorded them would be.
	start = time.Now()
	if r := e.do(b, pki.RoleAuditor, "GET", "/api/v1/certificates?q=device&limit=1", nil); r.status != http.StatusOK {
		b.Fatalf("catching up the search index: %d %s", r.status, r.body)
	}
	b.Logf("search index caught up in %s", time.Since(start).Round(time.Millisecond))
	shapes := []struct{ name, path string }{
		{"newest", "/api/v1/certificates?limit=50"},
		{"status=revoked", "/api/v1/certificates?status=revoked&limit=50"},
		{"profile=wifi", "/api/v1/certificates?profile=wifi&limit=50"},
		{"protocol=est", "/api/v1/certificates?protocol=est&limit=50"},
		{"expiring_within=30d", "/api/v1/certificates?expiring_within=30d&limit=50"},
		{"expiring_within=30d,profile=vpn", "/api/v1/certificates?expiring_within=30d&profile=vpn&limit=50"},
		{"search one device", "/api/v1/certificates?q=device-0777777&limit=50"},
		{"search common", "/api/v1/certificates?q=acme&limit=50"},
		{"issued between", "/api/v1/certificates?issued_after=" + e.Clock.Now().Add(-100*24*time.Hour).Format(time.RFC3339) +
			"&issued_before=" + e.Clock.Now().Add(-99*24*time.Hour).Format(time.RFC3339) + "&limit=50"},
		{"page 20 of newest", ""},
		{"dashboard", "/api/v1/dashboard?days=30"},
	}
	// A cursor 20 pages in, for the deep-page shape.
	cursor := ""
	for range 20 {
		var page struct {
			NextCursor string `json:"next_cursor"`
		}
		r := e.do(b, pki.RoleAuditor, "GET", "/api/v1/certificates?limit=50&cursor="+cursor, nil)
		r.json(b, &page)
		cursor = page.NextCursor
	}
	shapes[9].path = "/api/v1/certificates?limit=50&cursor=" + cursor
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				r := e.do(b, pki.RoleAuditor, "GET", s.path, nil)
				lat = append(lat, time.Since(t0))
				if r.status != http.StatusOK {
					b.Fatalf("%s: %d %s", s.path, r.status, r.body)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// fill writes n certificate rows straight into the database, in batches,
// as a year of issuance would leave them: four profiles, three protocols,
// 2% revoked, expiries spread over the next year and the past month.
func fill(b *testing.B, path, issuerID string, n int, now time.Time) {
	b.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	profiles := []string{"default", "wifi", "vpn", "iot"}
	protocols := []string{"scep", "scep", "est"}
	serial := make([]byte, 16)
	const batch = 20000
	for done := 0; done < n; {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			b.Fatal(err)
		}
		stmt, err := tx.Prepare(`INSERT INTO certificates (issuer_id, serial_hex, issuer_dn, subject_dn, sans, not_before, not_after,
			status, revoked_at, revoke_reason, profile, protocol, source, key_type, created_at, der)
			VALUES (?, ?, 'CN=Bench CA', ?, ?, ?, ?, ?, ?, ?, ?, ?, 'issued', 'p256', ?, x'00')`)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < batch && done < n; i, done = i+1, done+1 {
			rand.Read(serial)
			serial[0] |= 0x40
			created := now.Add(-time.Duration(n-done) * 30 * time.Second) // a year of issuance, newest last
			notAfter := created.Add(365 * 24 * time.Hour).Add(-30 * 24 * time.Hour)
			status, revAt, reason := "valid", any(nil), any(nil)
			if done%50 == 0 {
				status, revAt, reason = "revoked", created.Add(time.Hour).UnixMicro(), 1
			}
			subject := fmt.Sprintf("CN=device-%07d,O=Acme", done)
			sans := fmt.Sprintf(`["dns:device-%07d.acme.example"]`, done)
			if _, err := stmt.Exec(issuerID, hex.EncodeToString(serial), subject, sans, created.UnixMicro(), notAfter.UnixMicro(),
				status, revAt, reason, profiles[done%4], protocols[done%3], created.UnixMicro()); err != nil {
				b.Fatal(err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
