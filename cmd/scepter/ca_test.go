package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// caDataDir makes a data directory as 'scepter serve' leaves it: a CA and
// a database.
func caDataDir(t *testing.T, opts ca.InitOptions) (string, *ca.Authority) {
	t.Helper()
	dir := t.TempDir()
	if opts.GenerateKey == nil {
		opts.GenerateKey = testKeys.Generate
	}
	a, _, err := ca.LoadOrCreate(dir, opts, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	// A copy of a migrated database: these tests are of the CA commands,
	// and applying every migration per data directory cost a twentieth of
	// this package's test CPU.
	sqlitetest.Create(t, filepath.Join(dir, "scepter.db"))
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
		// Given as 0 is not "not given": no silent default.
		{[]string{"ca", "rollover", "--switch-in", "0s"}, "must be positive", 2},
		{[]string{"ca", "rollover", "--switch-in", "0"}, "must be positive", 2},
		{[]string{"ca", "renew-ra", "--validity", "0s"}, "must be positive", 2},
		{[]string{"ca", "renew-ra", "--validity", "-24h"}, "must be positive", 2},
		{[]string{"ca", "root", "crl", "--validity", "0s"}, "must be positive", 2},
		{[]string{"ca", "root", "crl", "--validity", "1s"}, "expired before it reached them", 2},
		{[]string{"ca", "rollover", "--key-type", "dsa"}, "--key-type", 2},
		{[]string{"ca", "rollover", "--scep-ra", "both"}, "--scep-ra", 2},
		{[]string{"ca", "show", "extra"}, "unexpected arguments", 2},
		{[]string{"ca", "root"}, "usage: scepter ca root export", 2},
		{[]string{"ca", "root", "import"}, "usage: scepter ca root export", 2},
		{[]string{"ca", "root", "export"}, "--out is required", 2},
		// Values out of range name their flag and exit 2, as their siblings do.
		{[]string{"ca", "rollover", "--switch-at", "2020-01-01T00:00:00Z"}, "--switch-at 2020-01-01T00:00:00Z: the switch time 2020-01-01T00:00:00Z is not in the future", 2},
		{[]string{"ca", "rollover", "--switch-at", "2999-01-01T00:00:00Z"}, "--switch-at 2999-01-01T00:00:00Z: the switch time 2999-01-01T00:00:00Z is after the current issuing CA expires", 2},
		{[]string{"ca", "rollover", "--switch-in", "876000h"}, "--switch-in 876000h0m0s: the switch time", 2},
		{[]string{"ca", "rollover", "--key-type", "p256", "--scep-ra", "ca"}, `--scep-ra ca: RA mode "ca" needs an RSA CA key`, 2},
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
	// A 0 from the environment is refused as well.
	for _, tt := range []struct {
		name string
		args []string
	}{{"SCEPTER_SWITCH_IN", []string{"rollover"}}, {"SCEPTER_VALIDITY", []string{"renew-ra"}}} {
		_, _, err := runCA(t, map[string]string{tt.name: "0s"}, dir, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.name) || !strings.Contains(err.Error(), "must be positive") || exitCode(err) != 2 {
			t.Errorf("%s=0s ca %v: %v", tt.name, tt.args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.NextDir)); err == nil {
		t.Error("a refused rollover created next/")
	}
}

func TestCACommandsNeedACA(t *testing.T) {
	for _, args := range [][]string{{"ca", "rollover"}, {"ca", "show"}, {"ca", "root", "export", "--out", filepath.Join(t.TempDir(), "k")}} {
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

// runCA runs a ca command against dir with the given environment and
// returns stdout, stderr and the error.
func runCA(t *testing.T, vars map[string]string, dir string, args ...string) (string, string, error) {
	t.Helper()
	e, out, errb := testEnv(vars)
	err := run(context.Background(), e, append(append([]string{"ca"}, args...), "--data-dir", dir))
	return out.String(), errb.String(), err
}

func writePassFile(t *testing.T, pass string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(path, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The root key taken offline: export --remove, show, and a rollover that
// must be given the key.
func TestCARootExportRemoveThenRollover(t *testing.T) {
	dir, a := caDataDir(t, ca.InitOptions{})
	rootKey := filepath.Join(dir, "ca", ca.RootKeyFile)
	out := filepath.Join(t.TempDir(), "offline", "root.key")
	os.MkdirAll(filepath.Dir(out), 0o700)

	stdout, stderr, err := runCA(t, nil, dir, "root", "export", "--out", out, "--remove")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Root CA key written to " + out + " (not encrypted, mode 0600) and checked against root.crt",
		"Removed " + rootKey, "scepter ca rollover --data-dir " + dir + " --root-key " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "is not encrypted") {
		t.Errorf("no advice about the unencrypted copy:\n%s", stderr)
	}
	if _, err := os.Stat(rootKey); err == nil {
		t.Fatal("root.key not removed")
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("copy: %v", err)
	}
	k, err := keys.LoadKeyFile(out)
	if err != nil || !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(a.Root.PublicKey) {
		t.Fatalf("the copy is not the root key: %v", err)
	}

	// Audited.
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventCARootKeyExported})
	st.Close()
	if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Detail, out) || !strings.Contains(evs[0].Detail, "removed") ||
		!strings.Contains(evs[0].Detail, a.RootFingerprint()) {
		t.Errorf("audit: %+v, %v", evs, err)
	}

	// ca show and Load do not need it; show says it is gone.
	stdout, _, err = runCA(t, nil, dir, "show")
	if err != nil || !strings.Contains(stdout, "root key:    not on this server") {
		t.Errorf("ca show: %v\n%s", err, stdout)
	}
	// A second export finds nothing to export.
	_, _, err = runCA(t, nil, dir, "root", "export", "--out", out+".2")
	if err == nil || !strings.Contains(err.Error(), "exported and removed already") || exitCode(err) != 1 {
		t.Errorf("second export: %v", err)
	}

	// A rollover without the key names the flag; with it, it works.
	_, _, err = runCA(t, nil, dir, "rollover", "--switch-in", "48h")
	if err == nil || !strings.Contains(err.Error(), "--root-key FILE") || exitCode(err) != 1 {
		t.Fatalf("rollover without the root key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.NextDir)); err == nil {
		t.Fatal("a refused rollover made next/")
	}
	stdout, _, err = runCA(t, nil, dir, "rollover", "--switch-in", "48h", "--root-key", out)
	if err != nil || !strings.Contains(stdout, "Next issuing CA created") {
		t.Fatalf("rollover --root-key: %v\n%s", err, stdout)
	}
	if _, err := os.Stat(rootKey); err == nil {
		t.Error("the rollover put root.key back")
	}
}

// An encrypted copy: written with --passphrase-file (openssl reads it),
// and a rollover from it asks for the passphrase by flag or environment.
func TestCARootExportEncryptedThenRollover(t *testing.T) {
	dir, a := caDataDir(t, ca.InitOptions{})
	pass := writePassFile(t, "offline passphrase")
	out := filepath.Join(t.TempDir(), "root.key")
	// A passphrase shorter than an export of the issuing keys takes is
	// refused, and the key stays where it was.
	if _, _, err := runCA(t, nil, dir, "root", "export", "--out", out, "--passphrase-file", writePassFile(t, "a"), "--remove"); err == nil ||
		!strings.Contains(err.Error(), "at least") {
		t.Fatalf("a one-character passphrase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.RootKeyFile)); err != nil {
		t.Fatalf("the refused export removed the root key: %v", err)
	}
	stdout, stderr, err := runCA(t, nil, dir, "root", "export", "--out", out, "--passphrase-file", pass, "--remove")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "(encrypted, mode 0600)") || strings.Contains(stderr, "not encrypted") {
		t.Errorf("output:\n%s\n%s", stdout, stderr)
	}
	// The rollover it suggests names the passphrase the copy needs.
	if !strings.Contains(stdout, "--root-key "+out+" --root-key-passphrase-file F") {
		t.Errorf("the suggested rollover lacks --root-key-passphrase-file:\n%s", stdout)
	}
	if enc, err := keys.KeyFileEncrypted(out); err != nil || !enc {
		t.Fatalf("copy not encrypted: %v", err)
	}
	if bin, err := exec.LookPath("openssl"); err == nil {
		o, err := exec.Command(bin, "pkey", "-in", out, "-passin", "file:"+pass, "-pubout").CombinedOutput()
		spki, _ := x509.MarshalPKIXPublicKey(a.Root.PublicKey)
		if err != nil || !strings.Contains(string(o), base64.StdEncoding.EncodeToString(spki)[:40]) {
			t.Errorf("openssl pkey: %v\n%s", err, o)
		}
	}

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // "" for success
	}{
		{"no passphrase", nil, nil, "--root-key-passphrase-file FILE or the environment variable SCEPTER_ROOT_KEY_PASSPHRASE"},
		{"wrong passphrase file", nil, []string{"--root-key-passphrase-file", writePassFile(t, "offline passphrasE")}, "wrong passphrase"},
		{"wrong environment", map[string]string{"SCEPTER_ROOT_KEY_PASSPHRASE": "nope"}, nil, "wrong passphrase"},
		// An empty variable counts as unset, as every SCEPTER_ variable.
		{"empty environment", map[string]string{"SCEPTER_ROOT_KEY_PASSPHRASE": ""}, nil, "--root-key-passphrase-file FILE or the environment variable SCEPTER_ROOT_KEY_PASSPHRASE"},
		{"passphrase file", nil, []string{"--root-key-passphrase-file", pass}, ""},
		{"environment", map[string]string{"SCEPTER_ROOT_KEY_PASSPHRASE": "offline passphrase"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(filepath.Join(dir, "ca", ca.NextDir))
			args := append([]string{"rollover", "--switch-in", "48h", "--root-key", out}, tt.args...)
			stdout, _, err := runCA(t, tt.env, dir, args...)
			if tt.want == "" {
				if err != nil || !strings.Contains(stdout, "Next issuing CA created") {
					t.Fatalf("err = %v\n%s", err, stdout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 1 {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "ca", ca.NextDir)); err == nil {
				t.Error("a refused rollover made next/")
			}
		})
	}
}

// A CA created with an encrypted root.key: show says so, rollover and
// export need the passphrase.
func TestCAEncryptedRootKeyOnDisk(t *testing.T) {
	pass := writePassFile(t, "on-disk passphrase")
	dir, _ := caDataDir(t, ca.InitOptions{RootKeyPassphrase: func() ([]byte, error) { return keys.ReadPassphraseFile(pass) }})
	rootKey := filepath.Join(dir, "ca", ca.RootKeyFile)
	stdout, _, err := runCA(t, nil, dir, "show")
	if err != nil || !strings.Contains(stdout, "root key:    in "+rootKey+" (encrypted)") {
		t.Fatalf("ca show: %v\n%s", err, stdout)
	}
	_, _, err = runCA(t, nil, dir, "rollover", "--switch-in", "48h")
	if err == nil || !strings.Contains(err.Error(), "is encrypted") || !strings.Contains(err.Error(), "--root-key-passphrase-file") {
		t.Fatalf("rollover without passphrase: %v", err)
	}
	// Export without the passphrase is refused (the copy could not be
	// checked), and root.key stays.
	out := filepath.Join(t.TempDir(), "root.key")
	_, _, err = runCA(t, nil, dir, "root", "export", "--out", out, "--remove")
	if err == nil || !strings.Contains(err.Error(), "SCEPTER_ROOT_KEY_PASSPHRASE") {
		t.Fatalf("export without passphrase: %v", err)
	}
	if _, err := os.Stat(rootKey); err != nil {
		t.Fatal("root.key removed by a refused export")
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a copy was left by a refused export")
	}
	// With it, a byte-for-byte copy.
	before, _ := os.ReadFile(rootKey)
	if _, _, err := runCA(t, map[string]string{"SCEPTER_ROOT_KEY_PASSPHRASE": "on-disk passphrase"}, dir, "root", "export", "--out", out, "--remove"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Error("the copy differs from root.key")
	}
	stdout, _, err = runCA(t, nil, dir, "rollover", "--switch-in", "48h", "--root-key", out, "--root-key-passphrase-file", pass)
	if err != nil || !strings.Contains(stdout, "Next issuing CA created") {
		t.Fatalf("rollover: %v", err)
	}
}

func TestCARootExportRefusesExistingFile(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	out := filepath.Join(t.TempDir(), "exists")
	os.WriteFile(out, []byte("keep"), 0o600)
	_, _, err := runCA(t, nil, dir, "root", "export", "--out", out, "--remove")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep" {
		t.Error("existing file overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.RootKeyFile)); err != nil {
		t.Error("root.key removed")
	}
	// An unreadable --passphrase-file is refused before anything is written.
	_, _, err = runCA(t, nil, dir, "root", "export", "--out", out+".2", "--passphrase-file", filepath.Join(t.TempDir(), "missing"))
	if err == nil || !strings.Contains(err.Error(), "--passphrase-file") {
		t.Fatalf("missing passphrase file: %v", err)
	}
	// With --remove, a copy inside the data directory is refused: the key
	// would not leave the server.
	inside := filepath.Join(dir, "root-offline.pem")
	_, _, err = runCA(t, nil, dir, "root", "export", "--out", inside, "--remove")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "must leave this server") {
		t.Errorf("--remove into the data dir: %v (exit %d), want exit 2", err, exitCode(err))
	}
	if _, serr := os.Stat(inside); serr == nil {
		t.Error("the refused export wrote its copy")
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.RootKeyFile)); err != nil {
		t.Error("root.key removed by the refused export")
	}
	// Without --remove, a copy inside the data directory is allowed, with
	// a warning.
	_, stderr, err := runCA(t, nil, dir, "root", "export", "--out", filepath.Join(dir, "root-copy.key"))
	if err != nil || !strings.Contains(stderr, "inside the data directory") {
		t.Errorf("copy inside the data dir: %v\n%s", err, stderr)
	}
}

// Regression: commands that inspect the CA, and the server, never read
// root.key; the old code failed on a damaged or missing one.
func TestCACommandsAndServeWithoutRootKey(t *testing.T) {
	for _, tt := range []struct {
		name     string
		damage   func(path string)
		show     string
		warnWant string
	}{
		{"removed", func(p string) { os.Remove(p) }, "root key:    not on this server", ""},
		{"garbage", func(p string) { os.WriteFile(p, []byte("garbage"), 0o600) }, "(not a readable key file", "not a readable key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := caDataDir(t, ca.InitOptions{})
			tt.damage(filepath.Join(dir, "ca", ca.RootKeyFile))
			stdout, _, err := runCA(t, nil, dir, "show")
			if err != nil || !strings.Contains(stdout, tt.show) {
				t.Errorf("ca show: %v\n%s", err, stdout)
			}
			if _, err := ca.Load(dir, nil); err != nil {
				t.Errorf("Load: %v", err)
			}
			stdout, stderr, err := serveOnce(t, "--data-dir", dir)
			if err != nil || !strings.Contains(stdout, "Root CA fingerprint:") {
				t.Fatalf("serve: %v\n%s\n%s", err, stdout, stderr)
			}
			if strings.Contains(stdout, "Root CA key:") || strings.Contains(stderr, "not encrypted") {
				t.Errorf("serve reports an unencrypted root key:\n%s\n%s", stdout, stderr)
			}
			if !strings.Contains(stderr, tt.warnWant) {
				t.Errorf("serve log lacks %q:\n%s", tt.warnWant, stderr)
			}
		})
	}
}

// serve says where the root key is: a start-up line when it created the
// CA, a warning on every start while root.key is unencrypted; with
// --root-key-passphrase-file a new CA's root.key is encrypted, and the flag
// is ignored (with a note) for an existing CA.
func TestServeReportsRootKey(t *testing.T) {
	t.Run("unencrypted", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		rootKey := filepath.Join(dir, "ca", ca.RootKeyFile)
		stdout, stderr, err := serveOnce(t, "--data-dir", dir)
		if err != nil {
			t.Fatal(err)
		}
		want := "Root CA key:         " + rootKey + " (not encrypted); take it offline: scepter ca root export --data-dir " + dir + " --out FILE --remove"
		if !strings.Contains(stdout, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, stdout)
		}
		warn := "level=WARN msg=\"the root CA key is on this server, not encrypted"
		if !strings.Contains(stderr, warn) || !strings.Contains(stderr, "path="+rootKey) {
			t.Errorf("no warning:\n%s", stderr)
		}
		// A later start: the warning, not the line; the passphrase flag is
		// ignored.
		stdout, stderr, err = serveOnce(t, "--data-dir", dir, "--root-key-passphrase-file", filepath.Join(t.TempDir(), "missing"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stdout, "Root CA key:") || !strings.Contains(stderr, warn) || !strings.Contains(stderr, "--root-key-passphrase-file ignored") {
			t.Errorf("second start:\n%s\n%s", stdout, stderr)
		}
		if enc, _ := keys.KeyFileEncrypted(rootKey); enc {
			t.Error("an existing root.key was encrypted")
		}
	})
	t.Run("encrypted", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		rootKey := filepath.Join(dir, "ca", ca.RootKeyFile)
		pass := writePassFile(t, "first start passphrase")
		stdout, stderr, err := serveOnce(t, "--data-dir", dir, "--root-key-passphrase-file", pass)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout, "Root CA key:         "+rootKey+" (encrypted)") || strings.Contains(stderr, "not encrypted") {
			t.Errorf("start-up:\n%s\n%s", stdout, stderr)
		}
		if fi, err := os.Stat(rootKey); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("root.key: %v", err)
		}
		if bin, err := exec.LookPath("openssl"); err == nil {
			if o, err := exec.Command(bin, "pkey", "-in", rootKey, "-passin", "file:"+pass, "-noout").CombinedOutput(); err != nil {
				t.Errorf("openssl cannot read root.key: %v\n%s", err, o)
			}
		}
	})
	t.Run("empty passphrase file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		empty := filepath.Join(t.TempDir(), "empty")
		os.WriteFile(empty, nil, 0o600)
		_, _, err := serveOnce(t, "--data-dir", dir, "--root-key-passphrase-file", empty)
		if err == nil || !strings.Contains(err.Error(), "passphrase") {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "ca")); err == nil {
			t.Error("a CA was created")
		}
	})
	t.Run("loose key file", func(t *testing.T) {
		dir, _ := caDataDir(t, ca.InitOptions{})
		key := filepath.Join(dir, "ca", ca.IssuingKeyFile)
		os.Chmod(key, 0o644)
		_, _, err := serveOnce(t, "--data-dir", dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+key) {
			t.Fatalf("err = %v", err)
		}
	})
}

// Two nodes on one store: once one node's next CA is recorded there, a
// rollover on the other is refused and makes nothing, where it used to
// make a second next CA that the other node then served by GetNextCACert
// and was not ready with.
func TestCARolloverRefusedWhileTheStoreSchedulesAnother(t *testing.T) {
	ctx := context.Background()
	dir1, _ := caDataDir(t, ca.InitOptions{})
	dir2 := t.TempDir()
	if o, err := exec.Command("cp", "-a", filepath.Join(dir1, "ca"), filepath.Join(dir2, "ca")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, o)
	}
	st2, err := sqlite.Open(ctx, filepath.Join(dir2, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	st2.Close()
	if _, _, err := runCA(t, nil, dir2, "rollover", "--switch-in", "48h"); err != nil {
		t.Fatal(err)
	}
	node2, err := ca.Load(dir2, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	next2, _, _ := node2.Next(pki.SystemClock{}.Now())

	// Node 2's server records its CA and next CA in the shared store
	// (dir1's database stands for it).
	st, err := sqlite.Open(ctx, filepath.Join(dir1, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	sync := &cashare.Syncer{Store: st, Authority: node2, Clock: pki.SystemClock{}, Node: "node2", Log: slog.New(slog.DiscardHandler)}
	err = sync.Sync(ctx)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	_, _, err = runCA(t, nil, dir1, "rollover", "--switch-in", "24h")
	if err == nil || !errors.Is(err, cashare.ErrRolloverUnderWay) || !strings.Contains(err.Error(), next2.ID) ||
		!strings.Contains(err.Error(), "import-keys") {
		t.Fatalf("rollover on node 1: err = %v, want one naming node 2's next CA %s", err, next2.ID)
	}
	if _, err := os.Stat(filepath.Join(dir1, "ca", ca.NextDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("node 1 made a next CA anyway: %v", err)
	}

	// Node 2 itself is told, as before, that its next CA exists.
	_, _, err = runCA(t, nil, dir2, "rollover", "--switch-in", "24h")
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second rollover on node 2: err = %v", err)
	}
}

// TestCARolloverDiscard: a next CA that a server recorded in the store is
// discarded from the store and the data directory, audited, and a new
// rollover is possible at once (removing DATA/ca/next by hand was a dead
// end: the store kept scheduling it).
func TestCARolloverDiscard(t *testing.T) {
	ctx := context.Background()
	dir, _ := caDataDir(t, ca.InitOptions{})
	if _, _, err := runCA(t, nil, dir, "rollover", "--switch-in", "48h"); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(dir, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	next, _, _ := a.Next(pki.SystemClock{}.Now())
	openStore := func() store.Store {
		st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	// A server records it.
	st := openStore()
	sync := &cashare.Syncer{Store: st, Authority: a, Clock: pki.SystemClock{}, Node: "node", Log: slog.New(slog.DiscardHandler)}
	if err := sync.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if _, _, err := runCA(t, nil, dir, "rollover", "--discard", "--switch-in", "1h"); err == nil || !strings.Contains(err.Error(), "--discard takes no other") {
		t.Errorf("--discard with --switch-in: %v", err)
	}
	out, _, err := runCA(t, nil, dir, "rollover", "--discard")
	if err != nil || !strings.Contains(out, next.ID) || !strings.Contains(out, "from the store and") {
		t.Fatalf("--discard: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.NextDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DATA/ca/next left: %v", err)
	}
	st = openStore()
	if gens, err := st.CAGenerations(ctx); err != nil || len(gens) != 1 {
		t.Errorf("store after the discard: %d generations, %v", len(gens), err)
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventCARollover, Limit: 10})
	if err != nil || len(evs) != 2 || !strings.Contains(evs[0].Detail+evs[1].Detail, "discarded") {
		t.Errorf("audit: %+v, %v", evs, err)
	}
	st.Close()

	// On a store that records the CA, a rollover is recorded at once (so
	// that another node's is refused), and discarded from there too.
	if _, _, err := runCA(t, nil, dir, "rollover", "--switch-in", "24h"); err != nil {
		t.Fatalf("rollover after the discard: %v", err)
	}
	if out, _, err := runCA(t, nil, dir, "rollover", "--discard"); err != nil || !strings.Contains(out, "from the store and") {
		t.Errorf("discarding the recorded next CA: %v\n%s", err, out)
	}
	if _, _, err := runCA(t, nil, dir, "rollover", "--discard"); !errors.Is(err, cashare.ErrNothingToDiscard) {
		t.Errorf("nothing left to discard: %v", err)
	}
}

// removingToken is a keys.Token that records the references it is asked
// to destroy, failing for those in fail.
type removingToken struct {
	keys.Token
	removed []string
	fail    map[string]bool
}

func (t *removingToken) RemoveRef(ref string) error {
	if t.fail[ref] {
		return errors.New("CKR_DEVICE_ERROR")
	}
	t.removed = append(t.removed, ref)
	return nil
}

func (t *removingToken) Describe() string { return "PKCS#11 token ca" }

func (t *removingToken) OpenRef(ref string) (crypto.Signer, error) {
	return nil, fmt.Errorf("%s: %w", ref, keys.ErrKeyNotFound)
}

// After a discard, the next CA's keys in a token are destroyed when the
// token is given, never one another generation uses; without the token,
// or when the token refuses, the output names the keys left to remove.
func TestDiscardTokenKeys(t *testing.T) {
	const (
		iss    = "pkcs11:token=ca;object=scepter-issuing-1a2b"
		ra     = "pkcs11:token=ca;object=scepter-ra-1a2b"
		shared = "pkcs11:token=ca;object=scepter-issuing"
	)
	discarded := []ca.NextTokenKey{{Ref: iss, RefFile: "next/issuing.pkcs11"}, {Ref: ra, RefFile: "next/ra.pkcs11"}, {Ref: shared, RefFile: "next/x.pkcs11", InUse: true}}
	// For the audit trail: role, URI, destroyed.
	type record struct {
		role, ref string
		ok        bool
	}
	tests := []struct {
		name        string
		token       *removingToken // nil: none given
		wantRemoved []string
		wantOut     []string
		notInOut    []string
		wantErr     string
		wantRecords []record
	}{
		{"token given", &removingToken{}, []string{iss, ra},
			[]string{"Key " + iss + " removed from PKCS#11 token ca", "Key " + ra + " removed", "Key " + shared + " kept in the token: another generation"},
			[]string{"still in the PKCS#11 token"}, "",
			[]record{{pki.KeyRoleIssuingCA, iss, true}, {pki.KeyRoleSCEPRA, ra, true}}},
		{"no token", nil, nil,
			[]string{"still in the PKCS#11 token", "  " + iss + "\n  " + ra + "\n", "Key " + shared + " kept"},
			[]string{"removed from"}, "", nil},
		{"token refuses one", &removingToken{fail: map[string]bool{ra: true}}, []string{iss},
			[]string{"Key " + iss + " removed"}, []string{"Key " + ra + " removed"}, ra,
			[]record{{pki.KeyRoleIssuingCA, iss, true}, {pki.KeyRoleSCEPRA, ra, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, out, _ := testEnv(nil)
			var token keys.Token
			if tt.token != nil {
				token = tt.token
			}
			records, err := discardTokenKeys(e, token, "1a2b", discarded)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want one naming %q", err, tt.wantErr)
			}
			if tt.token != nil && strings.Join(tt.token.removed, " ") != strings.Join(tt.wantRemoved, " ") {
				t.Errorf("destroyed %v, want %v", tt.token.removed, tt.wantRemoved)
			}
			var got []record
			for _, r := range records {
				if r.IssuerID != "1a2b" {
					t.Errorf("record %+v is not for issuer 1a2b", r)
				}
				ref := iss
				if strings.Contains(r.Where, ra) {
					ref = ra
				}
				if r.Err != nil && !strings.Contains(r.Err.Error(), "CKR_DEVICE_ERROR") {
					t.Errorf("record %+v does not say why the key was not destroyed", r)
				}
				got = append(got, record{r.Role, ref, r.Err == nil})
			}
			if !slices.Equal(got, tt.wantRecords) {
				t.Errorf("records for the audit trail %+v, want %+v", got, tt.wantRecords)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notInOut {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

// A passphrase file that is missing or whose first line is empty is a
// misconfigured flag, exit 2 naming it, as every other secret file is; and
// nothing is written.
func TestCAPassphraseFileRefusalsExit2(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	missing := filepath.Join(t.TempDir(), "missing")
	empty := writePassFile(t, "")
	for _, tc := range []struct {
		name string
		args []string
		flag string
	}{
		{"export-keys", []string{"export-keys", "--passphrase-file", missing}, "--passphrase-file"},
		{"export-keys empty", []string{"export-keys", "--passphrase-file", empty}, "--passphrase-file"},
		{"import-keys", []string{"import-keys", "--in", filepath.Join(t.TempDir(), "in"), "--passphrase-file", missing}, "--passphrase-file"},
		{"root export", []string{"root", "export", "--passphrase-file", missing}, "--passphrase-file"},
		{"root export, root key", []string{"root", "export", "--root-key-passphrase-file", missing}, "--root-key-passphrase-file"},
		{"rollover", []string{"rollover", "--root-key-passphrase-file", missing}, "--root-key-passphrase-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := tc.args
			if tc.name != "import-keys" && tc.name != "rollover" {
				args = append(args, "--out", out)
			}
			_, _, err := runCA(t, nil, dir, args...)
			if exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), tc.flag+": ") {
				t.Errorf("err = %v (exit %d), want exit 2 naming %s", err, exitCode(err), tc.flag)
			}
			if _, serr := os.Stat(out); serr == nil {
				t.Error("the refused command wrote its output")
			}
		})
	}
}
