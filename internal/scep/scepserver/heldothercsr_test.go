package scepserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// The reviewer's case: at a profile that holds requests, a PKCSReq sent
// under a held request's transaction ID, with the same key but a CSR for
// another subject, was answered PENDING about the held request (and,
// once approved, would have collected its certificate). It is refused
// with badRequest saying the transaction holds another request; the held
// request alone stays, and the documented resends (byte for byte; a new
// message with a new nonce and challenge around the same CSR) are still
// answered PENDING.
func TestHeldTransactionAskedForAnotherCSR(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	ctx := context.Background()
	base := reqParams{key: testKey(t, 1), path: "/scep/approval", txID: "tx-h-pc", subject: "CN=h-pc,O=Acme"}
	send := func(der []byte, msg *scep.PKIMessage) *scep.PKIMessage {
		t.Helper()
		resp, body := ts.postTo(t, base.path, der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		return ts.parseReply(t, body, msg)
	}
	der, msg := ts.build(t, base)
	if rep := send(der, msg); rep.PKIStatus != scep.StatusPending {
		t.Fatalf("first: %s %s (%s), want PENDING", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}

	evil := base
	evil.subject = "CN=h-pc-evil,O=Acme"
	_, rep := ts.exchange(t, evil)
	wantFailure(t, rep, scep.BadRequest)
	if !strings.Contains(rep.FailInfoText, "this transaction ID holds another request") {
		t.Errorf("failInfoText %q, want it to say the transaction holds another request", rep.FailInfoText)
	}

	if rep := send(der, msg); rep.PKIStatus != scep.StatusPending {
		t.Errorf("sent again byte for byte: %s %s (%s), want PENDING", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	if _, rep := ts.exchange(t, base); rep.PKIStatus != scep.StatusPending {
		t.Errorf("the same CSR in a new message: %s %s (%s), want PENDING", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{})
	if err != nil || len(reqs) != 1 || !strings.Contains(reqs[0].Subject, "CN=h-pc,") {
		t.Fatalf("requests %+v (%v), want the one for CN=h-pc", reqs, err)
	}
}
