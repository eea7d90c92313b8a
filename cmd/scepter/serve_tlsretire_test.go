package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
)

// r78 D8: the HTTPS certificate the server replaces with a new key (its
// names changed between two starts, it is due at two thirds of its life,
// it was revoked) had its key file overwritten but stayed valid in the
// inventory and OCSP, with no key.destroyed. Now the replaced one is
// revoked, superseded, by the node that replaced it (once: one revoked
// already keeps its revocation), and its key's destruction is recorded;
// another node's HTTPS certificate is left alone.
func TestReplacedHTTPSCertificateIsRevokedAndItsKeyDestroyed(t *testing.T) {
	const actor = "system:node1"
	names := []string{"localhost", "127.0.0.1"}
	for _, tc := range []struct {
		name string
		// replace has the node replace c, kept in tlsDir, and returns the
		// certificate it serves then.
		replace func(t *testing.T, p *fixture.PKI, tlsDir string, c *server.Certificate) *server.Certificate
		// wantReason is old's revocation reason afterwards.
		wantReason int
		// keyGone: the key file was gone before the replacement, which
		// destroys no key.
		keyGone bool
	}{
		{"names changed between two starts", func(t *testing.T, p *fixture.PKI, tlsDir string, _ *server.Certificate) *server.Certificate {
			c, issued, err := server.ManagedCertificate(context.Background(), tlsDir, append(names, "ca.example"), p.Service, actor, p.Clock, nil)
			if err != nil || !issued {
				t.Fatalf("second start with another name: issued %v, %v", issued, err)
			}
			return c
		}, pki.ReasonSuperseded, false},
		{"renewed at two thirds", func(t *testing.T, p *fixture.PKI, _ string, c *server.Certificate) *server.Certificate {
			p.Clock.Set(server.RenewAt(c.Leaf()).Add(time.Minute))
			if err := c.RenewIfDue(context.Background()); err != nil {
				t.Fatal(err)
			}
			return c
		}, pki.ReasonSuperseded, false},
		{"due at a restart", func(t *testing.T, p *fixture.PKI, tlsDir string, c *server.Certificate) *server.Certificate {
			p.Clock.Set(server.RenewAt(c.Leaf()).Add(time.Minute))
			c, issued, err := server.ManagedCertificate(context.Background(), tlsDir, names, p.Service, actor, p.Clock, nil)
			if err != nil || !issued {
				t.Fatalf("restart when due: issued %v, %v", issued, err)
			}
			return c
		}, pki.ReasonSuperseded, false},
		{"revoked, then replaced", func(t *testing.T, p *fixture.PKI, _ string, c *server.Certificate) *server.Certificate {
			if _, _, err := p.Store.RevokeCertificate(context.Background(), p.Issuer().ID, c.Leaf().SerialNumber.Text(16), pki.ReasonKeyCompromise,
				p.Clock.Now(), pki.AuditEvent{Time: p.Clock.Now(), Type: pki.EventRevoked, Actor: "cli:root", Outcome: "success",
					SerialHex: c.Leaf().SerialNumber.Text(16), IssuerID: p.Issuer().ID}); err != nil {
				t.Fatal(err)
			}
			if err := c.RenewIfDue(context.Background()); err != nil {
				t.Fatal(err)
			}
			return c
		}, pki.ReasonKeyCompromise, false},
		{"its key file gone at a restart", func(t *testing.T, p *fixture.PKI, tlsDir string, _ *server.Certificate) *server.Certificate {
			if err := os.Remove(filepath.Join(tlsDir, server.ServerKeyFile)); err != nil {
				t.Fatal(err)
			}
			c, issued, err := server.ManagedCertificate(context.Background(), tlsDir, names, p.Service, actor, p.Clock, nil)
			if err != nil || !issued {
				t.Fatalf("restart without the key: issued %v, %v", issued, err)
			}
			return c
		}, pki.ReasonSuperseded, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := fixture.New(t, fixture.Options{})
			log := slog.New(slog.DiscardHandler)
			f := revocationFlags{crlValidity: time.Hour, ocspValidity: time.Hour, responderValidity: ocsp.DefaultDelegateValidity}
			rev, err := f.newPublisher(ctx, p.Dir, p.Store, p.Authority, p.Clock, log)
			if err != nil {
				t.Fatal(err)
			}
			if err := rev.startResponder(ctx, &f, p.Dir, p.Store, p.Authority, p.Service, p.Clock, log); err != nil {
				t.Fatal(err)
			}
			tlsDir := filepath.Join(p.Dir, "tls")
			c, issued, err := server.ManagedCertificate(ctx, tlsDir, names, p.Service, actor, p.Clock, nil)
			if err != nil || !issued {
				t.Fatalf("first start: issued %v, %v", issued, err)
			}
			old := c.Leaf()
			// Another node of the same store, with its own certificate.
			other, _, err := server.ManagedCertificate(ctx, filepath.Join(t.TempDir(), "tls"), names, p.Service, "system:node2", p.Clock, nil)
			if err != nil {
				t.Fatal(err)
			}

			next := tc.replace(t, p, tlsDir, c).Leaf()
			if next.Equal(old) {
				t.Fatal("the certificate was not replaced")
			}
			issuerID, serial := p.Issuer().ID, old.SerialNumber.Text(16)

			rec, err := p.Store.Certificate(ctx, issuerID, serial)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != pki.StatusRevoked || rec.RevokeReason != tc.wantReason {
				t.Errorf("the replaced certificate is %s (reason %d), want revoked with reason %d", rec.Status, rec.RevokeReason, tc.wantReason)
			}
			revocations, err := p.Store.ListAudit(ctx, store.AuditFilter{SerialHex: serial, Type: pki.EventRevoked})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case len(revocations) != 1:
				t.Errorf("%d certificate.revoked events for the replaced certificate, want 1: %+v", len(revocations), revocations)
			case tc.wantReason == pki.ReasonSuperseded &&
				(revocations[0].Actor != actor || revocations[0].Reason != "superseded" || !strings.Contains(revocations[0].Detail, next.SerialNumber.Text(16))):
				t.Errorf("revocation event %+v, want one by %s, superseded, naming the replacement %s", revocations[0], actor, next.SerialNumber.Text(16))
			}

			// The overwritten key's destruction, by this node, named by
			// its SubjectPublicKeyInfo's hash.
			sum := sha256.Sum256(old.RawSubjectPublicKeyInfo)
			destroyed, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.keyGone && len(destroyed) != 0:
				t.Errorf("%d key.destroyed events for a key gone already, want none: %+v", len(destroyed), destroyed)
			case tc.keyGone:
			case len(destroyed) != 1:
				t.Fatalf("%d key.destroyed events, want 1: %+v", len(destroyed), destroyed)
			default:
				d := destroyed[0]
				if d.Actor != actor || d.IssuerID != issuerID || d.Outcome != "success" ||
					!strings.Contains(d.Detail, "HTTPS server key at "+filepath.Join(tlsDir, server.ServerKeyFile)) ||
					!strings.Contains(d.Detail, hex.EncodeToString(sum[:])) {
					t.Errorf("key.destroyed %+v, want this node's, naming tls/server.key and the old key's SPKI SHA-256", d)
				}
			}

			// OCSP: revoked for the old one, good for its replacement and
			// for the other node's.
			for _, want := range []struct {
				what   string
				cert   *x509.Certificate
				status int
			}{{"replaced", old, xocsp.Revoked}, {"new", next, xocsp.Good}, {"other node's", other.Leaf(), xocsp.Good}} {
				req, err := xocsp.CreateRequest(want.cert, p.Issuer().Cert, nil)
				if err != nil {
					t.Fatal(err)
				}
				answer := rev.responder.Respond(ctx, req)
				resp, err := xocsp.ParseResponseForCert(answer.DER, want.cert, p.Issuer().Cert)
				if err != nil {
					t.Fatalf("OCSP about the %s certificate: %v (%v)", want.what, err, answer.Err)
				}
				if resp.Status != want.status || want.status == xocsp.Revoked && resp.RevocationReason != tc.wantReason {
					t.Errorf("OCSP about the %s certificate: status %d reason %d, want %d", want.what, resp.Status, resp.RevocationReason, want.status)
				}
			}
		})
	}
}
