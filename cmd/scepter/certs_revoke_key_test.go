package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// `certs revoke --reason keyCompromise` names, a line each, the other
// certificates of the key it revoked with the one asked for.
func TestCertsRevokeNamesTheKeysOtherCertificates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The CLI's clock, which the year-ahead test run moves: a sibling
	// must be unexpired by it.
	now := pki.SystemClock{}.Now().UTC()
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
	for _, c := range []struct{ issuer, serial string }{
		{strings.Repeat("1", 64), "a1"}, {strings.Repeat("1", 64), "a2"}, {strings.Repeat("2", 64), "b1"},
	} {
		if err := st.RecordIssuance(ctx, store.Issuance{Now: now, Certificate: pki.Certificate{
			SerialHex: c.serial, IssuerID: c.issuer, Issuer: "CN=Test CA", Subject: "CN=device-" + c.serial,
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
			Profile: "default", Protocol: pki.ProtocolCLI, Source: pki.SourceIssued, KeyType: "p256",
			CreatedAt: now, DER: der,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	e, out, errb := testEnv(nil)
	if err := run(ctx, e, []string{"certs", "revoke", "a2", "--reason", "keyCompromise", "--data-dir", dir}); err != nil {
		t.Fatalf("%v\nstderr: %s", err, errb)
	}
	for _, want := range []string{
		"revoked a2 (CN=device-a2)",
		"also revoked a1 (issuer " + strings.Repeat("1", 64) + "), reason keyCompromise: it has the same key\n",
		"also revoked b1 (issuer " + strings.Repeat("2", 64) + "), reason keyCompromise: it has the same key\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout %q, want it to say %q", out, want)
		}
	}
}
