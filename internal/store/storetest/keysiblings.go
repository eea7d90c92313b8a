package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testCompromisedKeyRevokesItsCertificates: a revocation for
// keyCompromise revokes, in its transaction, every other unexpired
// certificate of the key not revoked for good, under any issuer and
// profile (CA/B Forum BR §4.9.1.1), each with its own event; expired
// ones, ones revoked for good, and other keys' are left as they are.
func testCompromisedKeyRevokesItsCertificates(t *testing.T, s store.Store) {
	ctx := context.Background()
	derK, _ := keyCert(t)
	derL, _ := keyCert(t)
	at := t0.Add(10 * time.Minute)
	held := t0.Add(-time.Minute)
	certOf := func(issuer, serial, profile string, der []byte, notAfter time.Time) pki.Certificate {
		c := newCert(issuer, serial, notAfter)
		c.DER, c.Profile = der, profile
		return c
	}
	old := certOf(issuerA, "k0", "default", derK, t0.Add(24*time.Hour))
	renewed := certOf(issuerA, "k1", "default", derK, t0.Add(48*time.Hour)) // the renewal, of the same key
	renewed.RenewedFrom = "k0"
	otherProfile := certOf(issuerB, "k2", "wifi", derK, t0.Add(24*time.Hour))
	onHold := certOf(issuerA, "k3", "default", derK, t0.Add(24*time.Hour))
	expired := certOf(issuerA, "k4", "default", derK, at.Add(-time.Second))
	superseded := certOf(issuerA, "k5", "default", derK, t0.Add(24*time.Hour))
	superseded.Status, superseded.RevokedAt, superseded.RevokeReason = pki.StatusRevoked, held, 4
	otherKey := certOf(issuerA, "l0", "default", derL, t0.Add(24*time.Hour))
	for _, c := range []pki.Certificate{old, renewed, otherProfile, onHold, expired, superseded, otherKey} {
		mustRecord(t, s, issuance(c))
	}
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "k3", 6, held, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	before, err := s.RevocationState(ctx)
	if err != nil {
		t.Fatal(err)
	}

	ev := pki.AuditEvent{Time: at, Type: pki.EventRevoked, Actor: "cli:root", Profile: "default", SerialHex: "k1",
		IssuerID: issuerA, Subject: renewed.Subject, Outcome: "success", Reason: "keyCompromise"}
	r, err := s.Revoke(ctx, issuerA, "k1", store.ReasonKeyCompromise, at, ev)
	if err != nil {
		t.Fatal(err)
	}
	wantAlso := []store.CertRef{{IssuerID: issuerA, SerialHex: "k0"}, {IssuerID: issuerA, SerialHex: "k3"},
		{IssuerID: issuerB, SerialHex: "k2"}}
	if !r.Changed || r.Certificate.RevokeReason != 1 || !reflect.DeepEqual(r.AlsoRevoked, wantAlso) {
		t.Errorf("Revoke: changed %v, reason %d, also revoked %v; want true, 1, %v", r.Changed, r.Certificate.RevokeReason, r.AlsoRevoked, wantAlso)
	}

	type want struct {
		status pki.CertStatus
		reason int
		at     time.Time
		by     string
	}
	revokedAt := func(t time.Time) want { return want{pki.StatusRevoked, 1, t, "cli:root"} }
	for _, st := range []struct {
		name, issuer, serial string
		want                 want
	}{
		{"the renewal revoked", issuerA, "k1", revokedAt(at)},
		{"its predecessor, of the same key", issuerA, "k0", revokedAt(at)},
		{"another issuer's and profile's", issuerB, "k2", revokedAt(at)},
		{"one on hold keeps the hold's time", issuerA, "k3", revokedAt(held)},
		{"an expired one is left", issuerA, "k4", want{pki.StatusValid, 0, time.Time{}, ""}},
		{"one revoked for good is left", issuerA, "k5", want{pki.StatusRevoked, 4, held, ""}},
		{"another key's is left", issuerA, "l0", want{pki.StatusValid, 0, time.Time{}, ""}},
	} {
		c, err := s.Certificate(ctx, st.issuer, st.serial)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := want{c.Status, c.RevokeReason, c.RevokedAt, c.RevokedBy}
		if got.status != st.want.status || got.reason != st.want.reason || !got.at.Equal(normTime(st.want.at)) || got.by != st.want.by {
			t.Errorf("%s: %+v, want %+v", st.name, got, st.want)
		}
	}

	// Each has its own event, naming the certificate revoked.
	for serial, detail := range map[string]string{
		"k0": store.SharesKeyDetail(issuerA, "k1"),
		"k2": store.SharesKeyDetail(issuerA, "k1"),
		"k3": store.DetailHoldMadePermanent + "; " + store.SharesKeyDetail(issuerA, "k1"),
	} {
		var found bool
		for _, e := range listAudit(t, s, store.AuditFilter{Type: pki.EventRevoked, SerialHex: serial}) {
			if e.Detail == detail && e.Actor == "cli:root" && e.Reason == "keyCompromise" && e.Outcome == "success" &&
				e.Time.Equal(normTime(at)) && e.Subject == "CN=device-"+serial+",O=scepter" {
				found = true
			}
		}
		if !found {
			t.Errorf("no revocation event of %s with detail %q", serial, detail)
		}
	}
	if evs := listAudit(t, s, store.AuditFilter{Type: pki.EventRevoked, SerialHex: "k1"}); len(evs) != 1 || evs[0].Detail != "" {
		t.Errorf("events of k1: %+v, want its own, without detail", evs)
	}

	// The CRLs and the OCSP cache of both issuers learn of it.
	after, err := s.RevocationState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after[issuerA] <= before[issuerA] || after[issuerB] <= before[issuerB] {
		t.Errorf("revocation state %v, then %v: both issuers' must move", before, after)
	}
	crl, err := s.RevokedCertificates(ctx, issuerB, at)
	if err != nil || len(crl) != 1 || crl[0].SerialHex != "k2" || crl[0].Reason != 1 || !crl[0].RevokedAt.Equal(normTime(at)) {
		t.Errorf("issuer B's CRL entries: %+v, %v; want k2, keyCompromise, at %v", crl, err, at)
	}

	// Revoking again changes nothing.
	r, err = s.Revoke(ctx, issuerA, "k1", store.ReasonKeyCompromise, at.Add(time.Hour), ev)
	if err != nil || r.Changed || len(r.AlsoRevoked) != 0 {
		t.Errorf("revoking again: %+v, %v; want nothing changed", r, err)
	}
}

// testOtherReasonsLeaveTheKey: a revocation for another reason, a hold
// included, leaves the key's other certificates valid; a hold made
// permanent for keyCompromise takes them along.
func testOtherReasonsLeaveTheKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	der, _ := keyCert(t)
	at := t0.Add(10 * time.Minute)
	for _, serial := range []string{"m0", "m1", "m2"} {
		c := newCert(issuerA, serial, t0.Add(24*time.Hour))
		c.DER = der
		mustRecord(t, s, issuance(c))
	}
	for _, st := range []struct {
		serial string
		reason int
	}{{"m0", 4}, {"m1", 6}} {
		r, err := s.Revoke(ctx, issuerA, st.serial, st.reason, at, pki.AuditEvent{Type: pki.EventRevoked})
		if err != nil || !r.Changed || len(r.AlsoRevoked) != 0 {
			t.Errorf("revoke %s for reason %d: %+v, %v; want changed, nothing else", st.serial, st.reason, r, err)
		}
	}
	if c, err := s.Certificate(ctx, issuerA, "m2"); err != nil || c.Status != pki.StatusValid {
		t.Fatalf("m2 after other reasons: %+v, %v; want valid", c, err)
	}
	r, err := s.Revoke(ctx, issuerA, "m1", store.ReasonKeyCompromise, at.Add(time.Hour), pki.AuditEvent{Type: pki.EventRevoked})
	if want := []store.CertRef{{IssuerID: issuerA, SerialHex: "m2"}}; err != nil || !reflect.DeepEqual(r.AlsoRevoked, want) {
		t.Errorf("hold made permanent for keyCompromise: %+v, %v; want %v revoked with it", r, err, want)
	}
	c, err := s.Certificate(ctx, issuerA, "m2")
	if err != nil || c.Status != pki.StatusRevoked || c.RevokeReason != 1 || !c.RevokedAt.Equal(normTime(at.Add(time.Hour))) {
		t.Errorf("m2: %+v, %v; want revoked for keyCompromise at %v", c, err, at.Add(time.Hour))
	}
	if c, err := s.Certificate(ctx, issuerA, "m0"); err != nil || c.RevokeReason != 4 {
		t.Errorf("m0: %+v, %v; want superseded still", c, err)
	}
}

// testCertificatesOfTransaction: a resent request finds what its
// transaction was answered with: valid records of its key, profile and
// transaction ID issued after the bound, oldest first; nothing of another
// key, profile or transaction, revoked, or older.
func testCertificatesOfTransaction(t *testing.T, s store.Store) {
	ctx := context.Background()
	derK, hashK := keyCert(t)
	derL, _ := keyCert(t)
	cert := func(serial, profile, tx string, der []byte, created time.Time) pki.Certificate {
		c := newCert(issuerA, serial, t0.Add(24*time.Hour))
		c.DER, c.Profile, c.TransactionID, c.CreatedAt = der, profile, tx, created
		return c
	}
	for _, c := range []pki.Certificate{
		cert("t1", "default", "tx-1", derK, t0),
		cert("t2", "default", "tx-1", derK, t0.Add(time.Second)),  // a copy sent at once
		cert("t3", "wifi", "tx-1", derK, t0),                      // another profile
		cert("t4", "default", "tx-2", derK, t0),                   // another transaction
		cert("t5", "default", "tx-1", derL, t0),                   // another key
		cert("t6", "default", "tx-1", derK, t0.Add(-2*time.Hour)), // too old
		cert("t7", "default", "tx-1", derK, t0),                   // revoked below
	} {
		mustRecord(t, s, issuance(c))
	}
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "t7", 0, t0, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	got, err := s.CertificatesOfTransaction(ctx, hashK, "default", "tx-1", t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var serials []string
	for _, c := range got {
		serials = append(serials, c.SerialHex)
	}
	if !reflect.DeepEqual(serials, []string{"t1", "t2"}) {
		t.Errorf("CertificatesOfTransaction = %v, want [t1 t2]", serials)
	}
	if got, err := s.CertificatesOfTransaction(ctx, hashK, "default", "tx-none", t0.Add(-time.Hour)); err != nil || len(got) != 0 {
		t.Errorf("an unknown transaction: %d records, %v", len(got), err)
	}
}
