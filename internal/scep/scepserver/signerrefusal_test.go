package scepserver_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// signedBy sends, signed by signer (whose key is signerKey), each of the
// three messages a certificate of ours authenticates: a RenewalReq and an
// Apple-style PKCSReq (no challenge, signed by the certificate it renews)
// for a new key, and a GetCert. It returns their refusals' texts, by
// message type, and fails the test on any answer but badCertId.
func (ts *testServer) signedBy(t *testing.T, signer *x509.Certificate, signerKey crypto.Signer, subject string) map[scep.MessageType]string {
	t.Helper()
	got := map[scep.MessageType]string{}
	for i, typ := range []scep.MessageType{scep.RenewalReq, scep.PKCSReq, scep.GetCert} {
		p := reqParams{key: testKey(t, 1+i), subject: subject, challenge: "-", signerCert: signer, signerKey: signerKey, msgType: typ}
		if typ == scep.GetCert {
			content, err := scep.MarshalIssuerAndSerial(signer.RawIssuer, signer.SerialNumber)
			if err != nil {
				t.Fatal(err)
			}
			p.key, p.content = signerKey, content
		}
		before := ts.certCount(t)
		_, rep := ts.exchange(t, p)
		if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadCertID {
			t.Errorf("%s: %s %s (%s), want FAILURE badCertId", typ, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
		if n := ts.certCount(t); n != before {
			t.Errorf("%s: %d certificates issued", typ, n-before)
		}
		got[typ] = rep.FailInfoText
	}
	return got
}

// A certificate on hold is refused as on hold, with what to do, by a
// RenewalReq, an Apple-style PKCSReq and a GetCert it signs alike (r87
// D1): the PKCSReq and GetCert were told "the signer certificate is
// revoked", which `scepter renew --pkcsreq` took as final and removed the
// new key it kept (it keeps it on "lift the hold"). One revoked for good
// is told it is revoked, never to ask for a hold to be lifted.
func TestSignerOnHoldIsToldSo(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	ctx := context.Background()
	for _, c := range []struct {
		reason int
		want   map[scep.MessageType]string
	}{
		{pki.ReasonCertificateHold, map[scep.MessageType]string{
			scep.RenewalReq: "the certificate to renew is on hold (certificateHold); ask the operator to lift the hold, then renew",
			scep.PKCSReq:    "the signer certificate is on hold (certificateHold); ask the operator to lift the hold, then send the request again",
			scep.GetCert:    "the signer certificate is on hold (certificateHold); ask the operator to lift the hold, then send the request again",
		}},
		{pki.ReasonSuperseded, map[scep.MessageType]string{
			scep.RenewalReq: "the certificate to renew is revoked",
			scep.PKCSReq:    "the signer certificate is revoked",
			scep.GetCert:    "the signer certificate is revoked",
		}},
	} {
		name, _ := pki.ReasonName(c.reason)
		t.Run(name, func(t *testing.T) {
			subject := "CN=held-signer-" + name
			key := testKey(t, 0)
			cert := ts.enrollCert(t, key, subject)
			if _, err := ts.Admin.Revoke(ctx, cert.SerialNumber.Text(16), "", c.reason, "cli:test"); err != nil {
				t.Fatal(err)
			}
			got := ts.signedBy(t, cert, key, subject)
			for typ, want := range c.want {
				if got[typ] != want {
					t.Errorf("%s: failInfoText %q,\nwant %q", typ, got[typ], want)
				}
			}
		})
	}
}
