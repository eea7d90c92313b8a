package ocsp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pki"
)

// Once the root CRL lists an issuing CA, every certificate it issued is
// answered revoked, reason cACompromise, since the CA's revocation on the
// root CRL, also one whose "good" answer was cached, and a held one; one
// revoked for good before the CA keeps its own revocation. The other CA's
// answers do not change. Before, the responder only checked the issuing
// CA's dates, and answered "good" for a CA the root revoked for key
// compromise.
func TestRootRevokedIssuerAnsweredRevoked(t *testing.T) {
	for _, storedCRL := range []bool{true, false} {
		name := "root CRL stored"
		if !storedCRL {
			name = "only the revoked set"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := newResponder(t, "")
			oldIssuer := f.Issuer()
			good, _ := f.Issue(t, "good")
			held, _ := f.Issue(t, "held")
			early, _ := f.Issue(t, "early")
			f.Revoke(t, held, pki.ReasonCertificateHold)
			f.Revoke(t, early, pki.ReasonKeyCompromise)
			earlyAt := f.Clock.Now().Truncate(time.Second)
			if _, _, err := ca.Rollover(f.Dir, ca.RolloverOptions{SwitchAt: f.Clock.Now().Add(time.Hour)}, f.Clock); err != nil {
				t.Fatal(err)
			}
			f.Clock.Advance(2 * time.Hour)
			if err := f.Authority.Reload(f.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			if err := f.delegates.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			f.refreshState(t)
			newIssuer := f.Issuer()
			newCert, _ := f.Issue(t, "new")
			ask := func(cert *x509.Certificate, issuer *ca.Issuer) *xocsp.Response {
				t.Helper()
				a := f.r.Respond(ctx, request(t, cert, issuer.Cert, crypto.SHA256))
				if a.Err != nil {
					t.Fatalf("%s: %v", cert.Subject, a.Err)
				}
				return parse(t, a.DER, cert, issuer.Cert)
			}
			if resp := ask(good, oldIssuer); resp.Status != xocsp.Good {
				t.Fatalf("before the root CRL: status %d, want good", resp.Status)
			}

			// The root revokes the old CA for key compromise, dated
			// before now: the answers give that date. The "good" answer
			// cached a minute ago is not served again.
			f.Clock.Advance(time.Minute)
			caRevokedAt := f.Clock.Now().Add(-30 * time.Second).Truncate(time.Second)
			if storedCRL {
				root, err := ca.RootIssuer(f.Dir, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				signed, _, _, err := crl.SignRootCRL(root, nil, []crl.RootRevocation{{Cert: oldIssuer.Cert, RevokedAt: caRevokedAt,
					Reason: pki.ReasonKeyCompromise}}, f.Clock.Now(), time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Store.PutCRL(ctx, *signed, 10); err != nil {
					t.Fatal(err)
				}
			} else {
				// No root CRL to read: dated when the responder learns it.
				caRevokedAt = f.Clock.Now().Truncate(time.Second)
			}
			f.Authority.SetRevokedIssuers([]string{oldIssuer.ID})

			for _, tc := range []struct {
				cert      *x509.Certificate
				reason    int
				revokedAt time.Time
			}{
				{good, pki.ReasonCACompromise, caRevokedAt},
				{held, pki.ReasonCACompromise, caRevokedAt},
				{early, pki.ReasonKeyCompromise, earlyAt},
			} {
				for range 2 { // signed, then from the cache
					resp := ask(tc.cert, oldIssuer)
					if resp.Status != xocsp.Revoked || resp.RevocationReason != tc.reason || !resp.RevokedAt.Equal(tc.revokedAt) {
						t.Errorf("%s: status %d reason %d revoked at %v, want revoked, reason %d at %v", tc.cert.Subject,
							resp.Status, resp.RevocationReason, resp.RevokedAt, tc.reason, tc.revokedAt)
					}
					if resp.ThisUpdate.Before(resp.RevokedAt) {
						t.Errorf("%s: thisUpdate %v before the revocation %v", tc.cert.Subject, resp.ThisUpdate, resp.RevokedAt)
					}
				}
			}
			if resp := ask(newCert, newIssuer); resp.Status != xocsp.Good {
				t.Errorf("the other CA's certificate: status %d, want good", resp.Status)
			}
		})
	}
}
