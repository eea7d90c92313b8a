package admin

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

// staleStore answers the first Request with the request as it was when
// held (pending), as a reject racing another decision reads it.
type staleStore struct {
	store.Store
	held  pki.EnrollmentRequest
	stale atomic.Bool
}

func (s *staleStore) Request(ctx context.Context, id string) (*pki.EnrollmentRequest, error) {
	if s.stale.CompareAndSwap(true, false) {
		r := s.held
		return &r, nil
	}
	return s.Store.Request(ctx, id)
}

// Rejecting a request that is no longer pending names what it is, as an
// approval does ("is issued, not pending"), whether it was decided before
// the reject read it or between that read and the reject's write.
func TestRejectNamesTheState(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	profiles := map[string]pki.Profile{"approval": approval}
	p := fixture.New(t, fixture.Options{Config: enroll.Config{DefaultProfile: "approval", Profiles: profiles}})
	ctx := context.Background()
	held := func(cn string) pki.EnrollmentRequest {
		t.Helper()
		req := p.Request(t, cn)
		req.Profile = "approval"
		otp, _, err := New(p.Store, p.Clock, p.Log, profiles, "approval").NewChallenge(ctx, time.Hour, "approval", "test")
		if err != nil {
			t.Fatal(err)
		}
		req.Evidence.Challenge = otp
		res, err := p.Service.Enroll(ctx, req.Request)
		if err != nil || res.Pending == nil {
			t.Fatalf("not held: %v", err)
		}
		r, err := p.Store.Request(ctx, res.Pending.ID)
		if err != nil {
			t.Fatal(err)
		}
		return *r
	}
	for _, tc := range []struct {
		name   string
		decide func(svc *Service, id string) error
		stale  bool // the reject reads the request before that decision
		want   string
	}{
		{"approved", func(_ *Service, id string) error { _, err := p.Service.Approve(ctx, id, "op:a"); return err }, false, "is issued, not pending"},
		{"rejected", func(svc *Service, id string) error { return svc.Reject(ctx, id, "no", "op:a") }, false, "is rejected, not pending"},
		{"approved meanwhile", func(_ *Service, id string) error { _, err := p.Service.Approve(ctx, id, "op:a"); return err }, true, "is issued, not pending"},
		{"rejected meanwhile", func(svc *Service, id string) error { return svc.Reject(ctx, id, "no", "op:a") }, true, "is rejected, not pending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := held("reject-" + strings.ReplaceAll(tc.name, " ", "-"))
			st := &staleStore{Store: p.Store, held: r}
			svc := New(st, p.Clock, p.Log, profiles, "approval")
			if err := tc.decide(svc, r.ID); err != nil {
				t.Fatal(err)
			}
			st.stale.Store(tc.stale)
			err := svc.Reject(ctx, r.ID, "too late", "op:b")
			if pki.ErrorCode(err) != pki.EConflict || !strings.Contains(err.Error(), "request "+r.ID+" "+tc.want) {
				t.Errorf("reject: %v, want a conflict saying %q", err, tc.want)
			}
			if st.stale.Load() {
				t.Error("the reject did not read the request")
			}
		})
	}
}
