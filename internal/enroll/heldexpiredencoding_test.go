package enroll_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// Over EST, a held request whose retention ended undecided, sent again
// with the same key and names, is told it expired without a decision
// however its subject is encoded (r110 D5): the server derives EST
// transaction IDs from the subject's bytes, and a PrintableString resend
// (scepter est enroll --csr-key) of a UTF8String request (openssl) was
// told instead that its one-time challenge was used already. Other names
// with the key are a new request, judged as one.
func TestExpiredHeldRequestIsFoundHoweverTheSubjectIsEncoded(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RequireApproval, p.ChallengeMode, p.RequestRetention = "appr", true, enroll.ChallengeOneTime, 2*time.Minute
	f := newFixture(t, map[string]pki.Profile{"appr": p}, "appr")
	ctx := context.Background()
	k := newKey(t)
	newCSR := func(subject []byte) *x509.CertificateRequest {
		t.Helper()
		der, err := csr.Create(csr.Template{RawSubject: subject, DNSNames: []string{"e.example"}}, k)
		if err != nil {
			t.Fatal(err)
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "appr", "test")
	if err != nil {
		t.Fatal(err)
	}
	overEST := func(req *x509.CertificateRequest) enroll.Request {
		id := sha256.Sum256(append(slices.Clone(req.RawSubjectPublicKeyInfo), req.RawSubject...))
		return enroll.Request{CSR: req, Evidence: enroll.Evidence{HTTPUser: "dev", HTTPPassword: otp}, Protocol: pki.ProtocolEST,
			Profile: "appr", TransactionID: "est-" + hex.EncodeToString(id[:16]), RemoteAddr: "127.0.0.1:4000"}
	}
	first := overEST(newCSR(utf8Subject(t, "est-5")))
	res, err := f.svc.Enroll(ctx, first)
	if err != nil || res.Pending == nil {
		t.Fatalf("held: %s, %v", answered(res), err)
	}
	f.clock.Advance(p.RequestRetention + time.Second)
	for _, c := range []struct {
		name        string
		subject     []byte
		wantExpired bool
	}{
		{"as it was (UTF8String)", utf8Subject(t, "est-5"), true},
		{"the subject a PrintableString", printableSubject(t, "est-5"), true},
		{"the subject a PrintableString, in other case", printableSubject(t, "EST-5"), true},
		{"another subject", printableSubject(t, "est-6"), false},
	} {
		req := overEST(newCSR(c.subject))
		res, err := f.svc.Enroll(ctx, req)
		msg := pki.ErrorMessage(err)
		expired := enroll.RequestExpired(err) && strings.Contains(msg, onlyRequestID(t, f, first)) && strings.Contains(msg, "without a decision")
		if expired != c.wantExpired || pki.ErrorCode(err) != pki.EBadRequest && pki.ErrorCode(err) != pki.EForbidden {
			t.Errorf("%s: %s, %v (%s); want told it expired: %v", c.name, answered(res), err, pki.ErrorCode(err), c.wantExpired)
		}
	}
	// With a new challenge it is a new request, held in the expired one's
	// place.
	if otp, _, err = f.admin.NewChallenge(ctx, time.Hour, "appr", "test"); err != nil {
		t.Fatal(err)
	}
	if res, err := f.svc.Enroll(ctx, overEST(newCSR(printableSubject(t, "est-5")))); err != nil || res.Pending == nil {
		t.Errorf("with a new challenge: %s, %v; want held", answered(res), err)
	}
}

// onlyRequestID is the ID of the one request held for req's key.
func onlyRequestID(t *testing.T, f *fixture, req enroll.Request) string {
	t.Helper()
	reqs, err := f.st.RequestsByKey(context.Background(), req.Profile, req.CSR.RawSubjectPublicKeyInfo)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("requests of the key: %d, %v; want one", len(reqs), err)
	}
	return reqs[0].ID
}
