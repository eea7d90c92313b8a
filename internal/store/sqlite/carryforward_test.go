package sqlite

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// A restored copy gets the replaced database's newer passwords, roles,
// profile bindings and lockouts; an EST user's binding goes with its
// password (today's password with the backup's wider binding would be a
// credential that never existed); accounts unchanged since the backup are left alone, and the
// carry forward is the trail's newest event.
func TestCarryForwardTakesNewerPasswordsAndLockouts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
	ev := pki.AuditEvent{Time: t0, Type: "test", Actor: "test", Outcome: "success"}
	s := openCopyAt(t, kept)
	for _, name := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, pki.User{Name: name, Role: pki.Role("admin"), PasswordHash: "old", CreatedAt: t0}, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"device", "sensor", "printer"} {
		if err := s.CreateESTUser(ctx, pki.ESTUser{Name: name, PasswordHash: "old", CreatedAt: t0}, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := Backup(ctx, kept, restored); err != nil {
		t.Fatal(err)
	}
	lockedUntil := t0.Add(time.Hour)
	if _, err := s.w.ExecContext(ctx, `UPDATE users SET password_hash = 'new', role = 'auditor', failed_logins = 5, locked_until = ? WHERE name = 'alice'`, lockedUntil.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	// device: removed and added again, bound to vpn, with a new password;
	// sensor: only its binding narrowed.
	for _, q := range []string{
		`UPDATE est_users SET password_hash = 'new', profile = 'vpn', created_at = 7, created_by = 'cli:root' WHERE name = 'device'`,
		`UPDATE est_users SET profile = 'lab' WHERE name = 'sensor'`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := FoldWAL(ctx, kept); err != nil {
		t.Fatal(err)
	}

	c, err := CarryForward(ctx, restored, kept, nil, t0, "cli:test")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Carried{UsersUpdated: 1, ESTPasswords: 1, ESTProfiles: 2}); !reflect.DeepEqual(c, want) {
		t.Errorf("carried %+v, want %+v", c, want)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(restored + suffix); err == nil {
			t.Errorf("%s is left beside the restored copy", restored+suffix)
		}
	}
	r := openAt(t, restored)
	defer r.Close()
	if u, err := r.User(ctx, "alice"); err != nil || u.PasswordHash != "new" || u.Role != "auditor" || u.FailedLogins != 5 || !u.LockedUntil.Equal(lockedUntil) {
		t.Errorf("alice in the restored copy: %+v, %v", u, err)
	}
	if u, err := r.User(ctx, "bob"); err != nil || u.PasswordHash != "old" {
		t.Errorf("bob in the restored copy: %+v, %v", u, err)
	}
	for _, want := range []pki.ESTUser{
		{Name: "device", PasswordHash: "new", Profile: "vpn", CreatedAt: time.UnixMicro(7).UTC(), CreatedBy: "cli:root"},
		{Name: "sensor", PasswordHash: "old", Profile: "lab", CreatedAt: t0},
		{Name: "printer", PasswordHash: "old", CreatedAt: t0},
	} {
		u, err := r.ESTUser(ctx, want.Name)
		if err != nil || u.PasswordHash != want.PasswordHash || u.Profile != want.Profile || !u.CreatedAt.Equal(want.CreatedAt) || u.CreatedBy != want.CreatedBy {
			t.Errorf("EST user %s in the restored copy: %+v, %v; want %+v", want.Name, u, err, want)
		}
	}
	head, err := r.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := r.AuditChain(ctx, head.LastID-1, 1)
	if err != nil || len(events) != 1 || events[0].Type != EventRestoreCarriedForward || events[0].Actor != "cli:test" {
		t.Errorf("the restored trail's newest event: %+v, %v", events, err)
	}
}

// A kept database whose log could not be folded into it is not read (the
// file alone lacks the log's commits), and the restored copy is left as
// it was.
func TestCarryForwardRefusesAKeptCopyWithALog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
	openCopyAt(t, kept).Close()
	if err := Backup(ctx, kept, restored); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kept+"-wal", []byte("frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(restored)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CarryForward(ctx, restored, kept, nil, t0, "cli:test"); !errors.Is(err, ErrKeptUnreadable) {
		t.Errorf("carry forward from a kept copy with a log: %v, want ErrKeptUnreadable", err)
	}
	if after, _ := os.ReadFile(restored); !bytes.Equal(before, after) {
		t.Error("the restored copy was changed")
	}
}

// A restored copy at an older schema than this binary's (a backup taken
// before an upgrade, restored to undo it) is not migrated: the older
// binary would refuse it. CarryForward refuses it, naming both versions,
// and leaves the file as it was, with no log or index beside it.
func TestCarryForwardLeavesAnOlderSchemaAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
	openCopyAt(t, kept).Close()
	ms, err := migrate.Load(Migrations())
	if err != nil {
		t.Fatal(err)
	}
	have, want := ms[len(ms)-2].Version, ms[len(ms)-1].Version
	db, err := sql.Open("sqlite", "file:"+restored+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.UpTo(ctx, db, Migrations(), dialect(), have); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, err := os.ReadFile(restored)
	if err != nil {
		t.Fatal(err)
	}

	_, err = CarryForward(ctx, restored, kept, nil, t0, "cli:test")
	var old *migrate.TooOldError
	if !errors.As(err, &old) || old.Have != have || old.Want != want {
		t.Fatalf("carry forward into a copy at schema %d: %v, want a TooOldError %d < %d", have, err, have, want)
	}
	if after, _ := os.ReadFile(restored); !bytes.Equal(before, after) {
		t.Error("the restored copy was changed")
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(restored + suffix); err == nil {
			t.Errorf("%s is left beside the restored copy", restored+suffix)
		}
	}
	facts, err := Inspect(ctx, restored)
	if err != nil || facts.SchemaVersion != have {
		t.Errorf("the restored copy after the carry forward: schema %d, %v; want %d", facts.SchemaVersion, err, have)
	}
}

// What was made after the backup (an API token, an EST user, a console
// user) is not carried into the restored database, which is no way to
// grant access, but named, so that it can be made again; a token revoked
// or expired since is not named.
func TestCarryForwardNamesWhatWasMadeAfterTheBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
	ev := pki.AuditEvent{Time: t0, Type: "test", Actor: "test", Outcome: "success"}
	s := openCopyAt(t, kept)
	if err := s.CreateUser(ctx, pki.User{Name: "alice", Role: pki.Role("admin"), PasswordHash: "h", CreatedAt: t0}, ev); err != nil {
		t.Fatal(err)
	}
	if err := Backup(ctx, kept, restored); err != nil {
		t.Fatal(err)
	}
	tokens := []pki.APIToken{
		{ID: "tok-live", Name: "ci-deploy", Role: pki.Role("operator"), Hash: []byte("1"), CreatedAt: t0},
		{ID: "tok-revoked", Name: "old-one", Role: pki.Role("operator"), Hash: []byte("2"), CreatedAt: t0, RevokedAt: t0.Add(time.Minute)},
		{ID: "tok-expired", Name: "short", Role: pki.Role("operator"), Hash: []byte("3"), CreatedAt: t0, ExpiresAt: t0.Add(-time.Minute)},
	}
	for _, tok := range tokens {
		if err := s.CreateToken(ctx, tok, ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = 'tok-revoked'`, t0.Add(time.Minute).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, pki.User{Name: "bob", Role: pki.Role("auditor"), PasswordHash: "h", CreatedAt: t0}, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateESTUser(ctx, pki.ESTUser{Name: "fleet", PasswordHash: "h", CreatedAt: t0}, ev); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := FoldWAL(ctx, kept); err != nil {
		t.Fatal(err)
	}
	c, err := CarryForward(ctx, restored, kept, nil, t0, "cli:test")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.TokensLost, []string{"ci-deploy"}) || !reflect.DeepEqual(c.UsersLost, []string{"bob"}) || !reflect.DeepEqual(c.ESTUsersLost, []string{"fleet"}) || !c.Any() {
		t.Errorf("carried %+v, want ci-deploy, bob and fleet named as lost", c)
	}
}

// testRoot makes a self-signed root CA certificate and its key.
func testRoot(t *testing.T, cn string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// rootCRLRow is root CRL number n, signed by key as issuer (listing
// serial when it is not 0), stored as number stored under issuerID.
func rootCRLRow(t *testing.T, issuerID string, issuer *x509.Certificate, key crypto.Signer, n, stored, serial int64) store.CRL {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(n), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour)}
	if serial != 0 {
		tmpl.RevokedCertificateEntries = []x509.RevocationListEntry{{SerialNumber: big.NewInt(serial), RevocationTime: t0, ReasonCode: 2}}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return store.CRL{IssuerID: issuerID, Number: stored, ThisUpdate: t0, NextUpdate: t0.Add(time.Hour), Entries: len(tmpl.RevokedCertificateEntries),
		DER: der, CreatedAt: t0}
}

// The root's CRLs signed after the backup (by hand: no node signs the
// next one above its mark) are carried into the restored copy, each only
// once its signature verifies with the root and its number is the one it
// is stored under: a damaged replaced database brings no CRL the root
// never signed. Issuing CAs' CRLs stay as the backup had them (a node
// numbers its next one above its mark), and without the root nothing is
// carried.
func TestCarryForwardTakesTheNewerRootCRLs(t *testing.T) {
	ctx := context.Background()
	root, rootKey := testRoot(t, "root")
	impostor, impostorKey := testRoot(t, "root") // same name, another key
	rootID, issuingID := rootIssuerID(root), "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	issuingCRL := func(n int64) store.CRL {
		return store.CRL{IssuerID: issuingID, Number: n, ThisUpdate: t0, NextUpdate: t0.Add(time.Hour), DER: []byte{0x30, byte(n)}, CreatedAt: t0}
	}
	for _, tt := range []struct {
		name        string
		root        *x509.Certificate
		wantCarried []int64
		wantRefused []int64
		wantNewest  int64 // the restored copy's newest root CRL
		wantListed  bool  // the newest lists the issuing CA revoked after the backup
	}{
		{"with the root", root, []int64{2, 3}, []int64{4, 5}, 3, true},
		{"without the root", nil, nil, nil, 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			kept, restored := filepath.Join(dir, "kept.db"), filepath.Join(dir, "restored.db")
			s := openCopyAt(t, kept)
			put := func(c store.CRL) {
				t.Helper()
				if err := s.PutCRL(ctx, c, 10); err != nil {
					t.Fatal(err)
				}
			}
			put(rootCRLRow(t, rootID, root, rootKey, 1, 1, 0))
			put(issuingCRL(1))
			put(issuingCRL(2))
			if err := Backup(ctx, kept, restored); err != nil {
				t.Fatal(err)
			}
			put(rootCRLRow(t, rootID, root, rootKey, 2, 2, 0))
			put(rootCRLRow(t, rootID, root, rootKey, 3, 3, 77)) // an issuing CA revoked
			put(rootCRLRow(t, rootID, impostor, impostorKey, 4, 4, 0))
			put(rootCRLRow(t, rootID, root, rootKey, 3, 5, 77)) // CRL 3 stored as 5
			put(issuingCRL(3))
			s.Close()
			if err := FoldWAL(ctx, kept); err != nil {
				t.Fatal(err)
			}

			c, err := CarryForward(ctx, restored, kept, tt.root, t0, "cli:test")
			if err != nil {
				t.Fatal(err)
			}
			var refused []int64
			for _, r := range c.RootCRLsRefused {
				refused = append(refused, r.Number)
				if r.Why == "" {
					t.Errorf("root CRL %d refused without a reason", r.Number)
				}
			}
			if !slices.Equal(c.RootCRLs, tt.wantCarried) || !slices.Equal(refused, tt.wantRefused) {
				t.Errorf("carried root CRLs %v, refused %+v; want %v carried, %v refused", c.RootCRLs, c.RootCRLsRefused, tt.wantCarried, tt.wantRefused)
			}
			wantNewestCarried := int64(0)
			if len(tt.wantCarried) > 0 {
				wantNewestCarried = slices.Max(tt.wantCarried)
			}
			if c.NewestRootCRL() != wantNewestCarried {
				t.Errorf("the newest root CRL carried: %d, want %d", c.NewestRootCRL(), wantNewestCarried)
			}
			r := openAt(t, restored)
			defer r.Close()
			newest, err := r.LatestCRL(ctx, rootID)
			if err != nil || newest.Number != tt.wantNewest {
				t.Fatalf("the restored copy's newest root CRL: %+v, %v; want number %d", newest, err, tt.wantNewest)
			}
			rl, err := x509.ParseRevocationList(newest.DER)
			if err != nil {
				t.Fatal(err)
			}
			if listed := len(rl.RevokedCertificateEntries) == 1 && rl.RevokedCertificateEntries[0].SerialNumber.Int64() == 77; listed != tt.wantListed {
				t.Errorf("the restored copy's newest root CRL lists the issuing CA revoked after the backup: %v, want %v", listed, tt.wantListed)
			}
			if n, err := r.LatestCRLNumber(ctx, issuingID); err != nil || n != 2 {
				t.Errorf("the restored copy's newest issuing CA CRL: %d, %v; want the backup's 2", n, err)
			}
			head, err := r.AuditHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			events, err := r.AuditChain(ctx, head.LastID-1, 1)
			if err != nil || len(events) != 1 {
				t.Fatalf("the restored trail's newest event: %+v, %v", events, err)
			}
			if mentions := strings.Contains(events[0].Detail, `"root_crls":[2,3]`); mentions != (tt.root != nil) {
				t.Errorf("the carry forward's audit event: %s", events[0].Detail)
			}
		})
	}
}
