package enroll_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The certificate.renewed event names the certificate renewed, "renews
// ISSUER:SERIAL", with the serial in whole bytes, as its authorized_by and
// the rest of the trail give it: a serial with an odd number of hex digits
// (0d5f…, stored d5f…) was given in its stored form there.
func TestRenewedEventShowsTheSerialInWholeBytes(t *testing.T) {
	def := pki.DefaultProfile()
	def.RenewalWindow = 1
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{def.Name: def}, DefaultProfile: def.Name})
	ctx := context.Background()
	// Serials are random: enroll until one has an odd number of digits
	// (one in 8 or so).
	var first *enroll.Result
	for i := 0; first == nil; i++ {
		if i == 300 {
			t.Fatal("300 serials, none with an odd number of hex digits")
		}
		res, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, fmt.Sprintf("dev-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Record.SerialHex)%2 == 1 {
			first = res
		}
	}
	r := namedWithKey(t, newKey(t), "", first.Record.Subject[len("CN="):])
	r.Renewal, r.Evidence.SignerCert = true, first.Certificate
	res, err := f.svc.Enroll(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRenewed, SerialHex: res.Record.SerialHex, Limit: 10})
	if err != nil || len(evs) != 1 {
		t.Fatalf("renewed events: %+v, %v; want one", evs, err)
	}
	shown := pki.ShownSerial(first.Record.SerialHex)
	want := "renews " + first.Record.IssuerID + ":" + shown + ", authorized_by: renewal " + shown
	if evs[0].Detail != want {
		t.Errorf("renewed event detail %q, want %q", evs[0].Detail, want)
	}
}
