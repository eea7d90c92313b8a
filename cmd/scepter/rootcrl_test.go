package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// otherIssuingCA is an issuing CA certificate signed by dir's root,
// standing for an earlier or a later generation.
func otherIssuingCA(t *testing.T, dir, cn string, serial int64) *x509.Certificate {
	t.Helper()
	root, err := ca.RootIssuer(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: root.Cert.NotBefore, NotAfter: root.Cert.NotAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, &key.PublicKey, root.Signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// scepter ca root crl signs the root's CRLs by hand: each follows the last,
// revokes only issuing CAs no longer in use, and is audited.
func TestCARootCRL(t *testing.T) {
	dir, a := caDataDir(t, ca.InitOptions{})
	ctx := context.Background()
	now := pki.SystemClock{}.Now()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The store's generations: the first CA (now a previous one), a
	// current one since an hour ago, and one scheduled for tomorrow.
	previous := a.Issuer.Cert
	current := otherIssuingCA(t, dir, "current issuing CA", 1001)
	scheduled := otherIssuingCA(t, dir, "next issuing CA", 1002)
	for _, g := range []struct {
		c  *x509.Certificate
		at time.Time
	}{{previous, time.Time{}}, {current, now.Add(-time.Hour)}, {scheduled, now.Add(24 * time.Hour)}} {
		gen := store.CAGeneration{IssuerID: issuerIDOf(g.c), RootFingerprint: a.RootFingerprint(), IssuerDER: g.c.Raw,
			SwitchAt: g.at, PublishedAt: now, PublishedBy: "test"}
		if _, err := st.PublishCAGeneration(ctx, gen, pki.AuditEvent{Time: now, Type: pki.EventCAPublished, Actor: "test", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}

	// The first: no entries.
	out := filepath.Join(t.TempDir(), "root.crl")
	stdout, _, err := runCA(t, nil, dir, "root", "crl", "--out", out)
	if err != nil || !strings.Contains(stdout, "Root CRL 1 signed") || !strings.Contains(stdout, "entries:     0") {
		t.Fatalf("first root CRL: %v\n%s", err, stdout)
	}
	der, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil || list.CheckSignatureFrom(a.Root) != nil || list.Number.Int64() != 1 {
		t.Fatalf("--out: %v", err)
	}

	// Refused, with nothing signed: the current CA, the scheduled one, an
	// unknown ID, no reason, certificateHold, a validity over a year or
	// under an hour (the CRL would reach relying parties expired).
	for _, args := range [][]string{
		{"--revoke", issuerIDOf(current), "--reason", "cACompromise"},
		{"--revoke", issuerIDOf(scheduled), "--reason", "cACompromise"},
		{"--revoke", strings.Repeat("ab", 32), "--reason", "cACompromise"},
		{"--revoke", issuerIDOf(previous)},
		{"--revoke", issuerIDOf(previous), "--reason", "certificateHold"},
		{"--reason", "superseded"},
		{"--validity", "9000h"},
		{"--validity", "0s"},
		{"--validity", "-1h"},
		{"--validity", "1s"},
		{"--validity", "59m59s"},
	} {
		_, _, err := runCA(t, nil, dir, append([]string{"root", "crl"}, args...)...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("root crl %q: %v, want a usage error", args, err)
		}
	}
	// An unknown reason is answered with the root CRL's own list (r79:
	// admin's offered certificateHold), privilegeWithdrawn in it.
	_, _, err = runCA(t, nil, dir, "root", "crl", "--revoke", issuerIDOf(previous), "--reason", "bogus")
	if exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "--reason bogus: want one of cACompromise") ||
		!strings.Contains(fmt.Sprint(err), "privilegeWithdrawn") || strings.Contains(fmt.Sprint(err), "certificateHold") {
		t.Errorf("an unknown reason: %v", err)
	}
	_, _, err = runCA(t, nil, dir, "root", "crl", "--revoke", issuerIDOf(current), "--reason", "cACompromise")
	if err == nil || !strings.Contains(err.Error(), "is the current issuing CA; roll it over first") {
		t.Errorf("revoking the current CA: %v", err)
	}
	_, _, err = runCA(t, nil, dir, "root", "crl", "--revoke", issuerIDOf(scheduled), "--reason", "cACompromise")
	if err == nil || !strings.Contains(err.Error(), "discard it first") {
		t.Errorf("revoking the scheduled CA: %v", err)
	}

	// The previous CA revoked: listed, with its reason.
	stdout, _, err = runCA(t, nil, dir, "root", "crl", "--revoke", strings.ToUpper(issuerIDOf(previous)), "--reason", "superseded", "--validity", "720h")
	if err != nil || !strings.Contains(stdout, "Root CRL 2 signed") || !strings.Contains(stdout, "revoked:     issuing CA "+issuerIDOf(previous)) {
		t.Fatalf("revoking the previous CA: %v\n%s", err, stdout)
	}
	rootID := issuerIDOf(a.Root)
	stored, err := st.LatestCRL(ctx, rootID)
	if err != nil {
		t.Fatal(err)
	}
	list, err = x509.ParseRevocationList(stored.DER)
	if err != nil || list.CheckSignatureFrom(a.Root) != nil || list.Number.Int64() != 2 || len(list.RevokedCertificateEntries) != 1 ||
		list.RevokedCertificateEntries[0].SerialNumber.Cmp(previous.SerialNumber) != 0 || list.RevokedCertificateEntries[0].ReasonCode != 4 {
		t.Fatalf("stored root CRL: %v %+v", err, list)
	}
	if d := list.NextUpdate.Sub(list.ThisUpdate); d < 719*time.Hour || d > 721*time.Hour {
		t.Errorf("--validity 720h gave %s", d)
	}
	// The next one keeps it.
	if stdout, _, err = runCA(t, nil, dir, "root", "crl"); err != nil || !strings.Contains(stdout, "Root CRL 3 signed") || !strings.Contains(stdout, "entries:     1") {
		t.Errorf("third root CRL: %v\n%s", err, stdout)
	}

	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventCARootCRLSigned})
	if err != nil || len(evs) != 3 || evs[1].IssuerID != rootID || evs[1].Reason != "superseded" || !strings.Contains(evs[1].Detail, "issuing CA "+issuerIDOf(previous)) {
		t.Errorf("audit: %v %+v", err, evs)
	}

	// serve warns from 90 days before the newest one ends.
	if w := rootCRLWarning(ctx, st, a, now); w != "" {
		t.Errorf("a fresh root CRL warned: %s", w)
	}
	if w := rootCRLWarning(ctx, st, a, now.Add(300*24*time.Hour)); !strings.Contains(w, "the root CRL 3 ends on") || !strings.Contains(w, "scepter ca root crl") {
		t.Errorf("65 days before its end: %q", w)
	}
	if w := rootCRLWarning(ctx, st, a, now.Add(400*24*time.Hour)); !strings.Contains(w, "the root CRL 3 ended on") {
		t.Errorf("after its end: %q", w)
	}
	other, _ := caDataDir(t, ca.InitOptions{})
	otherStore, err := sqlite.Open(ctx, filepath.Join(other, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer otherStore.Close()
	if w := rootCRLWarning(ctx, otherStore, a, now.Add(400*24*time.Hour)); w != "" {
		t.Errorf("no root CRL signed, yet: %q", w)
	}

	// Revoked again: with the same reason it says so and the entry stays;
	// with another (a retired CA found compromised) the new CRL lists that
	// reason, keeping the revocation date, and the output says it changed.
	revokedAt := list.RevokedCertificateEntries[0].RevocationTime.UTC().Format(time.RFC3339)
	for _, step := range []struct {
		reason, want string
		code         int
	}{
		{"superseded", "listed already: superseded, revoked since " + revokedAt, 4},
		{"cACompromise", "reason changed from superseded to cACompromise, revoked since " + revokedAt, 2},
		{"cacompromise", "listed already: cACompromise, revoked since " + revokedAt, 2},
	} {
		stdout, _, err := runCA(t, nil, dir, "root", "crl", "--revoke", issuerIDOf(previous), "--reason", step.reason)
		if err != nil || !strings.Contains(stdout, "revoked:     issuing CA "+issuerIDOf(previous)+" (CN="+previous.Subject.CommonName) || !strings.Contains(stdout, step.want) {
			t.Errorf("--revoke again, --reason %s: %v\n%s", step.reason, err, stdout)
		}
		stored, err := st.LatestCRL(ctx, rootID)
		if err != nil {
			t.Fatal(err)
		}
		list, err := x509.ParseRevocationList(stored.DER)
		if err != nil || len(list.RevokedCertificateEntries) != 1 || list.RevokedCertificateEntries[0].ReasonCode != step.code ||
			list.RevokedCertificateEntries[0].RevocationTime.UTC().Format(time.RFC3339) != revokedAt {
			t.Errorf("--revoke again, --reason %s: stored %v %+v", step.reason, err, list.RevokedCertificateEntries)
		}
	}
	// Listed for cACompromise, it is not changed to a milder reason (one
	// typo would have relying parties trust what its key signed): a usage
	// error naming the current reason, and nothing signed.
	before, err := st.LatestCRL(ctx, rootID)
	if err != nil {
		t.Fatal(err)
	}
	for _, reason := range []string{"superseded", "unspecified", "cessationOfOperation"} {
		_, _, err := runCA(t, nil, dir, "root", "crl", "--revoke", issuerIDOf(previous), "--reason", reason)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "listed with reason cACompromise") {
			t.Errorf("--revoke of a cACompromise listing with --reason %s: %v, want a usage error naming cACompromise", reason, err)
		}
	}
	if after, err := st.LatestCRL(ctx, rootID); err != nil || after.Number != before.Number {
		t.Errorf("a refused downgrade stored root CRL %d (%v), want %d still the newest", after.Number, err, before.Number)
	}
	evs, err = st.ListAudit(ctx, store.AuditFilter{Type: pki.EventCARootCRLSigned})
	if err != nil || !slices.ContainsFunc(evs, func(ev pki.AuditEvent) bool {
		return ev.Reason == "cACompromise" && strings.Contains(ev.Detail, "reason changed from superseded to cACompromise")
	}) {
		t.Errorf("audit of the reason's change: %v %+v", err, evs)
	}

	// Without the root key it names the flag.
	if err := os.Rename(filepath.Join(dir, "ca", ca.RootKeyFile), filepath.Join(t.TempDir(), "root.key")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCA(t, nil, dir, "root", "crl"); err == nil || !strings.Contains(err.Error(), "--root-key FILE") {
		t.Errorf("without the root key: %v", err)
	}
}

// writeCerts writes certificates to a PEM file, as an operator keeps one.
func writeCerts(t *testing.T, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A next CA discarded after GetNextCACert may have handed it out is gone
// from the store, so --revoke cannot name it: --revoke-cert lists it from
// its certificate, with the same checks as --revoke.
func TestCARootCRLRevokeCert(t *testing.T) {
	dir, a := caDataDir(t, ca.InitOptions{})
	ctx := context.Background()
	now := pki.SystemClock{}.Now()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	current := writeCerts(t, a.Issuer.Cert)

	// While the store records no issuing CA it cannot tell what is in use.
	if _, _, err := runCA(t, nil, dir, "root", "crl", "--revoke-cert", current, "--reason", "superseded"); err == nil ||
		exitCode(err) != 2 || !strings.Contains(err.Error(), "the store records no issuing CA") {
		t.Errorf("with no CA recorded: %v", err)
	}
	gen := store.CAGeneration{IssuerID: a.Issuer.ID, RootFingerprint: a.RootFingerprint(), IssuerDER: a.Issuer.Cert.Raw, PublishedAt: now, PublishedBy: "test"}
	if _, err := st.PublishCAGeneration(ctx, gen, pki.AuditEvent{Time: now, Type: pki.EventCAPublished, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}

	// A next CA, kept by the operator (or fetched with GetNextCACert).
	if _, _, err := runCA(t, nil, dir, "rollover", "--switch-in", "48h"); err != nil {
		t.Fatal(err)
	}
	nextCerts, err := keys.LoadCertFile(filepath.Join(dir, "ca", ca.NextDir, ca.IssuingCertFile))
	if err != nil {
		t.Fatal(err)
	}
	next := nextCerts[0]
	kept := writeCerts(t, next)
	otherDir, _ := caDataDir(t, ca.InitOptions{})
	otherRoot, err := ca.RootIssuer(otherDir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign := otherIssuingCA(t, otherDir, "issuing CA of another root", 7)
	for _, tt := range []struct {
		name, file, want string
	}{
		{"the current CA", current, "is the current issuing CA"},
		{"the scheduled CA", kept, "is scheduled to become current"},
		{"the root", writeCerts(t, a.Root), "is the root CA itself"},
		{"another root's CA", writeCerts(t, foreign), "is not signed by this root"},
		{"another root", writeCerts(t, otherRoot.Cert), "is not signed by this root"},
		{"two issuing CAs", writeCerts(t, next, a.Issuer.Cert, a.Root), "holds 2 CA certificates signed by this root"},
		{"the root and a CA of another", writeCerts(t, a.Root, foreign), "holds 0 CA certificates signed by this root"},
	} {
		if _, _, err := runCA(t, nil, dir, "root", "crl", "--revoke-cert", tt.file, "--reason", "cACompromise"); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--revoke-cert %s: %v, want a usage error saying %q", tt.name, err, tt.want)
		}
	}
	if _, _, err := runCA(t, nil, dir, "root", "crl", "--revoke-cert", kept); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "need --reason") {
		t.Errorf("--revoke-cert without --reason: %v", err)
	}

	// Discarded: --revoke no longer finds it, --revoke-cert lists it. The
	// discard prints its certificate, for an operator who kept no copy.
	discardOut, _, err := runCA(t, nil, dir, "rollover", "--discard")
	if err != nil {
		t.Fatal(err)
	}
	_, printed, _ := strings.Cut(discardOut, "):\n")
	if block, _ := pem.Decode([]byte(printed)); block == nil || !bytes.Equal(block.Bytes, next.Raw) {
		t.Errorf("the discard does not print the discarded CA's certificate:\n%s", discardOut)
	}
	if _, _, err := runCA(t, nil, dir, "root", "crl", "--revoke", issuerIDOf(next), "--reason", "cessationOfOperation"); err == nil || !strings.Contains(err.Error(), "--revoke-cert FILE") {
		t.Errorf("--revoke of the discarded CA: %v, want it to point to --revoke-cert", err)
	}
	if _, err := st.LatestCRL(ctx, issuerIDOf(a.Root)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused command stored a root CRL: %v", err)
	}
	stdout, _, err := runCA(t, nil, dir, "root", "crl", "--revoke-cert", kept, "--revoke", issuerIDOf(next), "--reason", "cessationOfOperation")
	if err == nil {
		t.Errorf("--revoke of the discarded CA beside --revoke-cert was taken:\n%s", stdout)
	}
	// Given twice, once in a chain with its RA and the root: listed once.
	chain := writeCerts(t, a.RA.Cert, next, a.Root)
	stdout, _, err = runCA(t, nil, dir, "root", "crl", "--revoke-cert", kept, "--revoke-cert", chain, "--reason", "cessationOfOperation")
	if err != nil || !strings.Contains(stdout, "Root CRL 1 signed") || !strings.Contains(stdout, "entries:     1") ||
		!strings.Contains(stdout, "revoked:     issuing CA "+issuerIDOf(next)) || !strings.Contains(stdout, "listed: cessationOfOperation") {
		t.Fatalf("--revoke-cert of the discarded CA: %v\n%s", err, stdout)
	}
	stored, err := st.LatestCRL(ctx, issuerIDOf(a.Root))
	if err != nil {
		t.Fatal(err)
	}
	list, err := x509.ParseRevocationList(stored.DER)
	if err != nil || list.CheckSignatureFrom(a.Root) != nil || len(list.RevokedCertificateEntries) != 1 ||
		list.RevokedCertificateEntries[0].SerialNumber.Cmp(next.SerialNumber) != 0 || list.RevokedCertificateEntries[0].ReasonCode != 5 {
		t.Fatalf("stored root CRL: %v %+v", err, list)
	}
	// Found compromised later: its reason changes.
	stdout, _, err = runCA(t, nil, dir, "root", "crl", "--revoke-cert", kept, "--reason", "cACompromise")
	if err != nil || !strings.Contains(stdout, "reason changed from cessationOfOperation to cACompromise") {
		t.Errorf("--revoke-cert again with cACompromise: %v\n%s", err, stdout)
	}
}

// Root CRL numbers are kept in the data directory too: with the store
// restored from a copy older than a root CRL, ca root crl refuses to
// sign (the CAs revoked after the copy would be dropped without a word)
// until --store-restored says the restore is deliberate, and then numbers
// above the last root CRL signed, not above the store's.
func TestCARootCRLStoreRestored(t *testing.T) {
	dir, a := caDataDir(t, ca.InitOptions{})
	ctx := context.Background()
	db := filepath.Join(dir, "scepter.db")
	now := pki.SystemClock{}.Now()
	previous := a.Issuer.Cert
	current := otherIssuingCA(t, dir, "current issuing CA", 1001)
	newestRootCRL := func() *x509.RevocationList {
		t.Helper()
		st, err := sqlite.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		c, err := st.LatestCRL(ctx, issuerIDOf(a.Root))
		if err != nil {
			t.Fatal(err)
		}
		list, err := x509.ParseRevocationList(c.DER)
		if err != nil || list.Number.Int64() != c.Number {
			t.Fatalf("stored root CRL %d: %v", c.Number, err)
		}
		return list
	}
	func() {
		st, err := sqlite.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for _, g := range []struct {
			c  *x509.Certificate
			at time.Time
		}{{previous, time.Time{}}, {current, now.Add(-time.Hour)}} {
			gen := store.CAGeneration{IssuerID: issuerIDOf(g.c), RootFingerprint: a.RootFingerprint(), IssuerDER: g.c.Raw,
				SwitchAt: g.at, PublishedAt: now, PublishedBy: "test"}
			if _, err := st.PublishCAGeneration(ctx, gen, pki.AuditEvent{Time: now, Type: pki.EventCAPublished, Actor: "test", Outcome: "success"}); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if stdout, _, err := runCA(t, nil, dir, "root", "crl"); err != nil || !strings.Contains(stdout, "Root CRL 1 signed") {
		t.Fatalf("first root CRL: %v\n%s", err, stdout)
	}
	backup := filepath.Join(t.TempDir(), "bk.db")
	backupSQLiteFile(t, db, backup)
	if stdout, _, err := runCA(t, nil, dir, "root", "crl", "--revoke", issuerIDOf(previous), "--reason", "cACompromise"); err != nil || !strings.Contains(stdout, "Root CRL 2 signed") {
		t.Fatalf("revoking the previous CA: %v\n%s", err, stdout)
	}
	if b, err := os.ReadFile(filepath.Join(dir, crl.NumbersDir, issuerIDOf(a.Root))); err != nil || string(b) != "2\n" {
		t.Fatalf("the root's mark after CRL 2: %q, %v", b, err)
	}

	restoreSQLiteFile(t, backup, db)
	_, _, err := runCA(t, nil, dir, "root", "crl")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "--store-restored") ||
		!strings.Contains(err.Error(), "newest root CRL is number 1, but root CRL 2 was signed") || !strings.Contains(err.Error(), "--revoke") {
		t.Fatalf("root crl on the restored store: %v, want it refused naming --store-restored", err)
	}
	if list := newestRootCRL(); list.Number.Int64() != 1 {
		t.Fatalf("refused, yet root CRL %d stored", list.Number)
	}
	// Acknowledged, with the CA revoked after the copy listed again.
	stdout, _, err := runCA(t, nil, dir, "root", "crl", "--store-restored", "--revoke", issuerIDOf(previous), "--reason", "cACompromise")
	if err != nil || !strings.Contains(stdout, "Root CRL 3 signed") {
		t.Fatalf("root crl --store-restored: %v\n%s", err, stdout)
	}
	list := newestRootCRL()
	if list.Number.Int64() != 3 || len(list.RevokedCertificateEntries) != 1 || list.RevokedCertificateEntries[0].SerialNumber.Cmp(previous.SerialNumber) != 0 {
		t.Errorf("root CRL after the restore: number %d, entries %+v", list.Number, list.RevokedCertificateEntries)
	}
	// The store has caught up: no flag needed any more.
	if stdout, _, err := runCA(t, nil, dir, "root", "crl"); err != nil || !strings.Contains(stdout, "Root CRL 4 signed") {
		t.Errorf("root crl once the store caught up: %v\n%s", err, stdout)
	}
}
