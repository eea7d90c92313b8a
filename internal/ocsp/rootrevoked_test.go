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
	"github.com/scepter/scepter/internal/store"
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

// retiredCAFixture is a responder whose first issuing CA was rolled over:
// good is one of its certificates, early one it revoked for key
// compromise at earlyAt, before the root CRL lists the CA.
type retiredCAFixture struct {
	*responderFixture
	old         *ca.Issuer
	root        *ca.Issuer
	good, early *x509.Certificate
	earlyAt     time.Time
}

func newRetiredCA(t *testing.T) *retiredCAFixture {
	t.Helper()
	f := &retiredCAFixture{responderFixture: newResponder(t, "")}
	f.old = f.Issuer()
	f.good, _ = f.Issue(t, "good")
	f.early, _ = f.Issue(t, "early")
	f.Revoke(t, f.early, pki.ReasonKeyCompromise)
	f.earlyAt = f.Clock.Now().Truncate(time.Second)
	if _, _, err := ca.Rollover(f.Dir, ca.RolloverOptions{SwitchAt: f.Clock.Now().Add(time.Hour)}, f.Clock); err != nil {
		t.Fatal(err)
	}
	f.Clock.Advance(2 * time.Hour)
	if err := f.Authority.Reload(f.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.delegates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.refreshState(t)
	root, err := ca.RootIssuer(f.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.root = root
	return f
}

// listOnRootCRL signs the root's CRL after prev (nil: the first) listing
// the old CA with reason at at, stores it, and applies it as the CA reload
// does (crl.ApplyRootCRL). It returns the stored CRL.
func (f *retiredCAFixture) listOnRootCRL(t *testing.T, prev *store.CRL, reason int, at time.Time) *store.CRL {
	t.Helper()
	ctx := context.Background()
	signed, _, _, err := crl.SignRootCRL(f.root, prev, []crl.RootRevocation{{Cert: f.old.Cert, RevokedAt: at, Reason: reason}}, f.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Store.PutCRL(ctx, *signed, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := crl.ApplyRootCRL(ctx, f.Store, f.Authority); err != nil {
		t.Fatal(err)
	}
	return signed
}

// ask answers cert of the old CA and checks it is revoked with reason at
// revokedAt.
func (f *retiredCAFixture) ask(t *testing.T, cert *x509.Certificate, reason int, revokedAt time.Time) {
	t.Helper()
	a := f.r.Respond(context.Background(), request(t, cert, f.old.Cert, crypto.SHA256))
	if a.Err != nil {
		t.Fatalf("%s: %v", cert.Subject, a.Err)
	}
	resp := parse(t, a.DER, cert, f.old.Cert)
	if resp.Status != xocsp.Revoked || resp.RevocationReason != reason || !resp.RevokedAt.Equal(revokedAt) {
		t.Errorf("%s: status %d reason %d revoked at %v, want revoked, reason %d at %v", cert.Subject,
			resp.Status, resp.RevocationReason, resp.RevokedAt, reason, revokedAt)
	}
}

// The reason OCSP gives the certificates of an issuing CA the root CRL
// lists follows the CA's entry: a compromise, or no reason, is answered
// cACompromise; a CA retired without one (after a rollover, with
// cessationOfOperation or superseded) cessationOfOperation. Before, every
// one was answered cACompromise, which after an ordinary rollover tells
// relying parties the CA's key was compromised. A certificate revoked for
// good before the CA keeps its own revocation whatever the CA's reason.
func TestRootRevokedReasonFollowsTheCAs(t *testing.T) {
	for _, tc := range []struct {
		caReason, want int
	}{
		{pki.ReasonKeyCompromise, pki.ReasonCACompromise},
		{pki.ReasonCACompromise, pki.ReasonCACompromise},
		{pki.ReasonAACompromise, pki.ReasonCACompromise},
		{pki.ReasonUnspecified, pki.ReasonCACompromise}, // the entry carries no reason
		{pki.ReasonCessationOfOperation, pki.ReasonCessationOfOperation},
		{pki.ReasonSuperseded, pki.ReasonCessationOfOperation},
		{pki.ReasonAffiliationChanged, pki.ReasonCessationOfOperation},
		{pki.ReasonPrivilegeWithdrawn, pki.ReasonCessationOfOperation},
	} {
		name, _ := pki.ReasonName(tc.caReason)
		t.Run(name, func(t *testing.T) {
			f := newRetiredCA(t)
			caRevokedAt := f.Clock.Now().Add(-30 * time.Second).Truncate(time.Second)
			f.listOnRootCRL(t, nil, tc.caReason, caRevokedAt)
			for range 2 { // signed, then from the cache
				f.ask(t, f.good, tc.want, caRevokedAt)
				f.ask(t, f.early, pki.ReasonKeyCompromise, f.earlyAt)
			}
		})
	}
}

// A retired CA's listing raised to cACompromise on the root CRL (`ca root
// crl --revoke` given again; it keeps the date) reaches OCSP with the CA
// reload that reads it: the cessationOfOperation answer cached before is
// not served again, though it has not reached its refresh time.
func TestRootRevokedEscalationReplacesCachedAnswer(t *testing.T) {
	f := newRetiredCA(t)
	caRevokedAt := f.Clock.Now().Add(-30 * time.Second).Truncate(time.Second)
	prev := f.listOnRootCRL(t, nil, pki.ReasonCessationOfOperation, caRevokedAt)
	f.ask(t, f.good, pki.ReasonCessationOfOperation, caRevokedAt)
	signed, _ := f.r.Stats()
	f.ask(t, f.good, pki.ReasonCessationOfOperation, caRevokedAt)
	if again, _ := f.r.Stats(); again != signed {
		t.Fatalf("the second answer was signed again (%d signatures, then %d): the cache is not exercised", signed, again)
	}

	f.Clock.Advance(time.Minute)
	f.listOnRootCRL(t, prev, pki.ReasonCACompromise, f.Clock.Now())
	f.ask(t, f.good, pki.ReasonCACompromise, caRevokedAt)
	f.ask(t, f.early, pki.ReasonKeyCompromise, f.earlyAt)
}
