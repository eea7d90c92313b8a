package scepserver_test

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// r136 D5: a renewal keeps its certificate's subject as RFC 5280 §7.1
// compares names (CN and O in any case), over SCEP as
// over EST, whether it comes as a RenewalReq or as a PKCSReq signed by the
// certificate (with or without the challenge of its first enrollment); a
// subject with another CN is still refused.
func TestRenewalComparesSubjectAsRFC5280(t *testing.T) {
	tests := []struct {
		name      string
		msgType   scep.MessageType
		challenge string
		subject   string
		renewed   bool
	}{
		{"RenewalReq, CN in another case", scep.RenewalReq, "-", "CN=DEVICE-1,O=acme", true},
		{"PKCSReq signed by it, CN in another case", scep.PKCSReq, "-", "CN=Device-1,O=Acme", true},
		{"PKCSReq signed by it with its challenge, CN in another case", scep.PKCSReq, "", "CN=DEVICE-1,O=Acme", true},
		{"RenewalReq, another CN", scep.RenewalReq, "-", "CN=device-2,O=Acme", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, serverOptions{})
			key := testKey(t, 0)
			old := ts.enrollCert(t, key, "CN=device-1,O=Acme")
			ts.Clock.Advance(300 * day)
			msg, rep := ts.exchange(t, reqParams{key: testKey(t, 1), subject: tt.subject, signerCert: old, signerKey: key, challenge: tt.challenge, msgType: tt.msgType})
			if !tt.renewed {
				wantFailure(t, rep, scep.BadRequest)
				return
			}
			if rep.PKIStatus != scep.StatusSuccess {
				t.Fatalf("pkiStatus %s failInfo %s (%s), want SUCCESS", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
			}
			cert, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
			rec, err := ts.Store.Certificate(context.Background(), ts.Authority.Issuer.ID, cert.SerialNumber.Text(16))
			if err != nil || rec.RenewedFrom == "" {
				t.Errorf("issued %+v, %v; want a renewal of %s", rec, err, pki.SerialText(old.SerialNumber))
			}
		})
	}
}
