package enroll_test

import (
	"context"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A SCEP RenewalReq sent again after its answer was lost is answered as
// EST's simplereenroll is: with the renewal issued for its key while the
// renewed certificate is valid, or revoked by that renewal itself
// (revoke_superseded); revoked by an operator, for any reason, the
// certificate authenticates nothing, the resend included (badCertId,
// naming the reason).
func TestRenewalSentAgainByARevokedCertificate(t *testing.T) {
	tests := []struct {
		name      string
		supersede bool
		reason    int // the operator's revocation; -1 for none
		refused   string
	}{
		{"superseded by its renewal", true, -1, ""},
		{"superseded by its renewal, then keyCompromise", true, pki.ReasonKeyCompromise, "(keyCompromise)"},
		{"keyCompromise", false, pki.ReasonKeyCompromise, "(keyCompromise)"},
		{"privilegeWithdrawn", false, pki.ReasonPrivilegeWithdrawn, "(privilegeWithdrawn)"},
		{"superseded by the operator", false, pki.ReasonSuperseded, "(superseded)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RenewalWindow, p.RevokeSuperseded = "default", 1, tt.supersede
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"})
			ctx := context.Background()
			first, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "rr-1", "rr-1.example"))
			if err != nil {
				t.Fatal(err)
			}
			renew := namedWithKey(t, newKey(t), "", "rr-1", "rr-1.example")
			renew.Renewal, renew.Evidence.SignerCert, renew.TransactionID = true, first.Certificate, "tx-renewal"
			renewal, err := f.svc.Enroll(ctx, renew)
			if err != nil {
				t.Fatal(err)
			}
			if tt.reason >= 0 {
				if _, err := f.admin.Revoke(ctx, first.Record.SerialHex, first.Record.IssuerID, tt.reason, "cli:test"); err != nil {
					t.Fatal(err)
				}
			}
			again, err := f.svc.Enroll(ctx, renew)
			if tt.refused == "" {
				if err != nil || !again.SentAgain || again.Record.SerialHex != renewal.Record.SerialHex {
					t.Fatalf("sent again: %+v, %v; want %s sent again", again, err, pki.ShownSerial(renewal.Record.SerialHex))
				}
				return
			}
			if err == nil {
				t.Fatalf("answered %s (sent again: %v); want refused as revoked", pki.ShownSerial(again.Record.SerialHex), again.SentAgain)
			}
			if pki.ErrorCode(err) != pki.EBadCertID || !strings.Contains(err.Error(), tt.refused) || !strings.Contains(err.Error(), pki.ShownSerial(first.Record.SerialHex)) {
				t.Errorf("refused %v (%s); want badCertId naming %s and %s", err, pki.ErrorCode(err), pki.ShownSerial(first.Record.SerialHex), tt.refused)
			}
		})
	}
}
