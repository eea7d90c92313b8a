package enroll_test

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A request that may only ask about a held request (Request.HeldOnly: a
// SCEP message signed longer ago than the clock skew allows) is answered
// from the request held for its transaction and key, and refused with
// HeldOnly when none is: nothing is held or issued for it, with a valid
// challenge too; one whose request expired without a decision is told so,
// and not held again, though its (static) challenge is still valid.
func TestHeldOnlyRequestStartsNothing(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval, approval.RequestRetention = "approval", true, time.Hour
	// The static challenge is the approval profile's: it stays valid
	// for a request asked about again.
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": pki.DefaultProfile(), "approval": approval},
		DefaultProfile: "default", StaticChallengeProfile: "approval"})
	ctx := context.Background()
	stale := pki.Errorf(pki.EBadTime, "signingTime is too far from the server time")
	counts := func() (requests, certs int) {
		t.Helper()
		reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{})
		if err != nil {
			t.Fatal(err)
		}
		cs, _, err := f.st.ListCertificates(ctx, store.CertFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(reqs), len(cs)
	}
	challengeAt := func(profile string) string {
		t.Helper()
		if profile == "approval" {
			return static
		}
		otp, _, err := f.admin.NewChallenge(ctx, time.Hour, profile, "test")
		if err != nil {
			t.Fatal(err)
		}
		return otp
	}
	for _, profile := range []string{"approval", "default"} {
		req := request(t, challengeAt(profile))
		req.Profile, req.TransactionID, req.HeldOnly = profile, "tx-nothing-held-"+profile, stale
		if _, err := f.svc.Enroll(ctx, req); pki.ErrorCode(err) != pki.EBadTime {
			t.Errorf("at profile %s with nothing held: %v, want the HeldOnly refusal", profile, err)
		}
	}
	if r, c := counts(); r != 0 || c != 0 {
		t.Fatalf("%d requests held, %d certificates issued for requests that may only ask about one", r, c)
	}

	req := request(t, challengeAt("approval"))
	req.Profile, req.TransactionID = "approval", "tx-held"
	if res, err := f.svc.Enroll(ctx, req); err != nil || res.Pending == nil {
		t.Fatalf("held: %v %+v", err, res)
	}
	req.HeldOnly = stale
	if res, err := f.svc.Enroll(ctx, req); err != nil || res.Pending == nil {
		t.Fatalf("asked about while held: %v %+v, want PENDING", err, res)
	}
	f.clock.Advance(2 * time.Hour)
	if _, err := f.svc.Enroll(ctx, req); !enroll.RequestExpired(err) {
		t.Errorf("asked about once expired: %v, want it said to have expired", err)
	}
	if r, c := counts(); r != 1 || c != 0 {
		t.Errorf("%d requests held, %d certificates issued; want the first request alone", r, c)
	}
}
