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

// A held request approved, whose certificate is revoked before the device
// collects it, is not handed that certificate as a success: the device is
// told it was revoked, with the reason and date (on hold: to have the hold
// lifted, after which it collects it), by a SCEP CertPoll and by the
// request sent again (SCEP PKCSReq, EST simpleenroll) alike.
func TestApprovedCertificateRevokedBeforeCollectionIsRefused(t *testing.T) {
	for _, c := range []struct {
		name     string
		protocol pki.Protocol
		poll     bool // a CertPoll, not the request sent again
		reason   int
		want     []string
	}{
		{"SCEP CertPoll, privilegeWithdrawn", pki.ProtocolSCEP, true, pki.ReasonPrivilegeWithdrawn, []string{"was revoked at", "(privilegeWithdrawn)", "enroll again"}},
		{"SCEP resend, keyCompromise", pki.ProtocolSCEP, false, store.ReasonKeyCompromise, []string{"was revoked at", "(keyCompromise)", "with a new key"}},
		{"EST resend, keyCompromise", pki.ProtocolEST, false, store.ReasonKeyCompromise, []string{"was revoked at", "(keyCompromise)", "with a new key"}},
		{"EST resend, cessationOfOperation", pki.ProtocolEST, false, pki.ReasonCessationOfOperation, []string{"was revoked at", "(cessationOfOperation)"}},
		{"SCEP CertPoll, on hold", pki.ProtocolSCEP, true, pki.ReasonCertificateHold, []string{"on hold (certificateHold)", "lift the hold"}},
		{"EST resend, on hold", pki.ProtocolEST, false, pki.ReasonCertificateHold, []string{"on hold (certificateHold)", "lift the hold"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RequireApproval, p.ChallengeMode = "approval", true, enroll.ChallengeOneTime
			f := newFixture(t, map[string]pki.Profile{"approval": p}, "approval")
			ctx := context.Background()
			otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
			if err != nil {
				t.Fatal(err)
			}
			req := namedWithKey(t, newKey(t), otp, "collect-dev")
			req.Profile, req.Protocol = "approval", c.protocol
			held, err := f.svc.Enroll(ctx, req)
			if err != nil || held.Pending == nil {
				t.Fatalf("held: %+v, %v", held, err)
			}
			issued, err := f.svc.Approve(ctx, held.Pending.ID, "cli:test")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.admin.Revoke(ctx, issued.Record.SerialHex, "", c.reason, "cli:test"); err != nil {
				t.Fatal(err)
			}
			ask := func() (*enroll.Result, error) {
				if c.poll {
					return f.svc.PollBy(ctx, c.protocol, "approval", req.TransactionID, req.CSR.RawSubjectPublicKeyInfo)
				}
				return f.svc.Enroll(ctx, req)
			}
			res, err := ask()
			msg := pki.ErrorMessage(err)
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(msg, pki.ShownSerial(issued.Record.SerialHex)) {
				t.Fatalf("answered %+v, %v; want refused (bad request), naming the certificate", res, err)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("refused with %q, want %q in it", msg, w)
				}
			}
			if c.reason != pki.ReasonCertificateHold {
				return
			}
			if _, err := f.admin.Unhold(ctx, issued.Record.SerialHex, "", "cli:test"); err != nil {
				t.Fatal(err)
			}
			if res, err := ask(); err != nil || res.Certificate == nil || res.Record.SerialHex != issued.Record.SerialHex {
				t.Errorf("after the hold was lifted: %+v, %v; want the certificate", res, err)
			}
		})
	}
}
