package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// carryFixture is what the carry-forward tests put in a store before its
// backup: two admin tokens, three one-time challenges, an EST user, a
// console user with a session.
type carryFixture struct {
	revokedToken, liveToken           []byte // hashes
	usedChallenge, gone, unused       pki.Challenge
	estUser, consoleUser, sessionHash string
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func withStore(t *testing.T, dir string, fn func(st *sqlite.Store)) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fn(st)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fillCarryFixture(t *testing.T, st store.Store, now time.Time) carryFixture {
	t.Helper()
	ctx := context.Background()
	f := carryFixture{revokedToken: hashOf("token-1"), liveToken: hashOf("token-2"), estUser: "est-1", consoleUser: "alice", sessionHash: "session-1"}
	ev := func(typ string) pki.AuditEvent {
		return pki.AuditEvent{Time: now, Type: typ, Actor: "test", Outcome: "success"}
	}
	for i, h := range [][]byte{f.revokedToken, f.liveToken} {
		must(t, st.CreateToken(ctx, pki.APIToken{ID: "tok" + string(rune('1'+i)), Name: "t" + string(rune('1'+i)), Role: pki.Role("admin"), Hash: h, CreatedAt: now}, ev(pki.EventTokenCreated)))
	}
	for i, ch := range []*pki.Challenge{&f.usedChallenge, &f.gone, &f.unused} {
		*ch = pki.Challenge{ID: "ch" + string(rune('1'+i)), Hash: hashOf("challenge-" + string(rune('1'+i))), Profile: "default", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		must(t, st.CreateChallenge(ctx, *ch, ev(pki.EventChallengeCreated)))
	}
	must(t, st.CreateESTUser(ctx, pki.ESTUser{Name: f.estUser, PasswordHash: "$argon2id$old", CreatedAt: now}, ev("est_user.added")))
	must(t, st.CreateUser(ctx, pki.User{Name: f.consoleUser, Role: pki.Role("admin"), PasswordHash: "$argon2id$old", CreatedAt: now}, ev(pki.EventUserAdded)))
	must(t, st.CreateSession(ctx, pki.Session{Hash: hashOf(f.sessionHash), User: f.consoleUser, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	return f
}

// A restore over a database carries forward what may only move forward:
// the token revoked after the backup stays revoked, the challenge used
// after it does not issue a second certificate, the one deleted stays
// gone, the users removed stay removed, the nonce seen stays a replay and
// the console's sessions end; what was not changed since is as the backup
// has it. The restored trail records it, and still verifies.
func TestStoreRestoreCarriesForward(t *testing.T) {
	ctx := context.Background()
	dir, issuer := storeTestDir(t, "a1")
	now := pki.SystemClock{}.Now()
	var f carryFixture
	withStore(t, dir, func(st *sqlite.Store) { f = fillCarryFixture(t, st, now) })
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}

	ev := func(typ string) pki.AuditEvent {
		return pki.AuditEvent{Time: now, Type: typ, Actor: "test", Outcome: "success"}
	}
	withStore(t, dir, func(st *sqlite.Store) {
		if _, err := st.RevokeToken(ctx, "tok1", now, ev(pki.EventTokenRevoked)); err != nil {
			t.Fatal(err)
		}
		c := pki.Certificate{SerialHex: "b1", IssuerID: issuer, Issuer: "CN=Test CA", Subject: "CN=device-b1",
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
			Profile: "default", Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, KeyType: "p256",
			CreatedAt: now, DER: []byte{0x30, 0x03, 'd', 'e', 'r'}}
		must(t, st.RecordIssuance(ctx, store.Issuance{Now: now, Certificate: c, KeyHash: hashOf("key-b1"), ConsumeChallengeHash: f.usedChallenge.Hash,
			Events: []pki.AuditEvent{{Time: now, Type: pki.EventIssued, Actor: "test", SerialHex: "b1", IssuerID: issuer, Outcome: "success"}}}))
		must(t, st.DeleteChallenge(ctx, f.gone.ID, ev("challenge.deleted")))
		must(t, st.DeleteESTUser(ctx, f.estUser, now, ev("est_user.removed")))
		must(t, st.DeleteUser(ctx, f.consoleUser, ev(pki.EventUserRemoved)))
		must(t, st.RememberNonce(ctx, "tx-1", []byte("nonce-1"), now, now.Add(time.Hour)))
		must(t, st.CreateESTUser(ctx, pki.ESTUser{Name: "made-after", PasswordHash: "h", CreatedAt: now}, ev("est_user.added")))
	})

	e, stdout, stderr := testEnv(nil)
	if err := run(ctx, e, []string{"store", "restore", "--data-dir", dir, "--in", bk}); err != nil {
		t.Fatalf("store restore: %v\n%s%s", err, stdout, stderr)
	}
	said := stdout.String()
	for _, want := range []string{"Carried forward", "1 API token(s) revoked", "1 one-time challenge(s) used up", "1 one-time challenge(s) removed",
		"1 EST user(s) removed", "1 console user(s) removed", "1 SCEP nonce(s)", sqlite.EventRestoreCarriedForward,
		// b1, issued after the backup, with no CRL published since.
		// r41: what was made after the backup is named, to be made again.
		"Made after the backup and not in the restored store", "EST user(s) made-after (scepter est user add)",
		"the database it replaced holds 2 certificate(s), 0 of them revoked", "the restored store 1, 0 revoked", "certs revoke --cert FILE"} {
		if !strings.Contains(said, want) {
			t.Errorf("store restore does not say %q:\n%s", want, said)
		}
	}

	if left, _ := filepath.Glob(filepath.Join(dir, restoreTempPrefix+"*")); len(left) != 0 {
		t.Errorf("the restore left %v", left)
	}
	withStore(t, dir, func(st *sqlite.Store) {
		if tok, err := st.TokenByHash(ctx, f.revokedToken); err == nil && tok.RevokedAt.IsZero() {
			t.Error("the token revoked after the backup is live again")
		}
		if tok, err := st.TokenByHash(ctx, f.liveToken); err != nil || !tok.RevokedAt.IsZero() {
			t.Errorf("the token never revoked: %+v, %v", tok, err)
		}
		for _, ch := range []pki.Challenge{f.usedChallenge, f.gone} {
			if got, err := st.LookupChallenge(ctx, ch.Hash, now); err == nil {
				t.Errorf("challenge %s, used up or deleted after the backup, is usable again: %+v", ch.ID, got)
			}
		}
		if by, err := st.ChallengeIssued(ctx, f.usedChallenge.Hash); err != nil || by != issuer+":b1" {
			t.Errorf("the used challenge names %q, %v; want %s:b1", by, err, issuer)
		}
		if _, err := st.LookupChallenge(ctx, f.unused.Hash, now); err != nil {
			t.Errorf("the challenge never used: %v", err)
		}
		if u, err := st.ESTUser(ctx, f.estUser); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the EST user removed after the backup: %+v, %v", u, err)
		}
		if u, err := st.User(ctx, f.consoleUser); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the console user removed after the backup: %+v, %v", u, err)
		}
		if s, err := st.Session(ctx, hashOf(f.sessionHash), now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the session of the backup's day: %+v, %v", s, err)
		}
		if err := st.RememberNonce(ctx, "tx-1", []byte("nonce-1"), now, now.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("the nonce seen after the backup is no replay: %v", err)
		}
	})
	if got := certStatuses(t, dir); len(got) != 1 || got[0] != "a1 valid" {
		t.Errorf("restored certificates: %v, want the backup's", got)
	}
	if out, err := runCLI("audit", "verify", "--data-dir", dir); err != nil {
		t.Errorf("audit verify of the restored store: %v\n%s", err, out)
	}
	if out, err := runCLI("audit", "list", "--data-dir", dir, "--type", sqlite.EventRestoreCarriedForward); err != nil || !strings.Contains(out, `"tokens_revoked":1`) {
		t.Errorf("audit list of the carry forward: %v\n%s", err, out)
	}
}

// A restore with no database to carry forward from (a new machine) warns
// of what the backup brings back and what to do.
func TestStoreRestoreWarnsOfWhatTheBackupBringsBack(t *testing.T) {
	ctx := context.Background()
	dir, _ := storeTestDir(t, "a1")
	withStore(t, dir, func(st *sqlite.Store) { fillCarryFixture(t, st, pki.SystemClock{}.Now()) })
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	fresh := t.TempDir()
	e, stdout, stderr := testEnv(nil)
	if err := run(ctx, e, []string{"store", "restore", "--data-dir", fresh, "--in", bk}); err != nil {
		t.Fatalf("store restore: %v\n%s%s", err, stdout, stderr)
	}
	// The new machine holds no CA yet: its keys come first.
	if said := stdout.String(); !strings.Contains(said, "Next: put the CA's keys back (scepter ca import-keys --data-dir "+fresh) {
		t.Errorf("store restore into a directory without the CA's keys says:\n%s", said)
	}
	warned := stderr.String()
	for _, want := range []string{"2 API token(s) not revoked", "3 one-time challenge(s) not used", "1 EST user(s) and 1 console user(s)", "admin token revoke", "no database it replaces"} {
		if !strings.Contains(warned, want) {
			t.Errorf("store restore does not warn %q:\n%s", want, warned)
		}
	}
}

// An EST user removed after the backup and added again, bound to one
// profile with a new password, keeps that binding through a restore: the
// backup's "any profile" would let today's password enroll at profiles it
// was taken off.
func TestStoreRestoreCarriesTheESTProfileBinding(t *testing.T) {
	ctx := context.Background()
	dir, _ := storeTestDir(t, "a1")
	now := pki.SystemClock{}.Now()
	var f carryFixture
	withStore(t, dir, func(st *sqlite.Store) { f = fillCarryFixture(t, st, now) })
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	ev := func(typ string) pki.AuditEvent {
		return pki.AuditEvent{Time: now, Type: typ, Actor: "test", Outcome: "success"}
	}
	withStore(t, dir, func(st *sqlite.Store) {
		must(t, st.DeleteESTUser(ctx, f.estUser, now, ev("est_user.removed")))
		must(t, st.CreateESTUser(ctx, pki.ESTUser{Name: f.estUser, PasswordHash: "$argon2id$new", Profile: "vpn", CreatedAt: now}, ev("est_user.added")))
	})

	e, stdout, stderr := testEnv(nil)
	if err := run(ctx, e, []string{"store", "restore", "--data-dir", dir, "--in", bk}); err != nil {
		t.Fatalf("store restore: %v\n%s%s", err, stdout, stderr)
	}
	for _, want := range []string{"1 EST password(s) changed", "1 EST user(s) given their newer profile binding"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("store restore does not say %q:\n%s", want, stdout)
		}
	}
	withStore(t, dir, func(st *sqlite.Store) {
		if u, err := st.ESTUser(ctx, f.estUser); err != nil || u.PasswordHash != "$argon2id$new" || u.Profile != "vpn" {
			t.Errorf("the EST user after the restore: %+v, %v; want the new password bound to vpn", u, err)
		}
	})
}

// A backup taken before an upgrade, restored with the new binary to undo
// it, is put in place at its own schema: migrated, the older binary would
// refuse it. Nothing is carried forward into it (that would migrate it);
// the restore says which schema the file is at and who serves it, and
// warns of what the backup brings back, as on a new machine.
func TestStoreRestoreLeavesAnOlderBackupsSchema(t *testing.T) {
	ctx := context.Background()
	dir, _ := storeTestDir(t, "a1")
	bk := filepath.Join(t.TempDir(), "bk.db")
	db, err := sql.Open("sqlite", "file:"+bk+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	have, want := upToPrevious(t, db, sqlite.Migrations(), "sqlite")
	if _, err := db.Exec(`INSERT INTO est_users (name, password_hash, created_at) VALUES ('est-old', '$argon2id$old', 0)`); err != nil {
		t.Fatal(err)
	}
	must(t, db.Close())

	e, stdout, stderr := testEnv(nil)
	if err := run(ctx, e, []string{"store", "restore", "--data-dir", dir, "--in", bk}); err != nil {
		t.Fatalf("store restore: %v\n%s%s", err, stdout, stderr)
	}
	facts, err := sqlite.Inspect(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil || facts.SchemaVersion != have {
		t.Fatalf("the restored store: schema version %d, %v; want %d, the backup's", facts.SchemaVersion, err, have)
	}
	said := stdout.String()
	for _, want := range []string{
		fmt.Sprintf("schema version %d, as the backup was, not migrated to this scepter's %d", have, want),
		"an older scepter at version", "'scepter serve' of this version migrates it when it starts",
	} {
		if !strings.Contains(said, want) {
			t.Errorf("store restore does not say %q:\n%s", want, said)
		}
	}
	if strings.Contains(said, "Carried forward") {
		t.Errorf("store restore says it carried forward into an older backup:\n%s", said)
	}
	warned := stderr.String()
	for _, want := range []string{fmt.Sprintf("the backup is at schema version %d, older than this scepter's %d", have, want),
		"1 EST user(s)", "scepter est user remove"} {
		if !strings.Contains(warned, want) {
			t.Errorf("store restore does not warn %q:\n%s", want, warned)
		}
	}

	// On a new machine (nothing to carry from) it says the same of the file.
	fresh := t.TempDir()
	e, stdout, stderr = testEnv(nil)
	if err := run(ctx, e, []string{"store", "restore", "--data-dir", fresh, "--in", bk}); err != nil {
		t.Fatalf("store restore into a new data directory: %v\n%s%s", err, stdout, stderr)
	}
	if facts, err := sqlite.Inspect(ctx, filepath.Join(fresh, "scepter.db")); err != nil || facts.SchemaVersion != have {
		t.Errorf("the store restored into a new data directory: schema version %d, %v; want %d", facts.SchemaVersion, err, have)
	}
	if !strings.Contains(stdout.String(), "not migrated to this scepter's") {
		t.Errorf("store restore into a new data directory does not say the file is not migrated:\n%s", stdout)
	}
}
