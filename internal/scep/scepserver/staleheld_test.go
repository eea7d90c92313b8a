package scepserver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/store"
)

// micromdm's scepclient collects a request held for approval by sending
// its PKCSReq again byte for byte, signingTime and all: a wait longer than
// --max-clock-skew (a weekend, at the default of a day) must not end it
// with badTime. Such a message, signed by the requester's key, is answered
// from its held request (PENDING, then the certificate), whether its
// nonce is still remembered or not; a message as old that asks about
// nothing held, or signed ahead of the server's clock, is still refused
// with badTime, and an old message never starts a request of its own.
func TestHeldRequestIsCollectedAfterTheClockSkew(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval, approval.RequestRetention = "approval", true, 30*time.Minute
	approval.ChallengeMode = enroll.ChallengeOneTime
	ts := newTestServer(t, serverOptions{scep: scepserver.Options{MaxClockSkew: time.Minute},
		enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	ctx := context.Background()
	send := func(der []byte, msg *scep.PKIMessage) *scep.PKIMessage {
		t.Helper()
		resp, body := ts.postTo(t, "/scep/approval", der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		return ts.parseReply(t, body, msg)
	}
	key := testKey(t, 1)
	der, msg := ts.build(t, reqParams{key: key, path: "/scep/approval", txID: "tx-waited"})
	if rep := send(der, msg); rep.PKIStatus != scep.StatusPending {
		t.Fatalf("PKCSReq: pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
	}
	// Built now, sent once the skew has passed: nothing is held for it.
	otherDER, otherMsg := ts.build(t, reqParams{key: testKey(t, 2), path: "/scep/approval", txID: "tx-late"})
	ahead := reqParams{key: key, path: "/scep/approval", txID: "tx-waited", signingTime: ts.Clock.Now().Add(90 * time.Second)}

	ts.Clock.Advance(90 * time.Second) // past the skew, the nonce still remembered
	if rep := send(der, msg); rep.PKIStatus != scep.StatusPending {
		t.Fatalf("the PKCSReq sent again after the skew: pkiStatus %s failInfo %s (%s), want PENDING", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	wantFailure(t, send(otherDER, otherMsg), scep.BadTime)
	ahead.signingTime = ts.Clock.Now().Add(90 * time.Second)
	_, rep := ts.exchange(t, ahead)
	wantFailure(t, rep, scep.BadTime)

	reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("%d requests held, %v; want the first alone", len(reqs), err)
	}
	if _, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	ts.Clock.Advance(3 * time.Minute) // the nonce forgotten too
	cert, _ := ts.issuedCert(t, send(der, msg), msg.SignerCert, key)
	wantSentAgain(t, ts, "the PKCSReq sent again once more", send(der, msg), msg.SignerCert, key, cert)
	if n := ts.certCount(t); n != 1 {
		t.Errorf("%d certificates recorded, want 1", n)
	}
}
