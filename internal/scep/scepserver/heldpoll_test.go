package scepserver_test

import (
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// A CertPoll's IssuerAndSubject names the held request as the held
// request's match compares names (csr.SameHeldName, RFC 5280 §7.1): a
// device polling as CN=AP-1 for a request held as CN=ap-1 is answered
// about it, as its PKCSReq sent again is; a serialNumber in another case,
// or another name, is still not the request.
func TestCertPollNamesTheHeldSubjectAsTheHeldMatchDoes(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	const held = "CN=ap-1,O=Acme Corp,SERIALNUMBER=Ab12"
	key := testKey(t, 1)
	for i, tc := range []struct {
		name, polled string
		pending      bool
	}{
		{"the same name", held, true},
		{"CN and O in another case", "CN=AP-1,O=ACME CORP,SERIALNUMBER=Ab12", true},
		{"a doubled inner space", "CN=ap-1,O=Acme  Corp,SERIALNUMBER=Ab12", true},
		{"serialNumber in another case", "CN=ap-1,O=Acme Corp,SERIALNUMBER=AB12", false},
		{"another CN", "CN=ap-2,O=Acme Corp,SERIALNUMBER=Ab12", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			txID := "tx-held-name-" + string(rune('a'+i))
			base := reqParams{key: key, subject: held, path: "/scep/approval", txID: txID}
			if _, rep := ts.exchange(t, base); rep.PKIStatus != scep.StatusPending {
				t.Fatalf("PKCSReq: pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
			}
			subject, err := csr.ParseDN(tc.polled)
			if err != nil {
				t.Fatal(err)
			}
			content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, subject)
			if err != nil {
				t.Fatal(err)
			}
			poll := base
			poll.msgType, poll.content = scep.CertPoll, content
			_, rep := ts.exchange(t, poll)
			if tc.pending {
				if rep.PKIStatus != scep.StatusPending {
					t.Errorf("CertPoll naming %q for %q: pkiStatus %s failInfo %s (%s), want PENDING", tc.polled, held, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
				}
				return
			}
			wantFailure(t, rep, scep.BadCertID)
		})
	}
}
