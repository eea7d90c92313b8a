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

// A held request decided a minute before its retention from when it was
// held ends is answered from its decision a day after that end: a decided
// request's retention counts from its decision. Approved, its device's
// CertPoll or its request sent again (with the static challenge, or the
// one-time challenge it used) collects the certificate as within the
// retention: counted polled, no certificate.sent_again event, nothing held
// anew. Rejected, the device sending its request again with the one-time
// challenge it used is told it was rejected, not that its challenge was
// used. The hourly purge keeps it until its retention from the decision
// ends.
func TestDecidedRequestRetentionCountsFromDecision(t *testing.T) {
	const retention = 7 * 24 * time.Hour
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		oneTime bool // the request came with a one-time challenge
		reject  bool
		poll    bool // asked by a CertPoll, not the request sent again
	}{
		{name: "approved, CertPoll", poll: true},
		{name: "approved, sent again with the static challenge"},
		{name: "approved, sent again with its one-time challenge", oneTime: true},
		{name: "rejected, CertPoll", reject: true, poll: true},
		{name: "rejected, sent again with its one-time challenge", oneTime: true, reject: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RequireApproval, p.RequestRetention = "prof", true, retention
			seen := &outcomes{}
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"prof": p}, DefaultProfile: "prof", Observer: seen})
			ctx := context.Background()
			challenge := static
			if c.oneTime {
				if challenge, _, err = f.admin.NewChallenge(ctx, time.Hour, "prof", "test"); err != nil {
					t.Fatal(err)
				}
			}
			req := namedWithKey(t, rsaKey, challenge, "late-dev")
			req.Profile = "prof"
			res, err := f.svc.Enroll(ctx, req)
			if err != nil || res.Pending == nil {
				t.Fatalf("%s, %v; want held", answered(res), err)
			}
			requestID := res.Pending.ID
			f.clock.Advance(retention - time.Minute)
			var approvedSerial string
			if c.reject {
				if err := f.admin.Reject(ctx, requestID, "unknown device", "cli:test"); err != nil {
					t.Fatal(err)
				}
			} else {
				approved, err := f.svc.Approve(ctx, requestID, "cli:test")
				if err != nil {
					t.Fatal(err)
				}
				approvedSerial = approved.Record.SerialHex
			}
			f.clock.Advance(24*time.Hour + time.Minute)
			// The hourly purge, run now, keeps it.
			if err := f.st.PurgeExpired(ctx, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			seen.got = nil
			var got *enroll.Result
			if c.poll {
				got, err = f.svc.PollChecked(ctx, enroll.Poll{Protocol: pki.ProtocolSCEP, Profile: "prof", TransactionID: req.TransactionID,
					PollerKey: req.CSR.RawSubjectPublicKeyInfo, RemoteAddr: "192.0.2.10:1234"})
			} else {
				got, err = f.svc.Enroll(ctx, req)
			}
			if c.reject {
				if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "the request was rejected: unknown device") {
					t.Errorf("%s, %v; want told the request was rejected", answered(got), err)
				}
			} else {
				if err != nil || got.Certificate == nil || got.Record.SerialHex != approvedSerial {
					t.Fatalf("collected: %s, %v; want the certificate %s", answered(got), err, pki.ShownSerial(approvedSerial))
				}
				if len(seen.got) != 1 || seen.got[0].Result != enroll.ResultPolled {
					t.Errorf("counted %+v, want one %s", seen.got, enroll.ResultPolled)
				}
				evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain, Limit: 10})
				if err != nil || len(evs) != 0 {
					t.Errorf("certificate.sent_again events %+v, %v; want none: a collection within the retention", evs, err)
				}
			}
			all, _, err := f.st.ListRequests(ctx, store.RequestFilter{})
			if err != nil || len(all) != 1 || all[0].ID != requestID {
				t.Errorf("requests %+v, %v; want request %s alone, nothing held anew", all, err, requestID)
			}
			// Purged once its retention from the decision is over.
			f.clock.Advance(retention - 24*time.Hour - time.Minute)
			if err := f.st.PurgeExpired(ctx, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if r, err := f.st.Request(ctx, requestID); err == nil {
				t.Errorf("request %s (%s, expiring %s) kept past its retention from the decision", requestID, r.Status, r.ExpiresAt)
			}
		})
	}
}
