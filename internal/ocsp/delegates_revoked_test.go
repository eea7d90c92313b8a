package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

const reasonKeyCompromise = 1

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
