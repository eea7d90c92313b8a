package scepserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// A renewal held for approval while the certificate that signs it was
// valid is answered from its request once that certificate has expired
// (no renewal grace here): its RenewalReq or its PKCSReq signed by the old
// certificate sent again, or its CertPoll, gets PENDING while it waits and
// the approved certificate once approved, whether the approval came
// before the expiry or after it, where before it was refused badTime and
// scepter renew dropped the new key. A new one signed by the expired
// certificate is still refused badTime.
func TestHeldRenewalCollectedAfterItsSignerExpired(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval, approval.ChallengeMode = "approval", true, enroll.ChallengeOneTime
	approval.Validity, approval.Backdate, approval.RenewalWindow = 10*24*time.Hour, 0, 1
	approval.RequestRetention = 30 * 24 * time.Hour
	for _, tc := range []struct {
		name           string
		msgType        scep.MessageType // of the renewal
		poll           bool             // asked again by CertPoll
		approvedBefore bool
	}{
		{"RenewalReq sent again, approved before the expiry", scep.RenewalReq, false, true},
		{"RenewalReq sent again, approved after the expiry", scep.RenewalReq, false, false},
		{"PKCSReq signed by the old certificate sent again, approved before the expiry", scep.PKCSReq, false, true},
		{"PKCSReq signed by the old certificate sent again, approved after the expiry", scep.PKCSReq, false, false},
		{"CertPoll, approved before the expiry", scep.RenewalReq, true, true},
		{"CertPoll, approved after the expiry", scep.RenewalReq, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
			ctx := context.Background()
			approvePending := func() {
				t.Helper()
				reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
				if err != nil || len(reqs) != 1 {
					t.Fatalf("%d pending requests, %v; want 1", len(reqs), err)
				}
				if _, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
					t.Fatal(err)
				}
			}
			otp, _, err := ts.Admin.NewChallenge(ctx, time.Hour, "approval", "test")
			if err != nil {
				t.Fatal(err)
			}
			oldKey := testKey(t, 1)
			first := reqParams{key: oldKey, challenge: otp, path: "/scep/approval", txID: "tx-first"}
			if _, rep := ts.exchange(t, first); rep.PKIStatus != scep.StatusPending {
				t.Fatalf("first PKCSReq: pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
			}
			approvePending()
			msg, rep := ts.exchange(t, first)
			old, _ := ts.issuedCert(t, rep, msg.SignerCert, oldKey)
			ts.Clock.Advance(5 * 24 * time.Hour) // renewed half-way through

			renewal := reqParams{key: testKey(t, 2), challenge: "-", path: "/scep/approval", txID: "tx-renewal",
				signerCert: old, signerKey: oldKey, msgType: tc.msgType}
			if _, rep := ts.exchange(t, renewal); rep.PKIStatus != scep.StatusPending {
				t.Fatalf("renewal: pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
			}
			askAgain := renewal
			if tc.poll {
				subject, err := csr.ParseDN("CN=device-1,O=Acme") // build's default
				if err != nil {
					t.Fatal(err)
				}
				askAgain.content, err = scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, subject)
				if err != nil {
					t.Fatal(err)
				}
				askAgain.msgType = scep.CertPoll
			}
			if tc.approvedBefore {
				approvePending()
			}
			ts.Clock.Set(old.NotAfter.Add(time.Minute))
			if !tc.approvedBefore {
				if _, rep := ts.exchange(t, askAgain); rep.PKIStatus != scep.StatusPending {
					t.Fatalf("asked again while held, after the expiry: pkiStatus %s failInfo %s (%s), want PENDING", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
				}
				approvePending()
			}
			msg, rep = ts.exchange(t, askAgain)
			if rep.PKIStatus != scep.StatusSuccess {
				t.Fatalf("asked again after the approval and the expiry: pkiStatus %s failInfo %s (%s), want SUCCESS", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
			}
			renewed, _ := ts.issuedCert(t, rep, msg.SignerCert, oldKey)
			if renewed.Equal(old) || !renewed.NotAfter.After(old.NotAfter) {
				t.Errorf("got certificate %s, want the renewal of %s", pki.SerialText(renewed.SerialNumber), pki.SerialText(old.SerialNumber))
			}

			fresh := renewal
			fresh.key, fresh.txID = testKey(t, 3), "tx-new-renewal"
			_, rep = ts.exchange(t, fresh)
			wantFailure(t, rep, scep.BadTime)
		})
	}
}
