package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
)

// A configuration whose profiles serve cannot honour is refused before
// the data directory, the store or the CA is touched: a refused start
// leaves no CA and no CRL behind to be taken for a working one.
func TestServeRefusesProfilesBeforeCreatingTheCA(t *testing.T) {
	webhookProfile := "[profiles.mdm]\nchallenge = \"webhook\"\n"
	tests := []struct {
		name   string
		config string
		args   []string
		want   string
	}{
		{"webhook profile without --webhook-url", webhookProfile, nil, "profiles [mdm] use the webhook challenge: set --webhook-url"},
		{"two webhook profiles, named in order", webhookProfile + "[profiles.byod]\nchallenge = \"webhook\"\n", nil,
			"profiles [byod mdm] use the webhook challenge"},
		{"manufacturer profile without --est-client-ca-file", "[profiles.iot]\nest_manufacturer_auth = true\n", nil,
			"profiles [iot] accept manufacturer certificates: set --est-client-ca-file"},
		{"unknown --challenge-profile", "", []string{"--challenge-profile", "nope"}, `--challenge-profile "nope" is not a configured profile`},
		{"unknown --default-profile", "", []string{"--default-profile", "nope"}, `--default-profile "nope" is not a configured profile`},
		{"unknown --ndes-profile", "", []string{"--ndes-user", "ndes", "--ndes-profile", "nope"}, `--ndes-profile "nope" is not a configured profile`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			config := filepath.Join(t.TempDir(), "scepter.toml")
			if err := os.WriteFile(config, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := serveOnce(t, append([]string{"--data-dir", dir, "--config", config}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want a usage error saying %q\n%s", err, exitCode(err), tt.want, stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "ca")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start created %s/ca (%v)", dir, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start created the data directory %s (%v)", dir, err)
			}
		})
	}
}

// The example configuration starts as shipped (its data directory and
// listeners aside, which are a production machine's): no profile in it
// needs a setting it leaves out.
func TestServeStartsWithTheExampleConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	stdout, stderr, err := serveOnceWith(t, nil, "--config", "../../examples/scepter.toml", "--data-dir", dir,
		"--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("serve --config examples/scepter.toml: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "SCEP URL:") {
		t.Errorf("no start-up lines:\n%s\n%s", stdout, stderr)
	}
}

// A setting read from a file or checked only when used (the static
// challenge, the NDES page, the webhooks, notifications, TLS) is refused
// before the data directory, the store or the CA is touched, like the
// profiles: a typo leaves no CA behind that the corrected start would then
// take for its own.
func TestServeRefusesSettingsBeforeCreatingTheCA(t *testing.T) {
	files := t.TempDir()
	empty := filepath.Join(files, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(files, "missing")
	plain := []string{"--est-listen", "off", "--challenge", "test"}
	https := []string{"--est-listen", "127.0.0.1:0", "--challenge", "test"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing --challenge-file", []string{"--est-listen", "off", "--challenge-file", missing}, "--challenge-file:"},
		{"empty --challenge-file", []string{"--est-listen", "off", "--challenge-file", empty}, "is empty"},
		{"--ndes-user without a password", slices.Concat(plain, []string{"--ndes-user", "ndes"}), "--ndes-user needs --ndes-password-file"},
		{"missing --ndes-password-file", slices.Concat(plain, []string{"--ndes-user", "ndes", "--ndes-password-file", missing}), "--ndes-password-file:"},
		{"empty --ndes-password-file", slices.Concat(plain, []string{"--ndes-user", "ndes", "--ndes-password-file", empty}), "is empty"},
		{"--ndes-user with a colon", slices.Concat(plain, []string{"--ndes-user", "a:b", "--ndes-password", "pw"}), "must not contain ':'"},
		{"--ndes-ttl out of range", slices.Concat(plain, []string{"--ndes-user", "ndes", "--ndes-password", "pw", "--ndes-ttl", "1s"}), "--ndes-ttl 1s"},
		// The page's settings without --ndes-user were dropped without a
		// word, and mscep.dll served the default profile (r105 D1).
		{"--ndes-password-file without --ndes-user", slices.Concat(plain, []string{"--ndes-password-file", empty}), "--ndes-password-file given (on the command line, in the environment or the config file), but the NDES page is off: --ndes-user turns it on"},
		{"--ndes-profile and --ndes-ttl without --ndes-user", slices.Concat(plain, []string{"--ndes-profile", "default", "--ndes-ttl", "0s"}), "--ndes-profile and --ndes-ttl given"},
		{"--ndes-password without --ndes-user", slices.Concat(plain, []string{"--ndes-password", "pw"}), "leave it out"},
		{"--ndes-ttl at its default without --ndes-user", slices.Concat(plain, []string{"--ndes-ttl", "1h"}), "--ndes-ttl given"},
		{"--smtp-url without --notify-from", slices.Concat(plain, []string{"--smtp-url", "smtps://mail.example.com"}), "needs --notify-from"},
		{"bad --smtp-starttls", slices.Concat(plain, []string{"--smtp-url", "smtp://mail.example.com", "--notify-from", "ca@example.com", "--smtp-starttls", "maybe"}), "--smtp-starttls"},
		{"missing --smtp-password-file", slices.Concat(plain, []string{"--smtp-url", "smtps://ca@mail.example.com", "--notify-from", "ca@example.com", "--smtp-password-file", missing}), "--smtp-password-file:"},
		{"bad --smtp-url", slices.Concat(plain, []string{"--smtp-url", "ftp://mail.example.com", "--notify-from", "ca@example.com"}), "--smtp-url:"},
		{"bad --notify-webhook-url", slices.Concat(plain, []string{"--notify-webhook-url", "ftp://hooks.example.com"}), "--notify-webhook-url:"},
		{"missing --notify-webhook-secret-file", slices.Concat(plain, []string{"--notify-webhook-url", "https://hooks.example.com", "--notify-webhook-secret-file", missing}), "--notify-webhook-secret-file:"},
		{"--notify-interval 0", slices.Concat(plain, []string{"--notify-interval", "0s"}), "--notify-interval must be positive"},
		{"bad --webhook-url", slices.Concat(plain, []string{"--webhook-url", "ftp://hooks.example.com"}), "URL scheme must be http or https"},
		{"missing --webhook-secret-file", slices.Concat(plain, []string{"--webhook-url", "https://hooks.example.com", "--webhook-secret-file", missing}), "--webhook-secret-file:"},
		{"missing --est-client-ca-file", slices.Concat(plain, []string{"--est-client-ca-file", missing}), "--est-client-ca-file:"},
		{"missing --weak-keys-file", slices.Concat(plain, []string{"--weak-keys-file", missing}), "--weak-keys-file:"},
		{"--est-retry-after below 1s", slices.Concat(plain, []string{"--est-retry-after", "500ms"}), "--est-retry-after must be at least 1s"},
		{"--tls-cert without --tls-key", slices.Concat(https, []string{"--tls-cert", missing}), "--tls-cert and --tls-key go together"},
		{"missing --tls-cert", slices.Concat(https, []string{"--tls-cert", missing, "--tls-key", missing}), "--tls-cert/--tls-key:"},
		{"--webhook-secret-file without --webhook-url", slices.Concat(plain, []string{"--webhook-secret-file", missing}), "--webhook-secret-file needs --webhook-url"},
		{"--notify-webhook-secret-file without --notify-webhook-url", slices.Concat(plain, []string{"--notify-webhook-secret-file", missing}), "--notify-webhook-secret-file needs --notify-webhook-url"},
		{"--rate-burst 0", slices.Concat(plain, []string{"--rate-burst", "0"}), "--rate-burst"},
		{"--pkcs11-uri without a module", slices.Concat(plain, []string{"--pkcs11-uri", "pkcs11:token=x"}), "module"},
		{"bad --tls-min-version", slices.Concat(https, []string{"--tls-min-version", "1.1"}), "--tls-min-version"},
		{"--tls-max-version below --tls-min-version", slices.Concat(https, []string{"--tls-min-version", "1.3", "--tls-max-version", "1.2"}), "--tls-max-version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			_, stderr, err := serveOnceWith(t, nil, append([]string{"--data-dir", dir, "--listen", "127.0.0.1:0"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q\n%s", err, tt.want, stderr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start created the data directory %s (%v)", dir, err)
			}
		})
	}
}

// A profile's issuer key must name exactly one issuing CA: a pin that
// names none is refused at start (exit 2), before a first start creates a
// CA it could not name, and after; one that names the CA is served. An
// enrollment at a pinned profile once answered 500.
func TestIssuerPinCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	config := func(pin string) string {
		p := filepath.Join(t.TempDir(), "scepter.toml")
		if err := os.WriteFile(p, []byte("[profiles.pinned]\nissuer = \""+pin+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, _, err := serveOnce(t, "--data-dir", dir, "--config", config("0123abcd"))
	if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), "holds no CA yet") {
		t.Fatalf("first start with a pin: %v (exit %d), want exit 2 saying there is no CA yet", err, exitCode(err))
	}
	for _, made := range []string{"ca", "scepter.db"} {
		if _, serr := os.Stat(filepath.Join(dir, made)); !os.IsNotExist(serr) {
			t.Errorf("the refused first start made %s (%v)", filepath.Join(dir, made), serr)
		}
	}
	if _, _, err := serveOnce(t, "--data-dir", dir); err != nil {
		t.Fatalf("first start: %v", err)
	}
	a, err := ca.Load(dir, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	id := a.Issuers()[0].ID
	wrong := "00000000"
	if strings.HasPrefix(id, wrong) {
		wrong = "11111111"
	}
	_, _, err = serveOnce(t, "--data-dir", dir, "--config", config(wrong))
	if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), "names none of this CA's issuing CAs") {
		t.Errorf("a pin naming no CA: %v (exit %d), want exit 2", err, exitCode(err))
	}
	if _, _, err := serveOnce(t, "--data-dir", dir, "--config", config(strings.ToUpper(id[:12]))); err != nil {
		t.Errorf("a pin naming the CA: %v", err)
	}

	// r87 D5: a pin naming the next CA, scheduled, is refused, saying
	// that it names the next CA and when it switches, not that it names
	// none of this CA's issuing CAs ('ca show' lists it).
	if _, _, err := runCA(t, nil, dir, "rollover", "--switch-in", "720h"); err != nil {
		t.Fatal(err)
	}
	a, err = ca.Load(dir, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	next, _, ok := a.Next(pki.SystemClock{}.Now())
	at, _ := a.SwitchAt()
	if !ok {
		t.Fatal("no next CA after the rollover")
	}
	_, _, err = serveOnce(t, "--data-dir", dir, "--config", config(next.ID[:16]))
	wantUsageError(t, "a pin naming the next CA", err, "", []string{`issuer "` + next.ID[:16] + `" names the next issuing CA ` + next.ID,
		"issues nothing before its switch at " + at.UTC().Format(time.RFC3339), "leave the pin out until then", id})
	if err != nil && strings.Contains(err.Error(), "names none") {
		t.Errorf("a pin naming the next CA: %v, which says it names none", err)
	}
	if _, _, err := serveOnce(t, "--data-dir", dir, "--config", config(id[:12])); err != nil {
		t.Errorf("a pin naming the current CA during a rollover: %v", err)
	}
}

// A profile the CA would refuse for what it says, not for the CA it is
// checked against (ocspSigning, a CRL or OCSP URL that is no absolute
// URL), stops a first start with exit 2 before anything is created.
func TestProfileSettingsRefusedBeforeTheCA(t *testing.T) {
	for name, profile := range map[string]string{
		"ocspSigning":     "ext_key_usage = [\"OCSPSigning\"]\n",
		"CRL URL no host": "crl_urls = [\"http:///nohost\"]\n",
		"relative OCSP":   "ocsp_urls = [\"relative/path\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			config := filepath.Join(t.TempDir(), "scepter.toml")
			if err := os.WriteFile(config, []byte("[profiles.p]\n"+profile), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := serveOnce(t, "--data-dir", dir, "--config", config)
			if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), `profile "p"`) {
				t.Fatalf("serve: %v (exit %d), want exit 2 naming the profile", err, exitCode(err))
			}
			if _, serr := os.Stat(filepath.Join(dir, "ca")); !os.IsNotExist(serr) {
				t.Errorf("the refused start made %s", filepath.Join(dir, "ca"))
			}
		})
	}
}
