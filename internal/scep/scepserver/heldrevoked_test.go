package scepserver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// A CertPoll of a held request meeting a revocation (r110 D1, D2): its
// key revoked as compromised while it waited, it is answered FAILURE
// badRequest naming the compromise (as a new PKCSReq with that key is),
// no longer PENDING, and the request is rejected by the system; approved
// and its certificate revoked before it was collected, it is answered
// FAILURE naming the revocation, not SUCCESS with the revoked certificate.
func TestCertPollOfAHeldRequestMeetingARevocation(t *testing.T) {
	for _, c := range []struct {
		name       string
		approve    bool // approve, then revoke the approved certificate
		reason     int
		wantText   string
		wantStatus pki.RequestStatus
	}{
		{"key revoked as compromised while held", false, store.ReasonKeyCompromise, "the request was rejected: this key was revoked as compromised on ", pki.RequestRejected},
		{"approved, revoked before it was collected", true, pki.ReasonCessationOfOperation, "(cessationOfOperation) before it was collected", pki.RequestIssued},
		{"approved, compromised before it was collected", true, store.ReasonKeyCompromise, "(keyCompromise) before it was collected; enroll again with a new key", pki.RequestIssued},
	} {
		t.Run(c.name, func(t *testing.T) {
			def, approval := pki.DefaultProfile(), pki.DefaultProfile()
			approval.Name, approval.RequireApproval = "approval", true
			ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": def, "approval": approval}, DefaultProfile: "default"}})
			ctx := context.Background()
			key := testKey(t, 2)
			signer := ts.selfSignedFor(t, key)
			base := reqParams{key: key, signerCert: signer, signerKey: key, path: "/scep/approval", txID: "tx-held"}
			if _, rep := ts.exchange(t, base); rep.PKIStatus != scep.StatusPending {
				t.Fatalf("pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
			}
			reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
			if err != nil || len(reqs) != 1 {
				t.Fatalf("%d pending requests, %v", len(reqs), err)
			}
			var serial string
			if c.approve {
				res, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test")
				if err != nil {
					t.Fatal(err)
				}
				serial = res.Record.SerialHex
			} else {
				// Another certificate of the key, at another profile.
				msg, rep := ts.exchange(t, reqParams{key: key, signerCert: signer, signerKey: key, path: "/scep", txID: "tx-other"})
				cert, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
				serial = cert.SerialNumber.Text(16)
			}
			if _, err := ts.Admin.Revoke(ctx, serial, "", c.reason, "cli:test"); err != nil {
				t.Fatal(err)
			}
			content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, signer.RawSubject)
			if err != nil {
				t.Fatal(err)
			}
			poll := base
			poll.msgType, poll.content = scep.CertPoll, content
			_, rep := ts.exchange(t, poll)
			wantFailure(t, rep, scep.BadRequest)
			if !strings.Contains(rep.FailInfoText, c.wantText) {
				t.Errorf("failInfoText %q, want %q in it", rep.FailInfoText, c.wantText)
			}
			if r, err := ts.Store.Request(ctx, reqs[0].ID); err != nil || r.Status != c.wantStatus {
				t.Errorf("request %+v, %v; want %s", r, err, c.wantStatus)
			}
		})
	}
}
