package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testReasonRaisedToKeyCompromise: a certificate revoked for another
// reason whose key is found compromised later can be revoked again for
// keyCompromise: the reason is raised, its revocation time stays (the CRL
// entry's date), the key is recorded compromised, its other certificates
// are swept and no new certificate of it is recorded valid. Every other
// change of a reason given for good changes nothing.
func testReasonRaisedToKeyCompromise(t *testing.T, s store.Store) {
	ctx := context.Background()
	derK, hashK := keyCert(t)
	at := t0.Add(10 * time.Minute)
	later := at.Add(time.Hour)
	certOf := func(serial string, der []byte) pki.Certificate {
		c := newCert(issuerA, serial, t0.Add(24*time.Hour))
		c.DER = der
		return c
	}
	for _, serial := range []string{"s0", "s1"} {
		mustRecord(t, s, issuance(certOf(serial, derK)))
	}
	for _, st := range []struct {
		serial string
		reason int
	}{{"s0", 4}, {"o0", 5}, {"o1", 3}, {"o2", 0}, {"o3", 9}} {
		if st.serial != "s0" {
			der, _ := keyCert(t)
			mustRecord(t, s, issuance(certOf(st.serial, der)))
		}
		if _, _, err := s.RevokeCertificate(ctx, issuerA, st.serial, st.reason, at, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}

	// Another reason given for good, a hold included, changes nothing.
	for _, st := range []struct {
		serial       string
		from, reason int
	}{{"s0", 4, 5}, {"s0", 4, 6}, {"s0", 4, 0}, {"o0", 5, 4}, {"o1", 3, 9}, {"o3", 9, 2}} {
		before := len(listAudit(t, s, store.AuditFilter{}))
		r, err := s.Revoke(ctx, issuerA, st.serial, st.reason, later, pki.AuditEvent{Type: pki.EventRevoked})
		if err != nil || r.Changed || r.Certificate.RevokeReason != st.from || len(listAudit(t, s, store.AuditFilter{})) != before {
			t.Errorf("%s, reason %d then %d: %+v, %v; want nothing changed", st.serial, st.from, st.reason, r, err)
		}
	}

	stateBefore := revocationState(t, s)[issuerA]
	ev := pki.AuditEvent{Time: later, Type: pki.EventRevoked, Actor: "cli:root", Profile: "default", SerialHex: "s0",
		IssuerID: issuerA, Subject: "CN=device-s0,O=scepter", Outcome: "success", Reason: "keyCompromise"}
	r, err := s.Revoke(ctx, issuerA, "s0", store.ReasonKeyCompromise, later, ev)
	if err != nil {
		t.Fatal(err)
	}
	wantAlso := []store.CertRef{{IssuerID: issuerA, SerialHex: "s1"}}
	if !r.Changed || !reflect.DeepEqual(r.AlsoRevoked, wantAlso) {
		t.Errorf("superseded, then keyCompromise: changed %v, also revoked %v; want true, %v", r.Changed, r.AlsoRevoked, wantAlso)
	}
	for _, st := range []struct {
		name, serial string
		at           time.Time
	}{
		{"raised, at its first revocation's time", "s0", at},
		{"its valid sibling, swept at the raise's time", "s1", later},
	} {
		c, err := s.Certificate(ctx, issuerA, st.serial)
		if err != nil || c.Status != pki.StatusRevoked || c.RevokeReason != store.ReasonKeyCompromise ||
			!c.RevokedAt.Equal(normTime(st.at)) || c.RevokedBy != "cli:root" {
			t.Errorf("%s: %+v, %v; want revoked for keyCompromise at %v by cli:root", st.name, c, err, st.at)
		}
	}
	if got := revocationState(t, s)[issuerA]; got <= stateBefore {
		t.Errorf("revocation state %d, then %d: the CRL and OCSP must learn of the raise", stateBefore, got)
	}
	crl, err := s.RevokedCertificates(ctx, issuerA, later)
	if err != nil {
		t.Fatal(err)
	}
	var entry store.RevokedEntry
	for _, e := range crl {
		if e.SerialHex == "s0" {
			entry = e
		}
	}
	if entry.Reason != store.ReasonKeyCompromise || !entry.RevokedAt.Equal(normTime(at)) {
		t.Errorf("CRL entry of s0: %+v, want keyCompromise at %v", entry, at)
	}
	want := ev
	want.Detail = store.ReasonRaisedDetail(4)
	if evs := listAudit(t, s, store.AuditFilter{Type: pki.EventRevoked, SerialHex: "s0"}); len(evs) == 0 {
		t.Error("no event of the raise")
	} else {
		sameEvent(t, "the raise's event", evs[0], want)
	}
	if evs := listAudit(t, s, store.AuditFilter{Type: pki.EventRevoked, SerialHex: "s1"}); len(evs) != 1 ||
		evs[0].Detail != store.SharesKeyDetail(issuerA, "s0") {
		t.Errorf("events of s1: %+v, want one naming s0", evs)
	}

	k, err := s.CompromisedKey(ctx, hashK)
	if err != nil || k.IssuerID != issuerA || k.SerialHex != "s0" || !k.RevokedAt.Equal(normTime(at)) {
		t.Errorf("compromised key: %+v, %v; want s0 at %v", k, err, at)
	}
	wantErr(t, "an issuance of the key", s.RecordIssuance(ctx, issuance(certOf("s2", derK))), store.ErrKeyCompromised)

	// keyCompromise is final: again, or another reason, changes nothing.
	for _, reason := range []int{store.ReasonKeyCompromise, 4, 6} {
		r, err := s.Revoke(ctx, issuerA, "s0", reason, later.Add(time.Hour), ev)
		if err != nil || r.Changed || r.Certificate.RevokeReason != store.ReasonKeyCompromise || len(r.AlsoRevoked) != 0 {
			t.Errorf("keyCompromise, then %d: %+v, %v; want nothing changed", reason, r, err)
		}
	}

	// Any reason but a hold and keyCompromise is raised alike.
	for serial, from := range map[string]int{"o0": 5, "o1": 3, "o2": 0, "o3": 9} {
		r, err := s.Revoke(ctx, issuerA, serial, store.ReasonKeyCompromise, later,
			pki.AuditEvent{Type: pki.EventRevoked, IssuerID: issuerA, SerialHex: serial})
		if err != nil || !r.Changed || r.Certificate.RevokeReason != store.ReasonKeyCompromise || !r.Certificate.RevokedAt.Equal(normTime(at)) {
			t.Errorf("%s, reason %d then keyCompromise: %+v, %v; want raised, at %v", serial, from, r, err, at)
		}
		if evs := listAudit(t, s, store.AuditFilter{Type: pki.EventRevoked, SerialHex: serial}); len(evs) == 0 ||
			evs[0].Detail != store.ReasonRaisedDetail(from) {
			t.Errorf("%s: events %+v, want the newest to say %q", serial, evs, store.ReasonRaisedDetail(from))
		}
	}
}
