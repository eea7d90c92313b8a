package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// A revocation for keyCompromise reports the other certificates of the
// key it revoked with it; other reasons revoke the one named alone.
func TestRevokeReportsTheKeysOtherCertificates(t *testing.T) {
	ctx := context.Background()
	const issuer = "2222222222222222222222222222222222222222222222222222222222222222"
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	now := clock.Now()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "device"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	for _, serial := range []string{"a0", "a1", "a2"} {
		if err := st.RecordIssuance(ctx, store.Issuance{Now: now, Certificate: pki.Certificate{
			SerialHex: serial, IssuerID: issuer, Issuer: "CN=Test CA", Subject: "CN=device",
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
			Profile: "default", Protocol: pki.ProtocolCLI, Source: pki.SourceIssued, KeyType: "p256",
			CreatedAt: now, DER: der,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	svc := New(st, clock, nil, nil, "")
	r, err := svc.Revoke(ctx, "a0", "", 4, "cli:root")
	if err != nil || !r.Changed || len(r.AlsoRevoked) != 0 {
		t.Fatalf("superseded: %+v, %v; want a0 alone", r, err)
	}
	r, err = svc.Revoke(ctx, "a2", "", 1, "cli:root")
	if want := []store.CertRef{{IssuerID: issuer, SerialHex: "a1"}}; err != nil || !r.Changed || !reflect.DeepEqual(r.AlsoRevoked, want) {
		t.Fatalf("keyCompromise: %+v, %v; want a2, and %v with it", r, err, want)
	}
	if c, err := st.Certificate(ctx, issuer, "a1"); err != nil || c.Status != pki.StatusRevoked || c.RevokeReason != 1 {
		t.Errorf("a1: %+v, %v; want revoked for keyCompromise", c, err)
	}
	if c, err := st.Certificate(ctx, issuer, "a0"); err != nil || c.RevokeReason != 4 {
		t.Errorf("a0: %+v, %v; want superseded still", c, err)
	}
}

// A key found compromised after its certificate was revoked for another
// reason: revoking that certificate for keyCompromise raises its reason,
// keeps its revocation time and sweeps the key's others; every other
// change of a reason given for good is refused with EConflict (409), the
// reason that stays named.
func TestRevokeRaisesAReasonToKeyCompromise(t *testing.T) {
	ctx := context.Background()
	const issuer = "3333333333333333333333333333333333333333333333333333333333333333"
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	supersededAt := clock.Now()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "device"},
		NotBefore: supersededAt.Add(-time.Hour), NotAfter: supersededAt.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	for _, serial := range []string{"a0", "a1", "b0"} {
		if err := st.RecordIssuance(ctx, store.Issuance{Now: supersededAt, Certificate: pki.Certificate{
			SerialHex: serial, IssuerID: issuer, Issuer: "CN=Test CA", Subject: "CN=device",
			NotBefore: supersededAt.Add(-time.Hour), NotAfter: supersededAt.Add(24 * time.Hour), Status: pki.StatusValid,
			Profile: "default", Protocol: pki.ProtocolCLI, Source: pki.SourceIssued, KeyType: "p256",
			CreatedAt: supersededAt, DER: der,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	svc := New(st, clock, nil, nil, "")
	for serial, reason := range map[string]int{"a0": 4, "b0": 5} {
		if r, err := svc.Revoke(ctx, serial, "", reason, "cli:root"); err != nil || !r.Changed || len(r.AlsoRevoked) != 0 {
			t.Fatalf("revoke %s for reason %d: %+v, %v; want it alone", serial, reason, r, err)
		}
	}
	clock.Advance(time.Hour)

	for _, tc := range []struct {
		serial, stays string
		reason        int
	}{{"a0", "superseded", 5}, {"a0", "superseded", 6}, {"b0", "cessationOfOperation", 3}} {
		_, err := svc.Revoke(ctx, tc.serial, "", tc.reason, "cli:root")
		if pki.ErrorCode(err) != pki.EConflict || !strings.Contains(err.Error(), "reason "+tc.stays+"; the reason stays") {
			t.Errorf("%s, %s then %s: %v; want a conflict naming the reason that stays", tc.serial, tc.stays, ReasonName(tc.reason), err)
		}
	}

	r, err := svc.Revoke(ctx, "a0", "", 1, "cli:operator")
	if want := []store.CertRef{{IssuerID: issuer, SerialHex: "a1"}}; err != nil || !r.Changed || !reflect.DeepEqual(r.AlsoRevoked, want) {
		t.Fatalf("superseded, then keyCompromise: %+v, %v; want raised, and %v with it", r, err, want)
	}
	if c := r.Certificate; c.RevokeReason != 1 || !c.RevokedAt.Equal(supersededAt) || c.RevokedBy != "cli:operator" {
		t.Errorf("raised: reason %d at %v by %q; want keyCompromise at %v, the supersede's time, by cli:operator",
			c.RevokeReason, c.RevokedAt, c.RevokedBy, supersededAt)
	}
	if c, err := st.Certificate(ctx, issuer, "a1"); err != nil || c.Status != pki.StatusRevoked || c.RevokeReason != 1 || !c.RevokedAt.Equal(clock.Now()) {
		t.Errorf("a1: %+v, %v; want revoked for keyCompromise now", c, err)
	}
	hash, err := store.CertKeyHash(der)
	if err != nil {
		t.Fatal(err)
	}
	if ck, err := st.CompromisedKey(ctx, hash); err != nil || ck.SerialHex != "a0" {
		t.Errorf("compromised key: %+v, %v; want recorded by a0", ck, err)
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRevoked, SerialHex: "a0"})
	if err != nil || len(evs) == 0 || evs[0].Detail != store.ReasonRaisedDetail(4) || evs[0].Reason != "keyCompromise" || evs[0].Actor != "cli:operator" {
		t.Errorf("events of a0: %+v, %v; want the newest to say %q", evs, err, store.ReasonRaisedDetail(4))
	}

	// keyCompromise is final.
	_, err = svc.Revoke(ctx, "a0", "", 4, "cli:root")
	if pki.ErrorCode(err) != pki.EConflict || !strings.Contains(err.Error(), "reason keyCompromise; the reason stays") {
		t.Errorf("keyCompromise, then superseded: %v; want a conflict", err)
	}
}
