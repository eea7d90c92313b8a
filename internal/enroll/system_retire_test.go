package enroll_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	pkifixture "github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// The HTTPS certificate replaced with a new key is retired by what the
// inventory says of it: one it holds as valid is revoked (superseded, by
// the node, naming its replacement); one it holds revoked is not revoked
// again; one it does not hold (issued through a store since restored from
// an older copy) gets a certificate.recorded note on its replacement; one
// not ours is left. Each time the overwritten key's destruction is
// recorded, with its CA when that is ours.
func TestRetireServerCertificate(t *testing.T) {
	const actor = "system:node1"
	for _, tc := range []struct {
		name string
		// old is the certificate replaced, given p's service.
		old         func(t *testing.T, p *pkifixture.PKI, other *enroll.Service) *x509.Certificate
		wantRevoked bool
		wantReason  int // old's revocation reason afterwards; 0: not revoked
		wantNote    bool
		wantIssuer  bool // the key.destroyed event names p's issuing CA
	}{
		{"valid in the inventory", func(t *testing.T, p *pkifixture.PKI, _ *enroll.Service) *x509.Certificate {
			return serverCertificate(t, p.Service)
		}, true, pki.ReasonSuperseded, false, true},
		{"revoked already", func(t *testing.T, p *pkifixture.PKI, _ *enroll.Service) *x509.Certificate {
			c := serverCertificate(t, p.Service)
			p.Revoke(t, c, pki.ReasonKeyCompromise)
			return c
		}, false, pki.ReasonKeyCompromise, false, true},
		{"not in the inventory", func(t *testing.T, _ *pkifixture.PKI, other *enroll.Service) *x509.Certificate {
			return serverCertificate(t, other)
		}, false, 0, true, true},
		// Replaced because the root CRL lists its CA: relying parties
		// refuse it already, but the inventory listed it as valid, its
		// key gone (r141 D2).
		{"its CA on the root CRL", func(t *testing.T, p *pkifixture.PKI, _ *enroll.Service) *x509.Certificate {
			c := serverCertificate(t, p.Service)
			oldIssuer := p.Issuer().ID
			if _, _, err := ca.Rollover(p.Dir, ca.RolloverOptions{SwitchAt: p.Clock.Now().Add(time.Hour)}, p.Clock); err != nil {
				t.Fatal(err)
			}
			p.Clock.Advance(2 * time.Hour)
			if err := p.Authority.Reload(p.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			p.Authority.SetRevokedIssuers([]string{oldIssuer})
			if p.Service.IssuedHere(c) {
				t.Fatal("the certificate of a CA the root CRL lists counts as issued here")
			}
			return c
		}, true, pki.ReasonSuperseded, false, true},
		{"another CA's", func(t *testing.T, _ *pkifixture.PKI, _ *enroll.Service) *x509.Certificate {
			c, _ := pkifixture.New(t, pkifixture.Options{}).Issue(t, "elsewhere")
			return c
		}, false, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := pkifixture.New(t, pkifixture.Options{})
			other, err := enroll.New(sqlitetest.Open(t, filepath.Join(t.TempDir(), "other.db")), p.Authority, p.Clock, nil, enroll.Config{})
			if err != nil {
				t.Fatal(err)
			}
			oldIssuer := p.Issuer().ID // old's, when ours (a rollover may follow)
			old := tc.old(t, p, other)
			next := serverCertificate(t, p.Service)
			key := &pki.KeyDestruction{Role: pki.KeyRoleHTTPSServer, Where: "/data/tls/server.key", Public: old.PublicKey}

			revoked, err := p.Service.RetireServerCertificate(ctx, old, next, key, actor)
			if err != nil || revoked != tc.wantRevoked {
				t.Fatalf("revoked %v, %v; want %v", revoked, err, tc.wantRevoked)
			}
			serial := old.SerialNumber.Text(16)
			if rec, err := p.Store.Certificate(ctx, oldIssuer, serial); err == nil && rec.RevokeReason != tc.wantReason {
				t.Errorf("the old certificate is %s, reason %d; want reason %d", rec.Status, rec.RevokeReason, tc.wantReason)
			}
			if revs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventRevoked, SerialHex: serial}); err != nil ||
				tc.wantRevoked && (len(revs) != 1 || revs[0].Actor != actor || !strings.Contains(revs[0].Detail, next.SerialNumber.Text(16))) {
				t.Errorf("revocation events %+v (%v), want one by %s naming the replacement", revs, err, actor)
			}
			notes, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventCertRecorded, SerialHex: next.SerialNumber.Text(16)})
			if err != nil {
				t.Fatal(err)
			}
			if gotNote := len(notes) == 1 && strings.Contains(notes[0].Detail, serial) && notes[0].Actor == actor; gotNote != tc.wantNote || len(notes) > 1 {
				t.Errorf("notes on the replacement %+v, want a note naming %s: %v", notes, serial, tc.wantNote)
			}
			destroyed, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
			if err != nil {
				t.Fatal(err)
			}
			wantIssuer := ""
			if tc.wantIssuer {
				wantIssuer = oldIssuer
			}
			if len(destroyed) != 1 || destroyed[0].Actor != actor || destroyed[0].IssuerID != wantIssuer ||
				!strings.Contains(destroyed[0].Detail, "HTTPS server key at /data/tls/server.key") {
				t.Errorf("key.destroyed events %+v, want one by %s for issuer %q", destroyed, actor, wantIssuer)
			}
		})
	}
}

// serverCertificate is an HTTPS certificate s issues for a new key.
func serverCertificate(t *testing.T, s *enroll.Service) *x509.Certificate {
	t.Helper()
	key, err := keys.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.IssueServerCertificate(context.Background(), key.Public(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
