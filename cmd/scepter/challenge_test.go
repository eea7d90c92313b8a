package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
)

// challenge new --ttl has one rule, the service's: from 1s to 30d. Any
// value outside it is a usage error (exit 2) with the range the help
// states, before the store is opened.
func TestChallengeTTLOneRule(t *testing.T) {
	const want = "from 1s to 30d"
	dataDir := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		ttl string
		ok  bool
	}{
		{"-1h", false}, {"-1d", false}, {"0", false}, {"0d", false}, {"500ms", false}, {"800h", false}, {"721h", false}, {"31d", false},
		{"36500d", false}, {"soon", false},
		{"1s", true}, {"60m", true}, {"720h", true}, {"30d", true},
	} {
		t.Run(tc.ttl, func(t *testing.T) {
			e, _, _ := testEnv(nil)
			err := run(context.Background(), e, []string{"challenge", "new", "--data-dir", dataDir, "--ttl", tc.ttl})
			if tc.ok {
				// Past the flags: it fails only for want of a database.
				if err == nil || strings.Contains(err.Error(), "ttl") {
					t.Errorf("err = %v", err)
				}
				return
			}
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v (exit %d), want a usage error saying %q", err, exitCode(err), want)
			}
		})
	}

	e, out, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"challenge", "new", "--help"}); exitCode(err) != 0 || !strings.Contains(out.String(), want) {
		t.Errorf("help (err %v):\n%s", err, out.String())
	}
}

// A binding the CA would refuse is told once, as the API's 422 gives it:
// the CLI showed the wrapped chain, "bad_request: subject …: <reason>: no
// enrollment could use this challenge: bad_request: <reason>". It is a
// flag value to change: exit 2.
func TestChallengeRefusalSaysItOnce(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	e, out, _ := testEnv(nil)
	err := run(context.Background(), e, []string{"challenge", "new", "--data-dir", dir, "--subject", "C=UK,CN=ch1"})
	const reason = "the United Kingdom's code is GB"
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("err = %v (exit %d), want a refusal, exit 2", err, exitCode(err))
	}
	msg := err.Error()
	if strings.Count(msg, reason) != 1 || strings.Contains(msg, "bad_request") || !strings.HasSuffix(msg, "no enrollment could use this challenge") {
		t.Errorf("refusal %q: want the reason once, ending in its consequence, without the error code", msg)
	}
	if out.Len() != 0 {
		t.Errorf("a refused challenge printed %q", out)
	}
}

// challenge new with a binding the profile's subject or name rules refuse
// exits 2 with the reason, naming what and the rule, and mints nothing:
// every enrollment with it would be refused by those rules.
func TestChallengeNewBindingProfileRules(t *testing.T) {
	ctx := context.Background()
	dir, _ := caDataDir(t, ca.InitOptions{})
	config := filepath.Join(t.TempDir(), "scepter.toml")
	const profile = "[profiles.vpn]\nsubject_required = [\"CN\"]\nsubject_patterns = { CN = '^gw-[0-9]+$' }\ndns_patterns = ['\\.vpn\\.example$']\n"
	if err := os.WriteFile(config, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		refuse string // "" when a challenge is made
	}{
		{"subject pattern", []string{"--subject", "CN=laptop"}, `subject CN "laptop" is not allowed by the profile (subject_patterns.CN)`},
		{"unlisted attribute", []string{"--subject", "CN=gw-7,OU=admins"}, `attribute OU is not allowed by profile "vpn"`},
		{"dns pattern", []string{"--subject", "CN=gw-7", "--dns", "gw-7.other.example"}, `DNS name "gw-7.other.example" is not allowed by the profile (dns_patterns)`},
		{"allowed", []string{"--subject", "CN=gw-7", "--dns", "gw-7.vpn.example"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, out, _ := testEnv(nil)
			err := run(ctx, e, append([]string{"challenge", "new", "--data-dir", dir, "--config", config, "--profile", "vpn"}, tc.args...))
			if tc.refuse == "" {
				if err != nil || out.Len() == 0 {
					t.Fatalf("err = %v, want a challenge on stdout", err)
				}
				return
			}
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.refuse) || !strings.HasSuffix(err.Error(), "no enrollment could use this challenge") {
				t.Errorf("err = %v (exit %d), want exit 2 saying %q", err, exitCode(err), tc.refuse)
			}
			if out.Len() != 0 {
				t.Errorf("a refused challenge printed %q", out)
			}
		})
	}
	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"challenge", "list", "--json", "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), `"id"`); n != 1 {
		t.Errorf("%d challenges stored, want the one allowed:\n%s", n, out)
	}
}

// challenge new says what the challenge is bound to as it was read, as
// 'challenge list' shows it, not as it was typed: two spellings of one
// name read as one, and a reader sees the name an enrollment must carry.
func TestChallengeNewShowsTheBindingAsRead(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	for typed, shown := range map[string]string{
		`CN=a\2Cb`:      `bound to CN=a\,b dev.example,`,
		`CN= x\20y `:    `bound to CN=x y dev.example,`,
		`CN=trail\ `:    `bound to CN=trail\  dev.example,`,
		`O=x , CN=dev1`: `bound to O=x,CN=dev1 dev.example,`,
	} {
		e, _, errb := testEnv(nil)
		if err := run(context.Background(), e, []string{"challenge", "new", "--data-dir", dir, "--subject", typed, "--dns", "dev.example"}); err != nil {
			t.Fatalf("challenge new --subject %q: %v", typed, err)
		}
		if !strings.Contains(errb.String(), shown) {
			t.Errorf("challenge new --subject %q said %q, want %q", typed, errb.String(), shown)
		}
	}
}
