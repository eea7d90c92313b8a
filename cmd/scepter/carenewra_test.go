package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

const raTestDay = 24 * time.Hour

func TestCARenewRA(t *testing.T) {
	ctx := context.Background()
	dir, before := caDataDir(t, ca.InitOptions{})
	// Three years: a renewal right after the CA's creation still ends
	// later than the first RA (the command reads the system clock).
	out, _, err := runCA(t, nil, dir, "renew-ra", "--validity", "26280h")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(dir, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	if a.RA.Cert.Equal(before.RA.Cert) || pki.SamePublicKey(a.RA.Cert.PublicKey, before.RA.Cert.PublicKey) {
		t.Fatal("ca renew-ra left the RA as it was")
	}
	if retired := a.RetiredRAs(); len(retired) != 1 || !retired[0].Cert.Equal(before.RA.Cert) {
		t.Fatalf("retired RAs %v, want the old one, for decryption", retired)
	}
	serial := pki.SerialText(a.RA.Cert.SerialNumber)
	for _, want := range []string{"serial:      " + serial, "replaces:    " + pki.SerialText(before.RA.Cert.SerialNumber)} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := a.RA.Cert.SerialNumber.Text(16) // the store's form, without a leading zero
	rec, err := st.Certificate(ctx, a.Issuer.ID, stored)
	if err != nil || rec.Profile != enroll.RAProfileName {
		t.Fatalf("the new RA certificate in the inventory: %+v, %v", rec, err)
	}
	events, err := st.ListAudit(ctx, store.AuditFilter{SerialHex: stored})
	if err != nil {
		t.Fatal(err)
	}
	var renewed bool
	for _, ev := range events {
		renewed = renewed || ev.Type == pki.EventRenewed && strings.Contains(ev.Actor, "cli") &&
			strings.Contains(ev.Detail, before.RA.Cert.SerialNumber.Text(16))
	}
	if !renewed {
		t.Errorf("no renewal audit event: %+v", events)
	}
}

func TestCARenewRARefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string
		want  string
		is    error
	}{
		{name: "no CA", setup: func(t *testing.T) string { return t.TempDir() }, want: "scepter serve"},
		{name: "RA mode ca", is: ca.ErrRAIsCA, setup: func(t *testing.T) string {
			dir, _ := caDataDir(t, ca.InitOptions{KeyType: keys.RSA2048, RAMode: ca.RAModeCA})
			return dir
		}},
		{name: "keys in a token, no token given", is: keys.ErrNoToken, setup: func(t *testing.T) string {
			dir, a := caDataDir(t, ca.InitOptions{})
			// The RA key as a token holds it: a reference file in
			// place of ra.key.
			caDir := filepath.Join(dir, "ca")
			if err := keys.WriteRefFile(filepath.Join(caDir, ca.RAKeyRef), "pkcs11:token=t;object=scepter-ra", a.RA.Cert.PublicKey); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(caDir, ca.RAKeyFile)); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t)
			before, _ := os.ReadFile(filepath.Join(dir, "ca", ca.RACertFile))
			_, _, err := runCA(t, nil, dir, "renew-ra", "--validity", "26280h")
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ca renew-ra: %v, want %v %q", err, tc.is, tc.want)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, "ca", ca.RACertFile)); string(after) != string(before) {
				t.Error("a refused renewal changed ra.crt")
			}
			if _, err := os.Stat(filepath.Join(dir, "ca", ca.RetiredRADir)); !errors.Is(err, os.ErrNotExist) {
				t.Error("a refused renewal retired the RA")
			}
		})
	}
}

// serve renews the RA by itself within 30 days of its end, on SQLite only,
// and not when the issuing CA ends within the warning window (a new RA
// would end with it), nor when a rollover's RA takes over first, nor with
// the issuing CA as RA.
func TestRARenewalDue(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	a, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
	if err != nil {
		t.Fatal(err)
	}
	short, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{GenerateKey: testKeys.Generate, IssuingValidity: 2*365*raTestDay + 60*raTestDay}, clock)
	if err != nil {
		t.Fatal(err)
	}
	caRA, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{GenerateKey: testKeys.Generate, KeyType: keys.RSA2048, RAMode: ca.RAModeCA}, clock)
	if err != nil {
		t.Fatal(err)
	}
	raEnd := a.RA.Cert.NotAfter
	for _, tc := range []struct {
		name   string
		a      *ca.Authority
		at     time.Time
		shared bool
		want   bool
	}{
		{"sqlite, 20 days left", a, raEnd.Add(-20 * raTestDay), false, true},
		{"sqlite, 30 days left", a, raEnd.Add(-30 * raTestDay), false, true},
		{"sqlite, 31 days left", a, raEnd.Add(-31 * raTestDay), false, false},
		{"postgres, 20 days left", a, raEnd.Add(-20 * raTestDay), true, false},
		{"issuing CA ends within the warning window", short, short.RA.Cert.NotAfter.Add(-20 * raTestDay), false, false},
		{"RA mode ca", caRA, caRA.Issuer.Cert.NotAfter.Add(-20 * raTestDay), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := raRenewalDue(tc.a, tc.at, tc.shared); got != tc.want {
				t.Errorf("raRenewalDue = %v, want %v", got, tc.want)
			}
		})
	}
}

// After serve renews the RA, GetCACert serves the new one; a client that
// cached the old RA still enrolls (its envelope is opened with the old
// key, and the CertRep is signed by the RA it encrypted to, the only one
// it knows); a fresh client is answered by the new RA. Once the old RA's
// certificate has expired and the CA is reloaded, a request encrypted to
// it is refused with badMessageCheck.
func TestRenewedRAKeepsDecryptingUntilTheOldExpires(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	oldCerts := n.enroll(t, "before")
	old := p.Service.ActiveRA()

	p.Clock.Set(old.Cert.NotAfter.Add(-20 * raTestDay))
	if !raRenewalDue(p.Authority, p.Clock.Now(), false) {
		t.Fatal("the RA is not due for renewal 20 days before its end")
	}
	autoRenewRA(ctx, p.Store, p.Authority, p.Service, p.Dir, nil, testKeys.Generate, p.Clock, "system:node-a", p.Log)
	cur := p.Service.ActiveRA()
	if cur.Cert.Equal(old.Cert) || pki.SamePublicKey(cur.Cert.PublicKey, old.Cert.PublicKey) {
		t.Fatal("the RA was not renewed")
	}
	if raRenewalDue(p.Authority, p.Clock.Now(), false) {
		t.Error("still due after the renewal")
	}
	newCerts, err := n.client.GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !holds(newCerts, cur.Cert) || holds(newCerts, old.Cert) {
		t.Error("GetCACert does not serve the renewed RA alone")
	}

	rep, prep, body := n.send(t, oldCerts, "cached")
	if _, err := prep.Certificate(body); err != nil {
		t.Fatalf("a client that cached the old RA: %v", err)
	}
	if !rep.SignerCert.Equal(old.Cert) {
		t.Error("the reply to a request encrypted to the old RA is not signed by it")
	}
	rep, prep, body = n.send(t, newCerts, "fresh")
	if _, err := prep.Certificate(body); err != nil || !rep.SignerCert.Equal(cur.Cert) {
		t.Fatalf("a client of the renewed RA: %v (signed by the renewed RA: %v)", err, rep.SignerCert.Equal(cur.Cert))
	}

	if _, err := p.Store.Certificate(ctx, p.Issuer().ID, cur.Cert.SerialNumber.Text(16)); err != nil {
		t.Errorf("the renewed RA certificate is not in the inventory: %v", err)
	}
	events, err := p.Store.ListAudit(ctx, store.AuditFilter{SerialHex: cur.Cert.SerialNumber.Text(16)})
	if err != nil {
		t.Fatal(err)
	}
	var audited bool
	for _, ev := range events {
		audited = audited || ev.Type == pki.EventRenewed && ev.Actor == "system:node-a"
	}
	if !audited {
		t.Errorf("no renewal audit event: %+v", events)
	}

	// The old RA's certificate expires; the periodic reload drops it.
	p.Clock.Set(old.Cert.NotAfter.Add(time.Minute))
	if err := p.Authority.Reload(p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	rep, _, _ = n.send(t, oldCerts, "too late")
	if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadMessageCheck {
		t.Errorf("request encrypted to the expired old RA: status %q failInfo %q, want FAILURE badMessageCheck", rep.PKIStatus, rep.FailInfo)
	}
	n.enroll(t, "after")
}

// A retired RA whose certificate is revoked (keyCompromise) stops
// decrypting at the next check, and its key is destroyed there and then,
// with a log line: it is gone from DATA/ca/retired-ra and from what
// export-keys carries, not kept until the certificate's end.
func TestRevokedRetiredRAKeyIsDestroyed(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	oldCerts := n.enroll(t, "before")
	old := p.Service.ActiveRA()
	p.Clock.Set(old.Cert.NotAfter.Add(-20 * raTestDay))
	autoRenewRA(ctx, p.Store, p.Authority, p.Service, p.Dir, nil, testKeys.Generate, p.Clock, "system:node-a", p.Log)
	cur := p.Service.ActiveRA()
	if retired := p.Authority.RetiredRAs(); len(retired) != 1 || !retired[0].Cert.Equal(old.Cert) {
		t.Fatalf("retired RAs %v, want the old one", retired)
	}
	retiredDir := filepath.Join(p.Dir, "ca", ca.RetiredRADir, old.Cert.SerialNumber.Text(16))
	if _, err := os.Stat(filepath.Join(retiredDir, ca.RAKeyFile)); err != nil {
		t.Fatalf("the renewal kept no retired RA key: %v", err)
	}

	p.Revoke(t, old.Cert, reasonKeyCompromise)
	n.keeper.discards = p.Store
	n.keeper.check(ctx)

	if _, err := os.Stat(retiredDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there (%v)", retiredDir, err)
	}
	// The destruction is in the audit trail: the key's file, its public
	// key, the CA that issued its certificate, and this node.
	evs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(retiredDir, ca.RAKeyFile)
	spki := spkiSHA256Hex(t, old.Cert.PublicKey)
	if len(evs) != 1 || evs[0].Actor != "system:node-a" || evs[0].IssuerID != issuerIDOf(old.Chain[1]) || evs[0].Outcome != "success" ||
		!strings.Contains(evs[0].Detail, pki.KeyRoleSCEPRA) || !strings.Contains(evs[0].Detail, keyFile) || !strings.Contains(evs[0].Detail, spki) {
		t.Errorf("key.destroyed events %+v, want one by system:node-a for the SCEP RA key %s (SPKI SHA-256 %s)", evs, keyFile, spki)
	}
	// A later check, with the RA gone, records nothing more.
	n.keeper.check(ctx)
	if again, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed}); err != nil || len(again) != len(evs) {
		t.Errorf("%d key.destroyed events after another check (%v), want %d", len(again), err, len(evs))
	}
	if retired := p.Authority.RetiredRAs(); len(retired) != 0 {
		t.Errorf("retired RAs %v after the revocation, want none", retired)
	}
	if !strings.Contains(n.logs.String(), "retired SCEP RA certificate is revoked; its key was destroyed") ||
		!strings.Contains(n.logs.String(), old.Cert.SerialNumber.Text(16)) {
		t.Errorf("no log line about the destroyed key:\n%s", n.logs.String())
	}
	exp, err := ca.ExportKeys(p.Dir, ca.ExportKeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Clear()
	for _, f := range exp.Files {
		if strings.HasPrefix(f.Path, "ca/"+ca.RetiredRADir+"/") {
			t.Errorf("the export carries %s", f.Path)
		}
	}
	rep, _, _ := n.send(t, oldCerts, "cached")
	if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadMessageCheck {
		t.Errorf("request encrypted to the revoked retired RA: status %q failInfo %q, want FAILURE badMessageCheck", rep.PKIStatus, rep.FailInfo)
	}
	if !p.Service.ActiveRA().Cert.Equal(cur.Cert) {
		t.Error("the RA in service changed")
	}
	n.enroll(t, "after")
}

// An export made before a retired RA was revoked and its key destroyed
// does not bring the key back on import-keys: the retired RA is left out
// (a retired RA the store records revoked, or one expired, that the node
// does not hold). Imported whole, it would be back in the data directory
// and in the next export-keys until the server's next check.
func TestImportLeavesOutDestroyedRetiredRA(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	old := p.Service.ActiveRA()
	p.Clock.Set(old.Cert.NotAfter.Add(-20 * raTestDay))
	autoRenewRA(ctx, p.Store, p.Authority, p.Service, p.Dir, nil, testKeys.Generate, p.Clock, "system:node-a", p.Log)
	retiredRel := "ca/" + ca.RetiredRADir + "/" + old.Cert.SerialNumber.Text(16)
	retiredDir := filepath.Join(p.Dir, filepath.FromSlash(retiredRel))
	export := func() *ca.KeyExport {
		x, err := ca.ExportKeys(p.Dir, ca.ExportKeysOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Clear)
		return x
	}
	before, whole := export(), export()

	p.Revoke(t, old.Cert, reasonKeyCompromise)
	n.keeper.check(ctx)
	if _, err := os.Stat(retiredDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the revoked retired RA is still there: %v", err)
	}

	if left := dropGoneRetiredRAs(ctx, p.Store, p.Dir, before); !slices.Equal(left, []string{retiredRel}) {
		t.Errorf("left out %v, want [%s]", left, retiredRel)
	}
	if _, err := ca.ImportKeys(p.Dir, before); err != nil {
		t.Fatalf("import: %v", err)
	}
	if _, err := os.Stat(retiredDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the import put back the destroyed retired RA: %v", err)
	}
	// What the check prevents: the same export imported whole.
	if _, err := ca.ImportKeys(p.Dir, whole); err != nil {
		t.Fatalf("import: %v", err)
	}
	if _, err := os.Stat(filepath.Join(retiredDir, ca.RAKeyFile)); err != nil {
		t.Errorf("control: the whole export did not bring the key back (%v), so the test shows nothing", err)
	}
}

// The hint for other nodes on a shared store names the token key's
// reference file before the certificate, as docs/hsm.md and the server's
// own warning do (key first). Before, it listed ra.crt first.
func TestCARenewRAHintKeyFirst(t *testing.T) {
	key, crt := strings.Index(otherNodesRAHint, "ra.pkcs11"), strings.Index(otherNodesRAHint, "ra.crt")
	if key < 0 || crt < 0 || key > crt {
		t.Errorf("the hint does not name ra.pkcs11 before ra.crt: %s", otherNodesRAHint)
	}
	if !strings.Contains(otherNodesRAHint, "retired-ra/") {
		t.Errorf("the hint leaves out retired-ra/: %s", otherNodesRAHint)
	}
}

// The RA of a previous issuing CA (kept after a rollover, for envelopes
// still addressed to it) whose certificate is revoked is dropped the same
// way: its key destroyed at the next check and audited, its ra.crt
// replaced with ra-revoked.crt, so that no load takes the generation for
// one without an RA of its own.
//
// So is one whose issuing CA the root CRL lists, revoked or not: it
// decrypts nothing more, and the root lists a CA for good. Before, the
// keeper asked only about Authority.RAs, which leaves such an RA out, so
// its key stayed even once its certificate was revoked.
func TestRevokedPreviousRAKeyIsDestroyed(t *testing.T) {
	for _, tc := range []struct {
		rootRevoked, raRevoked bool
		logged                 string
	}{
		{false, true, "SCEP RA of the previous issuing CA certificate is revoked; its key was destroyed"},
		{true, true, "SCEP RA of the previous issuing CA certificate is revoked; its key was destroyed"},
		{true, false, "SCEP RA of the previous issuing CA is kept no more: the root CRL lists that CA; its key was destroyed"},
	} {
		t.Run(fmt.Sprintf("root_revoked=%t,ra_revoked=%t", tc.rootRevoked, tc.raRevoked), func(t *testing.T) {
			testRevokedPreviousRAKeyIsDestroyed(t, tc.rootRevoked, tc.raRevoked, tc.logged)
		})
	}
}

func testRevokedPreviousRAKeyIsDestroyed(t *testing.T, rootRevoked, raRevoked bool, logged string) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	old := p.Service.ActiveRA()
	if err := p.Service.RecordRACertificates(ctx); err != nil {
		t.Fatal(err)
	}
	oldIssuerID := issuerIDOf(old.Chain[1])
	switchAt := p.Clock.Now().Add(raTestDay)
	if _, _, err := ca.Rollover(p.Dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, p.Clock); err != nil {
		t.Fatal(err)
	}
	p.Clock.Set(switchAt.Add(time.Hour))
	if err := p.Authority.Reload(p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if prev := p.Authority.PreviousRAs(); len(prev) != 1 || !prev[0].Cert.Equal(old.Cert) {
		t.Fatalf("previous RAs %v, want the old RA", prev)
	}
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	n.keeper.discards = p.Store
	if rootRevoked {
		p.Authority.SetRevokedIssuers([]string{oldIssuerID})
	}
	prevDir := filepath.Join(p.Dir, "ca", ca.PreviousDir, oldIssuerID)

	if raRevoked {
		if _, _, err := p.Store.RevokeCertificate(ctx, oldIssuerID, old.Cert.SerialNumber.Text(16), reasonKeyCompromise, p.Clock.Now(),
			pki.AuditEvent{Type: pki.EventRevoked, Actor: "test", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	n.keeper.check(ctx)

	keyFile := filepath.Join(prevDir, ca.RAKeyFile)
	for _, f := range []string{keyFile, filepath.Join(prevDir, ca.RACertFile)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(prevDir, ca.RevokedRAFile)); err != nil {
		t.Errorf("no %s: %v", ca.RevokedRAFile, err)
	}
	evs, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].IssuerID != oldIssuerID || evs[0].Outcome != "success" || !strings.Contains(evs[0].Detail, keyFile) {
		t.Errorf("key.destroyed events %+v, want one for %s", evs, keyFile)
	}
	if prev := p.Authority.PreviousRAs(); len(prev) != 0 {
		t.Errorf("previous RAs %v after the revocation, want none", prev)
	}
	if len(p.Authority.Previous()) != 1 {
		t.Error("the previous issuing CA is gone")
	}
	if !strings.Contains(n.logs.String(), logged) {
		t.Errorf("no log line about the destroyed key:\n%s", n.logs.String())
	}
	n.keeper.check(ctx)
	if again, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed}); err != nil || len(again) != 1 {
		t.Errorf("%d key.destroyed events after another check (%v), want 1", len(again), err)
	}
	n.enroll(t, "after")
}
