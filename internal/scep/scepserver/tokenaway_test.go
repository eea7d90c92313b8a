package scepserver_test

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/store"
)

// awayKey is an RA key in a PKCS#11 token that is away: it neither signs
// nor decrypts, and says so as the token's keys do.
type awayKey struct{ pub crypto.PublicKey }

func (k awayKey) Public() crypto.PublicKey { return k.pub }

func (awayKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, fmt.Errorf("keys: the PKCS#11 token is not open: %w", pki.ErrUnavailable)
}

func (awayKey) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	return nil, fmt.Errorf("keys: the PKCS#11 token is not open: %w", pki.ErrUnavailable)
}

// tokenAway serves every RA with its key away.
type tokenAway struct{ scepserver.Service }

func away(ra *pki.RA) *pki.RA {
	c := *ra
	c.Key = awayKey{ra.Cert.PublicKey}
	return &c
}

func (s tokenAway) ActiveRA() *pki.RA { return away(s.Service.ActiveRA()) }

func (s tokenAway) NextRA() (*pki.RA, bool) {
	ra, ok := s.Service.NextRA()
	if !ok {
		return nil, false
	}
	return away(ra), true
}

func (s tokenAway) RAs() []*pki.RA {
	var out []*pki.RA
	for _, ra := range s.Service.RAs() {
		out = append(out, away(ra))
	}
	return out
}

// With the RA key's token away, GetNextCACert answers 503 with
// Retry-After (it answered 500), and a PKIOperation that fails opening its
// envelope is answered 503 and recorded as a refusal, as EST's are.
func TestRATokenAway(t *testing.T) {
	ts := newTestServer(t, serverOptions{service: func(s scepserver.Service) scepserver.Service { return tokenAway{s} }})
	switchAt := ts.Clock.Now().Add(30 * day)
	nextIssuer, nextRA, err := ca.Rollover(ts.Dir, ca.RolloverOptions{SwitchAt: switchAt}, ts.Clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Authority.SetNext(nextIssuer, nextRA, switchAt); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, ts.URL+"/scep?operation=GetNextCACert")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GetNextCACert with the token away: HTTP %d, Retry-After %q, %q; want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	msg, _ := ts.build(t, reqParams{subject: "CN=token-away"})
	resp, body = ts.post(t, msg)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("PKIOperation with the token away: HTTP %d %q, want 503", resp.StatusCode, body)
	}
	evs, err := ts.Store.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "unavailable") {
		t.Errorf("refusals recorded: %+v; want the one PKIOperation, unavailable", evs)
	}
}
