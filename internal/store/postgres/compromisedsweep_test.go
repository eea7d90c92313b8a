package postgres

import (
	"context"
	"errors"
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

// writeOldCertificates writes into s's database sweepCases' certificates
// as a scepter before schema version 20 left them (no key_hash, keys
// not recorded as compromised), and the rows migrations 0020, 0021 and
// 0032 leave for such a database.
func writeOldCertificates(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
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
		if _, err := s.pool.Exec(ctx, `INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after,
			status, revoked_at, revoke_reason, revoked_by, created_at, der) VALUES ('issuer', $1, 'CN=kc', 0, $2, $3, $4, $5, $6, 0, $7)`,
			c.serial, c.notAfter.UnixMicro(), string(c.status), revokedAt, reason, revokedBy, ders[c.key]); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO compromised_keys_backfill (pending) VALUES (1)`,
		`INSERT INTO certificates_key_hash_backfill (done_upto, upto) SELECT 0, MAX(id) FROM certificates`,
		`INSERT INTO compromised_keys_sweep (done_after) VALUES ('\x'::bytea)`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
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
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE detail LIKE $1) FROM audit_events
		WHERE type = $2 AND actor = 'admin' AND detail LIKE $3`,
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
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM compromised_keys_sweep`).Scan(&left); err != nil || left != 0 {
		t.Errorf("sweep rows left: %d, %v; want none", left, err)
	}
}

// TestUpgradeSweepsCompromisedKeys: a database whose older scepter
// revoked a certificate for keyCompromise and left the key's others
// valid has them revoked by the open that upgrades it, as that
// revocation would have now, with their events, reported once (r132 D1).
func TestUpgradeSweepsCompromisedKeys(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	writeOldCertificates(t, s)
	s.Close()
	var certs, keys, reports int
	report := migrate.OnCompromisedSweep(func(c, k int) { certs, keys, reports = c, k, reports+1 })
	s, err := Open(ctx, dbURL, report)
	if err != nil {
		t.Fatal(err)
	}
	checkSwept(t, s)
	if reports != 1 || certs != sweptCerts || keys != sweptKeys {
		t.Errorf("%d reports, the last of %d certificates of %d keys; want 1, of %d of %d", reports, certs, keys, sweptCerts, sweptKeys)
	}
	s.Close()
	// Once: the next open sweeps nothing and reports nothing.
	s, err = Open(ctx, dbURL, report)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSwept(t, s)
	if reports != 1 {
		t.Errorf("the second open reported a sweep again")
	}
}

// TestUpgradeSweepResumes: an upgrade's sweep cut short after its first
// batch (a kill, here a cancelled context) goes on at the next open from
// there: every certificate revoked, none twice, one event each.
func TestUpgradeSweepResumes(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	writeOldCertificates(t, s)
	if err := s.backfillCompromisedKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.backfillKeyHashes(ctx); err != nil {
		t.Fatal(err)
	}
	cut, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := 0
	if _, _, err := s.sweepCompromisedKeys(cut, 1, func() { batches++; cancel() }); !errors.Is(err, context.Canceled) || batches != 1 {
		t.Fatalf("sweep cut short after %d batches: %v, want after 1 and context.Canceled", batches, err)
	}
	// One key swept, A's 3 or B's 2 of the 8 valid, in key hash order.
	var valid, left int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM certificates WHERE status = 'valid'),
		(SELECT count(*) FROM compromised_keys_sweep)`).Scan(&valid, &left); err != nil {
		t.Fatal(err)
	}
	if (valid != 5 && valid != 6) || left != 1 {
		t.Errorf("after the first batch: %d valid certificates, %d sweep rows; want 5 or 6, and 1", valid, left)
	}
	s.Close()

	var certs, keys int
	s, err := Open(ctx, dbURL, migrate.OnCompromisedSweep(func(c, k int) { certs, keys = c, k }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSwept(t, s)
	if keys != 1 || certs == 0 || certs == sweptCerts {
		t.Errorf("the resumed sweep reported %d certificates of %d keys, want the rest of %d, of the other key", certs, keys, sweptCerts)
	}
}
