package ca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

const day = 24 * time.Hour

// leafProfile issues short client certificates for these tests.
func leafProfile(validity time.Duration) pki.Profile {
	return pki.Profile{Name: "t", Validity: validity, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, Keys: pki.DefaultKeyPolicy}
}

func issueLeaf(t *testing.T, iss *Issuer, cn string, now time.Time, validity time.Duration) *x509.Certificate {
	t.Helper()
	c, err := iss.Issue(context.Background(), Request{RawSubject: rawName(t, pkix.Name{CommonName: cn}),
		PublicKey: genKey(t, "p256").Public(), Profile: leafProfile(validity)}, now, okReserve)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCA creates a CA in a fresh data directory at clock's time, with RSA
// keys from testKeys unless opts has a generator (see pooledKeys).
func newCA(t *testing.T, opts InitOptions, clock pki.Clock) (string, *Authority) {
	t.Helper()
	dir := t.TempDir()
	if opts.GenerateKey == nil {
		opts.GenerateKey = pooledKeys()
	}
	a, created, err := LoadOrCreate(dir, opts, clock)
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	return dir, a
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := keys.LoadCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func dotEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestRolloverCreatesNext(t *testing.T) {
	tests := []struct {
		name       string
		init       InitOptions
		opts       RolloverOptions
		wantKey    string
		wantRAIsCA bool
	}{
		{"defaults follow the current CA", InitOptions{}, RolloverOptions{}, "p256", false},
		{"other key type", InitOptions{}, RolloverOptions{KeyType: "p384"}, "p384", false},
		{"RA mode ca follows the current CA", InitOptions{KeyType: "rsa2048", RAMode: RAModeCA}, RolloverOptions{}, "rsa2048", true},
		{"RA mode separate on a ca-mode CA", InitOptions{KeyType: "rsa2048", RAMode: RAModeCA}, RolloverOptions{RAMode: RAModeSeparate}, "rsa2048", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := pkitest.NewClock(t0)
			dir, a := newCA(t, tt.init, clock)
			clock.Advance(day)
			switchAt := clock.Now().Add(30*day + 500*time.Millisecond) // kept to the second
			tt.opts.SwitchAt = switchAt
			iss, ra, err := Rollover(dir, tt.opts, clock)
			if err != nil {
				t.Fatal(err)
			}
			caDir := filepath.Join(dir, "ca")
			nextDir := filepath.Join(caDir, NextDir)
			if m := perm(t, nextDir); m != 0o700 {
				t.Errorf("next/ mode %o, want 700", m)
			}
			files := map[string]os.FileMode{IssuingKeyFile: 0o600, IssuingCertFile: 0o644, ChainFile: 0o644, SwitchAtFile: 0o644, RAModeFile: 0o644}
			if !tt.wantRAIsCA {
				files[RAKeyFile], files[RACertFile] = 0o600, 0o644
			}
			for f, want := range files {
				if m := perm(t, filepath.Join(nextDir, f)); m != want {
					t.Errorf("next/%s mode %o, want %o", f, m, want)
				}
			}
			if tt.wantRAIsCA {
				if _, err := os.Stat(filepath.Join(nextDir, RACertFile)); err == nil {
					t.Error("ra.crt written in RA mode ca")
				}
			}
			entries, _ := os.ReadDir(nextDir)
			if len(entries) != len(files) {
				t.Errorf("next/ holds %d entries, want %d", len(entries), len(files))
			}
			if left := dotEntries(t, caDir); len(left) != 0 {
				t.Errorf("temporary entries left in ca/: %v", left)
			}
			b, _ := os.ReadFile(filepath.Join(nextDir, SwitchAtFile))
			if want := switchAt.Truncate(time.Second).Format(time.RFC3339) + "\n"; string(b) != want {
				t.Errorf("switch-at = %q, want %q", b, want)
			}

			c := iss.Cert
			if !c.Equal(readCert(t, filepath.Join(nextDir, IssuingCertFile))) {
				t.Error("returned issuer is not next/issuing.crt")
			}
			if got := keys.KeyTypeOf(c.PublicKey); got != tt.wantKey {
				t.Errorf("next key %s, want %s", got, tt.wantKey)
			}
			if err := c.CheckSignatureFrom(a.Root); err != nil || !bytes.Equal(c.RawIssuer, a.Root.RawSubject) {
				t.Errorf("next issuing CA not signed by the same root: %v", err)
			}
			if !bytes.Equal(c.AuthorityKeyId, a.Root.SubjectKeyId) {
				t.Error("next issuing CA AKI is not the root's SKI")
			}
			if c.NotBefore.After(switchAt) || !c.NotAfter.After(switchAt) || c.NotAfter.After(a.Root.NotAfter) {
				t.Errorf("next validity %v..%v, switch %v, root until %v", c.NotBefore, c.NotAfter, switchAt, a.Root.NotAfter)
			}
			if c.Subject.String() == a.Issuer.Cert.Subject.String() || !strings.HasPrefix(c.Subject.CommonName, "scepter Issuing CA ") {
				t.Errorf("next subject %q (current %q)", c.Subject, a.Issuer.Cert.Subject)
			}
			if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage != a.Issuer.Cert.KeyUsage {
				t.Error("next issuing CA shape differs from the current one")
			}
			if ra.IsCA != tt.wantRAIsCA || ra.Decrypter() == nil {
				t.Fatalf("RA IsCA=%v, want %v", ra.IsCA, tt.wantRAIsCA)
			}
			if ra.IsCA {
				if !ra.Cert.Equal(c) {
					t.Error("RA mode ca: RA is not the next issuing CA")
				}
			} else {
				if err := ra.Cert.CheckSignatureFrom(c); err != nil || keys.KeyTypeOf(ra.Cert.PublicKey) != "rsa2048" {
					t.Errorf("next RA not an RSA-2048 certificate issued by the next CA: %v", err)
				}
				if len(ra.Chain) != 3 || !ra.Chain[1].Equal(c) || !ra.Chain[2].Equal(a.Root) {
					t.Error("next RA chain")
				}
			}
			// The current CA is untouched.
			if !readCert(t, filepath.Join(caDir, IssuingCertFile)).Equal(a.Issuer.Cert) {
				t.Error("current issuing.crt changed")
			}
		})
	}
}

func TestRolloverRefuses(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	now := clock.Now()
	tests := []struct {
		name string
		opts RolloverOptions
		want string
	}{
		{"no switch time", RolloverOptions{}, "needs a switch time"},
		{"switch in the past", RolloverOptions{SwitchAt: now.Add(-time.Hour)}, "not in the future"},
		{"switch now", RolloverOptions{SwitchAt: now}, "not in the future"},
		{"switch after the current CA expires", RolloverOptions{SwitchAt: a.Issuer.Cert.NotAfter.Add(time.Hour)}, "after the current issuing CA expires"},
		{"unknown key type", RolloverOptions{SwitchAt: now.Add(day), KeyType: "rsa1024"}, "rsa1024"},
		{"RA mode ca with an EC key", RolloverOptions{SwitchAt: now.Add(day), RAMode: RAModeCA}, "needs an RSA CA key"},
		{"unknown RA mode", RolloverOptions{SwitchAt: now.Add(day), RAMode: "both"}, "unknown RA mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Rollover(dir, tt.opts, clock)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "ca", NextDir)); err == nil {
				t.Fatal("next/ created")
			}
			if left := dotEntries(t, filepath.Join(dir, "ca")); len(left) != 0 {
				t.Errorf("temporary entries left: %v", left)
			}
		})
	}
	t.Run("no CA", func(t *testing.T) {
		empty := t.TempDir()
		if _, _, err := Rollover(empty, RolloverOptions{SwitchAt: now.Add(day)}, clock); !errors.Is(err, ErrNoCA) {
			t.Fatalf("err = %v, want ErrNoCA", err)
		}
		if _, err := os.Stat(filepath.Join(empty, "ca")); err == nil {
			t.Error("a CA directory was created")
		}
	})
	t.Run("second rollover while one is pending", func(t *testing.T) {
		first, _, err := Rollover(dir, RolloverOptions{SwitchAt: now.Add(10 * day)}, clock)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(day)
		_, _, err = Rollover(dir, RolloverOptions{SwitchAt: now.Add(20 * day)}, clock)
		nextDir := filepath.Join(dir, "ca", NextDir)
		if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "scepter ca rollover --discard") {
			t.Fatalf("err = %v", err)
		}
		if !readCert(t, filepath.Join(nextDir, IssuingCertFile)).Equal(first.Cert) {
			t.Error("the pending next CA was replaced")
		}
		if left := dotEntries(t, filepath.Join(dir, "ca")); len(left) != 0 {
			t.Errorf("temporary entries left: %v", left)
		}
	})
}

func TestActiveAndNextAcrossTheSwitch(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{}, clock)
	switchAt := t0.Add(30 * day)
	next, nextRA, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	a, _, err := LoadOrCreate(dir, InitOptions{}, clock) // a server start before the switch
	if err != nil {
		t.Fatal(err)
	}
	cur, curRA := a.Issuer, a.RA
	if a.Issuer.ID == next.ID {
		t.Fatal("promoted before the switch")
	}
	if got, ok := a.SwitchAt(); !ok || !got.Equal(switchAt) {
		t.Errorf("SwitchAt = %v, %v", got, ok)
	}
	tests := []struct {
		at       time.Time
		wantNext bool // Active is the next CA
	}{
		{t0.Add(time.Hour), false},
		{switchAt.Add(-time.Second), false},
		{switchAt, true},
		{switchAt.Add(time.Second), true},
		{switchAt.Add(365 * day), true},
	}
	for _, tt := range tests {
		t.Run(tt.at.Format(time.RFC3339), func(t *testing.T) {
			iss, ra := a.Active(tt.at)
			n, nra, ok := a.Next(tt.at)
			if tt.wantNext {
				if iss.ID != next.ID || !ra.Cert.Equal(nextRA.Cert) {
					t.Error("Active is not the next CA after the switch")
				}
				if ok || n != nil || nra != nil {
					t.Error("Next still reported after the switch")
				}
			} else {
				if iss != cur || ra != curRA {
					t.Error("Active is not the current CA before the switch")
				}
				if !ok || n.ID != next.ID || !nra.Cert.Equal(nextRA.Cert) {
					t.Error("Next not reported before the switch")
				}
			}
		})
	}
	// The load-time fields do not move.
	if a.Issuer != cur || a.RA != curRA {
		t.Error("Issuer/RA fields changed")
	}
	if is := a.Issuers(); len(is) != 2 || is[0] != cur || is[1].ID != next.ID {
		t.Errorf("Issuers() = %d issuers, want current then next", len(is))
	}
	if got, ok := a.IssuerByID(next.ID); !ok || got.ID != next.ID {
		t.Error("IssuerByID(next) failed")
	}
	if len(a.Previous()) != 0 || len(a.RAs()) != 2 {
		t.Errorf("Previous %d, RAs %d", len(a.Previous()), len(a.RAs()))
	}
	// Issuance by the next CA before the switch is possible (its validity
	// starts at the rollover).
	n, _, _ := a.Next(clock.Now())
	leaf := issueLeaf(t, n, "early", clock.Now(), day)
	if iss, err := a.IssuedByUs(leaf, clock.Now()); err != nil || iss.ID != next.ID {
		t.Errorf("leaf of the next CA: %v", err)
	}
}

// After the switch a start promotes next to current and keeps the old CA;
// what the old CA issued still verifies, by IssuedByUs and by openssl.
func TestPromotionKeepsTheOldCA(t *testing.T) {
	for _, init := range []InitOptions{{}, {KeyType: "rsa2048", RAMode: RAModeCA}} {
		t.Run(init.KeyType+init.RAMode, func(t *testing.T) {
			t.Parallel()
			clock := pkitest.NewClock(t0)
			dir, old := newCA(t, init, clock)
			caDir := filepath.Join(dir, "ca")
			oldLeaf := issueLeaf(t, old.Issuer, "old device", clock.Now(), 90*day)
			switchAt := t0.Add(30 * day)
			next, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock)
			if err != nil {
				t.Fatal(err)
			}
			clock.Set(switchAt.Add(time.Hour))
			a, created, err := LoadOrCreate(dir, init, clock)
			if err != nil || created {
				t.Fatalf("start after the switch: created=%v err=%v", created, err)
			}
			if a.Issuer.ID != next.ID || !a.Root.Equal(old.Root) {
				t.Fatal("the next CA was not promoted (or the root changed)")
			}
			if iss, _ := a.Active(clock.Now()); iss != a.Issuer {
				t.Error("Active is not the promoted CA")
			}
			if _, _, ok := a.Next(clock.Now()); ok {
				t.Error("Next after promotion")
			}
			if _, ok := a.SwitchAt(); ok {
				t.Error("SwitchAt after promotion")
			}
			// Files.
			if _, err := os.Stat(filepath.Join(caDir, NextDir)); err == nil {
				t.Error("next/ still exists")
			}
			if !readCert(t, filepath.Join(caDir, IssuingCertFile)).Equal(next.Cert) {
				t.Error("issuing.crt is not the promoted CA")
			}
			chain, _ := keys.LoadCertFile(filepath.Join(caDir, ChainFile))
			if len(chain) != 2 || !chain[0].Equal(next.Cert) {
				t.Error("chain.pem not updated")
			}
			prevDir := filepath.Join(caDir, PreviousDir, old.Issuer.ID)
			if !readCert(t, filepath.Join(prevDir, IssuingCertFile)).Equal(old.Issuer.Cert) {
				t.Error("previous/<id>/issuing.crt is not the old CA")
			}
			for f, want := range map[string]os.FileMode{IssuingKeyFile: 0o600, IssuingCertFile: 0o644, ChainFile: 0o644} {
				if m := perm(t, filepath.Join(prevDir, f)); m != want {
					t.Errorf("previous %s mode %o, want %o", f, m, want)
				}
			}
			if m := perm(t, filepath.Join(caDir, PreviousDir)); m != 0o700 {
				t.Errorf("previous/ mode %o", m)
			}
			if left := dotEntries(t, caDir); len(left) != 0 {
				t.Errorf("temporary entries left in ca/: %v", left)
			}
			if left := dotEntries(t, filepath.Join(caDir, PreviousDir)); len(left) != 0 {
				t.Errorf("temporary entries left in previous/: %v", left)
			}
			if init.RAMode == RAModeCA {
				if _, err := os.Stat(filepath.Join(caDir, RACertFile)); err == nil {
					t.Error("an RA file beside the promoted mode-ca CA")
				}
			} else if err := a.RA.Cert.CheckSignatureFrom(next.Cert); err != nil {
				t.Errorf("current RA not issued by the promoted CA: %v", err)
			}
			// The old CA is kept.
			if p := a.Previous(); len(p) != 1 || p[0].ID != old.Issuer.ID {
				t.Fatalf("Previous() = %d issuers", len(p))
			}
			if is := a.Issuers(); len(is) != 2 || is[0].ID != next.ID || is[1].ID != old.Issuer.ID {
				t.Error("Issuers() is not [promoted, old]")
			}
			if _, ok := a.IssuerByID(old.Issuer.ID); !ok {
				t.Error("IssuerByID(old) failed")
			}
			if ras := a.RAs(); len(ras) != 2 || !ras[1].Cert.Equal(old.RA.Cert) || ras[1].Decrypter() == nil {
				t.Error("RAs() does not hold the old RA second")
			}
			if iss, err := a.IssuedByUs(oldLeaf, clock.Now()); err != nil || iss.ID != old.Issuer.ID {
				t.Errorf("old leaf after the switch: %v", err)
			}
			newLeaf := issueLeaf(t, a.Issuer, "new device", clock.Now(), 90*day)
			if iss, err := a.IssuedByUs(newLeaf, clock.Now()); err != nil || iss.ID != next.ID {
				t.Errorf("new leaf: %v", err)
			}
			// A further start changes nothing; another rollover is possible.
			b, _, err := LoadOrCreate(dir, init, clock)
			if err != nil || b.Issuer.ID != next.ID || len(b.Previous()) != 1 {
				t.Fatalf("second start after promotion: %v", err)
			}
			third, _, err := Rollover(dir, RolloverOptions{SwitchAt: clock.Now().Add(day)}, clock)
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(2 * day)
			c, _, err := LoadOrCreate(dir, init, clock)
			if err != nil || c.Issuer.ID != third.ID {
				t.Fatalf("second promotion: %v", err)
			}
			if p := c.Previous(); len(p) != 2 || p[0].ID != next.ID || p[1].ID != old.Issuer.ID {
				t.Error("Previous() is not newest first")
			}
			if _, err := c.IssuedByUs(oldLeaf, clock.Now()); err != nil {
				t.Errorf("old leaf after two rollovers: %v", err)
			}

			root := filepath.Join(caDir, RootCertFile)
			opensslVerify(t, clock.Now(), root, filepath.Join(prevDir, IssuingCertFile), oldLeaf, true)
			opensslVerify(t, clock.Now(), root, filepath.Join(caDir, PreviousDir, next.ID, ChainFile), newLeaf, true)
			// The check can fail: the old leaf does not chain through the new CA.
			opensslVerify(t, clock.Now(), root, filepath.Join(caDir, PreviousDir, next.ID, ChainFile), oldLeaf, false)
		})
	}
}

// opensslVerify runs openssl verify on leaf with root as the only trust
// anchor and untrusted as the intermediates, at the given time, and checks
// the outcome is wantOK.
func opensslVerify(t *testing.T, at time.Time, root, untrusted string, leaf *x509.Certificate, wantOK bool) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not found; skipping openssl verify")
		return
	}
	leafFile := filepath.Join(t.TempDir(), "leaf.pem")
	if err := os.WriteFile(leafFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", "-attime", strconv.FormatInt(at.Unix(), 10), "-x509_strict",
		"-CAfile", root, "-untrusted", untrusted, leafFile).CombinedOutput()
	if ok := err == nil && strings.Contains(string(out), ": OK"); ok != wantOK {
		t.Errorf("openssl verify %s: ok=%v, want %v: %v\n%s", leaf.Subject, ok, wantOK, err, out)
	}
}

// A promotion interrupted at any step is finished by the next start.
func TestPromotionResumes(t *testing.T) {
	steps := []struct {
		name  string
		crash func(t *testing.T, caDir, oldID string)
	}{
		{"previous kept, nothing copied", func(t *testing.T, caDir, oldID string) {
			if err := keepPrevious(caDir, oldID); err != nil {
				t.Fatal(err)
			}
		}},
		{"previous kept, keys copied", func(t *testing.T, caDir, oldID string) {
			if err := keepPrevious(caDir, oldID); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{IssuingKeyFile, RAKeyFile} {
				b, _ := os.ReadFile(filepath.Join(caDir, NextDir, f))
				os.WriteFile(filepath.Join(caDir, f), b, 0o600)
			}
		}},
		{"everything copied, next/ not removed", func(t *testing.T, caDir, oldID string) {
			if err := keepPrevious(caDir, oldID); err != nil {
				t.Fatal(err)
			}
			for _, f := range generationFiles {
				b, _ := os.ReadFile(filepath.Join(caDir, NextDir, f.name))
				os.WriteFile(filepath.Join(caDir, f.name), b, f.perm)
			}
		}},
		{"next/ renamed away, not removed", func(t *testing.T, caDir, oldID string) {
			if err := promote(caDir, readCert(t, filepath.Join(caDir, RootCertFile))); err != nil {
				t.Fatal(err)
			}
			os.Mkdir(filepath.Join(caDir, ".next-done-deadbeef"), 0o700)
		}},
		{"temporary previous left", func(t *testing.T, caDir, oldID string) {
			os.MkdirAll(filepath.Join(caDir, PreviousDir, ".tmp-123"), 0o700)
		}},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := pkitest.NewClock(t0)
			dir, old := newCA(t, InitOptions{}, clock)
			caDir := filepath.Join(dir, "ca")
			next, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock)
			if err != nil {
				t.Fatal(err)
			}
			tt.crash(t, caDir, old.Issuer.ID)
			clock.Advance(2 * day)
			a, _, err := LoadOrCreate(dir, InitOptions{}, clock)
			if err != nil {
				t.Fatal(err)
			}
			if a.Issuer.ID != next.ID || len(a.Previous()) != 1 || a.Previous()[0].ID != old.Issuer.ID {
				t.Fatal("promotion not completed")
			}
			if err := a.RA.Cert.CheckSignatureFrom(next.Cert); err != nil {
				t.Errorf("RA: %v", err)
			}
			if _, err := os.Stat(filepath.Join(caDir, NextDir)); err == nil {
				t.Error("next/ left")
			}
			if left := dotEntries(t, caDir); len(left) != 0 {
				t.Errorf("left in ca/: %v", left)
			}
		})
	}
}

// otherCA is a CA outside ours that copies our issuing CA's name and key
// identifier.
func forgedIssuer(t *testing.T, a *Authority) (*x509.Certificate, *Issuer) {
	t.Helper()
	key := genKey(t, "p256")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), RawSubject: a.Issuer.Cert.RawSubject, SubjectKeyId: a.Issuer.Cert.SubjectKeyId,
		AuthorityKeyId: a.Root.SubjectKeyId, RawIssuer: a.Root.RawSubject,
		NotBefore: t0.Add(-day), NotAfter: t0.Add(365 * day), BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	// Self-signed, but with our root's name as issuer.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParse(t, der)
	iss, err := NewIssuer(cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cert, iss
}

func TestIssuedByUs(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(30 * day)}, clock); err != nil {
		t.Fatal(err)
	}
	a, _, err := LoadOrCreate(dir, InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	next, _, _ := a.Next(t0)
	_, other := newCA(t, InitOptions{}, clock)
	_, forged := forgedIssuer(t, a)

	selfKey := genKey(t, "p256")
	selfTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "device"},
		NotBefore: t0.Add(-day), NotAfter: t0.Add(day)}
	selfSigned := mustParse(t, func() []byte {
		der, err := x509.CreateCertificate(rand.Reader, selfTmpl, selfTmpl, selfKey.Public(), selfKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}())
	// Same name and serial as a leaf of ours, signed by the forged issuer.
	forgedLeaf := issueLeaf(t, forged, "device", t0, 30*day)
	if !bytes.Equal(forgedLeaf.RawIssuer, a.Issuer.Cert.RawSubject) || !bytes.Equal(forgedLeaf.AuthorityKeyId, a.Issuer.Cert.SubjectKeyId) {
		t.Fatal("the forged leaf does not carry our issuer's name and key identifier")
	}

	now := t0.Add(time.Hour)
	tests := []struct {
		name       string
		cert       *x509.Certificate
		at         time.Time
		wantIssuer *Issuer
		wantErr    error
	}{
		{"current CA's leaf", issueLeaf(t, a.Issuer, "device", t0, 30*day), now, a.Issuer, nil},
		{"next CA's leaf", issueLeaf(t, next, "device", t0, 30*day), now, next, nil},
		{"RA certificate", a.RA.Cert, now, a.Issuer, nil},
		{"expired leaf", issueLeaf(t, a.Issuer, "device", t0, 2*time.Hour), t0.Add(3 * time.Hour), a.Issuer, ErrExpired},
		{"long expired leaf", issueLeaf(t, a.Issuer, "device", t0, 2*time.Hour), t0.Add(400 * day), a.Issuer, ErrExpired},
		{"not yet valid", issueLeaf(t, a.Issuer, "device", t0, day), t0.Add(-2 * time.Hour), nil, ErrNotOurs},
		{"self-signed", selfSigned, now, nil, ErrNotOurs},
		{"forged issuer name", forgedLeaf, now, nil, ErrNotOurs},
		{"expired and forged", issueLeaf(t, forged, "device", t0, time.Hour), t0.Add(3 * time.Hour), nil, ErrNotOurs},
		{"another installation", issueLeaf(t, other.Issuer, "device", t0, 30*day), now, nil, ErrNotOurs},
		{"our issuing CA", a.Issuer.Cert, now, nil, ErrNotOurs},
		{"our root", a.Root, now, nil, ErrNotOurs},
		{"nil", nil, now, nil, ErrNotOurs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := a.IssuedByUs(tt.cert, tt.at)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrExpired) && errors.Is(err, ErrNotOurs) {
				t.Error("both ErrExpired and ErrNotOurs")
			}
			if (iss == nil) != (tt.wantIssuer == nil) || iss != nil && iss.ID != tt.wantIssuer.ID {
				t.Errorf("issuer %v, want %v", iss, tt.wantIssuer)
			}
		})
	}
}

func TestLoadIsReadOnly(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, old := newCA(t, InitOptions{}, clock)
	if _, err := Load(t.TempDir(), clock); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Load of an empty dir: %v", err)
	}
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * day)
	os.Remove(filepath.Join(dir, "ca", ChainFile))
	a, err := Load(dir, clock)
	if err != nil {
		t.Fatal(err)
	}
	if a.Issuer.ID != old.Issuer.ID {
		t.Error("Load promoted the next CA")
	}
	if iss, _ := a.Active(clock.Now()); iss.ID != next.ID {
		t.Error("Active is not the due next CA")
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", NextDir)); err != nil {
		t.Error("next/ moved by Load")
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ChainFile)); err == nil {
		t.Error("chain.pem rewritten by Load")
	}
	// A rollover cannot be made on top of a due one without promoting it.
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: clock.Now().Add(day)}, clock); err != nil {
		t.Fatalf("rollover after a due switch: %v", err)
	}
	b, err := Load(dir, clock)
	if err != nil || b.Issuer.ID != next.ID || len(b.Previous()) != 1 {
		t.Fatalf("after the rollover promoted: %v", err)
	}
	if _, _, ok := b.Next(clock.Now()); !ok {
		t.Error("no pending next CA")
	}
}

func TestReload(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	caDir := filepath.Join(dir, "ca")
	if _, _, ok := a.Next(t0); ok {
		t.Fatal("next before any rollover")
	}
	before := a.state.Load()
	if err := a.Reload(clock.Now()); err != nil || a.state.Load() != before {
		t.Fatalf("Reload without a change replaced the state (err %v)", err)
	}
	cur, curRA := a.Active(clock.Now())

	// A next/ the server cannot read (another user's, as `ca rollover` run
	// as root leaves it; here, a directory where a file belongs, since
	// tests run as root) is named, not taken for no rollover at all.
	if err := os.MkdirAll(filepath.Join(caDir, NextDir, IssuingCertFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(clock.Now()); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Fatalf("Reload with an unreadable next/: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(caDir, NextDir)); err != nil {
		t.Fatal(err)
	}

	// A rollover made by another process is picked up.
	switchAt := t0.Add(day)
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	n, nRA, ok := a.Next(clock.Now())
	if !ok || n.ID != next.ID {
		t.Fatal("Reload did not pick up the rollover")
	}
	if iss, ra := a.Active(clock.Now()); iss != cur || ra != curRA {
		t.Error("the unchanged current issuer lost its identity")
	}

	// After the switch, Reload promotes on disk; Active does not change.
	clock.Set(switchAt.Add(time.Minute))
	if iss, _ := a.Active(clock.Now()); iss != n {
		t.Fatal("no switch in memory")
	}
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if iss, ra := a.Active(clock.Now()); iss != n || ra != nRA {
		t.Error("Active changed by the promotion")
	}
	if _, err := os.Stat(filepath.Join(caDir, NextDir)); err == nil {
		t.Error("Reload after the switch did not promote")
	}
	if p := a.Previous(); len(p) != 1 || p[0] != cur {
		t.Error("the old issuer is not previous after the promotion")
	}
	if a.Issuer != cur {
		t.Error("the Issuer field changed")
	}
	// A second rollover.
	third, _, err := Rollover(dir, RolloverOptions{SwitchAt: clock.Now().Add(day)}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _, ok := a.Next(clock.Now()); !ok || n.ID != third.ID {
		t.Error("second rollover not picked up")
	}

	mem, err := NewAuthority(a.Root, a.Issuer, a.RA)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Reload(t0); err == nil {
		t.Error("Reload of an in-memory authority succeeded")
	}
}

// Concurrent readers see a consistent issuer set while reloads run.
func TestReloadConcurrent(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	leaf := issueLeaf(t, a.Issuer, "device", t0, day)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			if iss, ra := a.Active(t0); iss == nil || ra == nil {
				t.Error("nil issuer")
				return
			}
			if _, err := a.IssuedByUs(leaf, t0); err != nil {
				t.Error(err)
				return
			}
			a.Issuers()
			a.Next(t0)
		}
	}()
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := a.Reload(t0); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

func TestSetNext(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock); err != nil {
		t.Fatal(err)
	}
	loaded, _, err := LoadOrCreate(dir, InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	next, nextRA, _ := loaded.Next(t0)
	mem, err := NewAuthority(a.Root, a.Issuer, a.RA)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.SetNext(a.Issuer, a.RA, t0.Add(day)); err == nil {
		t.Error("SetNext(current) succeeded")
	}
	_, other := newCA(t, InitOptions{}, clock)
	if err := mem.SetNext(other.Issuer, other.RA, t0.Add(day)); err == nil {
		t.Error("SetNext with another root's issuer succeeded")
	}
	if err := mem.SetNext(next, nextRA, t0.Add(day)); err != nil {
		t.Fatal(err)
	}
	if n, _, ok := mem.Next(t0); !ok || n != next {
		t.Error("Next after SetNext")
	}
	if iss, _ := mem.Active(t0.Add(day)); iss != next {
		t.Error("Active after the switch")
	}
}

func TestLoadRefusesBrokenRollover(t *testing.T) {
	other := t.TempDir()
	clock := pkitest.NewClock(t0)
	if _, _, err := LoadOrCreate(other, InitOptions{}, clock); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Rollover(other, RolloverOptions{SwitchAt: t0.Add(day)}, clock); err != nil {
		t.Fatal(err)
	}
	cpDir := func(t *testing.T, from, to string) {
		os.MkdirAll(to, 0o700)
		entries, _ := os.ReadDir(from)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(from, e.Name()))
			os.WriteFile(filepath.Join(to, e.Name()), b, 0o600)
		}
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, caDir string)
		at     time.Time
		want   string
	}{
		{"no switch-at", func(t *testing.T, d string) { os.Remove(filepath.Join(d, NextDir, SwitchAtFile)) }, t0, "switch-at"},
		{"bad switch-at", func(t *testing.T, d string) {
			os.WriteFile(filepath.Join(d, NextDir, SwitchAtFile), []byte("tomorrow"), 0o644)
		}, t0, "switch-at"},
		{"next of another installation", func(t *testing.T, d string) {
			os.RemoveAll(filepath.Join(d, NextDir))
			cpDir(t, filepath.Join(other, "ca", NextDir), filepath.Join(d, NextDir))
		}, t0, "does not chain to root.crt"},
		{"due next of another installation", func(t *testing.T, d string) {
			os.RemoveAll(filepath.Join(d, NextDir))
			cpDir(t, filepath.Join(other, "ca", NextDir), filepath.Join(d, NextDir))
		}, t0.Add(2 * day), "was not issued by root.crt"},
		{"previous misnamed", func(t *testing.T, d string) {
			cpDir(t, filepath.Join(d, NextDir), filepath.Join(d, PreviousDir, "abc"))
		}, t0, "named after its issuer ID"},
		{"previous of another installation", func(t *testing.T, d string) {
			b, _ := os.ReadFile(filepath.Join(other, "ca", IssuingCertFile))
			id := issuerID(mustParse(t, func() []byte { p, _ := pem.Decode(b); return p.Bytes }()))
			cpDir(t, filepath.Join(other, "ca"), filepath.Join(d, PreviousDir, id))
		}, t0, "was not issued by root.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreate(dir, InitOptions{}, clock); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, filepath.Join(dir, "ca"))
			_, _, err := LoadOrCreate(dir, InitOptions{}, pkitest.NewClock(tt.at))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// ActiveSince keeps a rollover's switch time across the promotion, so a
// store that never learned of the rollover can still be told its schedule.
func TestActiveSinceSurvivesThePromotion(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, first := newCA(t, InitOptions{}, clock)
	if at, ok := first.ActiveSince(clock.Now()); ok {
		t.Errorf("first generation: ActiveSince = %v, want none", at)
	}
	switchAt := t0.Add(day)
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock)
	if err != nil {
		t.Fatal(err)
	}
	running, _, err := LoadOrCreate(dir, InitOptions{}, clock) // a server started before the switch
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := running.ActiveSince(switchAt.Add(-time.Second)); ok {
		t.Error("before the switch: the first generation has a switch time")
	}
	clock.Set(switchAt.Add(time.Minute))
	loads := []struct {
		name string
		load func(t *testing.T) *Authority
	}{
		{"not reloaded yet", func(*testing.T) *Authority { return running }},
		{"read-only load", func(t *testing.T) *Authority {
			a, err := Load(dir, clock)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}},
		{"reload promotes", func(t *testing.T) *Authority {
			if err := running.Reload(clock.Now()); err != nil {
				t.Fatal(err)
			}
			return running
		}},
		{"start after the promotion", func(t *testing.T) *Authority {
			a, _, err := LoadOrCreate(dir, InitOptions{}, clock)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}},
	}
	for _, tt := range loads { // in order: the reload promotes on disk
		a := tt.load(t)
		iss, _ := a.Active(clock.Now())
		at, ok := a.ActiveSince(clock.Now())
		if iss.ID != next.ID || !ok || !at.Equal(switchAt) {
			t.Errorf("%s: active %s since %v (%v), want %s since %v", tt.name, iss.ID, at, ok, next.ID, switchAt)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", NextDir)); err == nil {
		t.Error("next/ not promoted")
	}
}

// DiscardNext removes a next CA before its switch, and only then; a
// rollover may follow.
func TestDiscardNext(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{}, clock)
	caDir := filepath.Join(dir, "ca")
	switchAt := t0.Add(day)
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if id, at, ok, err := NextOnDisk(dir); err != nil || !ok || id != next.ID || !at.Equal(switchAt) {
		t.Fatalf("NextOnDisk = %s, %v, %v, %v", id, at, ok, err)
	}
	if err := DiscardNext(dir, "other", clock.Now()); err == nil {
		t.Error("discarded a next CA by another ID")
	}
	if err := DiscardNext(dir, next.ID, switchAt); !errors.Is(err, ErrSwitched) {
		t.Errorf("discard at the switch time: %v", err)
	}
	if err := DiscardNext(dir, next.ID, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := NextOnDisk(dir); ok || err != nil {
		t.Errorf("after the discard: %v, %v", ok, err)
	}
	if left := dotEntries(t, caDir); len(left) != 0 {
		t.Errorf("left in ca/: %v", left)
	}
	if err := DiscardNext(dir, next.ID, clock.Now()); err == nil {
		t.Error("a second discard succeeded")
	}
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock); err != nil {
		t.Errorf("rollover after the discard: %v", err)
	}
}

// TestDiscardDiscardedNext: a next CA the store records as discarded is
// removed after its switch time too, which never made it current.
func TestDiscardDiscardedNext(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{}, clock)
	switchAt := t0.Add(day)
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := DiscardDiscardedNext(dir, "other"); err == nil {
		t.Error("discarded a next CA by another ID")
	}
	if err := DiscardDiscardedNext(dir, next.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := NextOnDisk(dir); ok || err != nil {
		t.Errorf("after the discard: %v, %v", ok, err)
	}
	if left := dotEntries(t, filepath.Join(dir, "ca")); len(left) != 0 {
		t.Errorf("left in ca/: %v", left)
	}
}

// A rollover to RA mode ca is not undone by a server started in mode
// separate (serve's default): its reload leaves next/ without an RA of its
// own, announces the next CA as its own RA, and the switch keeps it so.
// The RA mode of a generation is the one it was made with; serve's flag
// only chooses it for a new CA. A next CA made before ra-mode was recorded
// is read the same way from its files.
func TestServeKeepsTheRolloverRAMode(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			clock := pkitest.NewClock(t0)
			serveOpts := InitOptions{KeyType: "rsa2048", RAMode: RAModeSeparate}
			dir, a := newCA(t, serveOpts, clock)
			nextDir := filepath.Join(dir, "ca", NextDir)
			switchAt := t0.Add(10 * day)
			if _, ra, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt, RAMode: RAModeCA}, clock); err != nil || !ra.IsCA {
				t.Fatalf("rollover: %v", err)
			}
			if legacy {
				if err := os.Remove(filepath.Join(nextDir, RAModeFile)); err != nil {
					t.Fatal(err)
				}
			}
			clock.Advance(time.Minute)
			if err := a.Reload(clock.Now()); err != nil {
				t.Fatal(err)
			}
			_, nextRA, ok := a.Next(clock.Now())
			if !ok || !nextRA.IsCA {
				t.Fatalf("after the server's reload the next RA is separate (%v)", ok)
			}
			noFile(t, filepath.Join(nextDir, RACertFile))
			noFile(t, filepath.Join(nextDir, RAKeyFile))
			// A restart, as serve starts, in mode separate.
			if b, _, err := LoadOrCreate(dir, serveOpts, clock); err != nil {
				t.Fatal(err)
			} else if _, nextRA, _ := b.Next(clock.Now()); nextRA == nil || !nextRA.IsCA {
				t.Fatal("after a restart the next RA is separate")
			}

			clock.Set(switchAt.Add(time.Minute))
			if err := a.Reload(clock.Now()); err != nil {
				t.Fatal(err)
			}
			iss, ra := a.Active(clock.Now())
			if !ra.IsCA || !ra.Cert.Equal(iss.Cert) {
				t.Fatal("after the switch the RA is not the issuing CA")
			}
			noFile(t, filepath.Join(dir, "ca", RACertFile))
			b, _, err := LoadOrCreate(dir, serveOpts, clock)
			if err != nil {
				t.Fatal(err)
			}
			if !b.RA.IsCA {
				t.Fatal("a restart after the switch made a separate RA")
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "ca", RAModeFile)); string(got) != RAModeCA+"\n" {
				t.Errorf("ca/%s = %q after the switch, want %q", RAModeFile, got, RAModeCA)
			}
			// The previous generation keeps its separate RA.
			if prev := b.Previous(); len(prev) != 1 || !pki.SamePublicKey(prev[0].Cert.PublicKey, a.Issuer.Cert.PublicKey) {
				t.Fatalf("previous = %v", prev)
			}
		})
	}
}

// A separate RA removed to be renewed (ra.crt and ra.key) is issued again
// at the next start, whatever RA mode the server is given: the mode is
// the generation's.
func TestRemovedRAIsIssuedAgainInItsMode(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{KeyType: "rsa2048"}, clock)
	for _, f := range []string{RACertFile, RAKeyFile} {
		if err := os.Remove(filepath.Join(dir, "ca", f)); err != nil {
			t.Fatal(err)
		}
	}
	b, _, err := LoadOrCreate(dir, InitOptions{RAMode: RAModeCA}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if b.RA.IsCA || b.RA.Cert.Equal(a.RA.Cert) {
		t.Fatal("no new separate RA")
	}
}

// TestSetDiscardedNext: a next CA discarded on another node is dropped at
// once, and later reloads neither load it again nor promote it at its
// switch time; its files stay for the operator's discard.
func TestSetDiscardedNext(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	cur, _ := a.Active(clock.Now())
	switchAt := t0.Add(day)
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if a.SetDiscardedNext([]string{"another"}) {
		t.Error("a next CA that was not discarded was dropped")
	}
	if _, _, ok := a.Next(clock.Now()); !ok {
		t.Fatal("the next CA is gone")
	}
	if !a.SetDiscardedNext([]string{"another", next.ID}) {
		t.Error("the discarded next CA was not dropped")
	}
	if a.SetDiscardedNext([]string{next.ID}) {
		t.Error("dropped twice")
	}
	for _, at := range []time.Time{t0, switchAt.Add(time.Minute)} {
		clock.Set(at)
		if err := a.Reload(clock.Now()); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := a.Next(clock.Now()); ok {
			t.Errorf("at %s: the discarded next CA is served", at)
		}
		if _, ok := a.SwitchAt(); ok {
			t.Errorf("at %s: a switch time is kept", at)
		}
		if iss, _ := a.Active(clock.Now()); iss.ID != cur.ID {
			t.Errorf("at %s: Active is %s, want the current %s", at, iss.ID, cur.ID)
		}
		if _, ok := a.IssuerByID(next.ID); ok {
			t.Errorf("at %s: the discarded next CA is among the issuers", at)
		}
	}
	if id, _, ok, err := NextOnDisk(dir); err != nil || !ok || id != next.ID {
		t.Errorf("DATA/ca/next after the switch time = %s, %v, %v; want its files left", id, ok, err)
	}
}

// A node started after the switch time of a next CA discarded on another
// node (LoadOrCreate given the store's list) neither promotes nor serves
// it at its first load, nor at a reload: its files stay in DATA/ca/next.
func TestLoadOrCreateLeavesDiscardedNext(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	cur, _ := a.Active(clock.Now())
	switchAt := t0.Add(day)
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock)
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(switchAt.Add(time.Hour))
	b, _, err := LoadOrCreate(dir, InitOptions{DiscardedNext: []string{next.ID}}, clock)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"first load", "reload"} {
		if iss, _ := b.Active(clock.Now()); iss.ID != cur.ID {
			t.Errorf("%s: Active is %s, want the current %s", step, iss.ID, cur.ID)
		}
		if _, _, ok := b.Next(clock.Now()); ok {
			t.Errorf("%s: the discarded next CA is served", step)
		}
		if id, _, ok, err := NextOnDisk(dir); err != nil || !ok || id != next.ID {
			t.Errorf("%s: DATA/ca/next = %s, %v, %v; want its files left, not promoted", step, id, ok, err)
		}
		clock.Advance(time.Minute)
		if err := b.Reload(clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// Without the list, the same load promotes it (what the list prevents).
	if c, _, err := LoadOrCreate(dir, InitOptions{}, clock); err != nil {
		t.Fatal(err)
	} else if iss, _ := c.Active(clock.Now()); iss.ID != next.ID {
		t.Errorf("control: without the list, Active is %s, want the next %s", iss.ID, next.ID)
	}
}

// A previous issuing CA's revoked RA is dropped: its key destroyed,
// ra-revoked.crt in place of ra.crt. With an RSA issuing key, a previous
// generation lacking ra.crt and ra.key would otherwise be taken for one
// in RA mode ca, whose issuing key decrypts. A drop cut short after the
// marker is finished by the next load.
func TestDropPreviousRA(t *testing.T) {
	init := InitOptions{KeyType: "rsa2048"}
	clock := pkitest.NewClock(t0)
	dir, old := newCA(t, init, clock)
	oldRA := old.RA
	switchAt := t0.Add(30 * day)
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt}, clock); err != nil {
		t.Fatal(err)
	}
	clock.Set(switchAt.Add(time.Hour))
	a, _, err := LoadOrCreate(dir, init, clock)
	if err != nil {
		t.Fatal(err)
	}
	prevDir := filepath.Join(dir, "ca", PreviousDir, old.Issuer.ID)
	if prev := a.PreviousRAs(); len(prev) != 1 || !prev[0].Cert.Equal(oldRA.Cert) || prev[0].IsCA {
		t.Fatalf("previous RAs %v, want the old separate RA", prev)
	}

	keyPEM, err := os.ReadFile(filepath.Join(prevDir, RAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	// Never the key of an RA in service.
	if dropped, _, err := a.DropPreviousRA(a.RA.Cert, clock.Now()); dropped || err == nil {
		t.Errorf("DropPreviousRA of the RA in service: dropped=%v err=%v, want an error", dropped, err)
	}
	dropped, key, err := a.DropPreviousRA(oldRA.Cert, clock.Now())
	if err != nil || !dropped || key != filepath.Join(prevDir, RAKeyFile) {
		t.Fatalf("DropPreviousRA: dropped=%v key=%q err=%v", dropped, key, err)
	}
	for _, f := range []string{RAKeyFile, RACertFile} {
		if _, err := os.Stat(filepath.Join(prevDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still in %s (%v)", f, prevDir, err)
		}
	}
	if !readCert(t, filepath.Join(prevDir, RevokedRAFile)).Equal(oldRA.Cert) {
		t.Errorf("%s is not the revoked RA's certificate", RevokedRAFile)
	}
	noOldRA := func(a *Authority, when string) {
		t.Helper()
		for _, r := range a.RAs() {
			if r.Cert.Equal(oldRA.Cert) || r.Cert.Equal(old.Issuer.Cert) {
				t.Errorf("%s: %s still decrypts", when, r.Cert.Subject.CommonName)
			}
		}
		if prev := a.PreviousRAs(); len(prev) != 0 {
			t.Errorf("%s: previous RAs %v, want none", when, prev)
		}
		if len(a.Previous()) != 1 {
			t.Errorf("%s: %d previous issuers, want the old one kept", when, len(a.Previous()))
		}
	}
	noOldRA(a, "after the drop")
	if again, key, err := a.DropPreviousRA(oldRA.Cert, clock.Now()); again || key != "" || err != nil {
		t.Errorf("a second drop: dropped=%v key=%q err=%v", again, key, err)
	}
	b, _, err := LoadOrCreate(dir, init, clock)
	if err != nil {
		t.Fatal(err)
	}
	noOldRA(b, "after a restart")

	// Cut short: the marker written, the key and ra.crt still there (as a
	// key export made before the drop would bring them back). A read-only
	// load leaves them; a start destroys them.
	if err := os.WriteFile(filepath.Join(prevDir, RAKeyFile), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(prevDir, RACertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: oldRA.Cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	ro, err := Load(dir, clock)
	if err != nil {
		t.Fatal(err)
	}
	noOldRA(ro, "read-only load")
	if _, err := os.Stat(filepath.Join(prevDir, RAKeyFile)); err != nil {
		t.Errorf("a read-only load changed %s: %v", prevDir, err)
	}
	c, _, err := LoadOrCreate(dir, init, clock)
	if err != nil {
		t.Fatal(err)
	}
	noOldRA(c, "start after a drop cut short")
	for _, f := range []string{RAKeyFile, RACertFile} {
		if _, err := os.Stat(filepath.Join(prevDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the start left %s in %s (%v)", f, prevDir, err)
		}
	}
}
