package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

const (
	reasonKeyCompromise = 1
	reasonSuperseded    = 4
)

// A responder revoked for keyCompromise is replaced under the other key
// name, and its key is destroyed then, not kept beside the new one until
// the name comes round again: it is gone from DATA/ocsp, and export-keys
// carries only the new responder's key. Also when the revoked responder
// is found on disk by a restart.
func TestRevokedDelegateKeyDestroyed(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "running", true: "restarted"}[restart]
		t.Run(name, func(t *testing.T) {
			p := fixture.New(t, fixture.Options{})
			ctx := context.Background()
			dir := filepath.Join(p.Dir, "ocsp")
			d := ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, p.Log, 0).WithInventory(p.Store).WithAudit(p.Store, "system:node-a")
			if err := d.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			issuer := p.Issuer()
			first, ok := d.Signer(issuer.ID)
			if !ok {
				t.Fatal("no delegate after Refresh")
			}
			oldKey := filepath.Join(dir, issuer.ID[:32]+keys.KeyFileExt)
			newKey := filepath.Join(dir, issuer.ID[:32]+"-b"+keys.KeyFileExt)
			if k, err := keys.LoadKeyFile(oldKey); err != nil || !pki.SamePublicKey(k.Public(), first.Cert.PublicKey) {
				t.Fatalf("%s does not hold the first delegate's key (%v)", oldKey, err)
			}

			p.Revoke(t, first.Cert, reasonKeyCompromise)
			if restart {
				d = ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, p.Log, 0).WithInventory(p.Store).WithAudit(p.Store, "system:node-a")
			}
			if err := d.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			next, ok := d.Signer(issuer.ID)
			if !ok || next.Cert.Equal(first.Cert) {
				t.Fatal("the revoked delegate was not replaced")
			}
			if _, err := os.Stat(oldKey); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the revoked delegate's key %s is still there (%v)", oldKey, err)
			}
			if k, err := keys.LoadKeyFile(newKey); err != nil || !pki.SamePublicKey(k.Public(), next.Cert.PublicKey) {
				t.Errorf("%s does not hold the new delegate's key (%v)", newKey, err)
			}
			checkKeyDestroyedEvents(t, p.Store, "system:node-a", wantDestroyed{issuer.ID, oldKey, first.Cert.PublicKey})
			if certs, err := keys.LoadCertFile(filepath.Join(dir, issuer.ID[:32]+".crt")); err != nil || !certs[0].Equal(next.Cert) {
				t.Errorf("the certificate on disk is not the new delegate's (%v)", err)
			}

			x, err := ca.ExportKeys(p.Dir, ca.ExportKeysOptions{ExtraDirs: []string{"ocsp"}})
			if err != nil {
				t.Fatal(err)
			}
			defer x.Clear()
			want := "ocsp/" + issuer.ID[:32] + "-b" + keys.KeyFileExt
			var responderKeys []string
			for _, k := range x.Keys() {
				if filepath.Dir(k) == "ocsp" {
					responderKeys = append(responderKeys, k)
				}
			}
			if !slices.Equal(responderKeys, []string{want}) {
				t.Errorf("the export holds the responder keys %q, want only %q", responderKeys, want)
			}
		})
	}
}

// A delegate replaced because it is due keeps its key until the name
// comes round again (it may be signing at that moment): only a revoked
// one's goes at once.
func TestDueDelegateKeyKept(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	d := ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, p.Log, 0).WithInventory(p.Store)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	issuer := p.Issuer()
	first, _ := d.Signer(issuer.ID)
	p.Clock.Set(first.Cert.NotAfter.Add(-first.Cert.NotAfter.Sub(first.Cert.NotBefore) / 4))
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if next, _ := d.Signer(issuer.ID); next.Cert.Equal(first.Cert) {
		t.Fatal("the due delegate was not replaced")
	}
	oldKey := filepath.Join(dir, issuer.ID[:32]+keys.KeyFileExt)
	if _, err := os.Stat(oldKey); err != nil {
		t.Errorf("the previous delegate's key is gone (%v)", err)
	}
}

// wantDestroyed is a key.destroyed event a test expects: the issuer, the
// key's place and its public key.
type wantDestroyed struct {
	issuerID, where string
	pub             crypto.PublicKey
}

// checkKeyDestroyedEvents fails t unless st's audit trail holds exactly
// one successful key.destroyed event by actor for each of want, for an
// OCSP responder's key.
func checkKeyDestroyedEvents(t *testing.T, st store.Store, actor string, want ...wantDestroyed) {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventKeyDestroyed})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(want) {
		t.Fatalf("%d key.destroyed events (%+v), want %d", len(evs), evs, len(want))
	}
	for i, w := range want {
		ev := evs[len(evs)-1-i] // newest first
		der, err := x509.MarshalPKIXPublicKey(w.pub)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(der)
		if ev.Actor != actor || ev.IssuerID != w.issuerID || ev.Outcome != "success" ||
			!strings.Contains(ev.Detail, pki.KeyRoleResponder) || !strings.Contains(ev.Detail, w.where) || !strings.Contains(ev.Detail, hex.EncodeToString(h[:])) {
			t.Errorf("key.destroyed event %+v, want one by %s for issuer %s, the OCSP responder key at %s, SPKI SHA-256 %x", ev, actor, w.issuerID, w.where, h)
		}
	}
}

// failingAudit is an audit trail that cannot be written.
type failingAudit struct{}

func (failingAudit) AppendAudit(context.Context, ...pki.AuditEvent) error {
	return errors.New("database is locked")
}

// A revoked responder's key is destroyed even when its key.destroyed event
// cannot be written: the failure is logged at ERROR, nothing is undone.
func TestRevokedDelegateKeyDestroyedAuditFails(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d := ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, log, 0).WithInventory(p.Store).WithAudit(failingAudit{}, "system:node-a")
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	issuer := p.Issuer()
	first, _ := d.Signer(issuer.ID)
	p.Revoke(t, first.Cert, reasonKeyCompromise)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	oldKey := filepath.Join(dir, issuer.ID[:32]+keys.KeyFileExt)
	if _, err := os.Stat(oldKey); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the revoked delegate's key %s is still there (%v)", oldKey, err)
	}
	if next, ok := d.Signer(issuer.ID); !ok || next.Cert.Equal(first.Cert) {
		t.Error("the revoked delegate was not replaced")
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "database is locked") || !strings.Contains(logs.String(), oldKey) {
		t.Errorf("no ERROR log line about the unwritten event:\n%s", logs.String())
	}
}

// A delegate whose key is gone from its token is replaced, and the
// replacement is in the audit trail with the key that went missing: its
// certificate, valid in the inventory, is revoked (superseded) with a
// certificate.revoked event naming the key and the new responder, so that
// the inventory and the CRL no longer list it valid. One revoked already
// keeps its reason, and a certificate.recorded note on the new responder
// says it instead.
func TestDelegateKeyGoneIsRevokedSuperseded(t *testing.T) {
	for _, tc := range []struct {
		name       string
		revokedFor int // 0: valid when its key goes
		wantReason int
	}{
		{"valid", 0, reasonSuperseded},
		{"revoked already", reasonKeyCompromise, reasonKeyCompromise},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fixture.New(t, fixture.Options{})
			ctx := context.Background()
			dir := filepath.Join(p.Dir, "ocsp")
			// The key answers as one deleted from its token does, once gone.
			var failure atomic.Pointer[error]
			d := ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, p.Log, 0).WithInventory(p.Store).
				WithAudit(p.Store, "system:node-a").WithWrapKey(func(k crypto.Signer) crypto.Signer {
				return failingSigner{Signer: k, err: &failure}
			})
			if err := d.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			issuer := p.Issuer()
			first, ok := d.Signer(issuer.ID)
			if !ok {
				t.Fatal("no delegate after Refresh")
			}
			if tc.revokedFor != 0 {
				p.Revoke(t, first.Cert, tc.revokedFor)
			}
			keyFile := filepath.Join(dir, issuer.ID[:32]+keys.KeyFileExt)
			if err := os.Remove(keyFile); err != nil {
				t.Fatal(err)
			}
			gone := fmt.Errorf("keys: no key labelled %q: %w", "scepter-ocsp-x", keys.ErrKeyNotFound)
			failure.Store(&gone)
			if _, err := first.Key.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, keys.ErrKeyNotFound) {
				t.Fatalf("signing with the gone key: %v", err)
			}
			failure.Store(nil)
			if err := d.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			next, ok := d.Signer(issuer.ID)
			if !ok || next.Cert.Equal(first.Cert) {
				t.Fatal("the delegate whose key is gone was not replaced")
			}

			serial, nextSerial := first.Cert.SerialNumber.Text(16), next.Cert.SerialNumber.Text(16)
			rec, err := p.Store.Certificate(ctx, issuer.ID, serial)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != pki.StatusRevoked || rec.RevokeReason != tc.wantReason {
				t.Errorf("the replaced delegate %s is %s (reason %d) in the inventory, want revoked (reason %d)", serial, rec.Status, rec.RevokeReason, tc.wantReason)
			}
			revokedEvents, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventRevoked})
			if err != nil {
				t.Fatal(err)
			}
			notes, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventCertRecorded, SerialHex: nextSerial})
			if err != nil {
				t.Fatal(err)
			}
			// says: ev, recorded on the certificate on, tells that the key
			// at keyFile went missing and which responder certificate
			// replaced which.
			says := func(ev pki.AuditEvent, on string) bool {
				return ev.Actor == "system:node-a" && ev.IssuerID == issuer.ID && ev.Outcome == "success" && ev.SerialHex == on &&
					ev.Profile == "ocsp-responder" && strings.Contains(ev.Detail, keyFile) && strings.Contains(ev.Detail, "missing from its token") &&
					strings.Contains(ev.SerialHex+" "+ev.Detail, serial) && strings.Contains(ev.SerialHex+" "+ev.Detail, nextSerial)
			}
			if tc.revokedFor == 0 {
				if len(revokedEvents) != 1 || !says(revokedEvents[0], serial) || revokedEvents[0].Reason != "superseded" {
					t.Errorf("certificate.revoked events of %s: %+v, want one, superseded, naming the missing key %s and the new responder %s",
						serial, revokedEvents, keyFile, nextSerial)
				}
				if len(notes) != 0 {
					t.Errorf("certificate.recorded notes %+v beside the revocation", notes)
				}
				return
			}
			if len(revokedEvents) != 1 || revokedEvents[0].Actor != "test" {
				t.Errorf("certificate.revoked events: %+v, want only the test's", revokedEvents)
			}
			if len(notes) != 1 || !says(notes[0], nextSerial) {
				t.Errorf("certificate.recorded notes on %s: %+v, want one naming the missing key %s and the responder %s it replaces",
					nextSerial, notes, keyFile, serial)
			}
		})
	}
}
