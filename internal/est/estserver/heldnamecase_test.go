package estserver_test

import (
	"context"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The reviewer's case: a held request for CN=ap-1, sent again with its
// key and DNS name but CN=AP-1 (or with an insignificant space), is the
// same request, as RFC 5280 §7.1 compares names: 202 about it while it is
// held, its certificate once approved, and never a second request, nor a
// 403 "other names".
func TestHeldRequestFoundWhateverTheSubjectCase(t *testing.T) {
	approval := profile("approval", func(p *pki.Profile) { p.RequireApproval = true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	key := newKey(t)
	body := func(subject []byte) []byte {
		t.Helper()
		der, err := csr.Create(csr.Template{RawSubject: subject, DNSNames: []string{"ap-1.example"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return est.EncodeBase64(der)
	}
	utf8CN := func(cn string) []byte {
		t.Helper()
		der, err := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3},
			Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(cn)}}}})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	onlyRequest := func(when string) pki.EnrollmentRequest {
		t.Helper()
		reqs, _, err := f.adm.Requests(ctx, store.RequestFilter{})
		if err != nil || len(reqs) != 1 {
			var held []string
			for _, r := range reqs {
				held = append(held, r.ID+" ("+r.Subject+", "+string(r.Status)+")")
			}
			t.Fatalf("%s: requests %v, %v; want one", when, held, err)
		}
		return reqs[0]
	}
	wantStatus(t, f.post(c, "approval/simpleenroll", "alice", userPassword, body(mustDN(t, "CN=ap-1")), nil), http.StatusAccepted, "held for approval")
	held := onlyRequest("held")
	retries := []struct {
		name    string
		subject []byte
	}{
		{"CN in capitals", mustDN(t, "CN=AP-1")},
		{"CN in another case, a UTF8String", utf8CN("Ap-1")},
		{"CN with a trailing space", utf8CN("ap-1 ")},
	}
	for _, r := range retries {
		wantStatus(t, f.post(c, "approval/simpleenroll", "alice", userPassword, body(r.subject), nil), http.StatusAccepted, "held for approval")
		if got := onlyRequest(r.name); got.ID != held.ID {
			t.Fatalf("%s: request %s, want %s", r.name, got.ID, held.ID)
		}
	}

	if _, err := f.svc.Approve(ctx, held.ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	serial := onlyRequest("approved").CertSerialHex
	for _, r := range retries {
		cert := f.issued(f.post(c, "approval/simpleenroll", "alice", userPassword, body(r.subject), nil))
		if got := f.record(cert).SerialHex; got != serial {
			t.Errorf("%s after the approval: certificate %s, want the approved request's %s", r.name, got, serial)
		}
	}
	onlyRequest("collected")
}
