package estserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	const message = "another node has upgraded the store's schema to version 27; upgrade this node (until then, try again later)"
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
	if reqs, _, err := f.adm.Requests(t.Context(), store.RequestFilter{}); err != nil || len(reqs) != 0 {
		t.Errorf("held requests %+v, %v; want none", reqs, err)
	}
	if strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("gated enrollments logged at ERROR:\n%s", log.String())
	}
}

// reserveDown is a store whose serial reservations fail as an unreachable
// database does while down is set.
type reserveDown struct {
	store.Store
	down atomic.Bool
}

func (s *reserveDown) ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error {
	if s.down.Load() {
		return fmt.Errorf("%w: dial tcp 127.0.0.1:5432: connection refused", store.ErrUnavailable)
	}
	return s.Store.ReserveSerial(ctx, issuerID, serialHex, tbs, at)
}

// ReserveSerialClaiming fails as ReserveSerial does: an EST user's
// enrollment claims its request with its reservation.
func (s *reserveDown) ReserveSerialClaiming(ctx context.Context, c store.TransactionClaim, issuerID, serialHex string, tbs []byte) (bool, error) {
	if s.down.Load() {
		return false, fmt.Errorf("%w: dial tcp 127.0.0.1:5432: connection refused", store.ErrUnavailable)
	}
	return s.Store.ReserveSerialClaiming(ctx, c, issuerID, serialHex, tbs)
}

// A 503 for a state that lasts (the store down, a token away, a CA this
// node lacks) is logged as a WARN per request, not an ERROR: /readyz fails
// on the state and logs it once at ERROR (r51).
func TestUnavailableIsNotLoggedAtError(t *testing.T) {
	var log lockedBuffer
	var down *reserveDown
	f := newFixture(t, fixtureOptions{logTo: &log, wrapStore: func(st store.Store) store.Store {
		down = &reserveDown{Store: st}
		return down
	}})
	down.down.Store(true) // after the fixture's own TLS certificate
	req, err := http.NewRequest(http.MethodPost, f.url+est.PathPrefix+"simpleenroll", bytes.NewReader(newCSR(t, newKey(t), "down", csr.Template{})))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", est.ContentTypePKCS10)
	req.SetBasicAuth("alice", userPassword)
	resp, err := f.httpClient(nil, 0).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("the store down: HTTP %d %q, want 503", resp.StatusCode, body)
	}
	if logs := log.String(); strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, `msg="estserver: unavailable"`) {
		t.Errorf("want a WARN and no ERROR in the log:\n%s", logs)
	}
}
