package estserver_test

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A held request meeting a revocation or its retention's end, asked about
// again over EST (r110 D1, D2, D5): its key revoked as compromised while
// it waited, it is refused for good (403, the key's refusal) and rejected
// by the system, no longer 202; approved and its certificate revoked
// before it was collected, it is refused (403) naming the revocation, not
// given the revoked certificate (200); expired undecided and sent again
// by a client that writes the subject as a PrintableString (the held one
// came from openssl, a UTF8String), it is told it expired without a
// decision, not that its one-time challenge was used already.
func TestHeldRequestMeetingRevocationOrExpiry(t *testing.T) {
	for _, c := range []struct {
		name       string
		meanwhile  func(t *testing.T, f *fixture, key crypto.Signer, held pki.EnrollmentRequest)
		wantReason string
		wantStatus pki.RequestStatus
	}{
		{"key revoked as compromised while held", func(t *testing.T, f *fixture, key crypto.Signer, _ pki.EnrollmentRequest) {
			other := f.record(f.issued(f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword,
				newCSR(t, key, "other-dev", csr.Template{}), nil)))
			if _, err := f.adm.Revoke(context.Background(), other.SerialHex, "", store.ReasonKeyCompromise, "cli:test"); err != nil {
				t.Fatal(err)
			}
		}, "the request was rejected: this key was revoked as compromised on ", pki.RequestRejected},
		{"approved, revoked before it was collected", func(t *testing.T, f *fixture, _ crypto.Signer, held pki.EnrollmentRequest) {
			res, err := f.svc.Approve(context.Background(), held.ID, "cli:test")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.adm.Revoke(context.Background(), res.Record.SerialHex, "", pki.ReasonPrivilegeWithdrawn, "cli:test"); err != nil {
				t.Fatal(err)
			}
		}, "(privilegeWithdrawn) before it was collected", pki.RequestIssued},
		{"expired undecided", func(t *testing.T, f *fixture, _ crypto.Signer, _ pki.EnrollmentRequest) {
			f.clock.Advance(3 * time.Minute)
		}, "without a decision", pki.RequestPending},
	} {
		t.Run(c.name, func(t *testing.T) {
			approval := profile("approval", func(p *pki.Profile) {
				p.RequireApproval, p.ChallengeMode, p.RequestRetention = true, enroll.ChallengeOneTime, 2*time.Minute
			})
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
			ctx := context.Background()
			hc := f.httpClient(nil, 0)
			otp, _, err := f.adm.NewChallenge(ctx, time.Hour, "approval", "test")
			if err != nil {
				t.Fatal(err)
			}
			key := newKey(t)
			utf8CN, err := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3},
				Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("held-dev")}}}})
			if err != nil {
				t.Fatal(err)
			}
			body := func(subject []byte) []byte {
				t.Helper()
				der, err := csr.Create(csr.Template{RawSubject: subject}, key)
				if err != nil {
					t.Fatal(err)
				}
				return est.EncodeBase64(der)
			}
			wantStatus(t, f.post(hc, "approval/simpleenroll", "dev", otp, body(utf8CN), nil), http.StatusAccepted, "held for approval")
			reqs, _, err := f.adm.Requests(ctx, store.RequestFilter{})
			if err != nil || len(reqs) != 1 {
				t.Fatalf("requests %d, %v; want one held", len(reqs), err)
			}
			c.meanwhile(t, f, key, reqs[0])
			// Sent again as our client writes it: a PrintableString CN.
			wantStatus(t, f.post(hc, "approval/simpleenroll", "dev", otp, body(mustDN(t, "CN=held-dev")), nil), http.StatusForbidden, c.wantReason)
			r, err := f.st.Request(ctx, reqs[0].ID)
			if err != nil || r.Status != c.wantStatus {
				t.Errorf("request %+v, %v; want %s", r, err, c.wantStatus)
			}
		})
	}
}
