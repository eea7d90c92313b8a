package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// caDataDir makes a data directory as 'scepter serve' leaves it: a CA and
// a database.
func caDataDir(t *testing.T, opts ca.InitOptions) (string, *ca.Authority) {
	t.Helper()
	dir := t.TempDir()
	a, _, err := ca.LoadOrCreate(dir, opts, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return dir, a
}

func TestCARollover(t *testing.T) {
	ctx := context.Background()
	dir, cur := caDataDir(t, ca.InitOptions{})
	// The command reads pki.SystemClock; so does the test.
	clock := pki.SystemClock{}
	switchAt := clock.Now().Add(72 * time.Hour).Truncate(time.Second)

	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"ca", "rollover", "--switch-at", switchAt.Format(time.RFC3339), "--key-type", "p384", "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(dir, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	next, nextRA, ok := a.Next(clock.Now())
	if !ok {
		t.Fatal("no next CA after ca rollover")
	}
	if at, _ := a.SwitchAt(); !at.Equal(switchAt) {
		t.Errorf("switch at %v, want %v", at, switchAt)
	}
	if a.Issuer.ID != cur.Issuer.ID || nextRA.IsCA {
		t.Error("current CA changed, or the next RA is not separate")
	}
	for _, want := range []string{"subject:     " + next.Cert.Subject.String(), "fingerprint: " + ca.Fingerprint(next.Cert),
		"key type:    p384", "switch at:   " + switchAt.Format(time.RFC3339), "RA:          " + nextRA.Cert.Subject.String()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.NextDir, ca.SwitchAtFile)); err != nil {
		t.Error(err)
	}

	// Audited.
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventCARollover})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].IssuerID != next.ID || evs[0].Outcome != "success" || !strings.HasPrefix(evs[0].Actor, "cli") ||
		!strings.Contains(evs[0].Detail, ca.Fingerprint(cur.Issuer.Cert)) {
		t.Errorf("audit events: %+v", evs)
	}

	// ca show lists root, current and next.
	e, out, _ = testEnv(nil)
	if err := run(ctx, e, []string{"ca", "show", "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	show := out.String()
	for _, want := range []string{"Root CA\n  subject:     " + cur.Root.Subject.String(), "fingerprint: " + cur.RootFingerprint(),
		"Current issuing CA\n  subject:     " + cur.Issuer.Cert.Subject.String(), "issuer id:   " + cur.Issuer.ID,
		"Next issuing CA (becomes current at " + switchAt.Format(time.RFC3339) + ")\n  subject:     " + next.Cert.Subject.String(),
		"Previous issuing CAs\n  none"} {
		if !strings.Contains(show, want) {
			t.Errorf("ca show lacks %q:\n%s", want, show)
		}
	}

	// A second rollover is refused while the first is pending.
	e, _, _ = testEnv(nil)
	err = run(ctx, e, []string{"ca", "rollover", "--switch-in", "24h", "--data-dir", dir})
	if err == nil || !strings.Contains(err.Error(), "already exists") || exitCode(err) != 1 {
		t.Fatalf("second rollover: err = %v", err)
	}
}

func TestCARolloverDefaultsAndModeCA(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{KeyType: "rsa2048", RAMode: ca.RAModeCA})
	e, out, _ := testEnv(map[string]string{"SCEPTER_DATA_DIR": dir})
	clock := pki.SystemClock{}
	before := clock.Now()
	if err := run(context.Background(), e, []string{"ca", "rollover"}); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(dir, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	next, ra, ok := a.Next(clock.Now())
	at, _ := a.SwitchAt()
	if !ok || !ra.IsCA || !ra.Cert.Equal(next.Cert) {
		t.Fatal("the next CA does not act as RA like the current one")
	}
	if d := at.Sub(before); d < defaultSwitchIn-time.Minute || d > defaultSwitchIn+time.Minute {
		t.Errorf("switch in %v, want %v", d, defaultSwitchIn)
	}
	if !strings.Contains(out.String(), "key type:    rsa2048") || !strings.Contains(out.String(), "RA mode ca") {
		t.Errorf("output:\n%s", out)
	}
}

func TestCAUsageErrors(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	tests := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"ca"}, "usage: scepter ca rollover", 2},
		{[]string{"ca", "frobnicate"}, "usage", 2},
		{[]string{"ca", "rollover", "--switch-at", "2030-01-01T00:00:00Z", "--switch-in", "24h"}, "exclude each other", 2},
		{[]string{"ca", "rollover", "--switch-at", "tomorrow"}, "RFC 3339", 2},
		{[]string{"ca", "rollover", "--switch-in", "-1h"}, "positive", 2},
		{[]string{"ca", "rollover", "--key-type", "dsa"}, "--key-type", 2},
		{[]string{"ca", "rollover", "--scep-ra", "both"}, "--scep-ra", 2},
		{[]string{"ca", "show", "extra"}, "unexpected arguments", 2},
		{[]string{"ca", "rollover", "--switch-at", "2020-01-01T00:00:00Z"}, "not in the future", 1},
		{[]string{"ca", "rollover", "--key-type", "p256", "--scep-ra", "ca"}, "needs an RSA CA key", 1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			e, _, _ := testEnv(nil)
			err := run(context.Background(), e, append(tt.args, "--data-dir", dir))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if exitCode(err) != tt.code {
				t.Errorf("exit code %d, want %d", exitCode(err), tt.code)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.NextDir)); err == nil {
		t.Error("a refused rollover created next/")
	}
}

func TestCACommandsNeedACA(t *testing.T) {
	for _, args := range [][]string{{"ca", "rollover"}, {"ca", "show"}} {
		e, _, _ := testEnv(nil)
		dir := t.TempDir()
		err := run(context.Background(), e, append(args, "--data-dir", dir))
		if err == nil || !strings.Contains(err.Error(), "scepter serve") {
			t.Errorf("%v: err = %v", args, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%v created files in an empty data directory", args)
		}
	}
}
