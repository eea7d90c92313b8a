package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func testEnv(vars map[string]string) (env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return env{stdout: &out, stderr: &errb, lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		generateKey: testKeys.Generate}, &out, &errb
}

// Every example config in the repository loads without error.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, file := range files {
		if filepath.Base(file) == "agent.toml" {
			continue // the agent's own format: TestAgentExampleConfig loads it
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			e, _, _ := testEnv(nil)
			fs, f := newServeFlags(e)
			if err := parseFlags(fs, e, []string{"--config", file}, 0, f.sections()); err != nil {
				t.Fatal(err)
			}
			if f.listen == "" || f.dataDir == "" {
				t.Errorf("settings not loaded: %+v", f)
			}
			profiles, err := f.profileSet()
			if err != nil {
				t.Fatal(err)
			}
			if len(profiles) < 2 {
				t.Errorf("profiles not loaded: %v", profiles)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"serve", "--ca-key-type", "dsa"}, "--ca-key-type"},
		{[]string{"serve", "--scep-ra", "maybe"}, "--scep-ra"},
		{[]string{"serve", "--rsa-backend", "boringssl"}, `--rsa-backend "boringssl": want auto, openssl or go`},
		{[]string{"serve", "extra"}, "unexpected arguments"},
		{[]string{"serve", "--listen", ""}, `--listen "": want HOST:PORT`},
		{[]string{"serve", "--listen", "127.0.0.1"}, `--listen "127.0.0.1": want HOST:PORT`},
		{[]string{"serve", "--est-listen", ""}, "--est-listen"},
		{[]string{"serve", "--ca-reload-interval", "0s"}, "--ca-reload-interval 0s: want at least 100ms"},
		{[]string{"serve", "--max-clock-skew", "-1h"}, "--max-clock-skew -1h0m0s: want a positive duration"},
		{[]string{"serve", "--max-clock-skew", "2562047h"}, "want a positive duration of at most 720h0m0s"},
		{[]string{"serve", "--rate-limit", "NaN"}, "--rate-limit NaN"},
		{[]string{"admin", "user", "add", "frank", "--role", "auditor", "extra", "args"}, "unexpected arguments: extra args (this command takes 1)"},
		{[]string{"certs", "list", "--status", "nope"}, `--status "nope": want valid, expired or revoked`},
		{[]string{"enroll"}, "--url is required"},
		{[]string{"enroll", "--url", "http://127.0.0.1:1/scep", "--subject", "CN=x", "--key-type", "p256"}, "needs --challenge"},
		{[]string{"enroll", "--url", "http://127.0.0.1:1/scep", "--subject", "CN=x", "--key-type", "dsa"}, "--key-type"},
		{[]string{"enroll", "--url", "http://127.0.0.1:1/scep", "--subject", "CN=x", "--out", "same.pem", "--key-out", "./same.pem"}, "--key-out and --out name the same file"},
		{[]string{"enroll", "--url", "http://127.0.0.1:1/scep", "--subject", "CN=x", "--out", "c.pem", "--chain-out", "c.pem"}, "--chain-out and --out name the same file"},
		{[]string{"est", "enroll", "--url", "https://127.0.0.1:1", "--subject", "CN=x", "--out", "k.pem", "--key-out", "k.pem"}, "--key-out and --out name the same file"},
		{[]string{"certs", "list", "--expiring-within", "0d"}, "want a positive time"},
		{[]string{"certs", "list", "--expiring-within", "-5h"}, "bad duration"},
		{[]string{"certs", "list", "--expiring-within", "106752d"}, "bad duration"},
		{[]string{"admin", "token", "new", "--name", "ci", "--role", "admin", "--ttl", "0d"}, "say 0 for a token that never expires"},
		{[]string{"admin", "token", "new", "--name", "ci", "--role", "admin", "--ttl", "0s"}, "say 0 for a token that never expires"},
		{[]string{"admin", "token", "new", "--name", "ci", "--role", "admin", "--ttl", "forever"}, "want a duration such as 90d"},
		{[]string{"admin", "token", "new", "--name", "ci", "--role", "admin", "--ttl", "3661d"}, `token lifetime "3661d" is out of range`},
		{[]string{"requests", "reject", "abc", "--reason", "bad\r\nX-Evil: 1"}, "--reason: the reason holds the character U+000D"},
		{[]string{"requests", "reject", "abc", "--reason", "dev\u202egnp"}, "--reason: the reason holds the character U+202E"},
		{[]string{"challenge", "new", "--subject", ""}, "--subject is empty"},
		{[]string{"challenge", "new", "--dns", ""}, "--dns is empty"},
		{[]string{"certs"}, "usage"},
		{[]string{"certs", "show"}, "usage"},
		{[]string{"challenge"}, "usage"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			e, _, _ := testEnv(nil)
			err := run(context.Background(), e, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if exitCode(err) != 2 {
				t.Errorf("exit code %d, want 2", exitCode(err))
			}
		})
	}
}

func TestStoreCommandsNeedADataDir(t *testing.T) {
	e, _, _ := testEnv(nil)
	dir := t.TempDir()
	for _, args := range [][]string{{"certs", "list", "--data-dir", dir}, {"challenge", "new", "--data-dir", dir}} {
		err := run(context.Background(), e, args)
		if err == nil || !strings.Contains(err.Error(), "scepter serve") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
}

func TestFlagsAfterPositionalArguments(t *testing.T) {
	e, _, _ := testEnv(nil)
	var sf storeFlags
	fs := newFlagSet(e, "certs show", "certs show SERIAL")
	sf.register(fs)
	if err := parseFlags(fs, e, []string{"ABC", "--data-dir", "/x", "--config="}, 1, nil); err != nil {
		t.Fatal(err)
	}
	if sf.dataDir != "/x" || fs.NArg() != 1 || fs.Arg(0) != "ABC" {
		t.Errorf("dataDir %q args %v", sf.dataDir, fs.Args())
	}
}

// Help that was asked for goes to stdout with exit 0, for every command and
// group; scripts and packagers probe commands that way.
func TestHelpExitsZeroOnStdout(t *testing.T) {
	var cases [][]string
	for _, flag := range []string{"-h", "--help"} {
		cases = append(cases, []string{flag})
		for _, c := range commands() {
			cases = append(cases, []string{c.name, flag})
		}
		for _, sub := range [][]string{{"certs", "list"}, {"certs", "show"}, {"requests", "list"}, {"requests", "approve"},
			{"requests", "reject"}, {"challenge", "new"}, {"ca", "rollover"}, {"ca", "show"}} {
			cases = append(cases, append(append([]string{}, sub...), flag))
		}
	}
	cases = append(cases, []string{"help"})
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			e, out, errb := testEnv(nil)
			err := run(context.Background(), e, args)
			if code := exitCode(err); code != 0 {
				t.Errorf("exit code %d (err %v), want 0", code, err)
			}
			if !strings.Contains(strings.ToLower(out.String()), "usage") {
				t.Errorf("stdout does not show the usage:\n%s", out)
			}
			if errb.Len() != 0 {
				t.Errorf("stderr is not empty:\n%s", errb)
			}
		})
	}
}

// `scepter help` named only `challenge new`; `challenge list` is the other
// half of the command.
func TestHelpNamesEverySubcommand(t *testing.T) {
	tests := []struct {
		command string
		subs    []string
	}{
		{"challenge", []string{"new", "list"}},
		{"ca", []string{"rollover", "show", "root export", "export-keys", "import-keys"}},
		{"certs", []string{"list", "show", "revoke", "unhold"}},
	}
	for _, tc := range tests {
		var summary string
		for _, c := range commands() {
			if c.name == tc.command {
				summary = c.summary
			}
		}
		for _, sub := range tc.subs {
			if !strings.Contains(summary, sub) {
				t.Errorf("%s: summary %q does not name %q", tc.command, summary, sub)
			}
		}
	}
}

// wantUsageError wants err a usage error that says each of want.
func wantUsageError(t *testing.T, what string, err error, out string, want []string) {
	t.Helper()
	if exitCode(err) != 2 {
		t.Fatalf("%s: err = %v (exit %d), want a usage error\n%s", what, err, exitCode(err), out)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not say %q", what, err, w)
		}
	}
}

// A refused flag is printed once, below the usage, not also above it by
// the flag package.
func TestFlagErrorPrintedOnce(t *testing.T) {
	for _, args := range [][]string{
		{"admin", "token", "new", "--ttl", "+1d"},
		{"certs", "list", "--bogus"},
		{"agent", "status", "--bogus"},
	} {
		e, _, errb := testEnv(nil)
		err := run(context.Background(), e, args)
		if err == nil || exitCode(err) != 2 {
			t.Fatalf("%v: err %v (exit %d), want a usage error", args, err, exitCode(err))
		}
		if n := strings.Count(errb.String(), err.Error()); n != 0 || !strings.Contains(errb.String(), "Usage: scepter") {
			t.Errorf("%v: the refusal %q is in stderr %d times beside the usage (main prints it below):\n%s", args, err, n, errb)
		}
	}
}
