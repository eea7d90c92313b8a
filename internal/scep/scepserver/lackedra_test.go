package scepserver_test

import (
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
		a, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{}, pkitest.NewClock(captureTime))
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
		!strings.Contains(string(body), "lacks the key of the SCEP RA certificate "+lacked.SerialNumber.Text(16)) {
		t.Errorf("request encrypted to the lacked RA: HTTP %d, Retry-After %q: %.200q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
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
