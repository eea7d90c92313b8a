package scepserver_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// lackingRA is a service that knows an RA certificate whose key this node
// lacks (renewed on another node).
type lackingRA struct {
	scepserver.Service
	lacked *x509.Certificate
}

func (l lackingRA) LackedRAs() []*x509.Certificate { return []*x509.Certificate{l.lacked} }

// A request encrypted to an RA this node lacks the key of is answered 503
// with Retry-After and the reason, not a final FAILURE; one encrypted to
// an RA nobody knows is still badMessageCheck, and the loaded RA still
// serves.
func TestLackedRAIsAnswered503(t *testing.T) {
	// RAs of other CAs stand for the one renewed elsewhere and an unknown one.
	other := func() *x509.Certificate {
		a, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{GenerateKey: testKeys.Generate}, pkitest.NewClock(captureTime))
		if err != nil {
			t.Fatal(err)
		}
		_, ra := a.Active(captureTime)
		return ra.Cert
	}
	lacked, unknown := other(), other()
	ts := newTestServer(t, serverOptions{service: func(s scepserver.Service) scepserver.Service { return lackingRA{s, lacked} }})
	active := ts.RA

	to := func(cert *x509.Certificate) *pki.RA { return &pki.RA{Cert: cert, Chain: []*x509.Certificate{cert}} }
	ts.RA = to(lacked)
	der, _ := ts.build(t, reqParams{key: testKey(t, 1), subject: "CN=to-lacked-ra,O=Acme"})
	resp, body := ts.post(t, der)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "lacks the key of the SCEP RA certificate "+pki.SerialText(lacked.SerialNumber)) {
		t.Errorf("request encrypted to the lacked RA: HTTP %d, Retry-After %q: %.200q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// What the operator does is what docs/deployment.md and `ca renew-ra`
	// say, not a copy of a whole DATA/ca (r100 W2).
	if want := "the operator brings it here with 'scepter ca export-keys' on the node that renewed it and 'scepter ca import-keys' here"; !strings.Contains(string(body), want) {
		t.Errorf("the 503 does not say %q: %q", want, body)
	}

	ts.RA = to(unknown)
	der, _ = ts.build(t, reqParams{key: testKey(t, 2), subject: "CN=to-unknown-ra,O=Acme"})
	resp, body = ts.post(t, der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("request encrypted to an unknown RA: HTTP %d: %s", resp.StatusCode, body)
	}
	rep, err := scep.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	wantFailure(t, rep, scep.BadMessageCheck)

	ts.RA = active
	ts.enrollCert(t, testKey(t, 3), "CN=to-active-ra,O=Acme")
}

// rechecking is a service whose list of lacked RAs is stale (empty) until
// it reads again: the RA was renewed on another node a moment ago.
type rechecking struct {
	scepserver.Service
	lacked   *x509.Certificate
	rechecks *int
}

func (r rechecking) LackedRAs() []*x509.Certificate { return nil }

func (r rechecking) RecheckLackedRAs(context.Context) []*x509.Certificate {
	*r.rechecks++
	return []*x509.Certificate{r.lacked}
}

// A request encrypted to an RA that the node's list does not name yet is
// answered 503 when reading the list again finds it; a request the loaded
// RA opens reads nothing.
func TestLackedRAIsRechecked(t *testing.T) {
	a, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{GenerateKey: testKeys.Generate}, pkitest.NewClock(captureTime))
	if err != nil {
		t.Fatal(err)
	}
	_, lacked := a.Active(captureTime)
	rechecks := 0
	ts := newTestServer(t, serverOptions{service: func(s scepserver.Service) scepserver.Service {
		return rechecking{Service: s, lacked: lacked.Cert, rechecks: &rechecks}
	}})
	ts.enrollCert(t, testKey(t, 1), "CN=to-active-ra,O=Acme")
	if rechecks != 0 {
		t.Errorf("a request the loaded RA opens read the lacked RAs %d times", rechecks)
	}

	ts.RA = lacked
	der, _ := ts.build(t, reqParams{key: testKey(t, 2), subject: "CN=to-renewed-ra,O=Acme"})
	resp, body := ts.post(t, der)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "lacks the key of the SCEP RA certificate "+pki.SerialText(lacked.Cert.SerialNumber)) {
		t.Errorf("request encrypted to the RA found by the recheck: HTTP %d: %.200q", resp.StatusCode, body)
	}
	if rechecks != 1 {
		t.Errorf("the lacked RAs were read again %d times, want 1", rechecks)
	}
}
