package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/migrate"
)

// TestDailyCountsRecounted: the days a binary of schema version 25
// counted (every revocation event, the server's own certificates by the
// actor) are counted again by the upgrade as the new triggers count: a
// certificate's first revocation only, on its day, and none of the
// server's own certificates, whoever the actor.
func TestDailyCountsRecounted(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", dsn(filepath.Join(t.TempDir(), "scepter.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0026"), dialect()); err != nil {
		t.Fatal(err)
	}
	for i, e := range dailyCountsEvents {
		if _, err := db.Exec(`INSERT INTO audit_events (time, type, actor, profile, serial_hex, issuer_id)
			VALUES (?, ?, ?, ?, ?, 'issuer')`, e.day*dayMicros+int64(i), e.typ, e.actor, e.profile, e.serial); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0027"), dialect()); err != nil {
		t.Fatal(err)
	}
	if got, want := readDailyCounts(t, db), wantDailyCounts; got != want {
		t.Errorf("daily_counts after the upgrade: %s, want %s", got, want)
	}
}

const dayMicros = 86400000000

// dailyCountsEvents is an old binary's trail over two days (100 and 101),
// and wantDailyCounts the days as counted from it, day:kind:n.
var dailyCountsEvents = []struct {
	day                         int64
	typ, actor, profile, serial string
}{
	{100, pki.EventIssued, "scep:192.0.2.1", "default", "c0"},
	{100, pki.EventIssued, "scep:192.0.2.1", "default", "c1"},
	{100, pki.EventIssued, "system:node-a", "scep-ra", "ra"},
	{100, pki.EventIssued, "system", "tls-server", "tls"},
	{100, pki.EventRevoked, "cli:root", "default", "c0"},          // held
	{100, pki.EventRevoked, "cli:root", "default", "c0"},          // made permanent
	{100, pki.EventRevoked, "cli:root", "default", "c1"},          // held
	{100, pki.EventEnrollFailed, "scep:192.0.2.1", "default", ""}, // refused
	{100, pki.EventEnrollFailed, "system", "tls-server", ""},
	{101, pki.EventUnheld, "cli:root", "default", "c1"},
	{101, pki.EventRevoked, "cli:root", "default", "c1"}, // held again
	{101, pki.EventRevoked, "cli:root", "default", "c0"}, // raised to keyCompromise
	{101, pki.EventRevoked, "api:ops", "scep-ra", "ra"},
	{101, pki.EventRenewed, "est:192.0.2.1", "default", "c2"},
	{101, pki.EventRevoked, "system:renewal", "default", "c3"}, // superseded by c2
}

const wantDailyCounts = "100:issued:2 100:refused:1 100:revoked:2 101:renewed:1 101:revoked:1"

func readDailyCounts(t *testing.T, db *sql.DB) string {
	t.Helper()
	var got string
	if err := db.QueryRow(`SELECT group_concat(day || ':' || kind || ':' || n, ' ')
		FROM (SELECT day, kind, n FROM daily_counts ORDER BY day, kind)`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	return got
}
