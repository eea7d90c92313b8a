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

// testDashboardExactAtNow: the counts by status, by profile and expiring
// within 7, 30 and 90 days are those of the inventory's lists at the
// reading's time, not of whole UTC days: a certificate that expired a
// second ago today is expired, not valid nor expiring, and one expiring a
// second after a window's end is outside it (r110 D4).
func testDashboardExactAtNow(t *testing.T, s store.Store) {
	ctx := context.Background()
	const day = 24 * time.Hour
	now := t0.Truncate(day).Add(13*time.Hour + 14*time.Minute + 15*time.Second) // mid-day, whole seconds
	for _, c := range []struct {
		serial, profile string
		notAfter        time.Time
		revoked, own    bool
	}{
		{"x1", "default", now.Add(-time.Second), false, false},               // expired a second ago, today
		{"x2", "gone", now.Add(-time.Second), false, false},                  // the profile's only one
		{"x3", "default", now.Truncate(day).Add(-time.Second), false, false}, // expired yesterday
		{"x4", "wifi", now.Add(time.Second), false, false},                   // expiring in a second
		{"x5", "default", now.Add(7*day - time.Second), false, false},        // within 7 days, just
		{"x6", "default", now.Add(7*day + time.Second), false, false},        // the 7th day, past the window
		{"x7", "vpn", now.Add(30*day + time.Second), false, false},           // within 90
		{"x8", "default", now.Add(90*day + time.Second), false, false},       // beyond every window
		{"x9", "default", now.Add(-time.Second), true, false},                // revoked
		{"xa", pki.ProfileImported, now.Add(-time.Second), false, true},      // the server's own: not counted
		{"xb", "default", now.Add(-2 * time.Hour), false, false},             // expired earlier today
	} {
		rec := newCert(issuerA, c.serial, c.notAfter)
		rec.Profile = c.profile
		if c.own {
			rec.Protocol = pki.ProtocolInternal
		}
		mustRecord(t, s, issuance(rec, issuedEvent(rec)))
		if c.revoked {
			if _, _, err := s.RevokeCertificate(ctx, issuerA, c.serial, 4, now.Add(-time.Hour), pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
				t.Fatal(err)
			}
		}
	}
	d, err := s.Dashboard(ctx, now, 1)
	if err != nil {
		t.Fatal(err)
	}
	count := func(f store.CertFilter) int64 {
		t.Helper()
		list, _, err := s.ListCertificates(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, c := range list {
			if c.Protocol != pki.ProtocolInternal {
				n++
			}
		}
		return n
	}
	valid := func(from, to time.Time) store.CertFilter {
		return store.CertFilter{Status: pki.StatusValid, NotAfterAfter: from, NotAfterBefore: to, Limit: 100}
	}
	for _, tc := range []struct {
		name      string
		got, want int64
		list      store.CertFilter // the console's link: it lists as many
	}{
		{"valid", d.ByStatus["valid"], 5, store.CertFilter{Status: pki.StatusValid, NotAfterAfter: now, Limit: 100}},
		{"expired", d.ByStatus["expired"], 4, store.CertFilter{Status: pki.StatusValid, NotAfterBefore: now, Limit: 100}},
		{"revoked", d.ByStatus["revoked"], 1, store.CertFilter{Status: pki.StatusRevoked, Limit: 100}},
		{"profile default", d.ByProfile["default"], 3, store.CertFilter{Status: pki.StatusValid, NotAfterAfter: now, Profile: "default", Limit: 100}},
		{"profile wifi", d.ByProfile["wifi"], 1, store.CertFilter{Status: pki.StatusValid, NotAfterAfter: now, Profile: "wifi", Limit: 100}},
		{"profile gone", d.ByProfile["gone"], 0, store.CertFilter{Status: pki.StatusValid, NotAfterAfter: now, Profile: "gone", Limit: 100}},
		{"expiring 7", d.Expiring[7], 2, valid(now, now.Add(7*day))},
		{"expiring 30", d.Expiring[30], 3, valid(now, now.Add(30*day))},
		{"expiring 90", d.Expiring[90], 4, valid(now, now.Add(90*day))},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, tc.got, tc.want)
		}
		if n := count(tc.list); n != tc.want {
			t.Errorf("%s: its list holds %d, want %d", tc.name, n, tc.want)
		}
	}
	if _, ok := d.ByProfile["gone"]; ok {
		t.Errorf("ByProfile %v names a profile with no valid certificate", d.ByProfile)
	}
}
