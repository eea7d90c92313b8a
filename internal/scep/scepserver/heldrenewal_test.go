package scepserver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// A renewal with the same key of a certificate issued on approval has the
// transaction ID of the request it was issued for (clients derive it from
// the key): certmonger's PKCSReq signed by that certificate (with the
// challenge of its first enrollment), strongSwan's (with none) and a
// RenewalReq are held as a new renewal request, and renewed once approved,
// never answered with their own signer certificate from the request that
// issued it. The first PKCSReq sent again as it was (self-signed, as
// micromdm's scepclient collects) still gets that certificate.
func TestSameKeyRenewalAtApprovalProfileIsHeld(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval, approval.RenewalWindow = "approval", true, 1
	approval.ChallengeMode = enroll.ChallengeOneTime
	for _, tc := range []struct {
		name string
		// challenge: the renewal carries the first enrollment's one-time
		// challenge (certmonger), or none ("-").
		firstChallenge bool
		msgType        scep.MessageType
	}{
		{"certmonger: PKCSReq with the used-up challenge", true, scep.PKCSReq},
		{"strongSwan: PKCSReq without a challenge", false, scep.PKCSReq},
		{"RenewalReq", false, scep.RenewalReq},
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
			key := testKey(t, 1)
			first := reqParams{key: key, challenge: otp, path: "/scep/approval", txID: "tx-same-key"}
			firstDER, firstMsg := ts.build(t, first)
			send := func(der []byte, msg *scep.PKIMessage) *scep.PKIMessage {
				t.Helper()
				resp, body := ts.postTo(t, "/scep/approval", der)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
				}
				return ts.parseReply(t, body, msg)
			}
			if rep := send(firstDER, firstMsg); rep.PKIStatus != scep.StatusPending {
				t.Fatalf("first PKCSReq: pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
			}
			approvePending()
			msg, rep := ts.exchange(t, first) // resubmitted: a new senderNonce
			cert, _ := ts.issuedCert(t, rep, msg.SignerCert, key)

			renewal := reqParams{key: key, challenge: "-", path: "/scep/approval", txID: first.txID, signerCert: cert, signerKey: key, msgType: tc.msgType}
			if tc.firstChallenge {
				renewal.challenge = otp
			}
			for i := range 2 {
				if _, rep := ts.exchange(t, renewal); rep.PKIStatus != scep.StatusPending {
					var got string
					if rep.PKIStatus == scep.StatusSuccess {
						c, _ := ts.issuedCert(t, rep, cert, key)
						got = ", serial " + c.SerialNumber.Text(16)
					}
					t.Fatalf("renewal %d signed by %s: pkiStatus %s (%s%s), want PENDING", i+1, cert.SerialNumber.Text(16), rep.PKIStatus, rep.FailInfoText, got)
				}
			}
			reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
			if err != nil || len(reqs) != 1 || reqs[0].RenewedFrom == "" {
				t.Fatalf("pending requests %+v, %v; want the renewal's", reqs, err)
			}
			// The first PKCSReq sent again as it was is answered from the
			// request it made, as before the renewal was held.
			wantSentAgain(t, ts, "the first PKCSReq sent again", send(firstDER, firstMsg), firstMsg.SignerCert, key, cert)

			approvePending()
			msg, rep = ts.exchange(t, renewal)
			renewed, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
			if renewed.Equal(cert) {
				t.Fatalf("the renewal got its signer certificate %s back", cert.SerialNumber.Text(16))
			}
			rec, err := ts.Store.Certificate(ctx, ts.Authority.Issuer.ID, renewed.SerialNumber.Text(16))
			if err != nil || rec.RenewedFrom != ts.Authority.Issuer.ID+":"+cert.SerialNumber.Text(16) {
				t.Errorf("renewed certificate's record %+v, %v: want it to renew %s", rec, err, cert.SerialNumber.Text(16))
			}
			// Asked again, the renewal gets its certificate, not a third.
			_, rep = ts.exchange(t, renewal)
			wantSentAgain(t, ts, "the renewal sent again", rep, cert, key, renewed)
			if n := ts.certCount(t); n != 2 {
				t.Errorf("%d certificates recorded, want 2", n)
			}
		})
	}
}
