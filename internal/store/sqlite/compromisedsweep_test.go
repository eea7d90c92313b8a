package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// sweepCase is a certificate of the store an older scepter left, and its
// status and reason once the upgrade swept the keys revoked as
// compromised.
type sweepCase struct {
	serial     string
	key        string // "A", "B" (revoked as compromised) or "C"
	status     pki.CertStatus
	reason     int // revoke_reason, 0 for none
	revokedAt  time.Time
	notAfter   time.Time
	wantStatus pki.CertStatus
	wantReason int
}

// sweepCases: key A revoked as compromised at t0 by admin with three
// valid certificates, one on hold and one expired before t0 left; key B
// with two; key C, never compromised, with two.
func sweepCases() []sweepCase {
	day, hold := t0.Add(24*time.Hour), t0.Add(-time.Hour)
	rev, val := pki.StatusRevoked, pki.StatusValid
	kc, ch := store.ReasonKeyCompromise, 6
	return []sweepCase{
		{"a0", "A", rev, kc, t0, day, rev, kc},
		{"a1", "A", val, 0, time.Time{}, day, rev, kc},
		{"a2", "A", val, 0, time.Time{}, day, rev, kc},
		{"a3", "A", val, 0, time.Time{}, day, rev, kc},
		{"a4", "A", rev, ch, hold, day, rev, kc},                // its hold becomes the revocation
		{"a5", "A", val, 0, time.Time{}, hold, val, 0},          // expired before the revocation
		{"b0", "B", rev, kc, t0.Add(time.Minute), day, rev, kc}, // a later revocation of another key
		{"b1", "B", val, 0, time.Time{}, day, rev, kc},
		{"b2", "B", val, 0, time.Time{}, day, rev, kc},
		{"c1", "C", val, 0, time.Time{}, day, val, 0},
		{"c2", "C", val, 0, time.Time{}, day, val, 0},
	}
}

// sweptCerts and sweptKeys are how many certificates of sweepCases the
// sweep revokes, and of how many keys.
const sweptCerts, sweptKeys = 6, 2

// writeSchema14Store writes at path a store as the 2026-12-02 build
// (schema version 14, no compromised_keys, no key_hash) left it, with
// sweepCases' certificates and an event for each issuance and
// revocation.
func writeSchema14Store(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, db, migrationsBefore(t, "0015"), dialect()); err != nil {
		t.Fatal(err)
	}
	ders := map[string][]byte{}
	for _, k := range []string{"A", "B", "C"} {
		ders[k], _ = testKeyCert(t)
	}
	for _, c := range sweepCases() {
		var revokedAt, reason any
		revokedBy := ""
		if c.status == pki.StatusRevoked {
			revokedAt, reason, revokedBy = c.revokedAt.UnixMicro(), c.reason, "admin"
		}
		if _, err := db.Exec(`INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after,
			status, revoked_at, revoke_reason, revoked_by, created_at, der) VALUES ('issuer', ?, 'CN=kc', 0, ?, ?, ?, ?, ?, 0, ?)`,
			c.serial, c.notAfter.UnixMicro(), string(c.status), revokedAt, reason, revokedBy, ders[c.key]); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO audit_events (time, type, actor, serial_hex, issuer_id, outcome)
			VALUES (0, 'certificate.issued', 'scep:192.0.2.1', ?, 'issuer', 'success')`, c.serial); err != nil {
			t.Fatal(err)
		}
		if c.status == pki.StatusRevoked {
			if _, err := db.Exec(`INSERT INTO audit_events (time, type, actor, serial_hex, issuer_id, outcome)
				VALUES (?, ?, 'admin', ?, 'issuer', 'success')`, c.revokedAt.UnixMicro(), pki.EventRevoked, c.serial); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// openSweep opens path as Open does, with sweeps of batch keys, swept
// called after each batch, and report as migrate.OnCompromisedSweep.
func openSweep(ctx context.Context, path string, batch int, swept func(), report func(certs, keys int)) (*Store, error) {
	tun := defaultTuning()
	tun.sweepBatch, tun.sweptBatch = batch, swept
	return open(ctx, path, tun, migrate.OnCompromisedSweep(report))
}

// checkSwept checks every certificate of sweepCases against what the
// sweep leaves, the audit events it wrote (one a certificate, no more)
// and that the trail verifies.
func checkSwept(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for _, c := range sweepCases() {
		got, err := s.Certificate(ctx, "issuer", c.serial)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != c.wantStatus || got.RevokeReason != c.wantReason {
			t.Errorf("certificate %s of key %s: %s reason %d, want %s reason %d", c.serial, c.key, got.Status, got.RevokeReason, c.wantStatus, c.wantReason)
		}
		if c.status == pki.StatusRevoked || c.wantStatus != pki.StatusRevoked {
			continue
		}
		// Revoked as its key's revocation would have: at its time, by its actor.
		at := t0
		if c.key == "B" {
			at = t0.Add(time.Minute)
		}
		if !got.RevokedAt.Equal(at) || got.RevokedBy != "admin" {
			t.Errorf("certificate %s of key %s: revoked at %s by %q, want at %s by admin", c.serial, c.key, got.RevokedAt, got.RevokedBy, at)
		}
	}
	var events, held int
	if err := s.w.QueryRow(`SELECT count(*), count(*) FILTER (WHERE detail LIKE ?) FROM audit_events
		WHERE type = ? AND actor = 'admin' AND detail LIKE ?`,
		"%"+store.DetailHoldMadePermanent+"%", pki.EventRevoked, "%"+sqlstore.NoteUpgradeSweep).Scan(&events, &held); err != nil {
		t.Fatal(err)
	}
	if events != sweptCerts || held != 1 {
		t.Errorf("%d events of the sweep (%d of a hold made permanent), want %d (1)", events, held, sweptCerts)
	}
	rep, err := audit.Verify(ctx, s)
	if err != nil || !rep.OK() {
		t.Errorf("audit verify: %+v, %v", rep, err)
	}
	var left int
	if err := s.w.QueryRow(`SELECT count(*) FROM compromised_keys_sweep`).Scan(&left); err != nil || left != 0 {
		t.Errorf("sweep rows left: %d, %v; want none", left, err)
	}
}

// TestUpgradeSweepsCompromisedKeys: a store of schema version 14, whose
// scepter revoked a certificate for keyCompromise and left the key's
// others valid, has them revoked by the Open that upgrades it, as that
// revocation would have now, with their events, reported once (r132 D1).
func TestUpgradeSweepsCompromisedKeys(t *testing.T) {
	ctx := context.Background()
	for _, batch := range []int{1, 2, sqlstore.CompromisedSweepBatch} {
		path := filepath.Join(t.TempDir(), "scepter.db")
		writeSchema14Store(t, path)
		var certs, keys, reports int
		report := func(c, k int) { certs, keys, reports = c, k, reports+1 }
		s, err := openSweep(ctx, path, batch, nil, report)
		if err != nil {
			t.Fatal(err)
		}
		checkSwept(t, s)
		if reports != 1 || certs != sweptCerts || keys != sweptKeys {
			t.Errorf("batch %d: %d reports, the last of %d certificates of %d keys; want 1, of %d of %d", batch, reports, certs, keys, sweptCerts, sweptKeys)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// Once: the next Open sweeps nothing and reports nothing.
		s, err = openSweep(ctx, path, batch, nil, report)
		if err != nil {
			t.Fatal(err)
		}
		checkSwept(t, s)
		if reports != 1 {
			t.Errorf("batch %d: the second Open reported a sweep again", batch)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUpgradeSweepResumes: an upgrade's sweep cut short after its first
// batch (a kill, here a cancelled context) goes on at the next Open from
// there: every certificate revoked, none twice, one event each.
func TestUpgradeSweepResumes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	writeSchema14Store(t, path)
	cut, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := 0
	_, err := openSweep(cut, path, 1, func() { batches++; cancel() }, nil)
	if !errors.Is(err, context.Canceled) || batches != 1 {
		t.Fatalf("Open cut short after %d batches: %v, want after 1 and context.Canceled", batches, err)
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	// One key swept, A's 3 or B's 2 of the 8 valid, in key hash order.
	var valid, left int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM certificates WHERE status = 'valid'),
		(SELECT count(*) FROM compromised_keys_sweep)`).Scan(&valid, &left); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if (valid != 5 && valid != 6) || left != 1 {
		t.Errorf("after the first batch: %d valid certificates, %d sweep rows; want 5 or 6, and 1", valid, left)
	}

	var certs, keys int
	s, err := openSweep(ctx, path, 1, nil, func(c, k int) { certs, keys = c, k })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSwept(t, s)
	if keys != 1 || certs == 0 || certs == sweptCerts {
		t.Errorf("the resumed sweep reported %d certificates of %d keys, want the rest of %d, of the other key", certs, keys, sweptCerts)
	}
}
