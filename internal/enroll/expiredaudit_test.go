package enroll_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A held request left undecided past its retention leaves a
// request.expired event when its record is purged (here by the new request
// of its transaction, which purges every request past its retention), so
// the trail says what became of it: once, naming its ID, profile, subject
// and when it expired. A request approved or rejected before its retention
// ended gets none, purged with them.
func TestExpiredHeldRequestIsAudited(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RequireApproval, p.RequestRetention, p.ChallengeMode = "approval", true, time.Minute, enroll.ChallengeOneTime
	f := newFixture(t, map[string]pki.Profile{"approval": p}, "approval")
	ctx := context.Background()
	hold := func(cn string) (enroll.Request, *pki.EnrollmentRequest) {
		t.Helper()
		otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
		if err != nil {
			t.Fatal(err)
		}
		req := namedWithKey(t, newKey(t), otp, cn)
		req.Profile = "approval"
		res, err := f.svc.Enroll(ctx, req)
		if err != nil || res.Pending == nil {
			t.Fatalf("%s: %+v, %v; want held", cn, res, err)
		}
		return req, res.Pending
	}
	again, left := hold("left-1")
	_, alsoLeft := hold("left-2")
	_, approved := hold("approved")
	_, rejected := hold("rejected")
	if _, err := f.svc.Approve(ctx, approved.ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	if err := f.admin.Reject(ctx, rejected.ID, "unknown device", "cli:test"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute + time.Second)
	otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	again.Evidence.Challenge = otp
	heldAnew, err := f.svc.Enroll(ctx, again)
	if err != nil || heldAnew.Pending == nil {
		t.Fatalf("enrolled again: %+v, %v; want held anew", heldAnew, err)
	}
	check := func(when string, expired ...*pki.EnrollmentRequest) {
		t.Helper()
		evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRequestExpired, Limit: 10})
		if err != nil || len(evs) != len(expired) {
			t.Fatalf("%s: request.expired events %+v, %v; want %d", when, evs, err, len(expired))
		}
		for _, r := range expired {
			want := "request " + r.ID + " expired at " + r.ExpiresAt.UTC().Format(time.RFC3339) + " without a decision"
			n := 0
			for _, ev := range evs {
				if !strings.HasPrefix(ev.Detail, want) {
					continue
				}
				n++
				if ev.Profile != "approval" || ev.Subject != r.Subject || ev.TransactionID != r.TransactionID || ev.Actor != enroll.SystemRejecter {
					t.Errorf("%s: event %+v; want by system, naming the profile, subject and transaction of %s", when, ev, r.ID)
				}
			}
			if n != 1 {
				t.Errorf("%s: %d request.expired events saying %q, want 1", when, n, want)
			}
		}
	}
	check("purged by the new request", left, alsoLeft)
	for _, r := range []*pki.EnrollmentRequest{left, alsoLeft, approved, rejected} {
		if _, err := f.st.Request(ctx, r.ID); err == nil {
			t.Errorf("request %s kept past its retention", r.ID)
		}
	}
	// The hourly purge, later, records the one held anew, left undecided
	// too, and none twice.
	f.clock.Advance(time.Hour)
	if err := f.st.PurgeExpired(ctx, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	check("purged again an hour later", left, alsoLeft, heldAnew.Pending)
}
