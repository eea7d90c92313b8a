package enroll_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	pkifixture "github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

// The inventory says whether the SCEP RA certificate is revoked, for any
// reason, a hold included; one it lacks is not.
func TestRARevoked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason int // -1: not revoked
		want   bool
	}{
		{"valid", -1, false},
		{"keyCompromise", 1, true},
		{"superseded", 4, true},
		{"certificateHold", 6, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := pkifixture.New(t, pkifixture.Options{})
			ra := p.Service.ActiveRA()
			if got, err := p.Service.RARevoked(ctx, ra); err != nil || got {
				t.Fatalf("before it is recorded: %v, %v; want false", got, err)
			}
			if err := p.Service.RecordRACertificates(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.reason >= 0 {
				p.Revoke(t, ra.Cert, tc.reason)
			}
			got, err := p.Service.RARevoked(ctx, ra)
			if err != nil || got != tc.want {
				t.Errorf("RARevoked: %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// The issuing CA acting as RA is not in the inventory: never revoked there.
func TestRARevokedCAAsRA(t *testing.T) {
	p := pkifixture.New(t, pkifixture.Options{})
	issuer := p.Issuer()
	ra := &pki.RA{Cert: issuer.Cert, Key: issuer.Signer, Chain: issuer.Chain, IsCA: true}
	if got, err := p.Service.RARevoked(context.Background(), ra); err != nil || got {
		t.Errorf("RARevoked: %v, %v; want false", got, err)
	}
}

// A replacement RA certificate goes into the inventory with one
// certificate.issued event naming the revoked one. When a CA reload's
// RecordRACertificates recorded it first (with its own certificate.issued),
// what it replaces is noted as certificate.recorded: one issuance, one
// certificate.issued event. Before, the replacement appended a second
// certificate.issued. Recording the replacement again writes nothing.
func TestRecordRAReplacement(t *testing.T) {
	for _, reloadFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("reload_first=%t", reloadFirst), func(t *testing.T) {
			ctx := context.Background()
			p := pkifixture.New(t, pkifixture.Options{})
			old := p.Service.ActiveRA()
			other, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{GenerateKey: testKeys.Generate}, p.Clock)
			if err != nil {
				t.Fatal(err)
			}
			_, foreign := other.Active(p.Clock.Now())
			if err := p.Service.RecordRAReplacement(ctx, old, foreign, "system:n"); err == nil {
				t.Error("an RA certificate of another CA was recorded")
			}
			if reloadFirst {
				if err := p.Service.RecordRACertificates(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// The fixture's own RA stands in for a replacement, twice.
			for i := range 2 {
				if err := p.Service.RecordRAReplacement(ctx, &pki.RA{Cert: foreign.Cert}, old, "system:n"); err != nil {
					t.Fatalf("recording %d: %v", i, err)
				}
			}
			serial := old.Cert.SerialNumber.Text(16)
			if _, err := p.Store.Certificate(ctx, p.Issuer().ID, serial); err != nil {
				t.Fatalf("not in the inventory: %v", err)
			}
			events, err := p.Store.ListAudit(ctx, store.AuditFilter{SerialHex: serial})
			if err != nil {
				t.Fatal(err)
			}
			var issued, replacing int
			for _, ev := range events {
				if ev.Type == pki.EventIssued {
					issued++
				}
				if strings.Contains(ev.Detail, "replacing the revoked RA certificate "+pki.SerialText(foreign.Cert.SerialNumber)) {
					replacing++
					want := pki.EventIssued
					if reloadFirst {
						want = pki.EventCertRecorded
					}
					if ev.Type != want || ev.Actor != "system:n" {
						t.Errorf("the replacement's event: type %s actor %s, want %s by system:n", ev.Type, ev.Actor, want)
					}
				}
			}
			if issued != 1 || replacing != 1 {
				t.Errorf("%d certificate.issued events and %d naming the revoked RA, want 1 and 1: %+v", issued, replacing, events)
			}
		})
	}
}
