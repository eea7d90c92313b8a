package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testListRenewed: every listed certificate names its newest renewal
// (RenewedBy), whatever the filter, and Renewed keeps only the renewed
// ones or only those still to renew, with every other filter and order,
// page by page.
func testListRenewed(t *testing.T, s store.Store) {
	ctx := context.Background()
	// r0 is renewed by r1, itself renewed by r2; r3 twice, by r4 then by
	// r5 (issued by issuerB, after a CA rollover); r6 renewed by nothing;
	// r7 revoked, and renewed by r8 (at profile vpn). r9 names a
	// certificate the store does not hold: it renews, and is not renewed.
	type spec struct {
		issuer, serial, renews string // renews: the serial, of issuerA unless issuer:serial
		notAfter               int    // days after t0
		profile                string
		revoked                bool
	}
	specs := []spec{
		{issuerA, "r0", "", 10, "default", false},
		{issuerA, "r1", "r0", 40, "default", false},
		{issuerA, "r2", "r1", 70, "default", false},
		{issuerA, "r3", "", 12, "default", false},
		{issuerA, "r4", "r3", 42, "default", false},
		{issuerB, "r5", "r3", 44, "default", false},
		{issuerA, "r6", "", 14, "default", false},
		{issuerA, "r7", "", 16, "vpn", true},
		{issuerA, "r8", "r7", 46, "vpn", false},
		{issuerA, "r9", "gone", 18, "default", false},
	}
	for i, sp := range specs {
		c := newCert(sp.issuer, sp.serial, t0.Add(time.Duration(sp.notAfter)*day))
		c.Profile = sp.profile
		c.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
		if sp.renews != "" {
			c.RenewedFrom = issuerA + ":" + sp.renews
		}
		if sp.revoked {
			c.Status, c.RevokedAt, c.RevokeReason = pki.StatusRevoked, t0, 4
		}
		mustRecord(t, s, issuance(c))
	}
	renewedBy := map[string]string{"r0": issuerA + ":r1", "r1": issuerA + ":r2", "r3": issuerB + ":r5", "r7": issuerA + ":r8"}

	within30d := store.CertFilter{Status: pki.StatusValid, NotAfterAfter: t0, NotAfterBefore: t0.Add(30 * day)}
	with := func(f store.CertFilter, r store.RenewedFilter) store.CertFilter { f.Renewed = r; return f }
	for _, tc := range []struct {
		name string
		f    store.CertFilter
		want []string // serials, in the list's order
	}{
		{"all, newest first", store.CertFilter{}, []string{"r9", "r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1", "r0"}},
		{"not renewed", with(store.CertFilter{}, store.RenewedNo), []string{"r9", "r8", "r6", "r5", "r4", "r2"}},
		{"renewed", with(store.CertFilter{}, store.RenewedYes), []string{"r7", "r3", "r1", "r0"}},
		{"expiring within 30 days", within30d, []string{"r0", "r3", "r6", "r9"}},
		{"expiring within 30 days, not renewed", with(within30d, store.RenewedNo), []string{"r6", "r9"}},
		{"expiring within 30 days, renewed", with(within30d, store.RenewedYes), []string{"r0", "r3"}},
		{"revoked, renewed", store.CertFilter{Status: pki.StatusRevoked, Renewed: store.RenewedYes}, []string{"r7"}},
		{"profile vpn, not renewed", store.CertFilter{Profile: "vpn", Renewed: store.RenewedNo}, []string{"r8"}},
		{"issuer B, not renewed", store.CertFilter{IssuerID: issuerB, Renewed: store.RenewedNo}, []string{"r5"}},
		{"issued in a window, not renewed", store.CertFilter{IssuedAfter: t0.Add(2 * time.Minute), IssuedBefore: t0.Add(7 * time.Minute),
			Renewed: store.RenewedNo}, []string{"r6", "r5", "r4", "r2"}},
		{"search, renewed", store.CertFilter{Search: "device-r", Renewed: store.RenewedYes}, []string{"r7", "r3", "r1", "r0"}},
		{"search by serial, not renewed", store.CertFilter{Search: "r3", Renewed: store.RenewedNo}, nil},
	} {
		for _, limit := range []int{1, 3, 100} {
			got := walk(t, s, tc.f, limit)
			var serials []string
			for _, c := range got {
				serials = append(serials, c.SerialHex)
				if c.RenewedBy != renewedBy[c.SerialHex] {
					t.Errorf("%s (limit %d): %s renewed by %q, want %q", tc.name, limit, c.SerialHex, c.RenewedBy, renewedBy[c.SerialHex])
				}
			}
			if !slices.Equal(serials, tc.want) {
				t.Errorf("%s (limit %d): listed %v, want %v", tc.name, limit, serials, tc.want)
			}
		}
	}
	// A value that is no filter is refused, not taken for none.
	if _, _, err := s.ListCertificates(ctx, store.CertFilter{Renewed: "maybe"}); err == nil {
		t.Error("Renewed \"maybe\": listed, want an error")
	}
}
