// Package storetest is the conformance suite every store.Store driver must
// pass (SQLite now, PostgreSQL later). Drivers run it from their own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
//	}
//
// The suite pins the behaviour the store.Store comments promise, plus these
// points that every driver must share:
//   - times round-trip to the microsecond, in UTC;
//   - nil and empty SANs read back as nil;
//   - an audit event whose Time is zero takes the operation's time
//     (Issuance.Now, the revocation time, the challenge's CreatedAt);
//   - ids grow with insertion, so "newest first" is insertion order reversed;
//   - a challenge or a nonce is expired once now >= its expiry;
//   - a cursor used with the other order, or not from a page, is an error;
//   - an audit event whose Time is zero also takes a request's CreatedAt
//     (CreateRequest) or the decision's time (RejectRequest);
//   - CreateRequest stores a pending request (a zero Status means pending,
//     another status is an error) and needs a CSR, CreatedAt and ExpiresAt;
//     nil and empty ClientCert and ChallengeHash read back as nil;
//   - a request is returned until PurgeExpired removes it, even past its
//     ExpiresAt, and it is purged once now >= ExpiresAt;
//   - a decided request (issued or rejected) reads back with ExpiresAt its
//     retention (ExpiresAt less CreatedAt, as created) counted from its
//     DecidedAt, or as created when that is later: the retention of a
//     decided request counts from its decision;
//   - RecordIssuance appends only the events it is given: completing a
//     request or superseding a certificate adds none of its own;
//   - a certificate cannot supersede itself.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Run runs the suite. open must return a new, empty store for each call; Run
// closes it when the subtest ends (cleanups open registers with t.Cleanup,
// such as dropping a database, run after that Close). Subtests run in
// parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ReserveSerial", testReserveSerial},
		{"RecordIssuance", testRecordIssuance},
		{"RecordIssuanceConflictIsAtomic", testRecordIssuanceConflictIsAtomic},
		{"RecordIssuanceRegistersSerial", testRecordIssuanceRegistersSerial},
		{"RecordIssuanceChallenge", testRecordIssuanceChallenge},
		{"CertificateLookups", testCertificateLookups},
		{"RevokeCertificate", testRevokeCertificate},
		{"Challenges", testChallenges},
		{"Nonces", testNonces},
		{"NonceRefused", testNonceRefused},
		{"PurgeExpired", testPurgeExpired},
		{"Audit", testAudit},
		{"AuditTimeFilter", testAuditTimeFilter},
		{"AuditChain", testAuditChain},
		{"Unhold", testUnhold},
		{"RevokeAfterUnhold", testRevokeAfterUnhold},
		{"UnholdTimes", testUnholdTimes},
		{"CompromisedKeys", testCompromisedKeys},
		{"CompromisedKeyRevokesItsCertificates", testCompromisedKeyRevokesItsCertificates},
		{"IssuanceOfCompromisedKey", testIssuanceOfCompromisedKey},
		{"IssuanceRacesKeyCompromise", testIssuanceRacesKeyCompromise},
		{"IssuanceRacesReasonRaised", testIssuanceRacesReasonRaised},
		{"IssuanceOfOwnKey", testIssuanceOfOwnKey},
		{"IssuanceOfIssuingCAKey", testIssuanceOfIssuingCAKey},
		{"RequestOfOwnKey", testRequestOfOwnKey},
		{"CertificatesOfTransaction", testCertificatesOfTransaction},
		{"OtherReasonsLeaveTheKey", testOtherReasonsLeaveTheKey},
		{"ReasonRaisedToKeyCompromise", testReasonRaisedToKeyCompromise},
		{"RevocationState", testRevocationState},
		{"CRLs", testCRLs},
		{"Users", testUsers},
		{"UnknownLoginFailures", testUnknownLoginFailures},
		{"Tokens", testTokens},
		{"Sessions", testSessions},
		{"DeleteChallenge", testDeleteChallenge},
		{"ListFilters", testListFilters},
		{"SearchSerialAsPrinted", testSearchSerialAsPrinted},
		{"SearchMatchesValues", testSearchMatchesValues},
		{"RenewalsOf", testRenewalsOf},
		{"ListRenewed", testListRenewed},
		{"Dashboard", testDashboard},
		{"DashboardCountsCertificates", testDashboardCountsCertificates},
		{"DashboardExactAtNow", testDashboardExactAtNow},
		{"AuditLimits", testAuditLimits},
		{"ListCertificatesPagination", testListPagination},
		{"ListCertificatesStableUnderInserts", testListStableUnderInserts},
		{"ListCertificatesLimits", testListLimits},
		{"ListCertificatesBadCursor", testListBadCursor},
		{"ConcurrentIssuance", testConcurrentIssuance},
		{"ConcurrentReserveSameSerial", testConcurrentReserveSameSerial},
		{"TransactionClaims", testTransactionClaims},
		{"TransactionClaimsPurge", testTransactionClaimsPurge},
		{"TransactionClaimOf", testTransactionClaimOf},
		{"ConcurrentTransactionClaims", testConcurrentTransactionClaims},
		{"ConcurrentChallengeConsumption", testConcurrentChallengeConsumption},
		{"CreateRequest", testCreateRequest},
		{"PendingUniqueness", testPendingUniqueness},
		{"ConcurrentCreateRequest", testConcurrentCreateRequest},
		{"CreateRequestConsumesChallenge", testCreateRequestConsumesChallenge},
		{"RequestLookups", testRequestLookups},
		{"RequestsKeyedByKey", testRequestsKeyedByKey},
		{"ListRequests", testListRequests},
		{"ListRequestsLimits", testListRequestsLimits},
		{"ListChallengesPages", testListChallengesPages},
		{"APageContinuesAfterItsLastItemWasDeleted", testPageAfterDeletedItem},
		{"RejectRequest", testRejectRequest},
		{"CompleteRequest", testCompleteRequest},
		{"ApprovedRequestNamesItsChallenge", testApprovedRequestNamesItsChallenge},
		{"ConcurrentApproval", testConcurrentApproval},
		{"Supersede", testSupersede},
		{"Renews", testRenews},
		{"PurgeRequests", testPurgeRequests},
		{"ConcurrentPurge", testConcurrentPurge},
		{"DecidedRequestRetention", testDecidedRequestRetention},
		{"ESTUsers", testESTUsers},
		{"ChallengeBindingAndLock", testChallengeBindingAndLock},
		{"CanceledContext", testCanceledContext},
		{"Notifications", testNotifications},
		{"Ping", testPing},
		{"CAGenerations", testCAGenerations},
		{"CAPromotion", testCAPromotion},
		{"CADiscard", testCADiscard},
		{"BadTextLookups", testBadTextLookups},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// t0 is the suite's clock: a fixed instant with sub-second digits, so that
// time round-trips are really checked to the microsecond.
var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

const (
	issuerA = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	issuerB = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
)

// newCert returns a fully populated valid record, so a round trip checks
// every field.
func newCert(issuer, serial string, notAfter time.Time) pki.Certificate {
	return pki.Certificate{
		SerialHex:     serial,
		IssuerID:      issuer,
		Issuer:        "CN=Test CA,O=scepter",
		Subject:       "CN=device-" + serial + ",O=scepter",
		SANs:          []string{"device-" + serial + ".example", "192.0.2.1"},
		NotBefore:     notAfter.Add(-365 * 24 * time.Hour),
		NotAfter:      notAfter,
		Status:        pki.StatusValid,
		Profile:       "default",
		Protocol:      pki.ProtocolSCEP,
		Source:        pki.SourceIssued,
		RequesterAddr: "198.51.100.7:51234",
		TransactionID: "tx-" + serial,
		KeyType:       "p256",
		CreatedAt:     t0,
		DER:           []byte{0x30, 0x82, 0x01, byte(len(serial)), 'd', 'e', 'r'},
	}
}

func issuance(c pki.Certificate, events ...pki.AuditEvent) store.Issuance {
	return store.Issuance{Certificate: c, Now: t0, Events: events}
}

func issuedEvent(c pki.Certificate) pki.AuditEvent {
	return pki.AuditEvent{
		Type:          pki.EventIssued,
		Actor:         "scep:192.0.2.1",
		Profile:       c.Profile,
		SerialHex:     c.SerialHex,
		IssuerID:      c.IssuerID,
		Subject:       c.Subject,
		TransactionID: c.TransactionID,
		Outcome:       "success",
		Detail:        `{"k":"v"}`,
	}
}

func mustRecord(t *testing.T, s store.Store, in store.Issuance) {
	t.Helper()
	if err := s.RecordIssuance(context.Background(), in); err != nil {
		t.Fatalf("RecordIssuance(%s/%s): %v", in.Certificate.IssuerID, in.Certificate.SerialHex, err)
	}
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s: unexpected error %v", what, got)
	case want != nil && !errors.Is(got, want):
		t.Errorf("%s: error %v, want %v", what, got, want)
	}
}

// normTime keeps what every driver stores: microseconds, UTC.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

func normCert(c pki.Certificate) pki.Certificate {
	c.NotBefore = normTime(c.NotBefore)
	c.NotAfter = normTime(c.NotAfter)
	c.RevokedAt = normTime(c.RevokedAt)
	c.CreatedAt = normTime(c.CreatedAt)
	if len(c.SANs) == 0 {
		c.SANs = nil
	}
	return c
}

func sameCert(t *testing.T, what string, got, want pki.Certificate) {
	t.Helper()
	if g, w := normCert(got), normCert(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// sameEvent compares everything but the store-assigned ID.
func sameEvent(t *testing.T, what string, got, want pki.AuditEvent) {
	t.Helper()
	want.ID = got.ID
	want.Time = normTime(want.Time)
	got.Time = normTime(got.Time)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func listAudit(t *testing.T, s store.Store, f store.AuditFilter) []pki.AuditEvent {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), f)
	if err != nil {
		t.Fatalf("ListAudit(%+v): %v", f, err)
	}
	return evs
}

func serial(i int) string { return fmt.Sprintf("%x", 0x1000+i) }

func testReserveSerial(t *testing.T, s store.Store) {
	ctx := context.Background()
	steps := []struct {
		name           string
		issuer, serial string
		want           error
	}{
		{"first reservation", issuerA, "0a1b", nil},
		{"same issuer and serial", issuerA, "0a1b", store.ErrConflict},
		{"same serial under another issuer", issuerB, "0a1b", nil},
		{"another serial", issuerA, "0a1c", nil},
		{"taken again later", issuerB, "0a1b", store.ErrConflict},
	}
	for _, st := range steps {
		err := s.ReserveSerial(ctx, st.issuer, st.serial, nil, t0)
		wantErr(t, st.name, err, st.want)
	}

	// A reservation stays even when the issuance it was for never happens
	// or is recorded later.
	mustRecord(t, s, issuance(newCert(issuerA, "0a1b", t0.Add(time.Hour))))
	wantErr(t, "reserved serial after issuance", s.ReserveSerial(ctx, issuerA, "0a1b", nil, t0), store.ErrConflict)
}

func testRecordIssuance(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newCert(issuerA, "01", t0.Add(90*24*time.Hour))
	c.RenewedFrom = issuerA + ":00ff"
	ev1 := issuedEvent(c) // zero Time: takes in.Now
	ev2 := issuedEvent(c)
	ev2.Type = pki.EventChallengeUsed
	ev2.Time = t0.Add(-time.Second) // kept as given
	in := store.Issuance{Certificate: c, Now: t0.Add(time.Minute), Events: []pki.AuditEvent{ev1, ev2}}
	mustRecord(t, s, in)

	got, err := s.Certificate(ctx, issuerA, "01")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	sameCert(t, "Certificate after RecordIssuance", *got, c)

	evs := listAudit(t, s, store.AuditFilter{})
	if len(evs) != 2 {
		t.Fatalf("ListAudit: %d events, want 2", len(evs))
	}
	ev1.Time = in.Now
	sameEvent(t, "first event (newest is listed first)", evs[1], ev1)
	sameEvent(t, "second event", evs[0], ev2)
	if evs[0].ID <= evs[1].ID || evs[1].ID <= 0 {
		t.Errorf("event IDs %d, %d: want positive and increasing", evs[1].ID, evs[0].ID)
	}

	// Empty SANs, a revoked record (an import) and no events are stored as
	// given.
	c2 := newCert(issuerB, "02", t0.Add(24*time.Hour))
	c2.SANs = []string{}
	c2.Status = pki.StatusRevoked
	c2.RevokedAt = t0
	c2.RevokeReason = 4
	c2.Source = "imported"
	mustRecord(t, s, store.Issuance{Certificate: c2, Now: t0})
	got, err = s.Certificate(ctx, issuerB, "02")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	sameCert(t, "revoked record", *got, c2)

	// A NotAfter far in the future (RFC 5280's 99991231235959Z) round-trips.
	c3 := newCert(issuerA, "03", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC))
	mustRecord(t, s, issuance(c3))
	got, err = s.Certificate(ctx, issuerA, "03")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	sameCert(t, "NotAfter 9999-12-31", *got, c3)
}

func testRecordIssuanceConflictIsAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newCert(issuerA, "0c", t0.Add(time.Hour))
	mustRecord(t, s, issuance(c, issuedEvent(c)))
	ch := pki.Challenge{ID: "ch-1", Hash: []byte("hash-of-secret-1"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatalf("CreateChallenge: %v", err)
	}
	before := listAudit(t, s, store.AuditFilter{})

	dup := c
	dup.Subject = "CN=other"
	in := issuance(dup, issuedEvent(dup))
	in.ConsumeChallengeHash = ch.Hash
	wantErr(t, "duplicate issuer and serial", s.RecordIssuance(ctx, in), store.ErrConflict)

	if got, err := s.Certificate(ctx, issuerA, "0c"); err != nil || got.Subject != c.Subject {
		t.Errorf("first record changed: %+v, %v", got, err)
	}
	if _, err := s.LookupChallenge(ctx, ch.Hash, t0); err != nil {
		t.Errorf("challenge consumed by a failed issuance: %v", err)
	}
	if after := listAudit(t, s, store.AuditFilter{}); len(after) != len(before) {
		t.Errorf("failed issuance left events: %d before, %d after", len(before), len(after))
	}
}

func testRecordIssuanceChallenge(t *testing.T, s store.Store) {
	ctx := context.Background()
	mk := func(id string, expires time.Time) pki.Challenge {
		return pki.Challenge{ID: id, Hash: []byte("sha256-of-" + id), Profile: "default",
			CreatedAt: t0.Add(-time.Hour), ExpiresAt: expires, CreatedBy: "cli:root"}
	}
	live := mk("live", t0.Add(time.Hour))
	atExpiry := mk("at-expiry", t0)
	expired := mk("expired", t0.Add(-time.Second))
	used := mk("used", t0.Add(time.Hour))
	used.ConsumedAt = t0.Add(-time.Minute)
	for _, ch := range []pki.Challenge{live, atExpiry, expired, used} {
		if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
			t.Fatalf("CreateChallenge(%s): %v", ch.ID, err)
		}
	}

	cases := []struct {
		name   string
		serial string
		hash   []byte
		want   error
	}{
		{"unknown hash", "10", []byte("no-such-hash"), store.ErrChallengeUnusable},
		{"expires exactly now", "11", atExpiry.Hash, store.ErrChallengeUnusable},
		{"expired", "12", expired.Hash, store.ErrChallengeUnusable},
		{"consumed before", "13", used.Hash, store.ErrChallengeUnusable},
		{"live", "14", live.Hash, nil},
		{"live, second use", "15", live.Hash, store.ErrChallengeUnusable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCert(issuerA, tc.serial, t0.Add(time.Hour))
			in := issuance(c, issuedEvent(c))
			in.ConsumeChallengeHash = tc.hash
			err := s.RecordIssuance(ctx, in)
			wantErr(t, "RecordIssuance", err, tc.want)
			_, cerr := s.Certificate(ctx, issuerA, tc.serial)
			evs := listAudit(t, s, store.AuditFilter{SerialHex: tc.serial})
			if tc.want != nil {
				wantErr(t, "certificate of a rolled-back issuance", cerr, store.ErrNotFound)
				if len(evs) != 0 {
					t.Errorf("rolled-back issuance left %d events", len(evs))
				}
				return
			}
			if cerr != nil {
				t.Errorf("Certificate: %v", cerr)
			}
			if len(evs) != 1 {
				t.Errorf("%d events, want 1", len(evs))
			}
		})
	}
	wantErr(t, "LookupChallenge after consumption",
		func() error { _, err := s.LookupChallenge(ctx, live.Hash, t0); return err }(), store.ErrChallengeUnusable)

	// The challenge names the certificate it was used up for, and a
	// second use that failed did not change it: a device whose answer was
	// lost is answered with that certificate.
	for _, tc := range []struct {
		name string
		hash []byte
		want string
	}{
		{"used for a certificate", live.Hash, issuerA + ":14"},
		{"consumed before, by nothing named", used.Hash, ""},
		{"never used", expired.Hash, ""},
		{"unknown", []byte("no-such-hash"), ""},
	} {
		got, err := s.ChallengeIssued(ctx, tc.hash)
		if err != nil || got != tc.want {
			t.Errorf("ChallengeIssued(%s) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func testCertificateLookups(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := newCert(issuerA, "7f", t0.Add(time.Hour))
	b := newCert(issuerB, "7f", t0.Add(2*time.Hour))
	b.Subject = "CN=other"
	// Issuers before, between and after A and B in key order: the lookup by
	// serial alone walks the issuers, and must find a serial under any.
	first := newCert(strings.Repeat("0", 64), "81", t0.Add(3*time.Hour))
	middle := newCert(strings.Repeat("a1", 31)+"a2", "81", t0.Add(4*time.Hour))
	last := newCert(strings.Repeat("f", 64), "82", t0.Add(5*time.Hour))
	for _, c := range []pki.Certificate{a, b, first, middle, last} {
		mustRecord(t, s, issuance(c))
	}

	lookups := []struct {
		name           string
		issuer, serial string
		want           error
		wantSubject    string
	}{
		{"issuer A", issuerA, "7f", nil, a.Subject},
		{"issuer B", issuerB, "7f", nil, b.Subject},
		{"unknown serial", issuerA, "80", store.ErrNotFound, ""},
		{"unknown issuer", "c3", "7f", store.ErrNotFound, ""},
	}
	for _, l := range lookups {
		got, err := s.Certificate(ctx, l.issuer, l.serial)
		wantErr(t, "Certificate "+l.name, err, l.want)
		if err == nil && got.Subject != l.wantSubject {
			t.Errorf("Certificate %s: subject %q, want %q", l.name, got.Subject, l.wantSubject)
		}
	}

	bySerial := []struct {
		serial string
		want   []pki.Certificate
	}{
		{"7f", []pki.Certificate{a, b}},
		{"80", nil},
		{"81", []pki.Certificate{first, middle}},
		{"82", []pki.Certificate{last}},
	}
	for _, bs := range bySerial {
		got, err := s.CertificatesBySerial(ctx, bs.serial)
		if err != nil {
			t.Fatalf("CertificatesBySerial(%s): %v", bs.serial, err)
		}
		if len(got) != len(bs.want) {
			t.Fatalf("CertificatesBySerial(%s): %d records, want %d", bs.serial, len(got), len(bs.want))
		}
		// Order is not part of the contract: match by issuer.
		for _, w := range bs.want {
			found := false
			for _, g := range got {
				if g.IssuerID == w.IssuerID {
					sameCert(t, "CertificatesBySerial", g, w)
					found = true
				}
			}
			if !found {
				t.Errorf("CertificatesBySerial(%s): no record of issuer %s", bs.serial, w.IssuerID)
			}
		}
	}
}

func testChallenges(t *testing.T, s store.Store) {
	ctx := context.Background()
	ch := pki.Challenge{ID: "c-1", Hash: []byte("h-1"), Profile: "wifi", CreatedAt: t0,
		ExpiresAt: t0.Add(time.Hour), CreatedBy: "api:alice"}
	ev := pki.AuditEvent{Type: pki.EventChallengeCreated, Actor: "api:alice", Profile: "wifi", Outcome: "success"}
	if err := s.CreateChallenge(ctx, ch, ev); err != nil {
		t.Fatalf("CreateChallenge: %v", err)
	}
	evs := listAudit(t, s, store.AuditFilter{Type: pki.EventChallengeCreated})
	if len(evs) != 1 {
		t.Fatalf("%d challenge.created events, want 1", len(evs))
	}
	ev.Time = ch.CreatedAt // zero Time takes CreatedAt
	sameEvent(t, "challenge.created event", evs[0], ev)

	creates := []struct {
		name string
		ch   pki.Challenge
		want error
	}{
		{"same ID", pki.Challenge{ID: "c-1", Hash: []byte("h-other"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, store.ErrConflict},
		{"same hash", pki.Challenge{ID: "c-2", Hash: []byte("h-1"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, store.ErrConflict},
		{"distinct", pki.Challenge{ID: "c-3", Hash: []byte("h-3"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, nil},
	}
	for _, c := range creates {
		err := s.CreateChallenge(ctx, c.ch, pki.AuditEvent{Type: pki.EventChallengeCreated})
		wantErr(t, "CreateChallenge "+c.name, err, c.want)
	}
	if n := len(listAudit(t, s, store.AuditFilter{Type: pki.EventChallengeCreated})); n != 2 {
		t.Errorf("%d challenge.created events, want 2 (failed creations append none)", n)
	}

	lookups := []struct {
		name string
		hash []byte
		now  time.Time
		want error
	}{
		{"live", ch.Hash, t0.Add(30 * time.Minute), nil},
		{"live again: lookup consumes nothing", ch.Hash, t0.Add(30 * time.Minute), nil},
		{"unknown", []byte("h-unknown"), t0, store.ErrChallengeUnusable},
		{"at expiry", ch.Hash, ch.ExpiresAt, store.ErrChallengeUnusable},
		{"after expiry", ch.Hash, ch.ExpiresAt.Add(time.Microsecond), store.ErrChallengeUnusable},
	}
	for _, l := range lookups {
		got, err := s.LookupChallenge(ctx, l.hash, l.now)
		wantErr(t, "LookupChallenge "+l.name, err, l.want)
		if err == nil {
			want := ch
			want.CreatedAt, want.ExpiresAt = normTime(ch.CreatedAt), normTime(ch.ExpiresAt)
			got.CreatedAt, got.ExpiresAt = normTime(got.CreatedAt), normTime(got.ExpiresAt)
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("LookupChallenge %s:\n got %+v\nwant %+v", l.name, *got, want)
			}
		}
	}

	// Consumed by an issuance: unusable from then on.
	in := issuance(newCert(issuerA, "cc", t0.Add(time.Hour)))
	in.ConsumeChallengeHash = ch.Hash
	mustRecord(t, s, in)
	_, err := s.LookupChallenge(ctx, ch.Hash, t0)
	wantErr(t, "LookupChallenge consumed", err, store.ErrChallengeUnusable)
}

func testNonces(t *testing.T, s store.Store) {
	ctx := context.Background()
	n1, n2 := []byte("nonce-0000000001"), []byte("nonce-0000000002")
	exp := t0.Add(time.Hour)
	steps := []struct {
		name    string
		tx      string
		nonce   []byte
		now     time.Time
		expires time.Time
		want    error
	}{
		{"first message", "tx1", n1, t0, exp, nil},
		{"replay", "tx1", n1, t0.Add(time.Minute), exp, store.ErrConflict},
		{"new nonce, same transaction", "tx1", n2, t0, exp, nil},
		{"same nonce, other transaction", "tx2", n1, t0, exp, nil},
		{"replay just before expiry", "tx1", n1, exp.Add(-time.Microsecond), exp, store.ErrConflict},
		{"expired pair is replaced", "tx1", n1, exp, exp.Add(time.Hour), nil},
		{"replacement is remembered", "tx1", n1, exp.Add(time.Minute), exp.Add(time.Hour), store.ErrConflict},
	}
	for _, st := range steps {
		err := s.RememberNonce(ctx, st.tx, st.nonce, st.now, st.expires)
		wantErr(t, st.name, err, st.want)
	}
	// A replay's conflict says until when its pair is remembered (the
	// first expiry, not the replay's), from which the caller tells when
	// the pair was first remembered.
	var seen *store.NonceSeen
	if err := s.RememberNonce(ctx, "tx2", n1, t0.Add(time.Minute), exp.Add(time.Minute)); !errors.As(err, &seen) || !seen.Expires.Equal(exp) {
		t.Errorf("replay: error %v, want a NonceSeen until %s", err, exp)
	}
	// A pair forgotten is accepted again, and remembered again; forgetting
	// touches no other pair, and a pair not remembered is nothing to do.
	wantErr(t, "forget", s.ForgetNonce(ctx, "tx1", n1), nil)
	wantErr(t, "forget again", s.ForgetNonce(ctx, "tx1", n1), nil)
	wantErr(t, "forgotten pair", s.RememberNonce(ctx, "tx1", n1, exp, exp.Add(time.Hour)), nil)
	wantErr(t, "forgotten pair's replay", s.RememberNonce(ctx, "tx1", n1, exp, exp.Add(time.Hour)), store.ErrConflict)
	wantErr(t, "other nonce kept", s.RememberNonce(ctx, "tx1", n2, t0, exp), store.ErrConflict)
	wantErr(t, "other transaction kept", s.RememberNonce(ctx, "tx2", n1, t0, exp), store.ErrConflict)
}

func testPurgeExpired(t *testing.T, s store.Store) {
	ctx := context.Background()
	short, long := t0.Add(time.Minute), t0.Add(time.Hour)
	if err := s.RememberNonce(ctx, "tx", []byte("short"), t0, short); err != nil {
		t.Fatal(err)
	}
	if err := s.RememberNonce(ctx, "tx", []byte("long"), t0, long); err != nil {
		t.Fatal(err)
	}
	ch := pki.Challenge{ID: "c", Hash: []byte("h"), CreatedAt: t0, ExpiresAt: long}
	if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReserveSerial(ctx, issuerA, "5e", nil, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeExpired(ctx, short); err != nil {
		t.Fatalf("PurgeExpired: %v", err)
	}
	// Observed at a time before either expiry: the purged pair is gone (so
	// accepted), the live one is still refused.
	wantErr(t, "purged nonce", s.RememberNonce(ctx, "tx", []byte("short"), t0, short), nil)
	wantErr(t, "unexpired nonce kept", s.RememberNonce(ctx, "tx", []byte("long"), t0, long), store.ErrConflict)
	if _, err := s.LookupChallenge(ctx, ch.Hash, t0); err != nil {
		t.Errorf("live challenge purged: %v", err)
	}
	wantErr(t, "serial reservations are never purged", s.ReserveSerial(ctx, issuerA, "5e", nil, t0), store.ErrConflict)
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	var all []pki.AuditEvent // in insertion order
	for i := range 30 {
		e := pki.AuditEvent{
			Time:          t0.Add(time.Duration(i) * time.Second),
			Type:          []string{pki.EventIssued, pki.EventEnrollFailed, pki.EventChallengeCreated}[i%3],
			Actor:         "scep:192.0.2.1",
			Profile:       "default",
			SerialHex:     []string{"aa", "bb"}[i%2],
			IssuerID:      issuerA,
			Subject:       "CN=x",
			TransactionID: fmt.Sprintf("tx-%d", i),
			Outcome:       "failure",
			Reason:        "bad challenge",
			Detail:        fmt.Sprintf(`{"i":%d}`, i),
		}
		all = append(all, e)
	}
	// One call with several events, then one call per event.
	if err := s.AppendAudit(ctx, all[:10]...); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	for _, e := range all[10:] {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	if err := s.AppendAudit(ctx); err != nil {
		t.Errorf("AppendAudit with no events: %v", err)
	}

	newest := listAudit(t, s, store.AuditFilter{})
	if len(newest) != len(all) {
		t.Fatalf("ListAudit: %d events, want %d", len(newest), len(all))
	}
	for i, e := range newest {
		sameEvent(t, fmt.Sprintf("event %d", i), e, all[len(all)-1-i])
		if i > 0 && e.ID >= newest[i-1].ID {
			t.Errorf("event %d: ID %d not below the previous %d", i, e.ID, newest[i-1].ID)
		}
	}
	idOf := func(i int) int64 { return newest[len(all)-1-i].ID } // ID of all[i]

	match := func(f store.AuditFilter) []pki.AuditEvent {
		var out []pki.AuditEvent
		for i := len(all) - 1; i >= 0; i-- {
			e := all[i]
			if (f.Type == "" || e.Type == f.Type) && (f.SerialHex == "" || e.SerialHex == f.SerialHex) &&
				(f.BeforeID == 0 || idOf(i) < f.BeforeID) {
				out = append(out, e)
			}
		}
		if f.Limit > 0 && len(out) > f.Limit {
			out = out[:f.Limit]
		}
		return out
	}
	filters := []struct {
		name string
		f    store.AuditFilter
	}{
		{"type", store.AuditFilter{Type: pki.EventEnrollFailed}},
		{"serial", store.AuditFilter{SerialHex: "bb"}},
		{"type and serial", store.AuditFilter{Type: pki.EventIssued, SerialHex: "aa"}},
		{"unknown type", store.AuditFilter{Type: "no.such"}},
		{"limit", store.AuditFilter{Limit: 7}},
		{"before", store.AuditFilter{BeforeID: idOf(12)}},
		{"before, type, limit", store.AuditFilter{BeforeID: idOf(25), Type: pki.EventIssued, Limit: 3}},
	}
	for _, fc := range filters {
		got := listAudit(t, s, fc.f)
		want := match(fc.f)
		if len(got) != len(want) {
			t.Errorf("%s: %d events, want %d", fc.name, len(got), len(want))
			continue
		}
		for i := range got {
			sameEvent(t, fmt.Sprintf("%s: event %d", fc.name, i), got[i], want[i])
		}
	}

	// Paging with BeforeID walks everything once.
	var walked []pki.AuditEvent
	f := store.AuditFilter{Limit: 4}
	for {
		page := listAudit(t, s, f)
		if len(page) == 0 {
			break
		}
		walked = append(walked, page...)
		f.BeforeID = page[len(page)-1].ID
	}
	if len(walked) != len(all) {
		t.Errorf("paging by BeforeID: %d events, want %d", len(walked), len(all))
	}
}

func testAuditLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	evs := make([]pki.AuditEvent, 1050)
	for i := range evs {
		evs[i] = pki.AuditEvent{Time: t0, Type: "bulk", Outcome: "success"}
	}
	if err := s.AppendAudit(ctx, evs...); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	for _, lc := range []struct{ limit, want int }{{0, 100}, {-1, 100}, {1, 1}, {1000, 1000}, {5000, 1000}} {
		if n := len(listAudit(t, s, store.AuditFilter{Limit: lc.limit})); n != lc.want {
			t.Errorf("ListAudit(Limit %d): %d events, want %d", lc.limit, n, lc.want)
		}
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := newCert(issuerA, "dd", t0.Add(time.Hour))
	calls := map[string]error{
		"ReserveSerial":    s.ReserveSerial(ctx, issuerA, "dd", nil, t0),
		"RecordIssuance":   s.RecordIssuance(ctx, issuance(c)),
		"RememberNonce":    s.RememberNonce(ctx, "tx", []byte("n"), t0, t0.Add(time.Hour)),
		"ForgetNonce":      s.ForgetNonce(ctx, "tx", []byte("n")),
		"MarkNonceRefused": s.MarkNonceRefused(ctx, "tx", []byte("n")),
		"AppendAudit":      s.AppendAudit(ctx, pki.AuditEvent{Time: t0, Type: "x"}),
		"CreateRequest":    s.CreateRequest(ctx, newRequest("dd", "default", "tx-dd"), nil, pki.AuditEvent{Type: "x"}),
		"RejectRequest":    s.RejectRequest(ctx, "dd", "x", "cli:root", t0, pki.AuditEvent{Type: "x"}),
	}
	_, _, calls["ListRequests"] = s.ListRequests(ctx, store.RequestFilter{})
	_, calls["Request"] = s.Request(ctx, "dd")
	_, calls["ListCertificates"] = func() ([]pki.Certificate, error) {
		certs, _, err := s.ListCertificates(ctx, store.CertFilter{})
		return certs, err
	}()
	for name, err := range calls {
		if err == nil {
			t.Errorf("%s with a canceled context: no error", name)
		}
	}
	// Nothing was written.
	bg := context.Background()
	if err := s.ReserveSerial(bg, issuerA, "dd", nil, t0); err != nil {
		t.Errorf("serial reserved by a canceled call: %v", err)
	}
	if _, err := s.Certificate(bg, issuerA, "dd"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("certificate recorded by a canceled call: %v", err)
	}
	if _, err := s.Request(bg, "dd"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("request created by a canceled call: %v", err)
	}
}

// RecordIssuance registers the serial itself (one durable transaction per
// issuance): the serial cannot be reserved afterwards, a serial reserved
// before does not stop it, and the same serial cannot be recorded twice.
func testRecordIssuanceRegistersSerial(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newCert(issuerA, "5e71a1", t0.Add(time.Hour))
	if err := s.RecordIssuance(ctx, issuance(c, issuedEvent(c))); err != nil {
		t.Fatal(err)
	}
	if err := s.ReserveSerial(ctx, issuerA, "5e71a1", nil, t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ReserveSerial after RecordIssuance: %v, want ErrConflict", err)
	}
	dup := newCert(issuerA, "5e71a1", t0.Add(2*time.Hour))
	if err := s.RecordIssuance(ctx, issuance(dup, issuedEvent(dup))); !errors.Is(err, store.ErrConflict) {
		t.Errorf("recording the serial twice: %v, want ErrConflict", err)
	}
	if err := s.ReserveSerial(ctx, issuerA, "5e71a2", nil, t0); err != nil {
		t.Fatal(err)
	}
	reserved := newCert(issuerA, "5e71a2", t0.Add(time.Hour))
	if err := s.RecordIssuance(ctx, issuance(reserved, issuedEvent(reserved))); err != nil {
		t.Errorf("recording a reserved serial: %v", err)
	}
}
