package ocsp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

const reasonCessationOfOperation = 5

// discardingIssuer is the enrollment service, which has the store record
// the CA discarded just as it issues a responder certificate under it,
// once armed: 'scepter ca rollover --discard' run on the node (or another
// one) between the delegates' check and the issuance.
type discardingIssuer struct {
	ocsp.CertIssuer
	st    store.Store
	clock pki.Clock
	armed bool
}

func (d *discardingIssuer) IssueResponderCertificate(ctx context.Context, issuerID string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	c, err := d.CertIssuer.IssueResponderCertificate(ctx, issuerID, pub, validity)
	if d.armed {
		d.armed = false
		ev := pki.AuditEvent{Time: d.clock.Now(), Type: pki.EventCARollover, Actor: "cli:node-b", IssuerID: issuerID, Outcome: "success"}
		if derr := d.st.DiscardCAGeneration(ctx, issuerID, d.clock.Now(), ev); derr != nil {
			return nil, derr
		}
	}
	return c, err
}

// Nothing is issued under a next CA that the store records as discarded
// (r93 D1): a server that still holds it, until its next CA reload, does
// not replace the responder the discard revoked, as its RA keeper does
// not replace the RA; and one issued as the discard came is revoked
// (cessationOfOperation) and removed with its key, not kept valid, on
// disk and in every export-keys after.
func TestDelegateOfDiscardedCA(t *testing.T) {
	for _, race := range []bool{false, true} {
		name := map[bool]string{false: "discarded before", true: "discarded as it is issued"}[race]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p := fixture.New(t, fixture.Options{})
			if _, _, err := ca.Rollover(p.Dir, ca.RolloverOptions{SwitchAt: p.Clock.Now().Add(24 * time.Hour)}, p.Clock); err != nil {
				t.Fatal(err)
			}
			if err := p.Authority.Reload(p.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			next, _, ok := p.Authority.Next(p.Clock.Now())
			if !ok {
				t.Fatal("no next CA after the rollover")
			}
			dir := filepath.Join(p.Dir, "ocsp")
			logs := &strings.Builder{}
			issuer := &discardingIssuer{CertIssuer: p.Service, st: p.Store, clock: p.Clock}
			d := ocsp.NewDelegates(dir, p.Authority, issuer, p.Clock, slog.New(slog.NewTextHandler(logs, nil)), 0).
				WithInventory(p.Store).WithAudit(p.Store, "system:node-a")
			if err := d.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			first, ok := d.Signer(next.ID)
			if !ok {
				t.Fatal("no delegate for the next CA")
			}
			if !race {
				ev := pki.AuditEvent{Time: p.Clock.Now(), Type: pki.EventCARollover, Actor: "cli:node-b", IssuerID: next.ID, Outcome: "success"}
				if err := p.Store.DiscardCAGeneration(ctx, next.ID, p.Clock.Now(), ev); err != nil {
					t.Fatal(err)
				}
			}
			issuer.armed = race
			// The discard revokes what the CA issued.
			if _, _, err := p.Store.RevokeCertificate(ctx, next.ID, first.Cert.SerialNumber.Text(16), reasonCessationOfOperation, p.Clock.Now(),
				pki.AuditEvent{Type: pki.EventRevoked, Actor: "cli:node-b", Outcome: "success"}); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := d.Refresh(ctx); err != nil {
					t.Fatalf("Refresh: %v", err)
				}
				p.Clock.Advance(time.Minute)
			}
			if s, ok := d.Signer(next.ID); ok {
				t.Errorf("the discarded CA has a delegate in use, %s", pki.SerialText(s.Cert.SerialNumber))
			}
			if _, ok := d.Signer(p.Issuer().ID); !ok {
				t.Error("the active CA lost its delegate")
			}
			certs, _, err := p.Store.ListCertificates(ctx, store.CertFilter{IssuerID: next.ID, Profile: "ocsp-responder", Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 1, true: 2}[race]; len(certs) != want {
				t.Errorf("%d responder certificates of the discarded CA in the inventory, want %d", len(certs), want)
			}
			for _, c := range certs {
				if c.Status != pki.StatusRevoked || c.RevokeReason != reasonCessationOfOperation {
					t.Errorf("responder certificate %s of the discarded CA: %s, reason %d; want revoked, cessationOfOperation",
						pki.ShownSerial(c.SerialHex), c.Status, c.RevokeReason)
				}
			}
			if race {
				// The one issued in the race: its key is gone, its
				// destruction audited, and so is its revocation.
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), next.ID[:32]) {
						t.Errorf("%s left in the responder directory", e.Name())
					}
				}
				evs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) != 2 {
					t.Errorf("%d key.destroyed events, want 2 (the revoked responder's key and the one issued in the race): %+v", len(evs), evs)
				}
				evs, err = p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventRevoked})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(evs, func(ev pki.AuditEvent) bool {
					return ev.Actor == "system:node-a" && strings.Contains(ev.Detail, "discarded")
				}) {
					t.Errorf("the revocation of the responder issued in the race is not audited as the node's: %+v", evs)
				}
			} else if k, err := keys.LoadCertFile(filepath.Join(dir, next.ID[:32]+".crt")); err != nil || !k[0].Equal(first.Cert) {
				// Left as it was, for the discard run on this node to remove.
				t.Errorf("the revoked responder's certificate file changed: %v", err)
			}
			if n := strings.Count(logs.String(), "no OCSP responder certificate is issued under it"); n != 1 {
				t.Errorf("the skipped responder is logged %d times in two refreshes, want once:\n%s", n, logs.String())
			}
		})
	}
}
