package scepserver_test

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
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
	nextIssuer, nextRA, err := ca.Rollover(ts.Dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, ts.Clock)
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

// signAwayOnce is an RA key that decrypts, and whose first signature
// fails as a token taken away for a moment does.
type signAwayOnce struct {
	crypto.Signer
	mu     *sync.Mutex
	failed *bool
}

func (k signAwayOnce) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.mu.Lock()
	fail := !*k.failed
	*k.failed = true
	k.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("keys: signing with the RA key in the PKCS#11 token: %w", pki.ErrUnavailable)
	}
	return k.Signer.Sign(r, digest, opts)
}

func (k signAwayOnce) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return k.Signer.(crypto.Decrypter).Decrypt(r, msg, opts)
}

// raSignAwayOnce serves the active RA with a key whose first signature
// fails.
type raSignAwayOnce struct {
	scepserver.Service
	key signAwayOnce
}

func (s raSignAwayOnce) ActiveRA() *pki.RA {
	c := *s.Service.ActiveRA()
	c.Key = s.key
	return &c
}

func (s raSignAwayOnce) RAs() []*pki.RA { return []*pki.RA{s.ActiveRA()} }

// The RA key failing between the CA's signature and the CertRep's (its
// token away a moment): the certificate is issued and recorded, the device
// is told 503, the log line says which certificate was issued, and the
// same bytes sent again are answered with that certificate, not a second.
func TestRAKeyFailsAfterIssuance(t *testing.T) {
	var logged syncBuffer
	var mu sync.Mutex
	failed := false
	ts := newTestServer(t, serverOptions{
		log: slog.New(slog.NewTextHandler(&logged, nil)),
		service: func(s scepserver.Service) scepserver.Service {
			return raSignAwayOnce{Service: s, key: signAwayOnce{Signer: s.ActiveRA().Key, mu: &mu, failed: &failed}}
		},
	})
	key := testKey(t, 1)
	der, msg := ts.build(t, reqParams{key: key})
	resp, body := ts.post(t, der)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the CertRep's signature failed: HTTP %d, Retry-After %q, %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	certs, _, err := ts.Store.ListCertificates(context.Background(), store.CertFilter{Limit: 10})
	if err != nil || len(certs) != 1 {
		t.Fatalf("%d certificates recorded (%v), want the one issued", len(certs), err)
	}
	var line string
	for l := range strings.Lines(logged.String()) {
		if strings.Contains(l, "scep: unavailable") {
			line = l
		}
	}
	if !strings.Contains(line, certs[0].SerialHex) || !strings.Contains(line, "issued") {
		t.Errorf("the 503's log line does not say certificate %s was issued: %q", certs[0].SerialHex, line)
	}
	_, body = ts.post(t, der)
	got, _ := ts.issuedCert(t, ts.parseReply(t, body, msg), msg.SignerCert, key)
	if got.SerialNumber.Text(16) != strings.TrimLeft(certs[0].SerialHex, "0") || ts.certCount(t) != 1 {
		t.Errorf("the same bytes again: serial %x, %d certificates; want %s and 1", got.SerialNumber, ts.certCount(t), certs[0].SerialHex)
	}
}
