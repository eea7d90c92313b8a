package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// Every outcome of Enroll and Poll, and the issuance of an Approve, moves
// the counters, through a real enrollment service: issued, renewed,
// pending, polled, refused (with its code), and an unknown profile is
// "unknown", never the client's name. An approval that fails is the
// operator's error, not a device refused, and counts nothing.
func TestEnrollmentOutcomesAreCounted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// Two certificates issued; one of them renewed later.
	first := e.issue(t, "device-1")
	e.issue(t, "device-2")

	// Refusals: a wrong challenge, and a profile nobody configured.
	bad := e.pki.Request(t, "device-3")
	bad.Protocol = pki.ProtocolSCEP
	bad.Evidence.Challenge = "wrong"
	if _, err := e.svc.Enroll(ctx, bad.Request); pki.ErrorCode(err) != pki.EUnauthorized {
		t.Fatalf("wrong challenge: %v, want unauthorized", err)
	}
	odd := e.pki.Request(t, "device-4")
	odd.Protocol = pki.ProtocolEST
	odd.Profile = "made-up-by-the-client"
	if _, err := e.svc.Enroll(ctx, odd.Request); pki.ErrorCode(err) != pki.ENotFound {
		t.Fatalf("unknown profile: %v, want not found", err)
	}

	// A request held for approval, polled, approved, polled again.
	held := e.pki.Request(t, "device-5")
	held.Protocol = pki.ProtocolSCEP
	held.TransactionID = "tx-held"
	res, err := e.held.Enroll(ctx, held.Request)
	if err != nil || res.Pending == nil {
		t.Fatalf("held enroll: %+v, %v; want pending", res, err)
	}
	if res, err := e.held.Poll(ctx, pki.ProtocolSCEP, "", "tx-held"); err != nil || res.Pending == nil {
		t.Fatalf("poll: %+v, %v; want pending", res, err)
	}
	if _, err := e.held.Poll(ctx, pki.ProtocolSCEP, "", "tx-nobody-knows"); pki.ErrorCode(err) != pki.EBadCertID {
		t.Fatalf("poll of an unknown transaction: %v, want bad_cert_id", err)
	}
	if _, err := e.held.Approve(ctx, res.Pending.ID, "cli:test"); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if res, err := e.held.Poll(ctx, pki.ProtocolSCEP, "", "tx-held"); err != nil || res.Certificate == nil {
		t.Fatalf("poll after approval: %+v, %v; want the certificate", res, err)
	}
	if _, err := e.held.Approve(ctx, "no-such-request", "cli:test"); pki.ErrorCode(err) != pki.ENotFound {
		t.Fatalf("approve of an unknown request: %v, want not found", err)
	}
	if _, err := e.held.Approve(ctx, res.Pending.ID, "cli:test"); pki.ErrorCode(err) != pki.EConflict {
		t.Fatalf("approve again: %v, want conflict", err)
	}

	// The renewal, inside the renewal window (the last third of a year).
	e.pki.Clock.Advance(300 * 24 * time.Hour)
	renew := e.pki.Request(t, "device-1")
	renew.Protocol = pki.ProtocolSCEP
	renew.Renewal = true
	renew.Evidence = enroll.Evidence{SignerCert: first}
	if _, err := e.svc.Enroll(ctx, renew.Request); err != nil {
		t.Fatalf("renew: %v", err)
	}

	fams := scrape(t, e.handler)
	const enrollments, refusals = "scepter_enrollments_total", "scepter_enrollment_refusals_total"
	for _, c := range []struct {
		protocol, profile, result string
		want                      float64
	}{
		{"scep", "default", "issued", 2},
		{"scep", "default", "renewed", 1},
		{"scep", "default", "refused", 1},
		{"est", "unknown", "refused", 1},
		{"scep", "held", "pending", 1},
		{"scep", "held", "polled", 2},
		{"scep", "held", "issued", 1},  // the approval
		{"scep", "held", "refused", 1}, // the poll of an unknown transaction
	} {
		expect(t, fams, enrollments, map[string]string{"protocol": c.protocol, "profile": c.profile, "result": c.result}, c.want)
	}
	expect(t, fams, refusals, map[string]string{"protocol": "scep", "profile": "default", "code": "unauthorized"}, 1)
	expect(t, fams, refusals, map[string]string{"protocol": "est", "profile": "unknown", "code": "not_found"}, 1)
	expect(t, fams, refusals, map[string]string{"protocol": "scep", "profile": "held", "code": "bad_cert_id"}, 1)
	for _, p := range labelValues(fams, enrollments, "profile") {
		if p != "default" && p != "held" && p != "unknown" {
			t.Errorf("profile label %q: only configured profiles and \"unknown\" may appear", p)
		}
	}
	if n := len(fams[enrollments].GetMetric()); n != 8 {
		t.Errorf("%s has %d series, want the 8 above: %v", enrollments, n, fams[enrollments].GetMetric())
	}
}
