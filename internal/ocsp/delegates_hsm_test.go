//go:build cgo

package ocsp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/softhsmtest"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	storepkg "github.com/scepter/scepter/internal/store"
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

// A responder key deleted from the CA's token while the token stays open
// (pkcs11-tool --delete-object) cannot be put back: the token answers,
// without the key. The next answer is signed by the CA, not tryLater, and
// the next Refresh makes a new responder key and certificate, which sign
// the answers after it.
func TestDelegateTokenKeyDeletedIsReplaced(t *testing.T) {
	st := hsmPool.Take(t)
	cfg := keys.PKCS11Config{Module: st.Env.Module, TokenLabel: st.Label, PINFile: st.PINFile}
	tok, err := keys.OpenPKCS11(cfg)
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
	d := ocsp.NewDelegates(ocspDir, authority, svc, clock, log, 0).WithKeys(authority.ResponderKeys(ocspDir)).WithInventory(store).
		WithAudit(store, "system:node-a")
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r := ocsp.New(store, authority, d.Signer, clock, log, ocsp.Config{DelegateRevoked: func(string) { d.Kick() }})
	issuer, _ := authority.Active(clock.Now())
	// signerOf answers a question about cert and returns the certificate
	// that signed the answer (nil: the CA itself).
	signerOf := func(cert *x509.Certificate, h crypto.Hash) *x509.Certificate {
		t.Helper()
		req, err := xocsp.CreateRequest(cert, issuer.Cert, &xocsp.RequestOptions{Hash: h})
		if err != nil {
			t.Fatal(err)
		}
		a := r.Respond(ctx, req)
		if a.Err != nil {
			t.Fatalf("answer %x: %v", a.DER, a.Err)
		}
		resp, err := xocsp.ParseResponseForCert(a.DER, cert, issuer.Cert)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != xocsp.Good {
			t.Fatalf("status %d, want good", resp.Status)
		}
		return resp.Certificate
	}
	first, ok := d.Signer(issuer.ID)
	if !ok {
		t.Fatal("no delegate after Refresh")
	}
	if got := signerOf(first.Cert, crypto.SHA1); got == nil || !got.Equal(first.Cert) {
		t.Fatal("the first answer is not signed by the delegate")
	}

	// Deleted with another session of the token, as pkcs11-tool does.
	ref, pub, err := keys.ReadRefFile(filepath.Join(ocspDir, issuer.ID[:32]+keys.RefFileExt))
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.RemoveRefKey(ref, pub); err != nil {
		t.Fatal(err)
	}

	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		if got := signerOf(first.Cert, h); got != nil {
			t.Fatalf("answered (%v) by the delegate %x whose key is gone, want the CA itself", h, got.SerialNumber)
		}
	}
	if _, ok := d.Signer(issuer.ID); ok {
		t.Error("the delegate whose key is gone is still offered")
	}
	select {
	case <-d.Kicked():
	default:
		t.Error("no Refresh was asked for")
	}
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	next, ok := d.Signer(issuer.ID)
	if !ok || next.Cert.Equal(first.Cert) || pki.SamePublicKey(next.Cert.PublicKey, first.Cert.PublicKey) {
		t.Fatal("no new delegate with a new key after Refresh")
	}
	if got := signerOf(next.Cert, crypto.SHA1); got == nil || !got.Equal(next.Cert) {
		t.Error("the answers after Refresh are not signed by the new delegate")
	}

	// The inventory and the CRL no longer list the first delegate valid,
	// and the trail says why: its key, by its token reference, went
	// missing, and which responder replaced it.
	serial := first.Cert.SerialNumber.Text(16)
	rec, err := store.Certificate(ctx, issuer.ID, serial)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != pki.StatusRevoked || rec.RevokeReason != reasonSuperseded {
		t.Errorf("the delegate whose key is gone is %s (reason %d) in the inventory, want revoked, superseded", rec.Status, rec.RevokeReason)
	}
	evs, err := store.ListAudit(ctx, storepkg.AuditFilter{Type: pki.EventRevoked, SerialHex: serial})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "system:node-a" || evs[0].Reason != "superseded" || !strings.Contains(evs[0].Detail, ref) ||
		!strings.Contains(evs[0].Detail, "missing from its token") || !strings.Contains(evs[0].Detail, next.Cert.SerialNumber.Text(16)) {
		t.Errorf("certificate.revoked events of %s: %+v, want one, superseded, naming the key %s and the new responder", serial, evs, ref)
	}
}
