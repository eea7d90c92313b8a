package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
)

const reasonKeyCompromise = 1

// raNode is one server's SCEP side as serve wires it: the RA keeper and
// the SCEP handler over the real CA and store.
type raNode struct {
	keeper    *raKeeper
	authority *ca.Authority
	svc       *enroll.Service
	client    *client.SCEP
	logs      *bytes.Buffer
}

func newRANode(t *testing.T, p *fixture.PKI, dataDir string, authority *ca.Authority, svc *enroll.Service, name string) *raNode {
	t.Helper()
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil))
	if err := svc.RecordRACertificates(context.Background()); err != nil {
		t.Fatal(err)
	}
	k := newRAKeeper(svc, authority, dataDir, p.Clock, log, name)
	k.check(context.Background())
	h, err := scepserver.New(scepService{Service: svc, ras: k, clock: p.Clock}, p.Clock, log, scepserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := server.PlainMux(server.Handlers{SCEP: h})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &raNode{keeper: k, authority: authority, svc: svc, client: &client.SCEP{URL: srv.URL + "/scep", Now: p.Clock.Now}, logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

var (
	raTestKeyOnce sync.Once
	raTestKey     *rsa.PrivateKey
)

// send enrolls cn encrypted to the RA among caCerts and returns the
// server's reply, parsed but not verified (a reply to an envelope the
// server cannot open may be signed by an RA the client does not know).
func (n *raNode) send(t *testing.T, caCerts []*x509.Certificate, cn string) (*scep.PKIMessage, *client.Prepared, []byte) {
	t.Helper()
	raTestKeyFor(t)
	ctx := context.Background()
	caps, err := n.client.GetCACaps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: cn}, ChallengePassword: fixture.Challenge}, raTestKey)
	if err != nil {
		t.Fatal(err)
	}
	prep, err := n.client.Prepare(client.EnrollRequest{CSR: der, Key: raTestKey, CACerts: caCerts, Caps: caps})
	if err != nil {
		t.Fatal(err)
	}
	body, err := n.client.SendPrepared(ctx, prep)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := scep.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	return rep, prep, body
}

// enroll enrolls cn through a fresh GetCACert, as a client does.
func (n *raNode) enroll(t *testing.T, cn string) []*x509.Certificate {
	t.Helper()
	certs, err := n.client.GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, prep, body := n.send(t, certs, cn)
	if _, err := prep.Certificate(body); err != nil {
		t.Fatalf("enroll %s: %v", cn, err)
	}
	return certs
}

func (n *raNode) ready(ctx context.Context) error {
	return health.RAKey(n.authority, n.keeper.clock, n.keeper).Run(ctx)
}

// copyCADir copies dataDir's DATA/ca into a new data directory, as a
// second node gets it (import-keys, or a copy with the keys in a token),
// and returns that directory.
func copyCADir(t *testing.T, dataDir string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "ca"), os.DirFS(filepath.Join(dataDir, "ca"))); err != nil {
		t.Fatal(err)
	}
	// CopyFS leaves files readable by others, which the CA refuses for keys.
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(path, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// secondNode is a second node on p's store: p's DATA/ca copied into a new
// data directory (copyCADir), its CA loaded from there, and an enrollment
// service of its own.
func secondNode(t *testing.T, p *fixture.PKI) (dir string, auth *ca.Authority, svc *enroll.Service) {
	t.Helper()
	dir = copyCADir(t, p.Dir)
	auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	svc, err = enroll.New(p.Store, auth, p.Clock, p.Log, enroll.Config{StaticChallenge: fixture.Challenge})
	if err != nil {
		t.Fatal(err)
	}
	return dir, auth, svc
}

func holds(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// Revoking the SCEP RA certificate takes its key out of service: /readyz
// fails at once, the next check issues a new RA key and certificate, which
// GetCACert serves, the inventory records and a restart loads; a request
// encrypted to the revoked RA is refused with badMessageCheck; the
// replacement is logged and audited.
func TestRevokedRAIsReplaced(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	oldCerts := n.enroll(t, "before")
	old := p.Service.ActiveRA()
	if !holds(oldCerts, old.Cert) {
		t.Fatal("GetCACert does not serve the RA")
	}
	if err := n.ready(ctx); err != nil {
		t.Fatalf("RA check before the revocation: %v", err)
	}

	p.Revoke(t, old.Cert, reasonKeyCompromise)
	if err := n.ready(ctx); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("RA check after the revocation, before the replacement: %v, want revoked", err)
	}
	n.keeper.discards = p.Store // as serve sets it: the audit trail of destroyed keys
	n.keeper.check(ctx)
	destroyed, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
	if err != nil {
		t.Fatal(err)
	}
	oldSPKI := pki.KeyDestruction{Public: old.Cert.PublicKey}.Event(p.Clock.Now(), "").Detail
	oldSPKI = oldSPKI[strings.LastIndex(oldSPKI, " ")+1:]
	if len(destroyed) != 1 || destroyed[0].Outcome != "success" || destroyed[0].Actor != "system:node-a" ||
		destroyed[0].IssuerID != p.Issuer().ID || !strings.Contains(destroyed[0].Detail, "SCEP RA key at "+filepath.Join(p.Dir, "ca", ca.RAKeyFile)) ||
		!strings.Contains(destroyed[0].Detail, oldSPKI) {
		t.Errorf("key.destroyed events after the replacement: %+v, want one for the revoked RA key (SPKI %s)", destroyed, oldSPKI)
	}

	cur := p.Service.ActiveRA()
	if cur.Cert.Equal(old.Cert) || pki.SamePublicKey(cur.Cert.PublicKey, old.Cert.PublicKey) {
		t.Fatal("the revoked RA is still active, or its key is")
	}
	if cur.IsCA || cur.Cert.CheckSignatureFrom(p.Issuer().Cert) != nil {
		t.Error("the new RA certificate is not a separate RA issued by the issuing CA")
	}
	if err := n.ready(ctx); err != nil {
		t.Errorf("RA check after the replacement: %v", err)
	}
	newCerts, err := n.client.GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !holds(newCerts, cur.Cert) || holds(newCerts, old.Cert) {
		t.Error("GetCACert does not serve the new RA alone")
	}

	// A client that still encrypts to the revoked RA.
	rep, _, _ := n.send(t, oldCerts, "stale")
	if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadMessageCheck {
		t.Errorf("request encrypted to the revoked RA: status %q failInfo %q, want FAILURE badMessageCheck", rep.PKIStatus, rep.FailInfo)
	}
	n.enroll(t, "after")

	rec, err := p.Store.Certificate(ctx, p.Issuer().ID, cur.Cert.SerialNumber.Text(16))
	if err != nil {
		t.Fatalf("the new RA certificate is not in the inventory: %v", err)
	}
	if rec.Profile != enroll.RAProfileName || rec.Status == pki.StatusRevoked {
		t.Errorf("inventory: profile %q status %q", rec.Profile, rec.Status)
	}
	events, err := p.Store.ListAudit(ctx, store.AuditFilter{SerialHex: cur.Cert.SerialNumber.Text(16)})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || !strings.Contains(events[0].Detail, "replacing the revoked RA certificate "+pki.SerialText(old.Cert.SerialNumber)) ||
		events[0].Actor != "system:node-a" {
		t.Errorf("audit events of the new RA certificate: %+v", events)
	}
	logs := n.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "RA certificate is revoked") {
		t.Errorf("no warning logged:\n%s", logs)
	}

	// A second check changes nothing.
	n.keeper.check(ctx)
	if again := p.Service.ActiveRA(); again != cur {
		t.Error("a second check replaced the RA again")
	}
	// A restart loads the new RA, and the revoked key is gone.
	restarted, _, err := ca.LoadOrCreate(p.Dir, ca.InitOptions{GenerateKey: testKeys.Generate}, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	_, ra := restarted.Active(p.Clock.Now())
	if !ra.Cert.Equal(cur.Cert) || pki.SamePublicKey(ra.Key.Public(), old.Cert.PublicKey) {
		t.Error("after a restart the CA loads another RA than the replacement, or the revoked key")
	}
}

// Nodes sharing one store share the inventory: a node started after the
// RA was revoked (or restarted) replaces it before it serves, and a node
// that was running replaces it at its next check. Each records its new
// RA certificate in the shared inventory.
func TestRevokedRAIsReplacedOnEveryNode(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	a := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	old := p.Service.ActiveRA()

	// Node B: the same CA (DATA/ca copied, as import-keys does), the
	// same store.
	dirB, authB, svcB := secondNode(t, p)
	p.Revoke(t, old.Cert, reasonKeyCompromise)
	if _, ra := authB.Active(p.Clock.Now()); !ra.Cert.Equal(old.Cert) {
		t.Fatal("node B does not start with the shared RA")
	}
	b := newRANode(t, p, dirB, authB, svcB, "node-b")
	raB := svcB.ActiveRA()
	if raB.Cert.Equal(old.Cert) {
		t.Fatal("node B serves the revoked RA after its start")
	}
	b.enroll(t, "on-b")

	a.keeper.discards, b.keeper.discards = p.Store, p.Store
	p.Clock.Advance(time.Minute)
	a.keeper.check(ctx)
	raA := p.Service.ActiveRA()
	if raA.Cert.Equal(old.Cert) {
		t.Fatal("node A still serves the revoked RA after its check")
	}
	a.enroll(t, "on-a")
	// A's newer RA is its own replacement, not a renewal B should copy.
	b.keeper.check(ctx)
	if err := b.ready(ctx); err != nil {
		t.Errorf("node B after node A replaced its own RA: %v", err)
	}
	for node, ra := range map[string]*pki.RA{"A": raA, "B": raB} {
		if _, err := p.Store.Certificate(ctx, p.Issuer().ID, ra.Cert.SerialNumber.Text(16)); err != nil {
			t.Errorf("node %s's new RA certificate is not in the shared inventory: %v", node, err)
		}
	}
}

// An RA whose replacement fails stops decrypting all the same, and the
// RA check keeps failing; the client hears badMessageCheck from the RA it
// encrypted to.
func TestRevokedRANotReplacedStopsDecrypting(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	certs := n.enroll(t, "before")
	old := p.Service.ActiveRA()
	// A CA that cannot make a new RA (its disk full, its token gone).
	n.keeper.replaceRA = func(*x509.Certificate, time.Time) (bool, string, error) {
		return false, "", errors.New("no room for a new RA key")
	}
	p.Revoke(t, old.Cert, reasonKeyCompromise)
	n.keeper.check(ctx)
	if !p.Service.ActiveRA().Cert.Equal(old.Cert) {
		t.Fatal("the test expects the replacement to fail")
	}
	if err := n.ready(ctx); err == nil || !strings.Contains(err.Error(), "could not be replaced") {
		t.Errorf("RA check: %v, want the failed replacement", err)
	}
	_, prep, body := n.send(t, certs, "after")
	_, err := prep.Certificate(body)
	var fail *client.FailureError
	if !errors.As(err, &fail) || fail.FailInfo != scep.BadMessageCheck {
		t.Errorf("request encrypted to the revoked RA: %v, want badMessageCheck", err)
	}
	if !strings.Contains(n.logs.String(), "level=ERROR") {
		t.Errorf("the failed replacement is not logged as an error:\n%s", n.logs.String())
	}
}

// A node refused issuance (its store's schema is newer than its binary:
// the enrollment service's IssuanceGate) does not replace a revoked RA:
// the new certificate would be signed by the CA and then refused by the
// store, served but recorded nowhere and beyond revocation. The revoked
// RA stays (its key kept, no longer decrypting), the RA check fails
// naming it, one WARN says why, and the first check once the gate opens
// replaces it.
func TestRevokedRAIsNotReplacedWhileIssuanceIsGated(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	n.keeper.discards = p.Store
	certs := n.enroll(t, "before")
	old := p.Service.ActiveRA()
	var gateErr atomic.Pointer[error]
	refused := errors.New("the store's schema is at version 27, newer than this node's 26")
	gateErr.Store(&refused)
	n.keeper.gate = func() error { return *gateErr.Load() }
	keyFile := filepath.Join(p.Dir, "ca", ca.RAKeyFile)
	raCerts := func() []pki.Certificate {
		t.Helper()
		recs, _, err := p.Store.ListCertificates(ctx, store.CertFilter{Profile: enroll.RAProfileName, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	before := raCerts()

	p.Revoke(t, old.Cert, reasonKeyCompromise)
	for range 2 {
		n.keeper.check(ctx)
		p.Clock.Advance(time.Minute)
	}
	if ra := p.Service.ActiveRA(); !ra.Cert.Equal(old.Cert) {
		t.Fatalf("a gated node replaced the revoked RA with %s", ra.Cert.SerialNumber.Text(16))
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Errorf("a gated node destroyed the revoked RA's key: %v", err)
	}
	if onDisk, err := readCert(filepath.Join(p.Dir, "ca", ca.RACertFile)); err != nil || !onDisk.Equal(old.Cert) {
		t.Errorf("ra.crt after the gated checks: %v, want the revoked RA's certificate", err)
	}
	if after := raCerts(); len(after) != len(before) {
		t.Errorf("the inventory holds %d RA certificates after the gated checks, %d before", len(after), len(before))
	}
	destroyed, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
	if err != nil {
		t.Fatal(err)
	}
	if len(destroyed) != 0 {
		t.Errorf("key.destroyed events while gated: %+v", destroyed)
	}
	err = n.ready(ctx)
	if !errors.Is(err, health.ErrRARevoked) || !strings.Contains(err.Error(), old.Cert.SerialNumber.Text(16)) ||
		!strings.Contains(err.Error(), "schema is at version 27") {
		t.Errorf("RA check while gated: %v, want the revoked RA and why it is not replaced", err)
	}
	_, prep, body := n.send(t, certs, "gated")
	var fail *client.FailureError
	if _, err := prep.Certificate(body); !errors.As(err, &fail) || fail.FailInfo != scep.BadMessageCheck {
		t.Errorf("request encrypted to the revoked RA while gated: %v, want badMessageCheck", err)
	}
	if got := strings.Count(n.logs.String(), "not replaced while this node issues nothing"); got != 1 ||
		!strings.Contains(n.logs.String(), "level=WARN") {
		t.Errorf("%d lines say why the RA is not replaced, want one WARN:\n%s", got, n.logs.String())
	}

	// The gate opens (the node runs a newer scepter): the next check
	// replaces the RA and records it.
	gateErr.Store(new(error))
	n.keeper.check(ctx)
	cur := p.Service.ActiveRA()
	if cur.Cert.Equal(old.Cert) || pki.SamePublicKey(cur.Cert.PublicKey, old.Cert.PublicKey) {
		t.Fatal("the revoked RA is not replaced once the gate opens")
	}
	if pki.SamePublicKey(cur.Key.Public(), old.Cert.PublicKey) {
		t.Error("the revoked RA's key is still loaded")
	}
	if _, err := p.Store.Certificate(ctx, p.Issuer().ID, cur.Cert.SerialNumber.Text(16)); err != nil {
		t.Errorf("the replacement is not in the inventory: %v", err)
	}
	if err := n.ready(ctx); err != nil {
		t.Errorf("RA check after the replacement: %v", err)
	}
	n.enroll(t, "after")
}

// unrecordingInventory is the enrollment service whose record of a
// replacement RA fails (the store refused the write).
type unrecordingInventory struct{ *enroll.Service }

func (unrecordingInventory) RecordRAReplacement(context.Context, *pki.RA, *pki.RA, string) error {
	return errors.New("the store refused the write")
}

// A revoked RA's replacement has its serial reserved in the store before
// the CA signs it (as serve sets the CA up): when its record then fails,
// the store still knows the serial (reserved, so never drawn again, and
// OCSP says unknown rather than good), the new RA serves all the same, and
// the next RecordRACertificates (every CA reload) records it.
func TestRevokedRAReplacementIsReservedBeforeItIsSigned(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	n.keeper.discards = p.Store
	n.keeper.inventory = unrecordingInventory{p.Service}
	p.Authority.SetRAReserve(raSerialReserve(p.Store, p.Clock))
	old := p.Service.ActiveRA()

	p.Revoke(t, old.Cert, reasonKeyCompromise)
	n.keeper.check(ctx)
	cur := p.Service.ActiveRA()
	if cur.Cert.Equal(old.Cert) {
		t.Fatal("the revoked RA was not replaced")
	}
	serial := cur.Cert.SerialNumber.Text(16)
	if _, err := p.Store.Certificate(ctx, p.Issuer().ID, serial); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replacement's record was to fail: %v", err)
	}
	if err := p.Store.ReserveSerial(ctx, p.Issuer().ID, serial, nil, p.Clock.Now()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("reserving the replacement's serial again: %v, want a conflict (reserved before signing)", err)
	}
	n.enroll(t, "served")

	if err := p.Service.RecordRACertificates(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, err := p.Store.Certificate(ctx, p.Issuer().ID, serial); err != nil || rec.Profile != enroll.RAProfileName {
		t.Errorf("the replacement after RecordRACertificates: %+v, %v; want it recorded", rec, err)
	}
}

// revokedInventory says every RA is revoked: the issuing CA acting as RA
// is not a certificate of the inventory, so only a stand-in can say it.
type revokedInventory struct{}

func (revokedInventory) RARevoked(context.Context, *pki.RA) (bool, error) { return true, nil }
func (revokedInventory) RecordRAReplacement(context.Context, *pki.RA, *pki.RA, string) error {
	return errors.New("nothing to record")
}

// With --scep-ra ca the RA is the issuing CA: a revoked one is not
// replaced (no CA key is touched), the RA check fails and an error says
// that the CA is revoked.
func TestRevokedCAAsRAIsNotReplaced(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := fixture.New(t, fixture.Options{})
	authority, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate, KeyType: "rsa2048", RAMode: ca.RAModeCA}, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadDir(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	k := newRAKeeper(revokedInventory{}, authority, dir, p.Clock, slog.New(slog.NewTextHandler(logs, nil)), "node-a")
	k.check(ctx)
	after, err := os.ReadDir(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != len(after) {
		t.Errorf("the CA directory changed: %d files, then %d", len(before), len(after))
	}
	if _, ra := authority.Active(p.Clock.Now()); !ra.IsCA {
		t.Error("the CA is no longer its own RA")
	}
	err = health.RAKey(authority, p.Clock, k).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "issuing CA") || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("RA check: %v, want the revoked CA", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "is revoked") {
		t.Errorf("no error logged:\n%s", logs.String())
	}
}

// A restart with the flags left at their defaults logs no "ignored"
// option for a CA made otherwise (RSA, RA mode ca); a flag that asks for
// something else still does.
func TestDefaultFlagsAreNotReportedIgnored(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	base := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
	first := serveInProcess(t, nil, append(slices.Clone(base), "--ca-key-type", "rsa2048", "--scep-ra", "ca")...)
	if first.ended {
		t.Fatalf("serve: %v\n%s", first.err, first.errb.String())
	}
	first.stop()
	again := serveInProcess(t, nil, base...)
	if again.ended {
		t.Fatalf("serve: %v\n%s", again.err, again.errb.String())
	}
	again.stop()
	if log := again.errb.String(); strings.Contains(log, "ignored") {
		t.Fatalf("defaults reported as ignored:\n%s", log)
	}
	asked := serveInProcess(t, nil, append(slices.Clone(base), "--ca-key-type", "p384")...)
	if asked.ended {
		t.Fatalf("serve: %v\n%s", asked.err, asked.errb.String())
	}
	asked.stop()
	if log := asked.errb.String(); !strings.Contains(log, `key type \"p384\" ignored`) && !strings.Contains(log, `key type "p384" ignored`) {
		t.Fatalf("an asked-for key type not reported:\n%s", log)
	}
}

// 'scepter ca rollover --discard' revokes the discarded next CA's RA
// (cessationOfOperation) while servers may still hold that CA: its RA goes
// with it, so the keeper neither replaces it nor logs an error, and the RA
// check passes. Whether the store says the CA was discarded (a node that
// holds a copy, before its next Sync: the copy is left as it is) or only
// the reload finds it gone (the node the discard ran on). The revoked RA
// of a next CA that stays is replaced.
func TestDiscardedNextCAsRevokedRAIsNotReplaced(t *testing.T) {
	for _, tc := range []string{"discarded elsewhere", "discarded here", "kept"} {
		t.Run(tc, func(t *testing.T) {
			ctx := context.Background()
			p := fixture.New(t, fixture.Options{})
			syncer := &cashare.Syncer{Store: p.Store, Authority: p.Authority, Clock: p.Clock, Node: "node-a", Log: p.Log}
			if err := syncer.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			next, nextRA, err := cashare.Rollover(ctx, p.Store, p.Dir, ca.RolloverOptions{SwitchAt: p.Clock.Now().Add(time.Hour), GenerateKey: testKeys.Generate}, p.Clock, "node-a cli:test")
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Authority.Reload(p.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			if _, ra, ok := p.Authority.Next(p.Clock.Now()); !ok || ra.IsCA || !ra.Cert.Equal(nextRA.Cert) {
				t.Fatal("the server does not hold the next CA with a separate RA")
			}
			n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
			n.keeper.discards = p.Store
			nextRAFile := filepath.Join(p.Dir, "ca", ca.NextDir, ca.RACertFile)
			switch tc {
			case "discarded elsewhere":
				// The store records the discard; this node's copy stays
				// until its operator discards it.
				ev := pki.AuditEvent{Time: p.Clock.Now(), Type: pki.EventCARollover, Actor: "cli:test", IssuerID: next.ID, Outcome: "success"}
				if err := p.Store.DiscardCAGeneration(ctx, next.ID, p.Clock.Now(), ev); err != nil {
					t.Fatal(err)
				}
			case "discarded here":
				// Only the files go: the keeper learns it from the reload.
				if err := ca.DiscardNext(p.Dir, next.ID, p.Clock.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if revoked, err := cashare.RevokeIssuedBy(ctx, p.Store, next.ID, p.Clock.Now(), "cli:test"); err != nil || revoked != 1 {
				t.Fatalf("revoking the next CA's RA: %d, %v", revoked, err)
			}

			n.keeper.check(ctx)
			if logs := n.logs.String(); strings.Contains(logs, "level=ERROR") {
				t.Errorf("the keeper logged an error:\n%s", logs)
			}
			if err := n.ready(ctx); err != nil {
				t.Errorf("RA check: %v", err)
			}
			_, ra, loaded := p.Authority.Next(p.Clock.Now())
			switch tc {
			case "discarded elsewhere":
				if onDisk, err := readCert(nextRAFile); err != nil || !onDisk.Equal(nextRA.Cert) {
					t.Errorf("the discarded CA's RA in DATA/ca/next was replaced or removed: %v", err)
				}
			case "discarded here":
				if loaded {
					t.Error("the discarded next CA is still loaded")
				}
			case "kept":
				if !loaded || ra.Cert.Equal(nextRA.Cert) || ra.Cert.CheckSignatureFrom(next.Cert) != nil {
					t.Error("the revoked RA of the next CA was not replaced by one it issued")
				}
			}
		})
	}
}

// retryAfterRecorder keeps the status and Retry-After of the last reply.
type retryAfterRecorder struct {
	status     int
	retryAfter string
}

func (r *retryAfterRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		r.status, r.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	}
	return resp, err
}

// After `ca renew-ra` on node A, node B (its DATA/ca not copied yet)
// answers a request encrypted to the new RA with 503 and Retry-After, not
// a final FAILURE, audits the refusal, warns once and is not ready, naming
// what to copy; once it has the new RA it is ready and enrolls.
func TestRenewedRALackedOnAnotherNode(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	a := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	a.keeper.discards = p.Store
	dirB, authB, svcB := secondNode(t, p)
	b := newRANode(t, p, dirB, authB, svcB, "node-b")
	b.keeper.discards = p.Store
	rec := &retryAfterRecorder{}
	b.client.HTTP = &http.Client{Transport: rec}

	p.Clock.Advance(time.Hour)
	old, renewed, err := renewRA(ctx, p.Store, p.Dir, ca.RenewRAOptions{GenerateKey: testKeys.Generate}, p.Clock, "host-a tester", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Authority.Reload(p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	a.keeper.check(ctx)
	if err := a.ready(ctx); err != nil {
		t.Errorf("node A, which renewed the RA: %v", err)
	}
	certsA := a.enroll(t, "on-a")
	if !holds(certsA, renewed.Cert) {
		t.Fatal("node A does not serve the renewed RA")
	}

	b.keeper.check(ctx)
	b.keeper.check(ctx)
	serial := pki.SerialText(renewed.Cert.SerialNumber) // as the reason shows it
	if err := b.ready(ctx); err == nil || !strings.Contains(err.Error(), serial) || !strings.Contains(err.Error(), "export-keys") {
		t.Errorf("node B lacking the renewed RA: ready says %v, want not ready naming %s and what to copy", err, serial)
	}
	if n := strings.Count(b.logs.String(), "lacks its key"); n != 1 || !strings.Contains(b.logs.String(), "level=WARN") {
		t.Errorf("node B warned %d times, want once:\n%s", n, b.logs.String())
	}
	// A client that fetched GetCACert from node A, sent to node B.
	key, err := testKeys.Generate(keys.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "cross-ra"}, ChallengePassword: fixture.Challenge}, key)
	if err != nil {
		t.Fatal(err)
	}
	caps, err := b.client.GetCACaps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crossPrep, err := b.client.Prepare(client.EnrollRequest{CSR: der, Key: key, CACerts: certsA, Caps: caps})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.client.SendPrepared(ctx, crossPrep)
	if err == nil || rec.status != http.StatusServiceUnavailable || rec.retryAfter == "" || !strings.Contains(err.Error(), "lacks the key of the SCEP RA certificate "+serial) {
		t.Errorf("request encrypted to the RA node B lacks: %v (HTTP %d, Retry-After %q), want 503 with Retry-After and the reason", err, rec.status, rec.retryAfter)
	}
	refused, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) == 0 || !strings.Contains(refused[0].Reason, "lacks the key") {
		t.Errorf("the 503 is not in the audit trail: %+v", refused)
	}

	// The operator copies the renewed RA to node B (export-keys and
	// import-keys do as much); B's next reload picks it up.
	for _, name := range []string{ca.RACertFile, ca.RAKeyFile} {
		data, err := os.ReadFile(filepath.Join(p.Dir, "ca", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirB, "ca", name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := authB.Reload(p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := b.ready(ctx); err != nil {
		t.Errorf("node B with the renewed RA, before its next check: %v", err)
	}
	b.keeper.check(ctx)
	if err := b.ready(ctx); err != nil {
		t.Errorf("node B with the renewed RA: %v", err)
	}
	b.client.HTTP = nil
	_, prep, body := b.send(t, certsA, "cross-ra-after")
	if _, err := prep.Certificate(body); err != nil {
		t.Errorf("node B with the renewed RA: %v", err)
	}
	if !b.svc.ActiveRA().Cert.Equal(renewed.Cert) || old.Cert.Equal(renewed.Cert) {
		t.Error("node B does not serve the renewed RA after its reload")
	}
}

// countingRAStore counts the reads of RA certificates the keeper makes to
// find the RAs it lacks; while gate is set, each read waits for it.
type countingRAStore struct {
	raStore
	reads   atomic.Int32
	reading chan struct{} // each read sends here first, when set
	gate    chan struct{}
}

func (s *countingRAStore) ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error) {
	s.reads.Add(1)
	if s.reading != nil {
		s.reading <- struct{}{}
	}
	if s.gate != nil {
		<-s.gate
	}
	return s.raStore.ListCertificates(ctx, f)
}

// After `ca renew-ra` on node A, node B answers a request encrypted to the
// new RA 503 at once, before its next check: it reads the store again
// instead of answering a FAILURE the device takes as final. Those reads
// are rate-limited per node: requests to an RA nobody knows, still
// FAILURE badMessageCheck, make one read per lackedRecheckEvery, and
// requests meanwhile share the read under way.
func TestRenewedRALackedIsRecheckedAtOnce(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	a := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	a.keeper.discards = p.Store
	dirB, authB, svcB := secondNode(t, p)
	b := newRANode(t, p, dirB, authB, svcB, "node-b")
	counting := &countingRAStore{raStore: p.Store}
	b.keeper.discards = counting
	b.keeper.check(ctx) // B's start: it lacks nothing yet
	if got := counting.reads.Load(); got != 1 {
		t.Fatalf("node B's check read the RA certificates %d times, want 1", got)
	}
	rec := &retryAfterRecorder{}
	b.client.HTTP = &http.Client{Transport: rec}

	p.Clock.Advance(time.Hour)
	_, renewed, err := renewRA(ctx, p.Store, p.Dir, ca.RenewRAOptions{GenerateKey: testKeys.Generate}, p.Clock, "host-a tester", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Authority.Reload(p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	certsA, err := a.client.GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !holds(certsA, renewed.Cert) {
		t.Fatal("node A does not serve the renewed RA")
	}
	serial := pki.SerialText(renewed.Cert.SerialNumber) // as the reason shows it

	// sendTo sends a request encrypted to the RA among certs to node B
	// and returns the reply, or the error the client met (a 503).
	sendTo := func(certs []*x509.Certificate, cn string) (*scep.PKIMessage, error) {
		t.Helper()
		der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: cn}, ChallengePassword: fixture.Challenge}, raTestKeyFor(t))
		if err != nil {
			t.Fatal(err)
		}
		caps, err := b.client.GetCACaps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		prep, err := b.client.Prepare(client.EnrollRequest{CSR: der, Key: raTestKeyFor(t), CACerts: certs, Caps: caps})
		if err != nil {
			t.Fatal(err)
		}
		body, err := b.client.SendPrepared(ctx, prep)
		if err != nil {
			return nil, err
		}
		rep, err := scep.Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		return rep, nil
	}
	reads := counting.reads.Load()
	for i := range 3 {
		_, err := sendTo(certsA, "cross-ra")
		if err == nil || rec.status != http.StatusServiceUnavailable || rec.retryAfter == "" || !strings.Contains(err.Error(), "lacks the key of the SCEP RA certificate "+serial) {
			t.Fatalf("request %d encrypted to the RA just renewed on node A, sent to node B: %v (HTTP %d, Retry-After %q), want 503 with Retry-After and the reason",
				i, err, rec.status, rec.retryAfter)
		}
	}
	if got := counting.reads.Load() - reads; got != 1 {
		t.Errorf("three requests to the RA node B lacks read the store %d times, want 1 (then the list it found)", got)
	}

	// An RA nobody knows: still FAILURE badMessageCheck, one read per window.
	other := fixture.New(t, fixture.Options{})
	unknown := other.Service.ActiveRA().Chain
	p.Clock.Advance(lackedRecheckEvery)
	reads = counting.reads.Load()
	for i := range 5 {
		rep, err := sendTo(unknown, "unknown-ra")
		if err != nil || rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadMessageCheck {
			t.Fatalf("request %d encrypted to an unknown RA: %v %+v, want FAILURE badMessageCheck", i, err, rep)
		}
	}
	if got := counting.reads.Load() - reads; got != 1 {
		t.Errorf("five requests to an unknown RA within %s read the store %d times, want 1", lackedRecheckEvery, got)
	}
	p.Clock.Advance(lackedRecheckEvery)
	if _, err := sendTo(unknown, "unknown-ra-later"); err != nil {
		t.Fatal(err)
	}
	if got := counting.reads.Load() - reads; got != 2 {
		t.Errorf("a request to an unknown RA after %s: %d reads in all, want 2", lackedRecheckEvery, got)
	}

	// Requests during a read wait for it and get what it finds: a keeper
	// of node B's that has not read the store since the renewal.
	gated := &countingRAStore{raStore: p.Store, reading: make(chan struct{}, 16), gate: make(chan struct{})}
	k := newRAKeeper(svcB, authB, dirB, p.Clock, b.keeper.log, "node-b")
	k.discards = gated
	results := make(chan []*x509.Certificate, 8)
	recheck := func() { results <- k.recheckLacked(ctx) }
	go recheck()
	<-gated.reading
	for range cap(results) - 1 {
		go recheck()
	}
	time.Sleep(50 * time.Millisecond) // let them reach the read under way
	close(gated.gate)
	for range cap(results) {
		if got := <-results; len(got) != 1 || !got[0].Equal(renewed.Cert) {
			t.Errorf("a recheck during the read returned %d RAs, want the renewed one", len(got))
		}
	}
	if got := gated.reads.Load(); got != 1 {
		t.Errorf("%d concurrent rechecks read the store %d times, want 1", cap(results), got)
	}
}

// raTestKeyFor is the RSA key the tests' requests are made with.
func raTestKeyFor(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	raTestKeyOnce.Do(func() {
		var err error
		if raTestKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return raTestKey
}

// The server's periodic CA reload runs while the RA keeper replaces a
// revoked RA, round after round: no reload finds the RA's certificate
// without its key (and logs the wrong advice to remove ra.crt), and every
// reload leaves an RA whose key is its certificate's.
func TestRevokedRAReplacedWhileTheCAReloads(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	n := newRANode(t, p, p.Dir, p.Authority, p.Service, "node-a")
	n.keeper.discards = p.Store // as serve sets it: the destruction is audited

	reloadLogs := &bytes.Buffer{}
	reloadLog := slog.New(slog.NewTextHandler(&lockedWriter{w: reloadLogs}, nil))
	stop := make(chan struct{})
	var reloads atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			reloadCA(p.Authority, p.Clock, reloadLog, func() {})
			reloads.Add(1)
			if _, ra := p.Authority.Active(p.Clock.Now()); ra == nil || !pki.SamePublicKey(ra.Key.Public(), ra.Cert.PublicKey) {
				t.Error("a reload left an RA whose key is not its certificate's")
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	})

	const rounds = 4
	for round := range rounds {
		old := p.Service.ActiveRA()
		p.Revoke(t, old.Cert, reasonKeyCompromise)
		n.keeper.check(ctx)
		cur := p.Service.ActiveRA()
		if cur.Cert.Equal(old.Cert) || pki.SamePublicKey(cur.Cert.PublicKey, old.Cert.PublicKey) {
			t.Fatalf("round %d: the revoked RA is still active:\n%s", round, n.logs.String())
		}
		if !pki.SamePublicKey(cur.Key.Public(), cur.Cert.PublicKey) {
			t.Fatalf("round %d: the new RA's key is not its certificate's", round)
		}
	}
	close(stop)
	wg.Wait()
	if logs := reloadLogs.String(); logs != "" {
		t.Errorf("the reloads during %d replacements logged:\n%s", rounds, logs)
	}
	destroyed, err := p.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
	if err != nil {
		t.Fatal(err)
	}
	if len(destroyed) != rounds {
		t.Errorf("%d key.destroyed events, want one per replacement (%d)", len(destroyed), rounds)
	}
	t.Logf("%d reloads during the replacements", reloads.Load())
}

// readCert reads the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	certs, err := keys.LoadCertFile(path)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New(path + " holds no certificate")
	}
	return certs[0], nil
}
