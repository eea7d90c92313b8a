package scepserver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/scep"
)

// Once the root's CRL lists a previous issuing CA, its generation's RA no
// longer decrypts: a request encrypted to it, as by a client that cached
// GetCACert before the rollover, is refused (badMessageCheck) in a reply
// the current RA signs, never that RA. The current RA still serves.
func TestRootRevokedGenerationRAIsNotUsed(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	ctx := context.Background()
	oldIssuer, oldRA := ts.Authority.Issuer, ts.RA
	switchAt := ts.Clock.Now().Add(time.Hour)
	if _, _, err := ca.Rollover(ts.Dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, ts.Clock); err != nil {
		t.Fatal(err)
	}
	ts.Clock.Set(switchAt.Add(time.Minute))
	if err := ts.Authority.Reload(ts.Clock.Now()); err != nil { // as serve's CA reload
		t.Fatal(err)
	}
	_, newRA := ts.Authority.Active(ts.Clock.Now())
	if newRA.Cert.Equal(oldRA.Cert) {
		t.Fatal("the switch did not happen")
	}
	// Before: the old RA decrypts, and signs its reply.
	ts.enrollCert(t, testKey(t, 1), "CN=cached-ra,O=Acme")

	root, err := ca.RootIssuer(ts.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, _, err := crl.SignRootCRL(root, nil, []crl.RootRevocation{{Cert: oldIssuer.Cert, RevokedAt: ts.Clock.Now(), Reason: 2}}, ts.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Store.PutCRL(ctx, *signed, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := crl.ApplyRootCRL(ctx, ts.Store, ts.Authority); err != nil {
		t.Fatal(err)
	}

	der, msg := ts.build(t, reqParams{key: testKey(t, 2), subject: "CN=after-root-crl,O=Acme"}) // to ts.RA, the old RA
	resp, body := ts.post(t, der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	rep, err := scep.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.VerifyWith(oldRA.Cert); err == nil {
		t.Error("the root-revoked generation's RA signed a reply")
	}
	if err := rep.VerifyWith(newRA.Cert); err != nil {
		t.Fatalf("the reply is not signed by the current RA: %v", err)
	}
	if rep.TransactionID != msg.TransactionID {
		t.Errorf("transactionID %q, want %q", rep.TransactionID, msg.TransactionID)
	}
	wantFailure(t, rep, scep.BadMessageCheck)

	ts.RA = newRA
	ts.enrollCert(t, testKey(t, 3), "CN=current-ra,O=Acme")
}
