package console_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strconv"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// hidden returns the first character of page that a reader does not see
// as itself (a bidi control, a zero-width or other format character, a
// line separator, a control other than the layout's line breaks), or -1.
func hidden(page string) rune {
	for _, r := range page {
		if r != '\n' && r != '\t' && r != '\r' && !strconv.IsPrint(r) {
			return r
		}
	}
	return -1
}

// recordCertificate stores a certificate of the fixture's issuing CA for
// subject, as an inventory that predates a refusal of such names holds
// it, and returns it.
func (e *env) recordCertificate(subject pkix.Name) *x509.Certificate {
	e.t.Helper()
	issuer := e.pki.Issuer()
	key, err := keys.Generate(keys.P256)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.pki.Clock.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x7e57), Subject: subject, NotBefore: now, NotAfter: now.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, key.Public(), issuer.Signer)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		e.t.Fatal(err)
	}
	rec := pki.Certificate{
		SerialHex: c.SerialNumber.Text(16), IssuerID: issuer.ID, Issuer: csr.NameString(c.RawIssuer), Subject: csr.NameString(c.RawSubject),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Status: pki.StatusValid, Profile: pki.DefaultProfile().Name,
		Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, RequesterAddr: "192.0.2.9:1", TransactionID: "tx\u200b1",
		KeyType: "p256", CreatedAt: now, DER: der,
	}
	if err := e.pki.Store.RecordIssuance(context.Background(), store.Issuance{Certificate: rec, Now: now}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// Text a requester wrote reaches the console's pages with its bidi and
// invisible characters escaped, as the CLI shows it: a refused request's
// subject with a right-to-left override must not read as "CN=printer-7
// admin" in the audit log, nor a certificate's "CN=adm\u200bin" as
// "CN=admin" in the inventory.
func TestUntrustedTextIsShownEscaped(t *testing.T) {
	e := newEnv(t, console.Options{})
	ctx := context.Background()

	// A request with a wrong challenge is refused; its subject is recorded
	// as the requester sent it.
	refused := e.pki.Request(t, "printer-7 \u202enimda\u202c")
	refused.Evidence.Challenge = "not-the-challenge-0123456789"
	if _, err := e.pki.Service.Enroll(ctx, refused.Request); err == nil {
		t.Fatal("a request with a wrong challenge was not refused")
	}
	// An event whose every field a requester could have written.
	if err := e.pki.Store.AppendAudit(ctx, pki.AuditEvent{
		Time: e.pki.Clock.Now(), Type: pki.EventEnrollFailed, Actor: "est:r\u200boot", Profile: "default\ufeff",
		Subject: "CN=lab\u00ad-1", Outcome: "failure", Reason: "bad\u2028password", Detail: "agent\u180e/1.0",
	}); err != nil {
		t.Fatal(err)
	}
	cert := e.recordCertificate(pkix.Name{CommonName: "adm\u200bin", Organization: []string{"Acme\u2029"}})
	// The service holds no such request today; one held before it refused
	// them still waits in the store.
	now := e.pki.Clock.Now()
	if err := e.pki.Store.CreateRequest(ctx, pki.EnrollmentRequest{
		ID: "held-1", TransactionID: "tx-held-1", Profile: "held", Protocol: pki.ProtocolSCEP, Status: pki.RequestPending,
		Subject: "CN=cam\u202e3pm.exe", SANs: []string{"DNS:cam\u200b3.example"}, CSR: refused.CSR.Raw, RequesterAddr: "192.0.2.9:1",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}, nil, pki.AuditEvent{Time: now, Type: pki.EventRequestPending, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}

	b := e.as("auditor")
	for _, tc := range []struct {
		page string
		want []string // as the page shows them
	}{
		{"/ui/audit", []string{
			`CN=printer-7 \u202enimda\u202c`, `est:r\u200boot`, `default\ufeff`, `CN=lab\u00ad-1`, `bad\u2028password`, `agent\u180e/1.0`,
		}},
		{"/ui/certificates", []string{`CN=adm\u200bin,O=Acme\u2029`}},
		{"/ui/certificates/" + cert.SerialNumber.Text(16), []string{
			`<title>Certificate adm\u200bin · scepter</title>`, `<h1>adm\u200bin `, `<dd>CN=adm\u200bin,O=Acme\u2029</dd>`, `tx\u200b1`,
		}},
		{"/ui/requests", []string{`CN=cam\u202e3pm.exe`, `DNS:cam\u200b3.example`}},
	} {
		res := b.get(tc.page)
		expectStatus(t, tc.page, res, 200)
		expectBody(t, tc.page, res, tc.want...)
		if r := hidden(res.body); r != -1 {
			t.Errorf("%s: the page holds the character %U unescaped", tc.page, r)
		}
	}

	// Whoever may decide sees the request's subject escaped in the form's
	// labels too.
	res := e.as("operator").get("/ui/requests")
	expectBody(t, "requests, as operator", res, `aria-label="Approve the request of CN=cam\u202e3pm.exe"`, `Reason to reject the request of CN=cam\u202e3pm.exe`)
	if r := hidden(res.body); r != -1 {
		t.Errorf("requests, as operator: the page holds the character %U unescaped", r)
	}
}
