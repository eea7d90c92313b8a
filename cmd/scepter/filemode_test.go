//go:build !windows

package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A config file or secret file that group or others may write is refused
// (exit 2, naming the flag, the file and the chmod to run), through a
// symbolic link too; one that others may read passes with a warning when
// it holds a secret. Like the PKCS#11 PIN file, they were never checked:
// anyone on the host could change who is trusted, or set the challenge.
func TestConfigAndSecretFileModes(t *testing.T) {
	type check func(t *testing.T, file string) (stderr string, err error)
	serve := func(flag string, extra ...string) check {
		return func(t *testing.T, file string) (string, error) {
			e, _, errb := testEnv(nil)
			fs, f := newServeFlags(e)
			args := append([]string{flag, file}, extra...)
			err := parseFlags(fs, e, args, 0, f.sections())
			return errb.String(), err
		}
	}
	// export-keys stops at its missing --out, after its flags are parsed.
	exportKeys := func(t *testing.T, file string) (string, error) {
		e, _, errb := testEnv(nil)
		err := run(context.Background(), e, []string{"ca", "export-keys", "--data-dir", t.TempDir(), "--passphrase-file", file})
		if err != nil && strings.Contains(err.Error(), "--out is required") {
			err = nil
		}
		return errb.String(), err
	}
	// The agent's config, with challenge_file naming file when it is
	// the challenge; `agent status` exits 1 for the certificate it
	// cannot find, after reading its config.
	agentConfig := func(challenge string) string {
		text := "[[certificate]]\nname = \"a\"\nprotocol = \"scep\"\nurl = \"http://127.0.0.1:1/scep\"\n" +
			"ca_fingerprint = \"sha256:" + strings.Repeat("ab", 32) + "\"\nkey_path = \"key.pem\"\ncert_path = \"cert.pem\"\n"
		if challenge != "" {
			text += "challenge_file = \"" + challenge + "\"\n"
		}
		return text
	}
	agentStatus := func(config func(file string) string) check {
		return func(t *testing.T, file string) (string, error) {
			e, _, errb := testEnv(nil)
			err := run(context.Background(), e, []string{"agent", "status", "--config", config(file)})
			if exitCode(err) == 1 {
				err = nil
			}
			return errb.String(), err
		}
	}
	agentWithChallenge := agentStatus(func(file string) string {
		p := filepath.Join(t.TempDir(), "agent.toml")
		writeTestFile(t, p, agentConfig(file))
		return p
	})
	agentItself := agentStatus(func(file string) string { return file })
	kinds := []struct {
		name, flag, content string
		run                 check
		// warns: a file others may read draws a warning.
		warns bool
	}{
		{"config with a challenge", "--config", "challenge = \"s3cret\"\n", serve("--config"), true},
		{"config with a store password", "--config", "store = \"postgres://ca:s3cret@127.0.0.1:1/ca\"\n", serve("--config"), true},
		{"config with a store password query value", "--config", "store = \"postgres://ca@127.0.0.1:1/ca?password=s3cret&connect_timeout=2\"\n", serve("--config"), true},
		{"config without a secret", "--config", "est_client_ca_file = \"/etc/scepter/clients.pem\"\n", serve("--config"), false},
		{"challenge file", "--challenge-file", "s3cret\n", serve("--challenge-file"), true},
		{"webhook secret file", "--webhook-secret-file", "s3cret\n", serve("--webhook-secret-file", "--webhook-url", "https://hooks.example.com"), true},
		{"ndes password file", "--ndes-password-file", "s3cret\n", serve("--ndes-password-file", "--ndes-user", "ndes"), true},
		{"export passphrase file", "--passphrase-file", "a long enough passphrase\n", exportKeys, true},
		{"agent config", "--config", agentConfig(""), agentItself, false},
		{"agent challenge file", "challenge_file", "s3cret\n", agentWithChallenge, true},
	}
	modes := []struct {
		name     string
		mode     os.FileMode
		symlink  bool
		refused  bool
		readable bool
	}{
		{"0600", 0o600, false, false, false},
		{"0640", 0o640, false, false, false},
		{"0644", 0o644, false, false, true},
		{"0620", 0o620, false, true, false},
		{"0666", 0o666, false, true, true},
		{"symlink to 0602", 0o602, true, true, false},
	}
	for _, k := range kinds {
		for _, m := range modes {
			t.Run(k.name+" "+m.name, func(t *testing.T) {
				dir := t.TempDir()
				file := filepath.Join(dir, "file")
				writeTestFile(t, file, k.content)
				if err := os.Chmod(file, m.mode); err != nil {
					t.Fatal(err)
				}
				named := file
				if m.symlink {
					named = filepath.Join(dir, "link")
					if err := os.Symlink(file, named); err != nil {
						t.Fatal(err)
					}
				}
				stderr, err := k.run(t, named)
				if m.refused {
					if exitCode(err) != 2 {
						t.Fatalf("err = %v (exit %d), want a usage error", err, exitCode(err))
					}
					for _, want := range []string{k.flag + " " + named, "chmod", "may change"} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("error %q does not say %q", err, want)
						}
					}
					return
				}
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				warned := strings.Contains(stderr, "warning: "+k.flag+" "+named)
				if want := m.readable && k.warns; warned != want {
					t.Errorf("warned = %v, want %v; stderr:\n%s", warned, want, stderr)
				}
				if strings.Contains(stderr, "s3cret") {
					t.Errorf("stderr shows the secret:\n%s", stderr)
				}
			})
		}
	}
}

// TestConfigSecretsInURLs (r104 D3): a URL setting holds a password in its
// user info or as a password query value (password=, sslpassword=, in any
// case or percent-encoding), which the banner hides; a config file that
// sets one is named as holding a secret, whichever form it takes.
func TestConfigSecretsInURLs(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"user info", `store = "postgres://ca:s3cret@db.example.com/ca"`, []string{"store"}},
		{"password query value", `store = "postgres://ca@db.example.com/ca?password=s3cret&connect_timeout=2"`, []string{"store"}},
		{"sslpassword query value", `store = "postgres://ca@db.example.com/ca?sslmode=verify-full&sslpassword=s3cret"`, []string{"store"}},
		{"key in another case", `store = "postgres://ca@db.example.com/ca?PassWord=s3cret"`, []string{"store"}},
		{"key percent-encoded", `store = "postgres://ca@db.example.com/ca?pass%77ord=s3cret"`, []string{"store"}},
		{"key that does not decode", `store = "postgres://ca@db.example.com/ca?pass%zzword=s3cret"`, []string{"store"}},
		{"postgresql scheme", `store = "postgresql://db.example.com/ca?user=ca&password=s3cret"`, []string{"store"}},
		{"webhook URL with a password value", `notify_webhook_url = "https://hooks.example.com/n?password=s3cret"`, []string{"notify_webhook_url"}},
		{"no password", `store = "postgres://ca@db.example.com/ca?sslmode=verify-full&connect_timeout=2"`, nil},
		{"user without password", `store = "postgres://ca@db.example.com/ca"`, nil},
		{"not a URL setting", `notify_from = "password=s3cret@example.com"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scepter.toml")
			writeTestFile(t, path, tc.content+"\n")
			if got := configSecrets(path); !slices.Equal(got, tc.want) {
				t.Errorf("configSecrets(%s) = %q, want %q", tc.content, got, tc.want)
			}
		})
	}
}
