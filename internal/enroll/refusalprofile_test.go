package enroll_test

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A refusal at the default profile's URL (profile "") is recorded with the
// default profile's name, as the metrics and an issuance there name it
// (r56); a name asked for is recorded as asked, known or not; a request
// that named no profile at all (an unknown EST path) is recorded with none.
func TestRefusalsNameTheProfileAskedFor(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	def := pki.DefaultProfile().Name

	if _, err := f.svc.Enroll(ctx, request(t, "wrong")); pki.ErrorCode(err) != pki.EUnauthorized {
		t.Fatalf("wrong challenge: %v", err)
	}
	evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed})
	if err != nil || len(evs) != 1 {
		t.Fatalf("enrollment.failed events: %v, %v", evs, err)
	}
	if evs[0].Profile != def {
		t.Errorf("a refused enrollment at the default URL: profile %q, want %q", evs[0].Profile, def)
	}

	for _, c := range []struct {
		name string
		r    enroll.Refusal
		want string
	}{
		{"the default URL", enroll.Refusal{Profile: ""}, def},
		{"a label asked for", enroll.Refusal{Profile: "no-such-label"}, "no-such-label"},
		{"a path naming no profile", enroll.Refusal{NoProfile: true}, ""},
	} {
		c.r.Protocol, c.r.RemoteAddr, c.r.Operation = pki.ProtocolEST, "203.0.113.9:1", c.name
		c.r.Err = pki.Errorf(pki.ENotFound, "refused")
		if err := f.svc.RecordRefusal(ctx, c.r); err != nil {
			t.Fatal(err)
		}
		evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused, Limit: 1})
		if err != nil || len(evs) != 1 || evs[0].Detail != c.name {
			t.Fatalf("%s: events %+v, %v", c.name, evs, err)
		}
		if evs[0].Profile != c.want {
			t.Errorf("%s: profile %q, want %q", c.name, evs[0].Profile, c.want)
		}
	}
}
