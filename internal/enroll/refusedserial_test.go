package enroll_test

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A refused attempt to use a certificate of ours is found by that
// certificate's serial (r49): a renewal signed by a revoked certificate,
// and a request for a key revoked as compromised, name the certificate in
// their enrollment.failed events.
func TestRefusalsNameTheCertificate(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow = "default", 1
	f := newFixture(t, map[string]pki.Profile{"default": p}, "default")
	ctx := context.Background()
	k := newKey(t)
	first, err := f.svc.Enroll(ctx, namedWithKey(t, k, static, "rsdev", "rsdev.example"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Revoke(ctx, first.Record.SerialHex, "", store.ReasonKeyCompromise, "cli:test"); err != nil {
		t.Fatal(err)
	}
	renewal := namedWithKey(t, newKey(t), "", "rsdev", "rsdev.example")
	renewal.Renewal, renewal.Evidence.SignerCert = true, first.Certificate
	again := namedWithKey(t, k, static, "rsdev", "rsdev.example")
	again.TransactionID = "tx-rsdev-2"
	for _, tc := range []struct {
		name string
		req  func() error
	}{
		{"a renewal signed by the revoked certificate", func() error { _, err := f.svc.Enroll(ctx, renewal); return err }},
		{"a new request for the compromised key", func() error { _, err := f.svc.Enroll(ctx, again); return err }},
	} {
		before, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed, SerialHex: first.Record.SerialHex})
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.req(); err == nil {
			t.Fatalf("%s: accepted", tc.name)
		}
		after, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed, SerialHex: first.Record.SerialHex})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before)+1 {
			t.Errorf("%s: %d enrollment.failed events name serial %s, want %d", tc.name, len(after), first.Record.SerialHex, len(before)+1)
			continue
		}
		if ev := after[0]; ev.IssuerID != first.Record.IssuerID {
			t.Errorf("%s: the event names issuer %q, want %q", tc.name, ev.IssuerID, first.Record.IssuerID)
		}
	}
}
