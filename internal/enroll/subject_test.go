package enroll_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// multiValuedSubject is CN=allowed+OU=other,O=Acme: two attributes in one
// RDN, which a reader of the CN alone would take for the whole name. (Two
// of one type in an RDN are refused, X.501 §9.3.)
const multiValuedSubject = "OU=other+CN=allowed,O=Acme" // DER sorts the SET: the shorter first

func multiValuedRequest(t *testing.T, challenge, txID string) enroll.Request {
	t.Helper()
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	raw, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Acme"}},
		{{Type: cn, Value: "allowed"}, {Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: "other"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := csr.Create(csr.Template{RawSubject: raw}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: challenge}, Protocol: pki.ProtocolSCEP, TransactionID: txID, RemoteAddr: "127.0.0.1:1234"}
}

// TestSubjectReachesWebhookAndRecordWhole: a subject with a multi-valued RDN
// reaches the challenge webhook, the inventory, the audit trail and a held
// request with every attribute, so the webhook judges the subject the
// certificate carries and a search for the second CN finds it.
func TestSubjectReachesWebhookAndRecordWhole(t *testing.T) {
	ctx := context.Background()
	webhook := pki.DefaultProfile()
	webhook.Name, webhook.ChallengeMode = "mdm", enroll.ChallengeWebhook
	held := pki.DefaultProfile()
	held.Name, held.RequireApproval = "held", true
	hook := &fakeHook{allow: true}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"mdm": webhook, "held": held}, DefaultProfile: "mdm", Webhook: hook})

	res, err := f.svc.Enroll(ctx, multiValuedRequest(t, "otp", "tx-issued"))
	if err != nil {
		t.Fatal(err)
	}
	if hook.got.Subject != multiValuedSubject {
		t.Errorf("the webhook saw subject %q, want %q", hook.got.Subject, multiValuedSubject)
	}
	if got := csr.NameString(res.Certificate.RawSubject); got != multiValuedSubject {
		t.Fatalf("issued for %q, want %q", got, multiValuedSubject)
	}
	rec, err := f.st.Certificate(ctx, res.Record.IssuerID, res.Record.SerialHex)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Subject != multiValuedSubject || rec.Issuer != csr.NameString(res.Certificate.RawIssuer) {
		t.Errorf("recorded subject %q issuer %q, want subject %q", rec.Subject, rec.Issuer, multiValuedSubject)
	}
	found, _, err := f.st.ListCertificates(ctx, store.CertFilter{Search: "ou=other"})
	if err != nil || len(found) != 1 {
		t.Errorf("a search for the RDN's second attribute found %d certificates, %v", len(found), err)
	}
	issued, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventIssued})
	if err != nil || len(issued) != 1 || issued[0].Subject != multiValuedSubject {
		t.Errorf("issued events %+v, %v", issued, err)
	}

	hook.allow = false
	if _, err := f.svc.Enroll(ctx, multiValuedRequest(t, "otp", "tx-refused")); err == nil {
		t.Fatal("the webhook's refusal let the request through")
	}
	failed, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed})
	if err != nil || len(failed) != 1 || failed[0].Subject != multiValuedSubject {
		t.Errorf("refusal events %+v, %v", failed, err)
	}

	otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "held", "test")
	if err != nil {
		t.Fatal(err)
	}
	req := multiValuedRequest(t, otp, "tx-held")
	req.Profile = "held"
	pending, err := f.svc.Enroll(ctx, req)
	if err != nil || pending.Pending == nil {
		t.Fatalf("held: %+v, %v", pending, err)
	}
	if pending.Pending.Subject != multiValuedSubject {
		t.Errorf("held request's subject %q, want %q", pending.Pending.Subject, multiValuedSubject)
	}
}
