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
