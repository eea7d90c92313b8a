//go:build cgo

package ocsp_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/softhsmtest"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// hsmPool holds the SoftHSM2 tokens of this test binary, made before the
// module is first initialized (see softhsmtest.Pool).
var hsmPool *softhsmtest.Pool

func TestMain(m *testing.M) { softhsmtest.Main(m, &hsmPool, 2) }

// A revoked responder whose key is in the CA's token: once replaced, the
// key pair its reference file records is destroyed in the token and the
// reference file removed, as for a key file.
func TestRevokedDelegateTokenKeyDestroyed(t *testing.T) {
	st := hsmPool.Take(t)
	tok, err := keys.OpenPKCS11(keys.PKCS11Config{Module: st.Env.Module, TokenLabel: st.Label, PINFile: st.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	ctx := context.Background()
	dir := t.TempDir()
	clock := pkitest.NewClock(fixture.Start)
	authority, _, err := ca.LoadOrCreate(dir, ca.InitOptions{Token: tok}, clock)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.DiscardHandler)
	svc, err := enroll.New(store, authority, clock, log, enroll.Config{StaticChallenge: fixture.Challenge})
	if err != nil {
		t.Fatal(err)
	}
	ocspDir := filepath.Join(dir, "ocsp")
	d := ocsp.NewDelegates(ocspDir, authority, svc, clock, log, 0).WithKeys(authority.ResponderKeys(ocspDir)).WithInventory(store).WithAudit(store, "system:node-a")
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	issuer, _ := authority.Active(clock.Now())
	first, ok := d.Signer(issuer.ID)
	if !ok {
		t.Fatal("no delegate after Refresh")
	}
	refFile := filepath.Join(ocspDir, issuer.ID[:32]+keys.RefFileExt)
	ref, pub, err := keys.ReadRefFile(refFile)
	if err != nil || !pki.SamePublicKey(pub, first.Cert.PublicKey) {
		t.Fatalf("%s does not name the first delegate's key in the token (%v)", refFile, err)
	}

	if _, _, err := store.RevokeCertificate(ctx, issuer.ID, first.Cert.SerialNumber.Text(16), reasonKeyCompromise, clock.Now(),
		pki.AuditEvent{Type: pki.EventRevoked, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if next, ok := d.Signer(issuer.ID); !ok || next.Cert.Equal(first.Cert) {
		t.Fatal("the revoked delegate was not replaced")
	}
	if _, err := os.Stat(refFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the revoked delegate's reference file %s is still there (%v)", refFile, err)
	}
	if _, err := tok.OpenRef(ref); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Errorf("the revoked delegate's key is still in the token (%s): %v", ref, err)
	}
	checkKeyDestroyedEvents(t, store, "system:node-a", wantDestroyed{issuer.ID, ref, first.Cert.PublicKey})
}
