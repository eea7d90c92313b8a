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

// A held request that no approval can issue any more, because its key was
// revoked as compromised or the certificate it renews was revoked for good
// after it was held, is rejected by the system at the first poll or
// approval that finds it: the device is refused for good (with the code a
// new request meeting the same gets) instead of told to keep waiting, and
// the request leaves the pending list, audited as a rejection. A renewal
// whose certificate is on hold stays pending: the hold may be lifted, and
// its approval, refused meanwhile, says so (not "revoked; reject it").
func TestHeldRequestNoLongerIssuableIsRejected(t *testing.T) {
	for _, c := range []struct {
		name     string
		renewal  bool
		reason   int
		approve  bool // ask by an approval instead of a poll
		wantCode pki.Code
		wantText string // "" when the request stays pending
	}{
		{"key compromised, polled", false, store.ReasonKeyCompromise, false, pki.EBadRequest, "revoked as compromised on "},
		{"key compromised, approved", false, store.ReasonKeyCompromise, true, pki.EBadRequest, "revoked as compromised on "},
		{"renewed certificate revoked, polled", true, pki.ReasonCessationOfOperation, false, pki.EBadCertID, "(cessationOfOperation)"},
		{"renewed certificate revoked, approved", true, pki.ReasonCessationOfOperation, true, pki.EConflict, "(cessationOfOperation)"},
		{"renewed key compromised, polled", true, store.ReasonKeyCompromise, false, pki.EBadRequest, "revoked as compromised on "},
		{"renewed certificate on hold, polled", true, pki.ReasonCertificateHold, false, "", ""},
		{"renewed certificate on hold, approved", true, pki.ReasonCertificateHold, true, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RequireApproval, p.RenewalWindow, p.AllowKeyReuse = "approval", true, 1, true
			p.ChallengeMode = enroll.ChallengeOneTime
			def := pki.DefaultProfile()
			f := newFixture(t, map[string]pki.Profile{"approval": p, def.Name: def}, def.Name)
			ctx := context.Background()
			k := newKey(t)
			otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
			if err != nil {
				t.Fatal(err)
			}
			held := namedWithKey(t, k, otp, "held-dev")
			held.Profile = "approval"
			var revoke *enroll.Result // the certificate then revoked
			if c.renewal {
				// Its own certificate, approved, then renewed with the
				// same key: the renewal is held too.
				first, err := f.svc.Enroll(ctx, held)
				if err != nil || first.Pending == nil {
					t.Fatalf("held: %+v, %v", first, err)
				}
				if revoke, err = f.svc.Approve(ctx, first.Pending.ID, "cli:test"); err != nil {
					t.Fatal(err)
				}
				held = namedWithKey(t, k, "", "held-dev")
				held.Profile, held.TransactionID = "approval", "tx-renewal"
				held.Renewal, held.Evidence.SignerCert = true, revoke.Certificate
			} else {
				// Another certificate of the key, elsewhere.
				other := namedWithKey(t, k, static, "other-dev")
				if revoke, err = f.svc.Enroll(ctx, other); err != nil {
					t.Fatal(err)
				}
			}
			res, err := f.svc.Enroll(ctx, held)
			if err != nil || res.Pending == nil {
				t.Fatalf("held: %+v, %v", res, err)
			}
			id := res.Pending.ID
			if _, err := f.admin.Revoke(ctx, revoke.Record.SerialHex, "", c.reason, "cli:test"); err != nil {
				t.Fatal(err)
			}
			ask := func() (*enroll.Result, error) {
				if c.approve {
					return f.svc.Approve(ctx, id, "cli:test")
				}
				return f.svc.PollBy(ctx, pki.ProtocolSCEP, "approval", held.TransactionID, held.CSR.RawSubjectPublicKeyInfo)
			}
			res, err = ask()
			r, rerr := f.st.Request(ctx, id)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if c.wantText == "" && c.approve {
				// Refused, saying what makes it approvable: the hold
				// lifted; then it is.
				shown := pki.ShownSerial(revoke.Record.SerialHex)
				if msg := pki.ErrorMessage(err); pki.ErrorCode(err) != pki.EConflict || !strings.Contains(msg, "on hold (certificateHold)") ||
					!strings.Contains(msg, "scepter certs unhold "+shown) || strings.Contains(msg, "revoked since") || r.Status != pki.RequestPending {
					t.Fatalf("approved %+v, %v (%s), request %s; want refused, on hold, how to lift it, still pending", res, err, pki.ErrorCode(err), r.Status)
				}
				if _, err := f.admin.Unhold(ctx, revoke.Record.SerialHex, "", "cli:test"); err != nil {
					t.Fatal(err)
				}
				if res, err := ask(); err != nil || res.Certificate == nil {
					t.Fatalf("approved after the hold was lifted: %+v, %v", res, err)
				}
				return
			}
			if c.wantText == "" {
				if err != nil || res.Pending == nil || r.Status != pki.RequestPending {
					t.Fatalf("answered %+v, %v, request %s; want still pending", res, err, r.Status)
				}
				return
			}
			if pki.ErrorCode(err) != c.wantCode || !strings.Contains(pki.ErrorMessage(err), c.wantText) || !strings.Contains(pki.ErrorMessage(err), "rejected") {
				t.Fatalf("answered %+v, %v (%s); want %s, rejected, %q", res, err, pki.ErrorCode(err), c.wantCode, c.wantText)
			}
			if r.Status != pki.RequestRejected || r.DecidedBy != enroll.SystemRejecter || !strings.Contains(r.Reason, c.wantText) {
				t.Errorf("request %s by %q (%q); want rejected by %q", r.Status, r.DecidedBy, r.Reason, enroll.SystemRejecter)
			}
			if c.renewal && c.reason != store.ReasonKeyCompromise && !strings.Contains(r.Reason, pki.ShownSerial(revoke.Record.SerialHex)) {
				t.Errorf("reason %q does not name the certificate %s", r.Reason, pki.ShownSerial(revoke.Record.SerialHex))
			}
			evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRequestRejected, Limit: 10})
			if err != nil || len(evs) != 1 || evs[0].Actor != enroll.SystemRejecter || evs[0].Reason != r.Reason {
				t.Errorf("rejection events %+v, %v; want one by %q", evs, err, enroll.SystemRejecter)
			}
			if pending, _, err := f.st.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending}); err != nil || len(pending) != 0 {
				t.Errorf("pending requests %d, %v; want none", len(pending), err)
			}
			// The device asking again is refused the same way.
			again, err := f.svc.PollBy(ctx, pki.ProtocolSCEP, "approval", held.TransactionID, held.CSR.RawSubjectPublicKeyInfo)
			wantDevice := c.wantCode
			if c.approve && c.renewal {
				wantDevice = pki.EBadCertID
			}
			if pki.ErrorCode(err) != wantDevice || !strings.Contains(pki.ErrorMessage(err), "the request was rejected: "+r.Reason) {
				t.Errorf("polled again: %+v, %v (%s); want %s, the rejection", again, err, pki.ErrorCode(err), wantDevice)
			}
		})
	}
}
