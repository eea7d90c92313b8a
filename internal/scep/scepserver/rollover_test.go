package scepserver_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/scep"
)

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	return readResponse(t, resp, err)
}

func TestGetNextCACertAndRollover(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key := testKey(t, 0)
	old := ts.enrollCert(t, key, "CN=before-rollover,O=Acme")
	oldIssuer := ts.Authority.Issuer

	// Before a rollover: not advertised, not served.
	if _, caps := get(t, ts.URL+"/scep?operation=GetCACaps"); strings.Contains(string(caps), "GetNextCACert") {
		t.Fatal("GetNextCACert advertised without a next CA")
	}
	if resp, _ := get(t, ts.URL+"/scep?operation=GetNextCACert"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GetNextCACert without a next CA: HTTP %d", resp.StatusCode)
	}

	switchAt := ts.Clock.Now().Add(30 * day)
	nextIssuer, nextRA, err := ca.Rollover(ts.Dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, ts.Clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Authority.SetNext(nextIssuer, nextRA, switchAt); err != nil {
		t.Fatal(err)
	}
	if _, caps := get(t, ts.URL+"/scep?operation=GetCACaps"); !strings.Contains(string(caps), "GetNextCACert") {
		t.Fatalf("GetNextCACert not advertised during a rollover: %q", caps)
	}
	resp, body := get(t, ts.URL+"/scep?operation=GetNextCACert")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-x509-next-ca-cert" {
		t.Fatalf("GetNextCACert: HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sd, err := cms.ParseSignedData(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.Signers) != 1 {
		t.Fatal("GetNextCACert is not signed")
	}
	if err := sd.Verify(&sd.Signers[0], ts.RA.Cert); err != nil {
		t.Fatalf("GetNextCACert not signed by the current RA: %v", err)
	}
	inner, err := cms.ParseSignedData(sd.Content)
	if err != nil {
		t.Fatal(err)
	}
	var haveCA, haveRA bool
	for _, c := range inner.Certificates {
		haveCA = haveCA || c.Equal(nextIssuer.Cert)
		haveRA = haveRA || c.Equal(nextRA.Cert)
	}
	if !haveCA || !haveRA {
		t.Errorf("GetNextCACert lacks the next CA (%v) or RA (%v)", haveCA, haveRA)
	}
	// GetCACert still serves the current RA until the switch.
	_, body = get(t, ts.URL+"/scep?operation=GetCACert")
	if cur, _ := cms.ParseSignedData(body); cur == nil || !cur.Certificates[0].Equal(ts.RA.Cert) {
		t.Error("GetCACert changed before the switch")
	}

	// After the switch: the next CA is current.
	ts.Clock.Set(captureTime.Add(300 * day))
	if _, caps := get(t, ts.URL+"/scep?operation=GetCACaps"); strings.Contains(string(caps), "GetNextCACert") {
		t.Error("GetNextCACert still advertised after the switch")
	}
	_, body = get(t, ts.URL+"/scep?operation=GetCACert")
	cur, err := cms.ParseSignedData(body)
	if err != nil || !cur.Certificates[0].Equal(nextRA.Cert) {
		t.Fatalf("GetCACert after the switch does not lead with the new RA: %v", err)
	}
	// A client that cached GetCACert before the switch encrypts to the old
	// RA: its reply is signed by that RA, the only one it knows (exchange
	// verifies the reply with ts.RA).
	ts.enrollCert(t, testKey(t, 2), "CN=cached-ra,O=Acme")
	ts.RA = nextRA
	// A certificate of the old CA still verifies, and renews, now under the new CA.
	if err := old.CheckSignatureFrom(oldIssuer.Cert); err != nil {
		t.Fatal(err)
	}
	msg, rep := ts.exchange(t, reqParams{key: testKey(t, 1), signerCert: old, signerKey: key, challenge: "-", msgType: scep.RenewalReq, subject: "CN=before-rollover,O=Acme"})
	renewed, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
	if err := renewed.CheckSignatureFrom(nextIssuer.Cert); err != nil {
		t.Errorf("the renewed certificate is not from the new CA: %v", err)
	}
}
