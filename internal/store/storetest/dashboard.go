package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testDashboardCountsCertificates: the chart's "revoked" counts a
// certificate once, on the day it was first revoked or held, however many
// revocation events follow (a hold made permanent, a reason raised to
// keyCompromise, a hold lifted and placed again); and the server's own
// certificates (SCEP RA, OCSP responder, HTTPS) are left out of "issued"
// and "revoked" alike, whoever the actor, as by_status leaves them out.
// So the days' revocations add up to by_status's.
func testDashboardCountsCertificates(t *testing.T, s store.Store) {
	ctx := context.Background()
	const day = 24 * time.Hour
	on := func(d int) time.Time { return t0.Add(time.Duration(d) * day) }
	issued := func(c pki.Certificate, actor string, d int) {
		t.Helper()
		ev := issuedEvent(c)
		ev.Actor = actor
		mustRecord(t, s, store.Issuance{Certificate: c, Now: on(d), Events: []pki.AuditEvent{ev}})
	}
	revoke := func(serial string, reason, d int) {
		t.Helper()
		c, err := s.Certificate(ctx, issuerA, serial)
		if err != nil {
			t.Fatal(err)
		}
		ev := pki.AuditEvent{Type: pki.EventRevoked, Actor: "cli:root", Profile: c.Profile, SerialHex: serial,
			IssuerID: issuerA, Outcome: "success"}
		if _, changed, err := s.RevokeCertificate(ctx, issuerA, serial, reason, on(d), ev); err != nil || !changed {
			t.Fatalf("revoking %s for reason %d on day %d: changed %v, %v", serial, reason, d, changed, err)
		}
	}
	unhold := func(serial string, d int) {
		t.Helper()
		ev := pki.AuditEvent{Type: pki.EventUnheld, Actor: "cli:root", SerialHex: serial, IssuerID: issuerA}
		if _, changed, err := s.UnholdCertificate(ctx, issuerA, serial, on(d), ev); err != nil || !changed {
			t.Fatalf("lifting the hold of %s: changed %v, %v", serial, changed, err)
		}
	}
	device := func(serial string) pki.Certificate { return newCert(issuerA, serial, on(300)) }

	// Day 0: four device certificates, and c5 sharing c0's key.
	keyDER, _ := keyCert(t)
	for _, serial := range []string{"c0", "c1", "c2", "c3", "c5"} {
		c := device(serial)
		if serial == "c0" || serial == "c5" {
			c.DER = keyDER
		}
		if serial == "c5" {
			c.TransactionID = "tx-c5-other"
		}
		issued(c, "scep:192.0.2.1", 0)
	}
	// The server's own certificates, with the actors the server gives
	// them: the RA's replacement is audited as system:NODE.
	for _, own := range []struct{ serial, profile, actor string }{
		{"ra", "scep-ra", "system:node-a"},
		{"ocsp", "ocsp-responder", "system"},
		{"tls", "tls-server", "system"},
	} {
		c := device(own.serial)
		c.Profile, c.Protocol = own.profile, pki.ProtocolInternal
		issued(c, own.actor, 0)
	}
	// c0: held, made permanent, raised to keyCompromise, all on day 0,
	// which also revokes c5 (its key). c1: held on day 0.
	revoke("c0", 6, 0)
	revoke("c0", 4, 0)
	revoke("c0", 1, 0)
	revoke("c1", 6, 0)
	// Day 1: c1's hold lifted and placed again.
	unhold("c1", 1)
	revoke("c1", 6, 1)
	// Day 2: c1's hold made permanent; c2 revoked; c3 superseded by its
	// renewal c4; the server's own certificates revoked, and the RA
	// replaced.
	revoke("c1", 4, 2)
	revoke("c2", 1, 2)
	renewal := device("c4")
	renewal.RenewedFrom = issuerA + ":c3"
	renewedEv := issuedEvent(renewal)
	renewedEv.Type = pki.EventRenewed
	mustRecord(t, s, store.Issuance{Certificate: renewal, Now: on(2), Events: []pki.AuditEvent{renewedEv},
		Supersede: &store.CertRef{IssuerID: issuerA, SerialHex: "c3"}})
	for _, serial := range []string{"ra", "ocsp", "tls"} {
		revoke(serial, 4, 2)
	}
	ra := device("ra2")
	ra.Profile, ra.Protocol = "scep-ra", pki.ProtocolInternal
	issued(ra, "system:node-a", 2)

	d, err := s.Dashboard(ctx, on(2), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ issued, renewed, revoked int64 }{
		{5, 0, 3}, // c0, c1, c5
		{0, 0, 0}, // c1 held again
		{0, 1, 2}, // c2, c3
	}
	var revoked int64
	for i, w := range want {
		got := d.Days[i]
		if got.Issued != w.issued || got.Renewed != w.renewed || got.Revoked != w.revoked {
			t.Errorf("day %d: issued %d, renewed %d, revoked %d; want %d, %d, %d",
				i, got.Issued, got.Renewed, got.Revoked, w.issued, w.renewed, w.revoked)
		}
		revoked += got.Revoked
	}
	if d.ByStatus["revoked"] != 5 || d.ByStatus["valid"] != 1 || revoked != d.ByStatus["revoked"] {
		t.Errorf("by_status %v, the days' revocations %d; want revoked 5 (as the days), valid 1", d.ByStatus, revoked)
	}
}
