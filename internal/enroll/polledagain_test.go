package enroll_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A CertPoll answered with a certificate of its transaction found with no
// request held for it is audited as sent again, saying how the
// certificate was issued as the trail knows it: at once (its answer was
// lost), or on the approval of a request purged since, which the event
// names, never "at once" for an approved one (r110 D8).
func TestPolledAgainSaysHowTheCertificateWasIssued(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		approval bool
		want     []string
		notWant  []string
	}{
		{"issued at once", false, []string{"issued at once for this SCEP transaction", "its answer was lost"}, []string{"approval"}},
		{"issued on approval, the request purged", true, []string{"on the approval of request ", "purged since"}, []string{"at once", "lost"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RequireApproval, p.RequestRetention = "prof", c.approval, 2*time.Minute
			f := newFixture(t, map[string]pki.Profile{"prof": p}, "prof")
			ctx := context.Background()
			req := namedWithKey(t, rsaKey, static, "poll-dev")
			req.Profile = "prof"
			res, err := f.svc.Enroll(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			requestID := ""
			if c.approval {
				if res.Pending == nil {
					t.Fatalf("%s, want held", answered(res))
				}
				requestID = res.Pending.ID
				if res, err = f.svc.Approve(ctx, requestID, "cli:test"); err != nil {
					t.Fatal(err)
				}
				f.clock.Advance(p.RequestRetention + time.Second)
				if err := f.st.PurgeExpired(ctx, f.clock.Now()); err != nil {
					t.Fatal(err)
				}
				if _, err := f.st.Request(ctx, requestID); err == nil {
					t.Fatal("the request was not purged: the case tests nothing")
				}
			}
			polled, err := f.svc.PollChecked(ctx, enroll.Poll{Protocol: pki.ProtocolSCEP, Profile: "prof", TransactionID: req.TransactionID,
				PollerKey: req.CSR.RawSubjectPublicKeyInfo, RemoteAddr: "192.0.2.10:1234"})
			if err != nil || polled.Certificate == nil || polled.Record.SerialHex != res.Record.SerialHex {
				t.Fatalf("polled: %s, %v; want the certificate %s", answered(polled), err, res.Record.SerialHex)
			}
			evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain, Limit: 10})
			if err != nil || len(evs) != 1 {
				t.Fatalf("sent_again events %+v, %v; want one", evs, err)
			}
			detail := evs[0].Detail
			if requestID != "" && !strings.Contains(detail, requestID) {
				t.Errorf("detail %q does not name request %s", detail, requestID)
			}
			for _, w := range c.want {
				if !strings.Contains(detail, w) {
					t.Errorf("detail %q, want %q in it", detail, w)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(detail, w) {
					t.Errorf("detail %q says %q", detail, w)
				}
			}
		})
	}
}
