package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pkitest"
)

// The server warns about the CA's own certificates within 90 days of
// their end, saying what to do, and not before; a scheduled rollover
// silences the issuing CA's warning.
func TestCAExpiryWarnings(t *testing.T) {
	dir := t.TempDir()
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	a, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
	if err != nil {
		t.Fatal(err)
	}
	issuer, ra := a.Active(clock.Now())
	if w := caExpiryWarnings(a, dir, clock.Now(), false); len(w) != 0 {
		t.Errorf("a new CA: %q, want no warning", w)
	}
	raSoon := ra.Cert.NotAfter.Add(-30 * 24 * time.Hour)
	w := caExpiryWarnings(a, dir, raSoon, false)
	if len(w) != 1 || !strings.Contains(w[0], "SCEP RA certificate expires on") || !strings.Contains(w[0], "in 30 days") ||
		!strings.Contains(w[0], "renews it by itself") || !strings.Contains(w[0], "scepter ca renew-ra") || strings.Contains(w[0], "stop the server") {
		t.Errorf("30 days before the RA's end: %q", w)
	}
	// Nodes sharing a PostgreSQL store do not renew it by themselves: the
	// warning says how to, on one node, and how to bring it to the others.
	w = caExpiryWarnings(a, dir, raSoon, true)
	if len(w) != 1 || strings.Contains(w[0], "by itself") || !strings.Contains(w[0], "scepter ca renew-ra") ||
		!strings.Contains(w[0], "export-keys") || !strings.Contains(w[0], "import-keys") {
		t.Errorf("30 days before the RA's end, on PostgreSQL: %q", w)
	}
	if w := caExpiryWarnings(a, dir, ra.Cert.NotAfter.Add(-91*24*time.Hour), false); len(w) != 0 {
		t.Errorf("91 days before the RA's end: %q, want none", w)
	}
	if w := caExpiryWarnings(a, dir, ra.Cert.NotAfter.Add(-30*time.Minute), false); len(w) != 1 || !strings.Contains(w[0], "in 30 minutes") {
		t.Errorf("30 minutes before the RA's end: %q, want it said in minutes", w)
	}
	issuerSoon := issuer.Cert.NotAfter.Add(-10 * 24 * time.Hour)
	w = caExpiryWarnings(a, dir, issuerSoon, false)
	if !strings.Contains(strings.Join(w, "\n"), "issuing CA certificate expires on") || !strings.Contains(strings.Join(w, "\n"), "scepter ca rollover") {
		t.Errorf("10 days before the issuing CA's end: %q", w)
	}
	// The issuing CA acting as RA (no RA certificate of its own to expire
	// first), with a rollover scheduled: no issuing CA warning.
	dir2 := t.TempDir()
	c, _, err := ca.LoadOrCreate(dir2, ca.InitOptions{GenerateKey: testKeys.Generate, RAMode: ca.RAModeCA, KeyType: "rsa2048"}, clock)
	if err != nil {
		t.Fatal(err)
	}
	issuer2, _ := c.Active(clock.Now())
	soon2 := issuer2.Cert.NotAfter.Add(-10 * 24 * time.Hour)
	if w := caExpiryWarnings(c, dir2, soon2, false); len(w) != 1 || !strings.Contains(w[0], "issuing CA certificate") {
		t.Errorf("10 days before its end, no rollover: %q", w)
	}
	if _, _, err := ca.Rollover(dir2, ca.RolloverOptions{SwitchAt: soon2.Add(24 * time.Hour), GenerateKey: testKeys.Generate}, pkitest.NewClock(soon2)); err != nil {
		t.Fatal(err)
	}
	b, _, err := ca.LoadOrCreate(dir2, ca.InitOptions{GenerateKey: testKeys.Generate, RAMode: ca.RAModeCA, KeyType: "rsa2048"}, pkitest.NewClock(soon2))
	if err != nil {
		t.Fatal(err)
	}
	if w := caExpiryWarnings(b, dir2, soon2, false); len(w) != 0 {
		t.Errorf("with a rollover scheduled: %q, want none", w)
	}
}

// An RA certificate that a new one could not outlast (the issuing CA ends
// within the warning too) points to a rollover, not to a new RA; an RA
// whose CA is scheduled to be replaced before the RA's end is not warned
// about at all: the next CA has an RA of its own.
func TestRAExpiryWarningWithTheIssuingCAEndingToo(t *testing.T) {
	dir := t.TempDir()
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if _, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock); err != nil {
		t.Fatal(err)
	}
	a, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := a.Active(clock.Now())
	// Eight days before the issuing CA's end, its RA made afresh then
	// (cut short to the CA's end).
	late := issuer.Cert.NotAfter.Add(-8 * 24 * time.Hour)
	lateClock := pkitest.NewClock(late)
	for _, f := range []string{ca.RACertFile, ca.RAKeyFile} {
		if err := os.Remove(filepath.Join(dir, "ca", f)); err != nil {
			t.Fatal(err)
		}
	}
	b, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, lateClock)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(caExpiryWarnings(b, dir, late, false), "\n")
	if !strings.Contains(w, "SCEP RA certificate") || !strings.Contains(w, "a new one would end with the issuing CA") || strings.Contains(w, "remove ") {
		t.Errorf("RA and CA ending together: %q, want the RA warning to point to a rollover", w)
	}
	if _, _, err := ca.Rollover(dir, ca.RolloverOptions{SwitchAt: late.Add(24 * time.Hour), GenerateKey: testKeys.Generate}, lateClock); err != nil {
		t.Fatal(err)
	}
	c, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, lateClock)
	if err != nil {
		t.Fatal(err)
	}
	if w := caExpiryWarnings(c, dir, late, false); len(w) != 0 {
		t.Errorf("with a rollover scheduled before both ends: %q, want none", w)
	}
}
