package scepserver_test

import (
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/scep"
)

// An EC renewal without a challengePassword is refused with badAlg (its
// reply could not be encrypted), and the text tells the client author that
// any challenge will do for a renewal: it only keys the envelope.
func TestECRenewalWithoutChallengeSaysAnyWillDo(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	ecKey, _, inner := ecEnroll(t, ts, "CN=ec-renewer,O=Acme")
	sd, err := cms.ParseSignedData(inner)
	if err != nil {
		t.Fatal(err)
	}
	_, rep := ts.exchange(t, reqParams{key: ecKey, subject: "CN=ec-renewer,O=Acme", challenge: "-", msgType: scep.RenewalReq,
		signerCert: sd.Certificates[0], signerKey: ecKey})
	wantFailure(t, rep, scep.BadAlg)
	if !strings.Contains(rep.FailInfoText, "a renewal may carry any challengePassword") {
		t.Errorf("failInfoText %q does not say a renewal may carry any challenge", rep.FailInfoText)
	}
}
