package scepserver_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// Regression tests for the security review's findings (issue 8): each
// failed on the code before it.

// Finding 5: a message without signingTime skipped the clock check, and a
// byte-identical replay after the nonce was forgotten (7 days) got a
// second certificate. signingTime is now required, and a late replay is
// refused by it.
func TestLateReplayIssuesNothing(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	der, msg := ts.build(t, reqParams{key: testKey(t, 4)})
	_, body := ts.post(t, der)
	ts.issuedCert(t, ts.parseReply(t, body, msg), msg.SignerCert, testKey(t, 4))

	ts.Clock.Advance(7*24*time.Hour + time.Minute)
	if err := ts.Store.PurgeExpired(context.Background(), ts.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, body = ts.post(t, der)
	wantFailure(t, ts.parseReply(t, body, msg), scep.BadTime)

	noTime, msg2 := ts.build(t, reqParams{key: testKey(t, 5), noSigningTime: true})
	_, body = ts.post(t, noTime)
	rep := ts.parseReply(t, body, msg2)
	wantFailure(t, rep, scep.BadTime)
	if !strings.Contains(rep.FailInfoText, "signingTime") {
		t.Errorf("failInfoText %q does not name signingTime", rep.FailInfoText)
	}
	if n := ts.certCount(t); n != 1 {
		t.Errorf("%d certificates recorded, want 1", n)
	}
}

// Finding 6: a signer that is not self-signed, with a 1024-bit RSA key,
// asking for OAEP-SHA-512 and with a valid challenge, got a certificate
// recorded and then an HTTP 500 (the reply could not be encrypted). It is
// now refused before anything is issued.
func TestReplyThatCannotBeEncryptedIssuesNothing(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	signer := foreignCert(t, small, ts.Clock.Now())
	der, msg := ts.build(t, reqParams{key: testKey(t, 6), signerCert: signer, signerKey: small, oaepHash: crypto.SHA512})
	resp, body := ts.post(t, der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	wantFailure(t, ts.parseReply(t, body, msg), scep.BadAlg)
	if n := ts.certCount(t); n != 0 {
		t.Errorf("%d certificates recorded for a request that got no CertRep", n)
	}
}

// Finding 8: refusals decided before the enrollment service (a bad
// signature, a replay, badTime, an unsupported message type) went to the
// log only. Every refusal is now an audit event.
func TestEveryRefusalIsAudited(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	der, msg := ts.build(t, reqParams{})
	tampered := append([]byte(nil), der...)
	tampered[len(tampered)-10] ^= 0xff // the signature
	for _, body := range [][]byte{tampered, func() []byte { d, _ := ts.build(t, reqParams{msgType: "99"}); return d }(),
		func() []byte { d, _ := ts.build(t, reqParams{signingTime: captureTime.Add(-72 * time.Hour)}); return d }()} {
		ts.post(t, body)
	}
	refused, _ := ts.build(t, reqParams{challenge: "wrong"})
	ts.post(t, refused)
	// A replay, of a request nothing was issued for, sent long after it
	// (at once, it would be told to retry, as a copy still in flight).
	ts.Clock.Advance(5 * time.Minute)
	ts.post(t, refused)
	ts.post(t, []byte("not a pkiMessage"))
	evs, err := ts.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range evs {
		if e.Outcome == "failure" {
			reasons = append(reasons, e.Reason)
		}
	}
	for _, want := range []string{"signature", "unsupported messageType", "signingTime", "replayed", "malformed pkiMessage"} {
		found := false
		for _, r := range reasons {
			found = found || strings.Contains(r, want)
		}
		if !found {
			t.Errorf("no audit event for a refusal mentioning %q (have %q)", want, reasons)
		}
	}
	_ = msg
}

// Finding 9: a held request kept the CSR's challengePassword in the
// database. It is stripped before the CSR is stored.
func TestHeldRequestKeepsNoChallenge(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": pki.DefaultProfile(), "approval": approval},
		DefaultProfile: "default", StaticChallengeProfile: "approval"}})
	msg, rep := ts.exchange(t, reqParams{key: testKey(t, 7), challenge: testChallenge, path: "/scep/approval"})
	_ = msg
	if rep.PKIStatus != scep.StatusPending {
		t.Fatalf("pkiStatus %s (%s)", rep.PKIStatus, rep.FailInfoText)
	}
	reqs, _, err := ts.Store.ListRequests(context.Background(), store.RequestFilter{})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("%d requests, %v", len(reqs), err)
	}
	stored, err := x509.ParseCertificateRequest(reqs[0].CSR)
	if err != nil {
		t.Fatal(err)
	}
	if pw, err := csr.ChallengePassword(stored); err != nil || pw != "" {
		t.Errorf("the stored CSR still carries a challengePassword (%q, %v)", pw, err)
	}
	if strings.Contains(string(reqs[0].CSR), testChallenge) {
		t.Error("the challenge is in the stored CSR's bytes")
	}
	// Approving it still issues, and the poll collects it.
	if _, err := ts.Service.Approve(context.Background(), reqs[0].ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
}

// foreignCert is a certificate for key from a CA that is not ours: a signer
// that is not self-signed.
func foreignCert(t *testing.T, key crypto.Signer, now time.Time) *x509.Certificate {
	t.Helper()
	caKey := testKey(t, 9)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Foreign CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "device-1"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// A client that goes away before its answer is no server error: no 500 in
// the metrics and no ERROR in the log.
func TestClientGoneIsNoServerError(t *testing.T) {
	statuses := make(chan int, 1)
	ts := newTestServer(t, serverOptions{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithCancel(r.Context())
			cancel() // the client is gone before the server answers
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r.WithContext(ctx))
			statuses <- rec.Code
			w.WriteHeader(http.StatusNoContent)
		})
	}})
	der, _ := ts.build(t, reqParams{})
	ts.post(t, der)
	if got := <-statuses; got != pki.StatusClientGone {
		t.Errorf("status %d for a request whose client went away, want %d", got, pki.StatusClientGone)
	}
}
