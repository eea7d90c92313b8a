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

// A device that first collects its approved certificate after its
// request's retention ended (counted from the approval) is answered as a
// lost answer is, by its CertPoll or its request sent again: the trail and the
// metric say it collected the certificate of request R's approval, that R
// stays listed issued (or was purged, when it was), never that its answer
// was lost, and it counts as polled, not reanswered (r121 D3).
func TestApprovedCertificateCollectedAfterRetention(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		est     bool // the request and its resend come by EST
		poll    bool // collected by a CertPoll, not the request sent again
		purged  bool // the hourly purge ran before the collection
		want    []string
		notWant []string
	}{
		{name: "SCEP CertPoll", poll: true,
			want: []string{"collected after its request's retention", "stays listed issued", "2m0s from its approval", "polled for it (CertPoll)"}, notWant: []string{"purged", "lost", "sent again"}},
		{name: "SCEP CertPoll, the request purged", poll: true, purged: true,
			want: []string{"collected after its request's retention", "purged since"}, notWant: []string{"lost", "listed issued"}},
		{name: "SCEP PKCSReq sent again",
			want: []string{"collected after its request's retention", "stays listed issued", "2m0s from its approval", "sent again to collect it"}, notWant: []string{"purged", "lost"}},
		{name: "SCEP PKCSReq sent again, the request purged", purged: true,
			want: []string{"collected after its request's retention", "purged since"}, notWant: []string{"lost", "listed issued"}},
		{name: "EST simpleenroll sent again", est: true,
			want: []string{"collected after its request's retention", "for this request on the approval", "stays listed issued", "2m0s from its approval"}, notWant: []string{"purged", "lost", "SCEP"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RequireApproval, p.RequestRetention, p.ChallengeMode = "prof", true, 2*time.Minute, enroll.ChallengeOneTime
			seen := &outcomes{}
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"prof": p}, DefaultProfile: "prof", Observer: seen})
			ctx := context.Background()
			otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "prof", "test")
			if err != nil {
				t.Fatal(err)
			}
			req := namedWithKey(t, rsaKey, otp, "late-dev")
			if c.est {
				req = estEnrollment(t, rsaKey, enroll.Evidence{Challenge: otp}, "late-dev")
			}
			req.Profile = "prof"
			res, err := f.svc.Enroll(ctx, req)
			if err != nil || res.Pending == nil {
				t.Fatalf("%s, %v; want held", answered(res), err)
			}
			requestID := res.Pending.ID
			f.clock.Advance(time.Minute) // approved late in the retention
			issued, err := f.svc.Approve(ctx, requestID, "cli:test")
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(p.RequestRetention + time.Second) // collected just after its retention from the approval
			if c.purged {
				if err := f.st.PurgeExpired(ctx, f.clock.Now()); err != nil {
					t.Fatal(err)
				}
			}
			r, err := f.st.Request(ctx, requestID)
			if c.purged != (err != nil) || (err == nil && r.Status != pki.RequestIssued) {
				t.Fatalf("request %s: %+v, %v; the case tests nothing", requestID, r, err)
			}
			seen.got = nil
			var got *enroll.Result
			if c.poll {
				got, err = f.svc.PollChecked(ctx, enroll.Poll{Protocol: pki.ProtocolSCEP, Profile: "prof", TransactionID: req.TransactionID,
					PollerKey: req.CSR.RawSubjectPublicKeyInfo, RemoteAddr: "192.0.2.10:1234"})
			} else {
				got, err = f.svc.Enroll(ctx, req)
			}
			if err != nil || got.Certificate == nil || got.Record.SerialHex != issued.Record.SerialHex {
				t.Fatalf("collected: %s, %v; want the certificate %s", answered(got), err, pki.ShownSerial(issued.Record.SerialHex))
			}
			if len(seen.got) != 1 || seen.got[0].Result != enroll.ResultPolled {
				t.Errorf("counted %+v, want one %s", seen.got, enroll.ResultPolled)
			}
			evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain, Limit: 10})
			if err != nil || len(evs) != 1 {
				t.Fatalf("sent_again events %+v, %v; want one", evs, err)
			}
			detail := evs[0].Detail
			if !strings.Contains(detail, "certificate "+pki.ShownSerial(issued.Record.SerialHex)) || !strings.Contains(detail, requestID) {
				t.Errorf("detail %q names neither certificate %s nor request %s", detail, pki.ShownSerial(issued.Record.SerialHex), requestID)
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
			// Collected once so, asked for again: its answer was lost.
			seen.got = nil
			if c.poll {
				got, err = f.svc.PollChecked(ctx, enroll.Poll{Protocol: pki.ProtocolSCEP, Profile: "prof", TransactionID: req.TransactionID,
					PollerKey: req.CSR.RawSubjectPublicKeyInfo, RemoteAddr: "192.0.2.10:1234"})
			} else {
				got, err = f.svc.Enroll(ctx, req)
			}
			if err != nil || got.Record.SerialHex != issued.Record.SerialHex {
				t.Fatalf("asked again: %s, %v", answered(got), err)
			}
			if len(seen.got) != 1 || seen.got[0].Result != enroll.ResultReanswered {
				t.Errorf("asked again: counted %+v, want one %s", seen.got, enroll.ResultReanswered)
			}
			evs, err = f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain, Limit: 10})
			if err != nil || len(evs) != 2 {
				t.Fatalf("sent_again events %+v, %v; want two", evs, err)
			}
			if again := evs[0].Detail; again == detail || !strings.Contains(again, "sent again (handed over before: its answer was lost)") {
				t.Errorf("asked again: detail %q, want it sent again, handed over before", again)
			}
		})
	}
}
