package estserver_test

import (
	"context"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The reviewer's scenario (r57 D3, D4): a CSR whose CN is a UTF8String
// (openssl, Python) is held; the same key and names sent by our client,
// which writes a PrintableString, are the same request: 202 about it, and
// once approved its certificate, never a second request to approve for
// one key. The same key with another DNS name is refused in EST's words
// (EST has no transaction ID).
func TestHeldRequestFoundWhateverTheSubjectEncoding(t *testing.T) {
	approval := profile("approval", func(p *pki.Profile) { p.RequireApproval = true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	key := newKey(t)
	utf8CN, err := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3},
		Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("ap-1")}}}})
	if err != nil {
		t.Fatal(err)
	}
	body := func(raw []byte, dns ...string) []byte {
		t.Helper()
		der, err := csr.Create(csr.Template{RawSubject: raw, DNSNames: dns}, key)
		if err != nil {
			t.Fatal(err)
		}
		return est.EncodeBase64(der)
	}
	pending := func(want int) []pki.EnrollmentRequest {
		t.Helper()
		reqs, _, err := f.adm.Requests(ctx, store.RequestFilter{})
		if err != nil || len(reqs) != want {
			var ids []string
			for _, r := range reqs {
				ids = append(ids, r.ID+" ("+r.Subject+", "+string(r.Status)+")")
			}
			t.Fatalf("requests %v, %v; want %d", ids, err, want)
		}
		return reqs
	}
	wantStatus(t, f.post(c, "approval/simpleenroll", "alice", userPassword, body(utf8CN, "a.example"), nil), http.StatusAccepted, "held for approval")
	printable := body(mustDN(t, "CN=ap-1"), "a.example")
	wantStatus(t, f.post(c, "approval/simpleenroll", "alice", userPassword, printable, nil), http.StatusAccepted, "held for approval")
	held := pending(1)[0]

	other := f.post(c, "approval/simpleenroll", "alice", userPassword, body(mustDN(t, "CN=ap-1"), "b.example"), nil)
	wantStatus(t, other, http.StatusForbidden, "this key was sent before with other names")
	if !strings.Contains(string(other.body), "a new request needs a new key") || strings.Contains(string(other.body), "transaction ID") {
		t.Errorf("refusal %q: want it in EST's words, a new key and no transaction ID", other.body)
	}
	pending(1)

	if _, err := f.svc.Approve(ctx, held.ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	// Our client, asking with the key of the held request (est enroll
	// --csr-key), collects the certificate.
	cl := f.client("approval")
	cl.User, cl.Password = "alice", userPassword
	res, err := cl.Enroll(ctx, client.ESTRequest{Op: est.OpSimpleEnroll, PollInterval: time.Millisecond, MaxWait: time.Second,
		MakeCSR: func([]byte) ([]byte, error) {
			return csr.Create(csr.Template{Subject: pkix.Name{CommonName: "ap-1"}, DNSNames: []string{"a.example"}}, key)
		}})
	if err != nil {
		t.Fatalf("our client asking again after the approval: %v, want the certificate", err)
	}
	if got := f.record(res.Certificate); got.SerialHex != pending(1)[0].CertSerialHex {
		t.Errorf("collected %s, want the approved request's certificate %s", got.SerialHex, pending(1)[0].CertSerialHex)
	}
	again := f.issued(f.post(c, "approval/simpleenroll", "alice", userPassword, body(utf8CN, "a.example"), nil))
	if !again.Equal(res.Certificate) {
		t.Error("the first CSR sent again got another certificate")
	}
	pending(1)
}
