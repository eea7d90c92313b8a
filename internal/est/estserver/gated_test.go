package estserver_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A node whose enrollment service's gate is closed (its store's schema is
// newer than its binary's) answers enrollments 503 with the gate's
// message, at an approval profile too (nothing held), and logs none of
// them at ERROR: the state lasts until the node is upgraded, was logged
// once at ERROR by the schema watch, and a fleet retrying every few
// seconds would flood the log.
func TestGatedEnrollmentIsNotLoggedAtError(t *testing.T) {
	const message = "this server is being upgraded: try again later"
	var closed atomic.Bool
	var log lockedBuffer
	held := profile("held", func(p *pki.Profile) { p.RequireApproval = true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{held}, logTo: &log, issuanceGate: func() error {
		if closed.Load() {
			return pki.Errorf(pki.EUnavailable, message)
		}
		return nil
	}})
	closed.Store(true) // after the fixture's own TLS certificate
	c := f.httpClient(nil, 0)
	for _, op := range []string{"simpleenroll", "held/simpleenroll"} {
		// Not f.post, which takes any 5xx for a fault.
		req, err := http.NewRequest(http.MethodPost, f.url+est.PathPrefix+op, bytes.NewReader(newCSR(t, newKey(t), "gated", csr.Template{})))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", est.ContentTypePKCS10)
		req.SetBasicAuth("alice", userPassword)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), message) {
			t.Errorf("%s: HTTP %d %q (Retry-After %q), want 503 %q with Retry-After", op, resp.StatusCode, body, resp.Header.Get("Retry-After"), message)
		}
	}
	if reqs, err := f.adm.Requests(t.Context(), store.RequestFilter{}); err != nil || len(reqs) != 0 {
		t.Errorf("held requests %+v, %v; want none", reqs, err)
	}
	if strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("gated enrollments logged at ERROR:\n%s", log.String())
	}
}
