package enroll_test

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A renewal held for approval while the certificate it renews was valid
// is answered from its request however long it waited: once that
// certificate has expired past the profile's grace, the device's poll or
// its request sent again (signed by, or sent over TLS with, the expired
// certificate) gets PENDING while it waits and the approved certificate
// once approved, approved before the expiry or after it; it is not refused
// badTime, which made the client drop the key its certificate was issued
// for. A new renewal by the expired certificate is still refused badTime.
func TestHeldRenewalAnsweredAfterItsCertificateExpired(t *testing.T) {
	for _, c := range []struct {
		name           string
		protocol       pki.Protocol
		poll           bool // a CertPoll, not the request sent again
		approvedBefore bool // approved before the certificate expired
	}{
		{"SCEP resend, approved before the expiry", pki.ProtocolSCEP, false, true},
		{"SCEP resend, approved after the expiry", pki.ProtocolSCEP, false, false},
		{"SCEP CertPoll, approved before the expiry", pki.ProtocolSCEP, true, true},
		{"SCEP CertPoll, approved after the expiry", pki.ProtocolSCEP, true, false},
		{"EST resend, approved before the expiry", pki.ProtocolEST, false, true},
		{"EST resend, approved after the expiry", pki.ProtocolEST, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RequireApproval, p.ChallengeMode = "approval", true, enroll.ChallengeOneTime
			p.Validity, p.Backdate, p.RenewalWindow, p.RenewalGrace = 10*24*time.Hour, 0, 1, time.Hour
			p.RequestRetention = 30 * 24 * time.Hour
			f := newFixture(t, map[string]pki.Profile{"approval": p}, "approval")
			ctx := context.Background()
			otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
			if err != nil {
				t.Fatal(err)
			}
			first := namedWithKey(t, newKey(t), otp, "late-dev")
			first.Profile = "approval"
			held, err := f.svc.Enroll(ctx, first)
			if err != nil || held.Pending == nil {
				t.Fatalf("held: %+v, %v", held, err)
			}
			old, err := f.svc.Approve(ctx, held.Pending.ID, "cli:test")
			if err != nil {
				t.Fatal(err)
			}

			// The renewal, with a new key, held while old is valid.
			renew := func(cn, txID string) enroll.Request {
				r := namedWithKey(t, newKey(t), "", cn)
				r.Profile, r.Protocol, r.TransactionID, r.Renewal = "approval", c.protocol, txID, true
				if c.protocol == pki.ProtocolEST {
					r.Evidence = enroll.Evidence{TLSClientCert: old.Certificate}
				} else {
					r.Evidence = enroll.Evidence{SignerCert: old.Certificate}
				}
				return r
			}
			// send is the device sending req, as its protocol's handler
			// asks the service (EST: its credentials first); ask is its
			// asking again about it, by a poll or by sending it again.
			send := func(req enroll.Request) (*enroll.Result, error) {
				if c.protocol == pki.ProtocolEST {
					bare := req
					bare.CSR = nil
					checked, err := f.svc.CheckCredentials(ctx, bare)
					if err != nil {
						return nil, err
					}
					req.Checked = checked
				}
				return f.svc.Enroll(ctx, req)
			}
			ask := func(req enroll.Request) (*enroll.Result, error) {
				if c.poll {
					return f.svc.PollBy(ctx, c.protocol, "approval", req.TransactionID, old.Certificate.RawSubjectPublicKeyInfo)
				}
				return send(req)
			}
			req := renew("late-dev", "tx-renewal")
			res, err := send(req)
			if err != nil || res.Pending == nil {
				t.Fatalf("renewal: %+v, %v; want held", res, err)
			}
			id := res.Pending.ID
			approve := func() *enroll.Result {
				t.Helper()
				issued, err := f.svc.Approve(ctx, id, "cli:test")
				if err != nil || issued.Certificate == nil {
					t.Fatalf("approved: %+v, %v; want the renewal issued", issued, err)
				}
				return issued
			}
			var issued *enroll.Result
			if c.approvedBefore {
				issued = approve()
			}
			f.clock.Set(old.Certificate.NotAfter.Add(p.RenewalGrace + time.Minute))
			if !c.approvedBefore {
				if res, err := ask(req); err != nil || res.Pending == nil {
					t.Fatalf("asked while held, after the expiry: %+v, %v (%s); want PENDING", res, err, pki.ErrorCode(err))
				}
				issued = approve()
			}
			res, err = ask(req)
			if err != nil || res.Certificate == nil || res.Record.SerialHex != issued.Record.SerialHex {
				t.Fatalf("asked after the approval and the expiry: %+v, %v (%s); want certificate %s",
					res, err, pki.ErrorCode(err), pki.ShownSerial(issued.Record.SerialHex))
			}

			// A new renewal by the expired certificate (nothing held for
			// it) is refused as expired.
			if res, err := send(renew("late-dev", "tx-new-renewal")); pki.ErrorCode(err) != pki.EBadTime {
				t.Errorf("new renewal by the expired certificate: %+v, %v (%s); want badTime", res, err, pki.ErrorCode(err))
			}
		})
	}
}
