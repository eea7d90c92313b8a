package scepserver_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
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
			rv, err := ts.Admin.Revoke(ctx, cert.SerialNumber.Text(16), "", c.reason, "cli:test")
			if err != nil {
				t.Fatal(err)
			}
			got := ts.signedBy(t, cert, key, subject)
			for typ, want := range c.want {
				if c.reason == pki.ReasonCertificateHold {
					if got[typ] != want {
						t.Errorf("%s: failInfoText %q,\nwant %q", typ, got[typ], want)
					}
					continue
				}
				// Revoked for good: then which certificate, when, why,
				// and what to do (r119).
				if !strings.HasPrefix(got[typ], want+": ") {
					t.Errorf("%s: failInfoText %q,\nwant it to start %q", typ, got[typ], want+": ")
				}
				for _, w := range revokedForGoodTexts(cert.SerialNumber.Text(16), rv.Certificate.RevokedAt, c.reason) {
					if !strings.Contains(got[typ], w) {
						t.Errorf("%s: failInfoText %q, want %q in it", typ, got[typ], w)
					}
				}
			}
		})
	}
}

// A certificate of a previous issuing CA that the root's CRL lists is
// refused, by an Apple-style PKCSReq as by a RenewalReq and a GetCert,
// as of a CA the root revoked (r87 D3): the PKCSReq was told its signer
// "was not issued by this CA", since that CA's RA, by which the handler
// knew the CA for ours, is dropped once the root revokes it.
func TestSignerOfRootRevokedCAIsToldSo(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	ctx := context.Background()
	oldIssuer := ts.Authority.Issuer
	key := testKey(t, 0)
	const subject = "CN=old-generation,O=Acme"
	old := ts.enrollCert(t, key, subject)

	switchAt := ts.Clock.Now().Add(time.Hour)
	if _, _, err := ca.Rollover(ts.Dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, ts.Clock); err != nil {
		t.Fatal(err)
	}
	ts.Clock.Set(switchAt.Add(time.Minute))
	if err := ts.Authority.Reload(ts.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, ts.RA = ts.Authority.Active(ts.Clock.Now())
	root, err := ca.RootIssuer(ts.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, _, err := crl.SignRootCRL(root, nil, []crl.RootRevocation{{Cert: oldIssuer.Cert, RevokedAt: ts.Clock.Now(), Reason: pki.ReasonCessationOfOperation}},
		ts.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Store.PutCRL(ctx, *signed, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := crl.ApplyRootCRL(ctx, ts.Store, ts.Authority); err != nil {
		t.Fatal(err)
	}

	const want = "the signer certificate was issued by an issuing CA that the root has revoked (listed on the root CRL)"
	for typ, text := range ts.signedBy(t, old, key, subject) {
		if text != want {
			t.Errorf("%s: failInfoText %q,\nwant %q", typ, text, want)
		}
	}
	// Signing a request for another subject, it is refused as of that CA
	// too, not as another CA's.
	_, rep := ts.exchange(t, reqParams{key: testKey(t, 1), subject: "CN=someone-else", challenge: "-", signerCert: old, signerKey: key})
	if rep.FailInfoText != want {
		t.Errorf("PKCSReq for another subject: %s (%s),\nwant %q", rep.FailInfo, rep.FailInfoText, want)
	}
}
