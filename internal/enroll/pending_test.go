package enroll_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// An approval counts the certificate it issues and nothing else: an
// operator approving twice, approving an unknown ID or a rejected request
// gets an error, but no device was refused, so no refusal is counted (as
// Reject counts none).
func TestApproveCountsOnlyTheIssuance(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.ChallengeMode, p.RequireApproval = "approval", enroll.ChallengeOneTime, true
	obs := &outcomes{}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"approval": p}, DefaultProfile: "approval", Observer: obs})
	ctx := context.Background()
	hold := func(tx string) string {
		t.Helper()
		otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		r := request(t, otp)
		r.TransactionID = tx
		res, err := f.svc.Enroll(ctx, r)
		if err != nil || res.Pending == nil {
			t.Fatalf("%s: %+v, %v; want held", tx, res, err)
		}
		return res.Pending.ID
	}
	approved, rejected := hold("tx-approved"), hold("tx-rejected")
	if err := f.admin.Reject(ctx, rejected, "unknown device", "cli:test"); err != nil {
		t.Fatal(err)
	}
	obs.got = nil // the holds

	if _, err := f.svc.Approve(ctx, approved, "cli:test"); err != nil {
		t.Fatalf("approve: %v", err)
	}
	for _, c := range []struct {
		name, id string
		want     pki.Code
	}{
		{"approved again", approved, pki.EConflict},
		{"a rejected request", rejected, pki.EConflict},
		{"an unknown ID", "NOPE", pki.ENotFound},
	} {
		if _, err := f.svc.Approve(ctx, c.id, "cli:test"); pki.ErrorCode(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	want := enroll.Outcome{Protocol: string(pki.ProtocolSCEP), Profile: "approval", Result: enroll.ResultIssued}
	if len(obs.got) != 1 || obs.got[0] != want {
		t.Errorf("outcomes %+v, want only the issuance %+v", obs.got, want)
	}
}

// A poll is counted under the protocol of the caller that asks, found or
// not: a SCEP CertPoll of a transaction nobody holds is a SCEP refusal,
// not one of an "unknown" protocol.
func TestPollIsCountedUnderTheCallersProtocol(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RequireApproval = "approval", true
	obs := &outcomes{}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"approval": p}, DefaultProfile: "approval", Observer: obs})
	ctx := context.Background()
	r := request(t, static)
	r.Protocol, r.TransactionID = pki.ProtocolEST, "tx-est"
	if res, err := f.svc.Enroll(ctx, r); err != nil || res.Pending == nil {
		t.Fatalf("%+v, %v; want held", res, err)
	}
	obs.got = nil // the hold

	if _, err := f.svc.PollBy(ctx, pki.ProtocolSCEP, "approval", "tx-nobody", r.CSR.RawSubjectPublicKeyInfo); pki.ErrorCode(err) != pki.EBadCertID {
		t.Fatalf("a poll of an unknown transaction: %v, want bad_cert_id", err)
	}
	if _, err := f.svc.Poll(ctx, pki.ProtocolSCEP, "approval", "tx-est"); err != nil {
		t.Fatalf("a poll of a held request: %v", err)
	}
	want := []enroll.Outcome{
		{Protocol: string(pki.ProtocolSCEP), Profile: "approval", Result: enroll.ResultRefused, Code: pki.EBadCertID},
		{Protocol: string(pki.ProtocolSCEP), Profile: "approval", Result: enroll.ResultPolled},
	}
	if !slices.Equal(obs.got, want) {
		t.Errorf("outcomes %+v, want %+v", obs.got, want)
	}
}
