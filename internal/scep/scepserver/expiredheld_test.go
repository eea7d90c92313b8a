package scepserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// A request held for approval whose retention ends before anyone decides
// it is refused as expired, with badRequest and when, to whoever asks
// after it with its key: micromdm's scepclient sending its PKCSReq again
// byte for byte (it was told 503, "a copy of this message was received
// moments ago"), strongSwan's CertPoll (it was told badCertId, "no request
// with this transaction ID"), certmonger's PKCSReq resubmitted with the
// one-time challenge the request used up. A new PKCSReq of the
// transaction with a new challenge is held in its place.
func TestExpiredHeldRequestIsSaidToHaveExpired(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval, approval.RequestRetention = "approval", true, time.Minute
	approval.ChallengeMode = enroll.ChallengeOneTime
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	ctx := context.Background()
	send := func(der []byte, msg *scep.PKIMessage) *scep.PKIMessage {
		t.Helper()
		resp, body := ts.postTo(t, "/scep/approval", der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		return ts.parseReply(t, body, msg)
	}
	wantExpired := func(what string, rep *scep.PKIMessage) {
		t.Helper()
		if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadRequest ||
			!strings.Contains(rep.FailInfoText, "expired at") || !strings.Contains(rep.FailInfoText, "without a decision") {
			t.Errorf("%s: pkiStatus %s failInfo %s (%s), want FAILURE badRequest saying the request expired without a decision", what, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
	}
	pollOf := func(p reqParams) reqParams {
		subject, err := csr.ParseDN("CN=device-1,O=Acme") // build's default
		if err != nil {
			t.Fatal(err)
		}
		content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, subject)
		if err != nil {
			t.Fatal(err)
		}
		p.msgType, p.content, p.nonce = scep.CertPoll, content, nil
		return p
	}
	newChallenge := func() string {
		otp, _, err := ts.Admin.NewChallenge(ctx, time.Hour, "approval", "test")
		if err != nil {
			t.Fatal(err)
		}
		return otp
	}

	resent := reqParams{key: testKey(t, 1), challenge: newChallenge(), path: "/scep/approval", txID: "tx-resent"}
	resentDER, resentMsg := ts.build(t, resent)
	polled := reqParams{key: testKey(t, 2), challenge: newChallenge(), path: "/scep/approval", txID: "tx-polled"}
	resubmitted := reqParams{key: testKey(t, 3), challenge: newChallenge(), path: "/scep/approval", txID: "tx-resubmitted"}
	if rep := send(resentDER, resentMsg); rep.PKIStatus != scep.StatusPending {
		t.Fatalf("PKCSReq: pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
	}
	for _, p := range []reqParams{polled, pollOf(polled), resubmitted} {
		if _, rep := ts.exchange(t, p); rep.PKIStatus != scep.StatusPending {
			t.Fatalf("%s of %s: pkiStatus %s (%s), want PENDING", p.msgType, p.txID, rep.PKIStatus, rep.FailInfoText)
		}
	}

	ts.Clock.Advance(time.Minute + time.Second)
	for i := range 2 {
		wantExpired("the PKCSReq sent again as it was", send(resentDER, resentMsg))
		_, rep := ts.exchange(t, pollOf(polled))
		wantExpired("a CertPoll", rep)
		if i == 0 {
			_, rep = ts.exchange(t, resubmitted)
			wantExpired("the PKCSReq resubmitted with its used-up challenge", rep)
		}
	}
	// Enrolled again with a new challenge, the transaction holds a new
	// request, which is pending.
	resubmitted.challenge = newChallenge()
	for _, p := range []reqParams{resubmitted, pollOf(resubmitted)} {
		if _, rep := ts.exchange(t, p); rep.PKIStatus != scep.StatusPending {
			t.Errorf("%s after enrolling again: pkiStatus %s failInfo %s (%s), want PENDING", p.msgType, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
	}
}
