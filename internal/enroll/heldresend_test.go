package enroll_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A request sent under a held request's transaction ID with the same key
// but asking for something else (another subject, another name) is
// refused, before and after the approval: answered from the held request,
// it would wait for and then collect a certificate for names it did not
// ask for in its last message. What the client sent again as it was
// (byte for byte, signed anew, with another challengePassword, with
// extensions the CA never copies, such as certmonger's new
// subjectKeyIdentifier at each resubmit) is answered from the held request
// as before.
func TestHeldRequestAskedAgainForOtherNamesIsRefused(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.ChallengeMode, p.RequireApproval = "approval", enroll.ChallengeOneTime, true
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"approval": p}, DefaultProfile: "approval"})
	ctx := context.Background()
	k := newKey(t)
	otp := func() string {
		t.Helper()
		c, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// ask builds a request of k under the held transaction ID; the
	// challenge goes in the CSR, as SCEP sends it.
	askWith := func(challenge string, exts []pkix.Extension, cn string, dns ...string) enroll.Request {
		t.Helper()
		der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, ChallengePassword: challenge, ExtraExtensions: exts}, k)
		if err != nil {
			t.Fatal(err)
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: challenge}, Protocol: pki.ProtocolSCEP,
			TransactionID: "tx-h-pc", RemoteAddr: "127.0.0.1:1234"}
	}
	ask := func(challenge, cn string, dns ...string) enroll.Request {
		t.Helper()
		return askWith(challenge, nil, cn, dns...)
	}
	// certmonger puts a subjectKeyIdentifier of its own making in each CSR,
	// another at each `getcert resubmit`; the CA never copies it.
	ski := func(id byte) []pkix.Extension {
		v, err := asn1.Marshal(bytes.Repeat([]byte{id}, 20))
		if err != nil {
			t.Fatal(err)
		}
		return []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 14}, Value: v}}
	}
	keyUsage := []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: []byte{0x03, 0x02, 0x05, 0xa0}}}
	challenge := otp()
	first := ask(challenge, "h-pc", "h-pc.example")
	res, err := f.svc.Enroll(ctx, first)
	if err != nil || res.Pending == nil {
		t.Fatalf("first: %+v, %v; want held", res, err)
	}
	heldID := res.Pending.ID
	signedAnew := ask(challenge, "h-pc", "h-pc.example")
	if bytes.Equal(signedAnew.CSR.Raw, first.CSR.Raw) {
		t.Fatal("an ECDSA key signed the same request twice alike: the case tests nothing")
	}
	same := []struct {
		name string
		req  enroll.Request
	}{
		{"sent again as it was", first},
		{"signed anew", signedAnew},
		{"with another challenge", ask(otp(), "h-pc", "h-pc.example")},
		{"with a subjectKeyIdentifier (certmonger's resubmit)", askWith(challenge, ski(1), "h-pc", "h-pc.example")},
		{"with another subjectKeyIdentifier", askWith(otp(), ski(2), "h-pc", "h-pc.example")},
		{"with a keyUsage the CA does not copy", askWith(challenge, keyUsage, "h-pc", "h-pc.example")},
	}
	other := []struct {
		name string
		req  enroll.Request
	}{
		{"another subject", ask(challenge, "h-pc-evil", "h-pc.example")},
		{"another DNS name", ask(challenge, "h-pc", "h-pc.example", "evil.example")},
		{"no DNS name", ask(challenge, "h-pc")},
		{"another DNS name and a subjectKeyIdentifier", askWith(challenge, ski(3), "h-pc", "evil.example")},
	}
	check := func(when string, wantCert bool) {
		t.Helper()
		for _, c := range same {
			res, err := f.svc.Enroll(ctx, c.req)
			switch {
			case err != nil:
				t.Errorf("%s, %s: %v", when, c.name, err)
			case wantCert && (res.Certificate == nil || res.Certificate.Subject.CommonName != "h-pc"):
				t.Errorf("%s, %s: %s, want the certificate for h-pc", when, c.name, answered(res))
			case !wantCert && (res.Pending == nil || res.Pending.ID != heldID):
				t.Errorf("%s, %s: %s, want PENDING about %s", when, c.name, answered(res), heldID)
			}
		}
		for _, c := range other {
			res, err := f.svc.Enroll(ctx, c.req)
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "this transaction ID holds another request") {
				t.Errorf("%s, %s: %s, %v; want badRequest saying the transaction holds another request", when, c.name, answered(res), err)
			}
		}
		reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{})
		if err != nil || len(reqs) != 1 || reqs[0].ID != heldID {
			t.Errorf("%s: requests %+v (%v), want only %s", when, reqs, err, heldID)
		}
	}
	check("held", false)
	if _, err := f.svc.Approve(ctx, heldID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	check("approved", true)
}

// answered says what a result answers, for a test's message.
func answered(res *enroll.Result) string {
	switch {
	case res == nil:
		return "no result"
	case res.Certificate != nil:
		return "a certificate for " + res.Certificate.Subject.String()
	case res.Pending != nil:
		return "PENDING about " + res.Pending.ID + " (" + res.Pending.Subject + ")"
	}
	return "an empty result"
}
