package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := pki.User{Name: "alice", Role: pki.RoleAdmin, PasswordHash: "$argon2id$x", CreatedAt: t0, CreatedBy: "cli:root"}
	ev := pki.AuditEvent{Type: pki.EventUserAdded, Actor: "cli:root", Outcome: "success"}
	wantErr(t, "CreateUser", s.CreateUser(ctx, alice, ev), nil)
	wantErr(t, "CreateUser again", s.CreateUser(ctx, alice, ev), store.ErrConflict)
	// Names that differ only in case would read as one person in the audit
	// trail; created at once, one of them is stored.
	stored := createAtOnce(t, []string{"Carol", "CAROL", "carol", "cArOl", "caroL", "CaRoL"}, func(name string) error {
		return s.CreateUser(ctx, pki.User{Name: name, Role: pki.RoleAuditor, PasswordHash: "h", CreatedAt: t0}, ev)
	})
	wantErr(t, "DeleteUser "+stored, s.DeleteUser(ctx, stored, pki.AuditEvent{Time: t0, Type: pki.EventUserRemoved, Actor: "cli:root", Outcome: "success"}), nil)
	wantErr(t, "CreateUser ALICE", s.CreateUser(ctx, pki.User{Name: "ALICE", Role: pki.RoleAuditor, PasswordHash: "h", CreatedAt: t0}, ev), store.ErrConflict)
	if err := s.CreateUser(ctx, pki.User{Name: "bob", Role: "root", PasswordHash: "h", CreatedAt: t0}, ev); err == nil {
		t.Error("a user with an unknown role was stored")
	}
	wantErr(t, "CreateUser bob", s.CreateUser(ctx, pki.User{Name: "bob", Role: pki.RoleAuditor, PasswordHash: "h2", CreatedAt: t0}, ev), nil)
	got, err := s.User(ctx, "alice")
	if err != nil || got.Name != "alice" || got.Role != pki.RoleAdmin || got.PasswordHash != alice.PasswordHash ||
		!got.CreatedAt.Equal(t0) || got.CreatedBy != "cli:root" || got.FailedLogins != 0 || !got.LockedUntil.IsZero() {
		t.Errorf("User(alice) = %+v, %v", got, err)
	}
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User(nobody): %v, want ErrNotFound", err)
	}
	if users, err := s.ListUsers(ctx); err != nil || len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" {
		t.Errorf("ListUsers = %+v, %v", users, err)
	}

	// Logins: failures count and lock; a success clears both.
	lock := t0.Add(time.Minute)
	failEv := pki.AuditEvent{Type: pki.EventLoginFailed, Actor: "console:192.0.2.1", Outcome: "failure"}
	for i, until := range []time.Time{{}, {}, lock} {
		n, err := s.RecordLogin(ctx, "alice", false, t0.Add(time.Duration(i)*time.Second), until, failEv)
		if err != nil || n != i+1 {
			t.Fatalf("failure %d: count %d, %v", i+1, n, err)
		}
	}
	if u, _ := s.User(ctx, "alice"); u.FailedLogins != 3 || !u.LockedUntil.Equal(lock) {
		t.Errorf("after 3 failures: %d failures, locked until %v", u.FailedLogins, u.LockedUntil)
	}
	if n := len(listAudit(t, s, store.AuditFilter{Type: pki.EventLoginFailed})); n != 3 {
		t.Errorf("%d login.failed events, want 3", n)
	}
	if n, err := s.RecordLogin(ctx, "alice", true, t0.Add(time.Hour), time.Time{}, pki.AuditEvent{}); err != nil || n != 0 {
		t.Errorf("success: count %d, %v", n, err)
	}
	if u, _ := s.User(ctx, "alice"); u.FailedLogins != 0 || !u.LockedUntil.IsZero() || !u.LastLoginAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("after a success: %+v", u)
	}
	if _, err := s.RecordLogin(ctx, "nobody", false, t0, time.Time{}, failEv); err == nil {
		t.Error("RecordLogin of an unknown user succeeded")
	}

	// Claimed attempts: counted before the password check, locked by the
	// policy's count, refused while locked; attempts at once each count.
	lockAt3 := func(n int) time.Duration {
		if n >= 3 {
			return time.Minute
		}
		return 0
	}
	const attempts = 12
	claims := make(chan store.LoginAttempt, attempts)
	var wg sync.WaitGroup
	for range attempts {
		wg.Go(func() {
			a, err := s.ClaimLoginAttempt(ctx, "alice", t0.Add(2*time.Hour), t0.Add(26*time.Hour), lockAt3)
			if err != nil {
				t.Errorf("ClaimLoginAttempt: %v", err)
			}
			claims <- a
		})
	}
	wg.Wait()
	close(claims)
	counted, refused := map[int]bool{}, 0
	for a := range claims {
		switch {
		case a.Refused:
			refused++
			if !a.LockedUntil.Equal(t0.Add(2*time.Hour + time.Minute)) {
				t.Errorf("a refused attempt names the lock %v", a.LockedUntil)
			}
		case counted[a.Failures]:
			t.Errorf("two attempts counted as failure %d", a.Failures)
		default:
			counted[a.Failures] = true
			if lock := !a.LockedUntil.IsZero(); lock != (a.Failures >= 3) {
				t.Errorf("attempt %d: locked until %v", a.Failures, a.LockedUntil)
			}
		}
	}
	if len(counted) != 3 || refused != attempts-3 {
		t.Errorf("%d attempts counted, %d refused; want 3 and %d", len(counted), refused, attempts-3)
	}
	if u, _ := s.User(ctx, "alice"); u.FailedLogins != 3 || !u.LockedUntil.Equal(t0.Add(2*time.Hour+time.Minute)) {
		t.Errorf("after the claims: %d failures, locked until %v", u.FailedLogins, u.LockedUntil)
	}
	a, err := s.ClaimLoginAttempt(ctx, "alice", t0.Add(2*time.Hour+time.Minute), t0.Add(26*time.Hour), lockAt3) // the lock has ended
	if err != nil || a.Refused || a.Failures != 4 || !a.LockedUntil.Equal(t0.Add(2*time.Hour+2*time.Minute)) {
		t.Errorf("after the lock: %+v, %v", a, err)
	}
	// Not claimed again before its expiry: forgotten, as an unknown name's.
	a, err = s.ClaimLoginAttempt(ctx, "alice", t0.Add(26*time.Hour), t0.Add(50*time.Hour), lockAt3)
	if err != nil || a.Refused || a.Failures != 1 || !a.LockedUntil.IsZero() {
		t.Errorf("at the count's expiry: %+v, %v; want failure 1", a, err)
	}
	if _, err := s.RecordLogin(ctx, "alice", true, t0.Add(27*time.Hour), time.Time{}, pki.AuditEvent{}); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, "alice"); u.FailedLogins != 0 || !u.LockedUntil.IsZero() {
		t.Errorf("a success after claims: %+v", u)
	}
	if _, err := s.ClaimLoginAttempt(ctx, "nobody", t0, t0.Add(time.Hour), lockAt3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ClaimLoginAttempt of an unknown user: %v, want ErrNotFound", err)
	}

	// Deleting a user ends their sessions. Names are unique regardless of
	// case, so BOB names bob.
	ses := pki.Session{Hash: []byte("session-bob"), User: "bob", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	wantErr(t, "CreateSession", s.CreateSession(ctx, ses), nil)
	delEv := pki.AuditEvent{Time: t0, Type: pki.EventUserRemoved, Actor: "cli:root", Outcome: "success"}
	wantErr(t, "DeleteUser BOB", s.DeleteUser(ctx, "BOB", delEv), nil)
	wantErr(t, "DeleteUser again", s.DeleteUser(ctx, "bob", delEv), store.ErrNotFound)
	if users, err := s.ListUsers(ctx); err != nil || len(users) != 1 || users[0].Name != "alice" {
		t.Errorf("after deleting BOB: ListUsers = %+v, %v; want alice alone", users, err)
	}
	if _, err := s.Session(ctx, ses.Hash, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a removed user's session: %v, want ErrNotFound", err)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	tok := pki.APIToken{ID: "tok-1", Name: "ci", Role: pki.RoleOperator, Hash: []byte("hash-1"), CreatedAt: t0, CreatedBy: "cli:root",
		ExpiresAt: t0.Add(24 * time.Hour)}
	ev := pki.AuditEvent{Type: pki.EventTokenCreated, Actor: "cli:root", Outcome: "success"}
	wantErr(t, "CreateToken", s.CreateToken(ctx, tok, ev), nil)
	same := tok
	same.ID, same.Hash = "tok-2", []byte("hash-2")
	wantErr(t, "a live token with the same name", s.CreateToken(ctx, same, ev), store.ErrConflict)
	got, err := s.TokenByHash(ctx, tok.Hash)
	if err != nil || got.ID != tok.ID || got.Name != "ci" || got.Role != pki.RoleOperator || !got.ExpiresAt.Equal(tok.ExpiresAt) ||
		!got.RevokedAt.IsZero() || !bytes.Equal(got.Hash, tok.Hash) {
		t.Errorf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := s.TokenByHash(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	wantErr(t, "TouchToken", s.TouchToken(ctx, tok.ID, t0.Add(time.Minute)), nil)
	if got, _ := s.TokenByHash(ctx, tok.Hash); !got.LastUsedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("LastUsedAt %v", got.LastUsedAt)
	}
	revEv := pki.AuditEvent{Type: pki.EventTokenRevoked, Actor: "cli:root", Outcome: "success"}
	r, err := s.RevokeToken(ctx, "ci", t0.Add(time.Hour), revEv)
	if err != nil || r.ID != tok.ID || !r.RevokedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("RevokeToken by name = %+v, %v", r, err)
	}
	if _, err := s.RevokeToken(ctx, "ci", t0.Add(time.Hour), revEv); err == nil {
		t.Error("revoking a revoked token succeeded")
	}
	// api:NAME in the audit trail names one token for ever: a revoked
	// token's name is not given to another, nor one differing in case.
	wantErr(t, "a new token with a revoked one's name", s.CreateToken(ctx, same, ev), store.ErrConflict)
	same.Name = "CI"
	wantErr(t, "a new token with a revoked one's name in capitals", s.CreateToken(ctx, same, ev), store.ErrConflict)
	same.Name = "ci-2"
	wantErr(t, "CreateToken ci-2", s.CreateToken(ctx, same, ev), nil)
	if _, err := s.RevokeToken(ctx, "tok-2", t0.Add(2*time.Hour), revEv); err != nil {
		t.Errorf("RevokeToken by ID: %v", err)
	}
	// A name may be another token's ID: the ID names that token, and only
	// that one is revoked (with the one event a revocation writes).
	idTok := pki.APIToken{ID: "tok-3", Name: "deploy", Role: pki.RoleAuditor, Hash: []byte("hash-3"), CreatedAt: t0, CreatedBy: "cli:root"}
	nameTok := pki.APIToken{ID: "tok-4", Name: "tok-3", Role: pki.RoleAuditor, Hash: []byte("hash-4"), CreatedAt: t0, CreatedBy: "cli:root"}
	wantErr(t, "CreateToken tok-3", s.CreateToken(ctx, idTok, ev), nil)
	wantErr(t, "CreateToken named tok-3", s.CreateToken(ctx, nameTok, ev), nil)
	if r, err := s.RevokeToken(ctx, "tok-3", t0.Add(3*time.Hour), revEv); err != nil || r.ID != "tok-3" {
		t.Errorf("RevokeToken of an ID that is also a name = %+v, %v; want tok-3", r, err)
	}
	if got, err := s.TokenByHash(ctx, nameTok.Hash); err != nil || !got.RevokedAt.IsZero() {
		t.Errorf("the token named like the revoked one's ID: %+v, %v; want it live", got, err)
	}
	if r, err := s.RevokeToken(ctx, "tok-3", t0.Add(4*time.Hour), revEv); err != nil || r.ID != "tok-4" {
		t.Errorf("RevokeToken by that name next = %+v, %v; want tok-4", r, err)
	}
	list, err := s.ListTokens(ctx)
	if err != nil || len(list) != 4 {
		t.Fatalf("ListTokens = %+v, %v", list, err)
	}
	if n := len(listAudit(t, s, store.AuditFilter{Type: pki.EventTokenRevoked})); n != 4 {
		t.Errorf("%d token.revoked events, want 4", n)
	}
	// Token names are unique regardless of case, and IDs are hex in
	// either case: a revocation by either matches regardless of case.
	for _, tc := range []struct{ id, name, by string }{
		{"tok-5", "build", "BUILD"},
		{"a1b2c3d4e5f60718", "release", "A1B2C3D4E5F60718"},
	} {
		wantErr(t, "CreateToken "+tc.name, s.CreateToken(ctx, pki.APIToken{ID: tc.id, Name: tc.name, Role: pki.RoleAuditor,
			Hash: []byte("hash-" + tc.id), CreatedAt: t0, CreatedBy: "cli:root"}, ev), nil)
		if r, err := s.RevokeToken(ctx, tc.by, t0.Add(5*time.Hour), revEv); err != nil || r.ID != tc.id || r.RevokedAt.IsZero() {
			t.Errorf("RevokeToken %q = %+v, %v; want %s revoked", tc.by, r, err, tc.id)
		}
	}
	// Live tokens whose names differ only in case, created at once: one
	// of them is stored.
	id := 0
	var idMu sync.Mutex
	createAtOnce(t, []string{"Tmp1", "TMP1", "tmp1", "tMp1", "tmP1", "TmP1"}, func(name string) error {
		idMu.Lock()
		id++
		n := id
		idMu.Unlock()
		return s.CreateToken(ctx, pki.APIToken{ID: fmt.Sprintf("twin-%d", n), Name: name, Role: pki.RoleAuditor,
			Hash: fmt.Appendf(nil, "twin-hash-%d", n), CreatedAt: t0, CreatedBy: "cli:root"}, ev)
	})
}

// createAtOnce calls create for each of names, which differ only in case,
// all at once, and checks that exactly one succeeds and the others are
// ErrConflict. It returns the one created.
func createAtOnce(t *testing.T, names []string, create func(name string) error) string {
	t.Helper()
	created := make(chan string, len(names))
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			switch err := create(name); {
			case err == nil:
				created <- name
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("creating %q: %v, want ErrConflict or nil", name, err)
			}
		})
	}
	wg.Wait()
	close(created)
	var stored []string
	for name := range created {
		stored = append(stored, name)
	}
	if len(stored) != 1 {
		t.Fatalf("created at once, names that differ only in case: %q stored, want one", stored)
	}
	return stored[0]
}

func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, pki.User{Name: "carol", Role: pki.RoleOperator, PasswordHash: "h", CreatedAt: t0},
		pki.AuditEvent{Type: pki.EventUserAdded}); err != nil {
		t.Fatal(err)
	}
	ses := pki.Session{Hash: []byte("s-1"), User: "carol", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), RemoteAddr: "192.0.2.9"}
	wantErr(t, "CreateSession", s.CreateSession(ctx, ses), nil)
	wantErr(t, "CreateSession again", s.CreateSession(ctx, ses), store.ErrConflict)
	got, err := s.Session(ctx, ses.Hash, t0.Add(time.Minute))
	if err != nil || got.User != "carol" || !got.ExpiresAt.Equal(ses.ExpiresAt) || got.RemoteAddr != "192.0.2.9" {
		t.Errorf("Session = %+v, %v", got, err)
	}
	if _, err := s.Session(ctx, ses.Hash, ses.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session: %v, want ErrNotFound", err)
	}
	wantErr(t, "PurgeExpired", s.PurgeExpired(ctx, ses.ExpiresAt), nil)
	wantErr(t, "DeleteSession of a purged one", s.DeleteSession(ctx, ses.Hash), nil)
	other := pki.Session{Hash: []byte("s-2"), User: "carol", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	wantErr(t, "CreateSession", s.CreateSession(ctx, other), nil)
	wantErr(t, "DeleteSession", s.DeleteSession(ctx, other.Hash), nil)
	if _, err := s.Session(ctx, other.Hash, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted session: %v", err)
	}
}

func testDeleteChallenge(t *testing.T, s store.Store) {
	ctx := context.Background()
	ch := pki.Challenge{ID: "c-del", Hash: []byte("h-del"), Profile: "default", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	ev := pki.AuditEvent{Time: t0, Type: pki.EventChallengeDeleted, Actor: "api:ci", Outcome: "success"}
	wantErr(t, "DeleteChallenge", s.DeleteChallenge(ctx, "c-del", ev), nil)
	wantErr(t, "DeleteChallenge again", s.DeleteChallenge(ctx, "c-del", ev), store.ErrNotFound)
	if _, err := s.LookupChallenge(ctx, ch.Hash, t0); !errors.Is(err, store.ErrChallengeUnusable) {
		t.Errorf("a deleted challenge: %v", err)
	}
}

// testListFilters: protocol, issuance time and search, with the existing
// filters and both orders.
func testListFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 12 {
		c := newCert(issuerA, fmt.Sprintf("f%02d", i), t0.Add(time.Duration(24+i)*time.Hour))
		c.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
		if i%3 == 0 {
			c.Protocol = pki.ProtocolEST
		}
		switch i {
		case 4: // values with RFC 4514 escapes, as a subject is stored
			c.Subject = `CN=Doe\, John,O=Acme\, Inc`
		case 5:
			c.Subject = `CN=back\\slash+CN=a\+b`
		case 7:
			c.Subject = "CN=Printer-7_%Lobby,O=Acme"
			c.SANs = []string{"dns:printer7.lobby.example"}
		}
		mustRecord(t, s, issuance(c))
	}
	serials := func(f store.CertFilter) []string {
		t.Helper()
		var out []string
		for {
			page, next, err := s.ListCertificates(ctx, f)
			if err != nil {
				t.Fatalf("ListCertificates(%+v): %v", f, err)
			}
			for _, c := range page {
				out = append(out, c.SerialHex)
			}
			if next == "" {
				return out
			}
			f.Cursor = next
		}
	}
	cases := []struct {
		name string
		f    store.CertFilter
		want []string
	}{
		{"protocol", store.CertFilter{Protocol: pki.ProtocolEST, Limit: 2}, []string{"f09", "f06", "f03", "f00"}},
		{"issued between", store.CertFilter{IssuedAfter: t0.Add(3 * time.Minute), IssuedBefore: t0.Add(6 * time.Minute)}, []string{"f05", "f04", "f03"}},
		{"issued between, paged", store.CertFilter{IssuedAfter: t0.Add(3 * time.Minute), IssuedBefore: t0.Add(6 * time.Minute), Limit: 1}, []string{"f05", "f04", "f03"}},
		{"issued after, EST, paged", store.CertFilter{IssuedAfter: t0.Add(time.Minute), Protocol: pki.ProtocolEST, Limit: 2}, []string{"f09", "f06", "f03"}},
		{"search subject, any case", store.CertFilter{Search: "PRINTER-7"}, []string{"f07"}},
		{"search SAN", store.CertFilter{Search: "lobby.example"}, []string{"f07"}},
		{"search with LIKE characters", store.CertFilter{Search: "7_%lob"}, []string{"f07"}},
		{"search a serial", store.CertFilter{Search: "f1"}, []string{"f11", "f10"}},
		{"search, short term", store.CertFilter{Search: "f1", Protocol: pki.ProtocolSCEP}, []string{"f11", "f10"}},
		{"search nothing", store.CertFilter{Search: "no-such-device"}, nil},
		// A subject is searched as it reads, escaped or not.
		{"search a value with a comma", store.CertFilter{Search: "Doe, John"}, []string{"f04"}},
		{"search a value with a comma, escaped", store.CertFilter{Search: `Doe\, John`}, []string{"f04"}},
		{"search across attributes", store.CertFilter{Search: "CN=Doe, John,O=Acme, Inc"}, []string{"f04"}},
		{"search a value with a comma, by expiry", store.CertFilter{Search: "acme, inc", NotAfterBefore: t0.Add(48 * time.Hour)}, []string{"f04"}},
		{"search a value with a comma, short term", store.CertFilter{Search: "e,"}, []string{"f04"}},
		{"search a value with a plus", store.CertFilter{Search: "a+b"}, []string{"f05"}},
		{"search a value with a backslash", store.CertFilter{Search: `back\slash`}, []string{"f05"}},
		{"search a value with a backslash, escaped", store.CertFilter{Search: `back\\slash`}, []string{"f05"}},
		{"search by expiry", store.CertFilter{Search: "device-f0", NotAfterBefore: t0.Add(27 * time.Hour), Limit: 1}, []string{"f00", "f01", "f02"}},
		{"all filters", store.CertFilter{Search: "device", Protocol: pki.ProtocolEST, Profile: "default", IssuerID: issuerA,
			Status: pki.StatusValid, IssuedAfter: t0.Add(time.Minute)}, []string{"f09", "f06", "f03"}},
	}
	for _, c := range cases {
		got := serials(c.f)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// testSearchSerialAsPrinted: a serial is found written as openssl prints
// it, its first octet padded with a zero and its octets maybe separated by
// colons, although the store keeps it without either; the term as it is
// still matches any text, and the padding only ever matches the start of
// a serial.
func testSearchSerialAsPrinted(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, c := range []struct{ serial, subject string }{
		{"6d566576d8ceb76106b9cf8761cf18f", "CN=printer"}, // openssl: 06:D5:66:…
		{"106d566576", "CN=inner"},                        // 06d5… inside it
		{"d566", "CN=room-6d5"},                           // 6d5 in its subject only
		{"abc", "CN=ap-00:1a:2b"},                         // colons in a subject
	} {
		cert := newCert(issuerA, c.serial, t0.Add(time.Duration(48+i)*time.Hour))
		cert.Subject, cert.SANs = c.subject, nil
		mustRecord(t, s, issuance(cert))
	}
	const printer, inner, room, ap = "6d566576d8ceb76106b9cf8761cf18f", "106d566576", "d566", "abc"
	for _, c := range []struct {
		name string
		f    store.CertFilter
		want []string
	}{
		{"openssl -serial", store.CertFilter{Search: "06D566576D8CEB76106B9CF8761CF18F"}, []string{printer}},
		{"openssl -text", store.CertFilter{Search: "06:D5:66:57:6D:8C:EB:76:10:6B:9C:F8:76:1C:F1:8F"}, []string{printer}},
		{"a line of openssl -text", store.CertFilter{Search: " 06:d5:66:57:6d: "}, []string{printer}},
		{"0x", store.CertFilter{Search: "0x06d566576d8ceb76106b9cf8761cf18f"}, []string{printer}},
		{"padded start", store.CertFilter{Search: "06d5"}, []string{inner, printer}},
		{"padded start with colons", store.CertFilter{Search: "06:d5:66"}, []string{inner, printer}},
		{"inner octets with colons", store.CertFilter{Search: "66:57:6d:8c"}, []string{printer}},
		{"stored form", store.CertFilter{Search: "6d5"}, []string{room, inner, printer}},
		{"padded, short", store.CertFilter{Search: "06"}, []string{inner, printer}},
		{"padded, short once unpadded", store.CertFilter{Search: "006"}, []string{printer}},
		{"padded start, by expiry, paged", store.CertFilter{Search: "06d5", NotAfterBefore: t0.Add(72 * time.Hour), Limit: 1},
			[]string{printer, inner}},
		{"padded start, other filters", store.CertFilter{Search: "06d5", Protocol: pki.ProtocolSCEP, IssuedAfter: t0.Add(-time.Minute)},
			[]string{inner, printer}},
		{"colons that are text", store.CertFilter{Search: "00:1a:2b"}, []string{ap}},
		{"not hex", store.CertFilter{Search: "06d5x"}, nil},
	} {
		var got []string
		f := c.f
		for {
			page, next, err := s.ListCertificates(ctx, f)
			if err != nil {
				t.Fatalf("%s: ListCertificates: %v", c.name, err)
			}
			for _, cert := range page {
				got = append(got, cert.SerialHex)
			}
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s (%q): %v, want %v", c.name, c.f.Search, got, c.want)
		}
	}
}

func testRenewalsOf(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := newCert(issuerA, "r0", t0.Add(time.Hour))
	mustRecord(t, s, issuance(first))
	for _, sn := range []string{"r1", "r2"} {
		c := newCert(issuerA, sn, t0.Add(2*time.Hour))
		c.RenewedFrom = issuerA + ":r0"
		mustRecord(t, s, issuance(c))
	}
	got, err := s.RenewalsOf(ctx, issuerA, "r0")
	if err != nil || len(got) != 2 || got[0].SerialHex != "r1" || got[1].SerialHex != "r2" {
		t.Errorf("RenewalsOf(r0) = %v, %v", got, err)
	}
	if got, err := s.RenewalsOf(ctx, issuerA, "r1"); err != nil || len(got) != 0 {
		t.Errorf("RenewalsOf(r1) = %v, %v", got, err)
	}
}

// testDashboard: the counters follow issuance, revocation, unhold and the
// clock, and the chart follows the audit events.
func testDashboard(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0
	mk := func(serial, profile string, expires time.Duration) {
		c := newCert(issuerA, serial, now.Add(expires))
		c.Profile = profile
		mustRecord(t, s, issuance(c, issuedEvent(c)))
	}
	day := 24 * time.Hour
	mk("d0", "default", -day)    // expired
	mk("d1", "default", 3*day)   // within 7
	mk("d2", "wifi", 20*day)     // within 30
	mk("d3", "wifi", 60*day)     // within 90
	mk("d4", "default", 200*day) // later
	mk("d5", "default", 200*day) // to be revoked
	mk("d6", "vpn", 200*day)     // held, then released
	for _, r := range []struct {
		serial string
		reason int
	}{{"d5", 1}, {"d6", 6}} {
		if _, _, err := s.RevokeCertificate(ctx, issuerA, r.serial, r.reason, now, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.UnholdCertificate(ctx, issuerA, "d6", now, pki.AuditEvent{Type: pki.EventUnheld}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, pki.AuditEvent{Time: now.Add(-day), Type: pki.EventEnrollFailed},
		pki.AuditEvent{Time: now, Type: pki.EventRefused}); err != nil {
		t.Fatal(err)
	}
	mustCreateRequest(t, s, newRequest("held-1", "default", "tx-held-1"))
	d, err := s.Dashboard(ctx, now, 3)
	if err != nil {
		t.Fatal(err)
	}
	if d.Pending != 1 {
		t.Errorf("Pending %d, want 1", d.Pending)
	}
	if d.ByStatus["valid"] != 5 || d.ByStatus["expired"] != 1 || d.ByStatus["revoked"] != 1 {
		t.Errorf("ByStatus %v, want valid 5, expired 1, revoked 1", d.ByStatus)
	}
	if d.ByProfile["default"] != 2 || d.ByProfile["wifi"] != 2 || d.ByProfile["vpn"] != 1 {
		t.Errorf("ByProfile %v", d.ByProfile)
	}
	if d.Expiring[7] != 1 || d.Expiring[30] != 2 || d.Expiring[90] != 3 {
		t.Errorf("Expiring %v, want 7: 1, 30: 2, 90: 3", d.Expiring)
	}
	if len(d.Days) != 3 {
		t.Fatalf("%d days, want 3", len(d.Days))
	}
	today := d.Days[2]
	if today.Issued != 7 || today.Revoked != 2 || today.Refused != 1 || d.Days[1].Refused != 1 || d.Days[0].Issued != 0 {
		t.Errorf("days %+v", d.Days)
	}
	if !today.Day.Equal(now.UTC().Truncate(day)) {
		t.Errorf("today is %v, want %v", today.Day, now.UTC().Truncate(day))
	}
	// A day later, d0 is long expired and d1 still within 7 days.
	later, err := s.Dashboard(ctx, now.Add(4*day), 1)
	if err != nil {
		t.Fatal(err)
	}
	if later.ByStatus["expired"] != 2 || later.Expiring[7] != 0 {
		t.Errorf("four days later: %v, expiring %v", later.ByStatus, later.Expiring)
	}
}

// testUnknownLoginFailures: an unknown name's failed logins are counted,
// locked and refused as a user's (attempts at once each count), a refused
// attempt writes nothing, and a count is forgotten at its expiry, and gone
// once purged.
func testUnknownLoginFailures(t *testing.T, s store.Store) {
	ctx := context.Background()
	lockAt3 := func(n int) time.Duration {
		if n >= 3 {
			return time.Minute
		}
		return 0
	}
	claim := func(key string, at, expires time.Time) store.LoginAttempt {
		t.Helper()
		a, err := s.ClaimUnknownLoginAttempt(ctx, []byte(key), at, expires, lockAt3)
		if err != nil {
			t.Fatalf("ClaimUnknownLoginAttempt(%s): %v", key, err)
		}
		return a
	}

	const attempts = 12
	claims := make(chan store.LoginAttempt, attempts)
	var wg sync.WaitGroup
	for range attempts {
		wg.Go(func() {
			a, err := s.ClaimUnknownLoginAttempt(ctx, []byte("at once"), t0, t0.Add(time.Hour), lockAt3)
			if err != nil {
				t.Errorf("ClaimUnknownLoginAttempt: %v", err)
			}
			claims <- a
		})
	}
	wg.Wait()
	close(claims)
	counted, refused := map[int]bool{}, 0
	for a := range claims {
		switch {
		case a.Refused:
			refused++
			if !a.LockedUntil.Equal(t0.Add(time.Minute)) {
				t.Errorf("a refused attempt names the lock %v", a.LockedUntil)
			}
		case counted[a.Failures]:
			t.Errorf("two attempts counted as failure %d", a.Failures)
		default:
			counted[a.Failures] = true
			if lock := !a.LockedUntil.IsZero(); lock != (a.Failures >= 3) {
				t.Errorf("attempt %d: locked until %v", a.Failures, a.LockedUntil)
			}
		}
	}
	if len(counted) != 3 || refused != attempts-3 {
		t.Errorf("%d attempts counted, %d refused; want 3 and %d", len(counted), refused, attempts-3)
	}
	// Refused while locked, with a later expiry that must not be kept.
	if a := claim("at once", t0.Add(30*time.Second), t0.Add(100*time.Hour)); !a.Refused {
		t.Errorf("while locked: %+v", a)
	}
	if a := claim("at once", t0.Add(time.Minute), t0.Add(time.Hour)); a.Refused || a.Failures != 4 {
		t.Errorf("after the lock: %+v, want failure 4", a)
	}

	for _, tc := range []struct {
		name         string
		claims       []time.Time // each expiring an hour later
		purgeAt      time.Time   // zero: no purge
		at           time.Time
		wantFailures int
	}{
		{"counted on", []time.Time{t0, t0}, time.Time{}, t0.Add(time.Minute), 3},
		{"forgotten at its expiry", []time.Time{t0, t0}, time.Time{}, t0.Add(time.Hour), 1},
		{"each claim sets the expiry anew", []time.Time{t0, t0.Add(50 * time.Minute)}, time.Time{}, t0.Add(90 * time.Minute), 3},
		{"kept by a purge before its expiry", []time.Time{t0, t0}, t0.Add(59 * time.Minute), t0.Add(time.Minute), 3},
		// Asked again before its expiry (a clock set back): gone all the same.
		{"removed by a purge at its expiry", []time.Time{t0, t0}, t0.Add(time.Hour), t0.Add(time.Minute), 1},
	} {
		key := "key " + tc.name
		for _, at := range tc.claims {
			claim(key, at, at.Add(time.Hour))
		}
		if !tc.purgeAt.IsZero() {
			if err := s.PurgeExpired(ctx, tc.purgeAt); err != nil {
				t.Fatal(err)
			}
		}
		if a := claim(key, tc.at, tc.at.Add(time.Hour)); a.Refused || a.Failures != tc.wantFailures {
			t.Errorf("%s: %+v, want failure %d", tc.name, a, tc.wantFailures)
		}
	}

	// One key for the whole store, whoever asks first.
	first, err := s.LoginNameKey(ctx, []byte("first candidate"))
	if err != nil || string(first) != "first candidate" {
		t.Fatalf("LoginNameKey: %q, %v", first, err)
	}
	if again, err := s.LoginNameKey(ctx, []byte("second candidate")); err != nil || string(again) != "first candidate" {
		t.Errorf("LoginNameKey again: %q, %v; want the first key", again, err)
	}
}
