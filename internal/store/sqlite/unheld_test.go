package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/migrate"
)

// TestUnheldAtBackfill: holds lifted on a binary of schema version 23,
// which recorded the unhold only in its certificate.unheld audit event,
// read back after the upgrade with the newest event's time as the
// certificate's unhold (so its OCSP answer is not dated before it), NULL
// for a certificate held again since, and the issuer's newest event as its
// last unhold (so its CRL is not either), held again or not. Events of
// another type or issuer do not count, and the audit rows are not changed.
func TestUnheldAtBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0024"), dialect()); err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) int64 { return t0.Add(d).UnixMicro() }
	// As the old binary left them: the certificates' status now, each
	// issuer's revocation counter, and the events of every change.
	for _, c := range []struct {
		issuer, serial string
		revokedAt      any // nil unless revoked now
	}{
		{"issuer", "a1", nil},                 // held, unheld, held, unheld
		{"issuer", "a2", at(5 * time.Second)}, // held, unheld, held again
		{"issuer", "a3", nil},                 // never held
		{"other", "a1", nil},                  // the same serial under another issuer
	} {
		status, reason := "valid", any(nil)
		if c.revokedAt != nil {
			status, reason = "revoked", 6
		}
		if _, err := db.Exec(`INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after,
			status, revoked_at, revoke_reason, created_at, der) VALUES (?, ?, 'CN=old', 0, ?, ?, ?, ?, 0, x'30')`,
			c.issuer, c.serial, at(24*time.Hour), status, c.revokedAt, reason); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []struct {
		time           int64
		typ            string
		issuer, serial string
	}{
		{at(time.Second), pki.EventRevoked, "issuer", "a1"},
		{at(2*time.Second + 123*time.Microsecond), pki.EventUnheld, "issuer", "a1"},
		{at(3 * time.Second), pki.EventRevoked, "issuer", "a2"},
		{at(3*time.Second + 1*time.Microsecond), pki.EventRevoked, "issuer", "a1"},
		{at(4*time.Second + 7*time.Microsecond), pki.EventUnheld, "issuer", "a1"},
		{at(4*time.Second + 9*time.Microsecond), pki.EventUnheld, "issuer", "a2"},
		{at(5 * time.Second), pki.EventRevoked, "issuer", "a2"},
		{at(6 * time.Second), pki.EventRevoked, "other", "a1"},
		{at(7*time.Second + 5*time.Microsecond), pki.EventUnheld, "other", "a1"},
		{at(8 * time.Second), pki.EventRevoked, "issuer", "a9"}, // not an unhold
	} {
		if _, err := db.Exec(`INSERT INTO audit_events (time, type, serial_hex, issuer_id) VALUES (?, ?, ?, ?)`,
			e.time, e.typ, e.serial, e.issuer); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO revocation_state (issuer_id, seq) VALUES ('issuer', 6), ('other', 2), ('quiet', 1)`); err != nil {
		t.Fatal(err)
	}
	const auditRows = `SELECT group_concat(id || ':' || time || ':' || type || ':' || issuer_id || ':' || serial_hex, ',') FROM audit_events`
	var auditBefore string
	if err := db.QueryRow(auditRows).Scan(&auditBefore); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0025"), dialect()); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		issuer, serial string
		want           sql.NullInt64
	}{
		{"issuer", "a1", sql.NullInt64{Int64: at(4*time.Second + 7*time.Microsecond), Valid: true}},
		{"issuer", "a2", sql.NullInt64{}},
		{"issuer", "a3", sql.NullInt64{}},
		{"other", "a1", sql.NullInt64{Int64: at(7*time.Second + 5*time.Microsecond), Valid: true}},
	} {
		var got sql.NullInt64
		if err := db.QueryRow(`SELECT unheld_at FROM certificates WHERE issuer_id = ? AND serial_hex = ?`,
			c.issuer, c.serial).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("certificate %s/%s: unheld_at %v, want %v", c.issuer, c.serial, got, c.want)
		}
	}
	for issuer, want := range map[string]int64{
		"issuer": at(4*time.Second + 9*time.Microsecond), // a2's, held again since
		"other":  at(7*time.Second + 5*time.Microsecond),
		"quiet":  0,
	} {
		var got int64
		if err := db.QueryRow(`SELECT unheld_at FROM revocation_state WHERE issuer_id = ?`, issuer).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("issuer %s: unheld_at %d, want %d", issuer, got, want)
		}
	}
	var auditAfter string
	if err := db.QueryRow(auditRows).Scan(&auditAfter); err != nil {
		t.Fatal(err)
	}
	if auditAfter != auditBefore {
		t.Errorf("audit rows changed by the migration:\n%s\nwant\n%s", auditAfter, auditBefore)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The store reads them as the responder and the CRL publisher do.
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Certificate(ctx, "issuer", "a1")
	if err != nil {
		t.Fatal(err)
	}
	if !c.UnheldAt.Equal(t0.Add(4*time.Second + 7*time.Microsecond)) {
		t.Errorf("Certificate issuer/a1 after Open: unheld at %v, want %v", c.UnheldAt, t0.Add(4*time.Second+7*time.Microsecond))
	}
	last, err := s.LastUnhold(ctx, "issuer")
	if err != nil || !last.Equal(t0.Add(4*time.Second+9*time.Microsecond)) {
		t.Errorf("LastUnhold issuer after Open: %v, %v; want %v", last, err, t0.Add(4*time.Second+9*time.Microsecond))
	}
}
