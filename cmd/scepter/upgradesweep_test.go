package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// A store of the 2026-12-02 build (schema version 14) that revoked a
// certificate for keyCompromise and left another of the key valid: the
// 'scepter serve' that upgrades it revokes that one too, says so once in
// its log (a WARN with the counts), and the trail still verifies (r132
// D1).
func TestServeUpgradeRevokesCompromisedKeysOthers(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "scepter.db")+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.UpTo(ctx, db, sqlite.Migrations(), migrate.Dialect{Name: "sqlite"}, 14); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Dates around the clock the test runs at: certificates in use.
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kc"}, NotBefore: now, NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		serial, status, revokedBy string
		revokedAt, reason         any
	}{
		{"a01", "revoked", "admin", now.UnixMicro(), store.ReasonKeyCompromise},
		{"a02", "valid", "", nil, nil},
	} {
		if _, err := db.Exec(`INSERT INTO certificates (issuer_id, serial_hex, subject_dn, not_before, not_after,
			status, revoked_at, revoke_reason, revoked_by, created_at, der) VALUES ('old-issuer', ?, 'CN=kc', ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.serial, now.UnixMicro(), now.Add(time.Hour).UnixMicro(), c.status, c.revokedAt, c.reason, c.revokedBy, now.UnixMicro(), der); err != nil {
			t.Fatal(err)
		}
		// Each with its events, as that build recorded them: the
		// trail is chained by the first open.
		if _, err := db.Exec(`INSERT INTO audit_events (time, type, actor, serial_hex, issuer_id, outcome)
			VALUES (?, 'certificate.issued', 'scep:192.0.2.1', ?, 'old-issuer', 'success')`, now.UnixMicro(), c.serial); err != nil {
			t.Fatal(err)
		}
		if c.status == "revoked" {
			if _, err := db.Exec(`INSERT INTO audit_events (time, type, actor, serial_hex, issuer_id, outcome)
				VALUES (?, ?, 'admin', ?, 'old-issuer', 'success')`, now.UnixMicro(), pki.EventRevoked, c.serial); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	serveArgs := []string{"--data-dir", dataDir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test"}
	_, errOut, err := serveOnceWith(t, nil, serveArgs...)
	if err != nil {
		t.Fatalf("serve on the schema-14 store: %v\n%s", err, errOut)
	}
	if want := `level=WARN msg="store upgrade revoked the other certificates of keys an older scepter revoked as compromised`; strings.Count(errOut, want) != 1 {
		t.Errorf("serve's log does not say once %s:\n%s", want, errOut)
	} else if !strings.Contains(errOut, "certificates=1 keys=1") {
		t.Errorf("serve's log does not give the counts certificates=1 keys=1:\n%s", errOut)
	}

	s, err := sqlite.Open(ctx, filepath.Join(dataDir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Certificate(ctx, "old-issuer", "a02")
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != pki.StatusRevoked || c.RevokeReason != store.ReasonKeyCompromise || c.RevokedBy != "admin" {
		t.Errorf("the key's other certificate after the upgrade: %s reason %d by %q, want revoked for keyCompromise by admin", c.Status, c.RevokeReason, c.RevokedBy)
	}
	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"audit", "verify", "--data-dir", dataDir}); err != nil || !strings.Contains(out.String(), "intact") {
		t.Errorf("audit verify after the upgrade: %v\n%s", err, out)
	}

	// Once: the next start sweeps nothing and says nothing of it.
	_, errOut, err = serveOnceWith(t, nil, serveArgs...)
	if err != nil {
		t.Fatalf("serve again: %v\n%s", err, errOut)
	}
	if strings.Contains(errOut, "store upgrade revoked") {
		t.Errorf("the second start reported a sweep again:\n%s", errOut)
	}
}
