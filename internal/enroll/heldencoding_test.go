package enroll_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// utf8Subject is CN=cn with the CN a UTF8String, as openssl and Python's
// cryptography write it (Go writes a PrintableString where it can).
func utf8Subject(t *testing.T, cn string) []byte {
	t.Helper()
	der, err := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3},
		Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(cn)}}}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// printableSubject is CN=cn as Go writes it, a PrintableString.
func printableSubject(t *testing.T, cn string) []byte {
	t.Helper()
	der, err := asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// The reviewer's scenario (r57 D3, D4): over EST, whose transaction IDs
// the server derives from the subject's bytes, a held request sent again
// with the same key and names but the subject encoded otherwise (a
// UTF8String from openssl, a PrintableString from our client) is the same
// request: PENDING about it, then its certificate, never a second request
// to approve for one key. The same key asking for other names is refused
// in EST's words, with no second request either. Over SCEP, the client's
// transaction ID still decides; a resend under it with the subject
// encoded otherwise is answered as the same request too.
func TestHeldRequestMatchesItsNamesHoweverTheSubjectIsEncoded(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RequireApproval = "appr", true
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"appr": p}, DefaultProfile: "appr"})
	ctx := context.Background()
	hash, err := credential.HashPasswordWithCost("fleet-pass", testPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if err := f.st.CreateESTUser(ctx, pki.ESTUser{Name: "fleet", PasswordHash: hash, CreatedAt: now, CreatedBy: "test"},
		pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	newCSR := func(k crypto.Signer, subject []byte, dns ...string) *x509.CertificateRequest {
		t.Helper()
		der, err := csr.Create(csr.Template{RawSubject: subject, DNSNames: dns}, k)
		if err != nil {
			t.Fatal(err)
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	// overEST is the request as estserver makes it: its transaction ID is
	// a hash of the key and the subject's bytes.
	overEST := func(req *x509.CertificateRequest) enroll.Request {
		id := sha256.Sum256(append(slices.Clone(req.RawSubjectPublicKeyInfo), req.RawSubject...))
		return enroll.Request{CSR: req, Evidence: enroll.Evidence{HTTPUser: "fleet", HTTPPassword: "fleet-pass"}, Protocol: pki.ProtocolEST,
			TransactionID: "est-" + hex.EncodeToString(id[:16]), RemoteAddr: "127.0.0.1:4000"}
	}
	k := newKey(t)
	first := overEST(newCSR(k, utf8Subject(t, "ap-1"), "a.example", "b.example"))
	res, err := f.svc.Enroll(ctx, first)
	if err != nil || res.Pending == nil {
		t.Fatalf("first: %s, %v; want held", answered(res), err)
	}
	heldID := res.Pending.ID
	printable := overEST(newCSR(k, printableSubject(t, "ap-1"), "b.example", "A.example"))
	if printable.TransactionID == first.TransactionID {
		t.Fatal("both encodings have one transaction ID: the case tests nothing")
	}
	same := []struct {
		name string
		req  enroll.Request
	}{
		{"sent again as it was", first},
		{"the subject a PrintableString, the DNS names in another order and case", printable},
	}
	other := []struct {
		name string
		req  enroll.Request
	}{
		{"the subject a PrintableString, another DNS name", overEST(newCSR(k, printableSubject(t, "ap-1"), "a.example", "c.example"))},
		{"the subject a PrintableString, no DNS name", overEST(newCSR(k, printableSubject(t, "ap-1")))},
		{"another subject", overEST(newCSR(k, printableSubject(t, "ap-2"), "a.example", "b.example"))},
	}
	check := func(when string, wantCert bool) {
		t.Helper()
		for _, c := range same {
			res, err := f.svc.Enroll(ctx, c.req)
			switch {
			case err != nil:
				t.Errorf("%s, %s: %v", when, c.name, err)
			case wantCert && (res.Certificate == nil || res.Certificate.Subject.CommonName != "ap-1"):
				t.Errorf("%s, %s: %s, want the certificate for ap-1", when, c.name, answered(res))
			case !wantCert && (res.Pending == nil || res.Pending.ID != heldID):
				t.Errorf("%s, %s: %s, want PENDING about %s", when, c.name, answered(res), heldID)
			}
		}
		for _, c := range other {
			res, err := f.svc.Enroll(ctx, c.req)
			msg := pki.ErrorMessage(err)
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(msg, "this key was sent before with other names") ||
				!strings.Contains(msg, "a new request needs a new key") || strings.Contains(msg, "transaction ID") {
				t.Errorf("%s, %s: %s, %v; want badRequest saying the key asked for other names, in EST's words", when, c.name, answered(res), err)
			}
		}
		reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{})
		if err != nil || len(reqs) != 1 || reqs[0].ID != heldID {
			var held []string
			for _, r := range reqs {
				held = append(held, r.ID+" ("+r.Subject+")")
			}
			t.Errorf("%s: requests %v (%v), want only %s", when, held, err, heldID)
		}
	}
	check("held", false)
	if _, err := f.svc.Approve(ctx, heldID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	check("approved", true)
	certs, _, err := f.st.ListCertificates(ctx, store.CertFilter{})
	if err != nil || len(certs) != 1 {
		t.Errorf("certificates %+v (%v), want one", certs, err)
	}

	// Another key with the same names is another request.
	res, err = f.svc.Enroll(ctx, overEST(newCSR(newKey(t), printableSubject(t, "ap-1"), "a.example", "b.example")))
	if err != nil || res.Pending == nil || res.Pending.ID == heldID {
		t.Errorf("another key: %s, %v; want a request of its own held", answered(res), err)
	}

	// SCEP: the client's transaction ID; the subject encoded otherwise
	// under it is the same request.
	ks := newKey(t)
	overSCEP := func(req *x509.CertificateRequest) enroll.Request {
		return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolSCEP,
			TransactionID: "tx-scep", RemoteAddr: "127.0.0.1:4000"}
	}
	res, err = f.svc.Enroll(ctx, overSCEP(newCSR(ks, utf8Subject(t, "sc-1"), "s.example")))
	if err != nil || res.Pending == nil {
		t.Fatalf("SCEP: %s, %v; want held", answered(res), err)
	}
	scepID := res.Pending.ID
	res, err = f.svc.Enroll(ctx, overSCEP(newCSR(ks, printableSubject(t, "sc-1"), "s.example")))
	if err != nil || res.Pending == nil || res.Pending.ID != scepID {
		t.Errorf("SCEP, the subject a PrintableString: %s, %v; want PENDING about %s", answered(res), err, scepID)
	}
	_, err = f.svc.Enroll(ctx, overSCEP(newCSR(ks, printableSubject(t, "sc-1"), "t.example")))
	if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "this transaction ID holds another request") {
		t.Errorf("SCEP, another DNS name: %v; want badRequest in SCEP's words", err)
	}
}
