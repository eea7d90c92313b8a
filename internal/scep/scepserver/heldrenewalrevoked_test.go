package scepserver_test

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// A renewal held for approval whose certificate is then revoked for good
// is rejected by the system (with the reason and audit event of a held
// request no approval can issue) when the device sends it again, signed by
// that certificate, and is refused at its signer: a RenewalReq, and an
// Apple-style PKCSReq with a new key, which the handler refuses before the
// service looks at the request. The device is answered as before. On hold,
// the request stays pending (lifting the hold makes it approvable); and
// another device's held renewal is left alone either way.
func TestRefusedResendOfAHeldRenewalByARevokedCertificate(t *testing.T) {
	for _, c := range []struct {
		name     string
		msgType  scep.MessageType
		reason   int
		wantText string
		rejected bool
	}{
		{"RenewalReq, revoked", scep.RenewalReq, pki.ReasonCessationOfOperation, "the certificate to renew is revoked", true},
		{"PKCSReq with a new key, revoked", scep.PKCSReq, pki.ReasonCessationOfOperation, "the signer certificate is revoked", true},
		{"RenewalReq, key compromised", scep.RenewalReq, store.ReasonKeyCompromise, "the certificate to renew is revoked", true},
		{"RenewalReq, on hold", scep.RenewalReq, pki.ReasonCertificateHold, "on hold (certificateHold)", false},
		{"PKCSReq with a new key, on hold", scep.PKCSReq, pki.ReasonCertificateHold, "on hold (certificateHold)", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			approval := pki.DefaultProfile()
			approval.Name, approval.RequireApproval, approval.RenewalWindow = "approval", true, 1
			ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
			ctx := context.Background()
			pendingID := func(txID string) string {
				t.Helper()
				reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range reqs {
					if r.TransactionID == txID {
						return r.ID
					}
				}
				t.Fatalf("no request of transaction %s pending", txID)
				return ""
			}
			// Two devices, each with a certificate issued on approval,
			// each renewing it with a new key: both renewals are held.
			renewals := map[string]reqParams{}
			renewalIDs := map[string]string{}
			certs := map[string]*x509.Certificate{}
			for i, dev := range []string{"revoked", "other"} {
				key := testKey(t, 1+2*i)
				first := reqParams{key: key, path: "/scep/approval", subject: "CN=dev-" + dev, txID: "tx-first-" + dev}
				if _, rep := ts.exchange(t, first); rep.PKIStatus != scep.StatusPending {
					t.Fatalf("%s: pkiStatus %s (%s), want PENDING", dev, rep.PKIStatus, rep.FailInfoText)
				}
				res, err := ts.Service.Approve(ctx, pendingID(first.txID), "cli:test")
				if err != nil {
					t.Fatal(err)
				}
				certs[dev] = res.Certificate
				renewal := reqParams{key: testKey(t, 2+2*i), path: "/scep/approval", subject: "CN=dev-" + dev, txID: "tx-renewal-" + dev,
					challenge: "-", signerCert: res.Certificate, signerKey: key, msgType: c.msgType}
				if _, rep := ts.exchange(t, renewal); rep.PKIStatus != scep.StatusPending {
					t.Fatalf("%s renewal: pkiStatus %s (%s), want PENDING", dev, rep.PKIStatus, rep.FailInfoText)
				}
				renewals[dev], renewalIDs[dev] = renewal, pendingID(renewal.txID)
			}
			serial := certs["revoked"].SerialNumber.Text(16)
			rv, err := ts.Admin.Revoke(ctx, serial, "", c.reason, "cli:test")
			if err != nil {
				t.Fatal(err)
			}

			_, rep := ts.exchange(t, renewals["revoked"]) // sent again: a new senderNonce
			wantFailure(t, rep, scep.BadCertID)
			if !strings.Contains(rep.FailInfoText, c.wantText) {
				t.Errorf("failInfoText %q, want %q in it", rep.FailInfoText, c.wantText)
			}
			if c.rejected {
				// Revoked for good: the refusal names the certificate,
				// when and why it was revoked, and what to do (r119).
				for _, w := range revokedForGoodTexts(serial, rv.Certificate.RevokedAt, c.reason) {
					if !strings.Contains(rep.FailInfoText, w) {
						t.Errorf("failInfoText %q, want %q in it", rep.FailInfoText, w)
					}
				}
			}
			r, err := ts.Store.Request(ctx, renewalIDs["revoked"])
			if err != nil {
				t.Fatal(err)
			}
			evs, err := ts.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventRequestRejected, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if !c.rejected {
				if r.Status != pki.RequestPending || len(evs) != 0 {
					t.Errorf("request %s, %d rejection events; want it still pending", r.Status, len(evs))
				}
			} else {
				if r.Status != pki.RequestRejected || r.DecidedBy != enroll.SystemRejecter ||
					!strings.Contains(r.Reason, "the certificate to renew, "+pki.ShownSerial(serial)+", was revoked on ") {
					t.Errorf("request %s by %q (%q); want rejected by %q naming %s", r.Status, r.DecidedBy, r.Reason, enroll.SystemRejecter, pki.ShownSerial(serial))
				}
				if len(evs) != 1 || evs[0].Actor != enroll.SystemRejecter || evs[0].Reason != r.Reason {
					t.Errorf("rejection events %+v; want one by %q with the request's reason", evs, enroll.SystemRejecter)
				}
			}
			if other, err := ts.Store.Request(ctx, renewalIDs["other"]); err != nil || other.Status != pki.RequestPending {
				t.Errorf("the other device's renewal: %+v, %v; want it still pending", other, err)
			}
		})
	}
}

// revokedForGoodTexts are what a refusal of a certificate revoked for good
// (with reason) at revokedAt must say: its serial as shown, when and why,
// and to enroll anew with a challenge, with a new key after keyCompromise.
func revokedForGoodTexts(serialHex string, revokedAt time.Time, reason int) []string {
	name, _ := pki.ReasonName(reason)
	next := "enroll anew, authenticated by a challenge"
	if reason == store.ReasonKeyCompromise {
		next = "enroll anew with a new key, authenticated by a challenge"
	}
	return []string{pki.ShownSerial(serialHex) + " was revoked at " + revokedAt.UTC().Format(time.RFC3339) + " (" + name + ")", next}
}
