package main

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// Every flag that names a secret file reads it the same way: the secret
// with the white space around it trimmed, and a file that is missing, no
// file, empty or blank refused as a misconfigured flag (exit 2) whose
// message names the flag and the file. They differed: some exited 1, one
// named no flag, and enroll took an empty file for no challenge.
func TestSecretFilesAreReadAlike(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"missing":   filepath.Join(dir, "missing"),
		"directory": filepath.Join(dir, "directory"),
		"empty":     filepath.Join(dir, "empty"),
		"blank":     filepath.Join(dir, "blank"),
	}
	if err := os.Mkdir(files["directory"], 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, files["empty"], "")
	writeTestFile(t, files["blank"], " \r\n\t\n")

	plain := []string{"--est-listen", "off", "--challenge", "test"}
	flags := []struct {
		flag string
		args func(file string) []string
	}{
		{"--challenge-file", func(file string) []string {
			return []string{"--est-listen", "off", "--challenge-file", file}
		}},
		{"--webhook-secret-file", func(file string) []string {
			return slices.Concat(plain, []string{"--webhook-url", "https://hooks.example.com", "--webhook-secret-file", file})
		}},
		{"--ndes-password-file", func(file string) []string {
			return slices.Concat(plain, []string{"--ndes-user", "ndes", "--ndes-password-file", file})
		}},
		{"--smtp-password-file", func(file string) []string {
			return slices.Concat(plain, []string{"--smtp-url", "smtps://ca@mail.example.com", "--notify-from", "ca@example.com", "--smtp-password-file", file})
		}},
		{"--notify-webhook-secret-file", func(file string) []string {
			return slices.Concat(plain, []string{"--notify-webhook-url", "https://hooks.example.com", "--notify-webhook-secret-file", file})
		}},
	}
	for _, fl := range flags {
		for kind, file := range files {
			t.Run("serve "+fl.flag+" "+kind, func(t *testing.T) {
				data := filepath.Join(t.TempDir(), "data")
				_, stderr, err := serveOnceWith(t, nil, append([]string{"--data-dir", data, "--listen", "127.0.0.1:0"}, fl.args(file)...)...)
				checkSecretFileRefusal(t, err, fl.flag, file, stderr)
			})
		}
	}
	for kind, file := range files {
		t.Run("enroll --challenge-file "+kind, func(t *testing.T) {
			out := t.TempDir()
			e, _, errb := testEnv(nil)
			err := run(context.Background(), e, []string{"enroll", "--url", "http://127.0.0.1:1/scep", "--challenge-file", file,
				"--subject", "CN=device-1", "--out", filepath.Join(out, "cert.pem"), "--key-out", filepath.Join(out, "key.pem")})
			checkSecretFileRefusal(t, err, "--challenge-file", file, errb.String())
		})
		t.Run("bench --challenge-file "+kind, func(t *testing.T) {
			e, _, errb := testEnv(nil)
			err := run(context.Background(), e, []string{"bench", "--url", "http://127.0.0.1:1/scep", "--challenge-file", file, "--count", "1"})
			checkSecretFileRefusal(t, err, "--challenge-file", file, errb.String())
		})
	}
}

func checkSecretFileRefusal(t *testing.T, err error, flag, file, stderr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted %s %s\n%s", flag, file, stderr)
	}
	if !strings.Contains(err.Error(), flag) || !strings.Contains(err.Error(), file) {
		t.Errorf("err = %q, want it to name %s and %s", err, flag, file)
	}
	if code := exitCode(err); code != 2 {
		t.Errorf("exit status %d for %q, want 2 (a misconfigured flag)", code, err)
	}
}

// The secret is the file's content without the white space around it:
// the newline that echo or an editor leaves is no part of it.
func TestSecretFromFileTrims(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ content, want string }{
		{"s3cret", "s3cret"},
		{"s3cret\n", "s3cret"},
		{"s3cret\r\n", "s3cret"},
		{"  s3cret \n\n", "s3cret"},
	}
	for i, tt := range tests {
		file := filepath.Join(dir, strings.Repeat("f", i+1))
		writeTestFile(t, file, tt.content)
		got, err := secretFromFile("--x-file", file)
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.content, got, err, tt.want)
		}
	}
}

// Every flag that names a password file refuses, as the secret files do, a
// file that is missing, no file, or empty once its line end is trimmed:
// a usage error (exit 2) naming the flag and the file. They read an empty
// file as an empty password, named no flag, and exited 1.
func TestPasswordFilesAreReadAlike(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"missing":   filepath.Join(dir, "missing"),
		"directory": filepath.Join(dir, "directory"),
		"empty":     filepath.Join(dir, "empty"),
		"newline":   filepath.Join(dir, "newline"),
		"crlf":      filepath.Join(dir, "crlf"),
	}
	if err := os.Mkdir(files["directory"], 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, files["empty"], "")
	writeTestFile(t, files["newline"], "\n")
	writeTestFile(t, files["crlf"], "\r\n\r\n")
	// admin user add takes the first line only: an empty one is empty.
	adminFiles := maps.Clone(files)
	adminFiles["empty first line"] = filepath.Join(dir, "empty-first-line")
	writeTestFile(t, adminFiles["empty first line"], "\ncorrect horse battery\n")

	dataDir, _ := caDataDir(t, ca.InitOptions{})
	out := t.TempDir()
	commands := []struct {
		name, flag string
		files      map[string]string
		args       func(file string) []string
	}{
		{"est enroll", "--password-file", files, func(file string) []string {
			return []string{"est", "enroll", "--url", "https://127.0.0.1:1", "--user", "u", "--password-file", file,
				"--subject", "CN=device-1", "--out", filepath.Join(out, "cert.pem"), "--key-out", filepath.Join(out, "key.pem")}
		}},
		{"est user add", "--password-file", files, func(file string) []string {
			return []string{"est", "user", "add", "bob", "--password-file", file, "--data-dir", dataDir}
		}},
		{"bench", "--est-password-file", files, func(file string) []string {
			return []string{"bench", "--url", "https://127.0.0.1:1", "--protocol", "est", "--est-user", "u",
				"--est-password-file", file, "--count", "1"}
		}},
		{"admin user add", "--password-file", adminFiles, func(file string) []string {
			return []string{"admin", "user", "add", "alice", "--role", "operator", "--password-file", file, "--data-dir", dataDir}
		}},
	}
	for _, c := range commands {
		for kind, file := range c.files {
			t.Run(c.name+" "+kind, func(t *testing.T) {
				e, _, errb := testEnv(nil)
				err := run(context.Background(), e, c.args(file))
				checkSecretFileRefusal(t, err, c.flag, file, errb.String())
			})
		}
	}
}

// A password is the first line of its file without its line end: spaces
// are part of it. est user add kept every line, so a user added from a
// file admin user add reads as one password got another.
func TestPasswordFromFileTrimsOnlyTheLineEnd(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ content, want string }{
		{"s3cret", "s3cret"},
		{"s3cret\n", "s3cret"},
		{"s3cret\r\n\r\n", "s3cret"},
		{" s3 cret \n", " s3 cret "},
		{" s3 cret \r\nsecond line\n", " s3 cret "},
		{"\ufeffs3cret\r\n", "s3cret"}, // Windows Notepad's byte order mark
	}
	for i, tt := range tests {
		file := filepath.Join(dir, strings.Repeat("f", i+1))
		writeTestFile(t, file, tt.content)
		got, err := passwordFromFile("--x-file", file)
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.content, got, err, tt.want)
		}
	}
}

// A file that starts with a UTF-8 byte order mark (Windows Notepad writes
// one) gives the secret after it: the mark made the secret three bytes
// longer than the one typed.
func TestSecretFileSkipsByteOrderMark(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	writeTestFile(t, file, "\ufeffs3cret\r\n")
	if got, err := secretFromFile("--x-file", file); err != nil || got != "s3cret" {
		t.Errorf("got %q, %v; want %q", got, err, "s3cret")
	}
	writeTestFile(t, file, "\ufeff\r\n")
	_, err := secretFromFile("--x-file", file)
	checkSecretFileRefusal(t, err, "--x-file", file, "")
}

// est user add and admin user add read one password file alike: its first
// line, after a byte order mark. est user add kept every line.
func TestUserAddTakesFirstLineOfPasswordFile(t *testing.T) {
	const password = "correct horse battery"
	file := filepath.Join(t.TempDir(), "pw")
	writeTestFile(t, file, "\ufeff"+password+"\r\nsecond line\n")
	dataDir, _ := caDataDir(t, ca.InitOptions{})
	for _, args := range [][]string{
		{"est", "user", "add", "bob", "--password-file", file, "--data-dir", dataDir},
		{"admin", "user", "add", "alice", "--role", "operator", "--password-file", file, "--data-dir", dataDir},
	} {
		e, _, errb := testEnv(nil)
		if err := run(context.Background(), e, args); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args[:3], " "), err, errb)
		}
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	estUser, err := st.ESTUser(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := st.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for name, hash := range map[string]string{"est user add": estUser.PasswordHash, "admin user add": admin.PasswordHash} {
		if ok, err := credential.VerifyPassword(hash, password); err != nil || !ok {
			t.Errorf("%s: the stored password is not the file's first line (%v)", name, err)
		}
	}
}

// A secret given two ways at once, a flag (or its variable) or a variable
// of its own beside a file, is refused (exit 2), naming both: enroll took
// the file and serve the flag, so nobody could tell which one was in use.
func TestSecretGivenTwoWaysIsRefused(t *testing.T) {
	file := writePassFile(t, "correct horse battery staple")
	dataDir, _ := caDataDir(t, ca.InitOptions{})
	out := t.TempDir()
	serve := func(args ...string) []string {
		return append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0", "--est-listen", "off"}, args...)
	}
	tests := []struct {
		name  string
		vars  map[string]string
		args  []string
		both1 string // what the message names
		both2 string
	}{
		{"serve challenge", nil, serve("--challenge", "x", "--challenge-file", file), "--challenge", "--challenge-file"},
		{"serve SCEPTER_CHALLENGE", map[string]string{"SCEPTER_CHALLENGE": "x"}, serve("--challenge-file", file), "SCEPTER_CHALLENGE", "--challenge-file"},
		{"serve ndes password", nil, serve("--challenge", "x", "--ndes-user", "ndes", "--ndes-password", "x", "--ndes-password-file", file), "--ndes-password", "--ndes-password-file"},
		{"serve smtp password", map[string]string{"SCEPTER_SMTP_PASSWORD": "x"},
			serve("--challenge", "x", "--smtp-url", "smtps://ca@mail.example.com", "--notify-from", "ca@example.com", "--smtp-password-file", file),
			"SCEPTER_SMTP_PASSWORD", "--smtp-password-file"},
		{"serve root key passphrase", map[string]string{"SCEPTER_ROOT_KEY_PASSPHRASE": "x"}, serve("--challenge", "x", "--root-key-passphrase-file", file),
			"SCEPTER_ROOT_KEY_PASSPHRASE", "--root-key-passphrase-file"},
		{"enroll challenge", nil, []string{"enroll", "--url", "http://127.0.0.1:1/scep", "--challenge", "x", "--challenge-file", file,
			"--subject", "CN=device-1", "--out", filepath.Join(out, "cert.pem"), "--key-out", filepath.Join(out, "key.pem")}, "--challenge", "--challenge-file"},
		{"bench challenge", nil, []string{"bench", "--url", "http://127.0.0.1:1/scep", "--challenge", "x", "--challenge-file", file, "--count", "1"},
			"--challenge", "--challenge-file"},
		{"bench est password", nil, []string{"bench", "--url", "https://127.0.0.1:1", "--protocol", "est", "--est-user", "u",
			"--est-password", "x", "--est-password-file", file, "--count", "1"}, "--est-password", "--est-password-file"},
		{"est enroll", map[string]string{"SCEPTER_EST_PASSWORD": "x"}, []string{"est", "enroll", "--url", "https://127.0.0.1:1", "--user", "u",
			"--password-file", file, "--subject", "CN=device-1", "--out", filepath.Join(out, "cert.pem"), "--key-out", filepath.Join(out, "key.pem")},
			"SCEPTER_EST_PASSWORD", "--password-file"},
		{"est user add", map[string]string{"SCEPTER_EST_PASSWORD": "x"}, []string{"est", "user", "add", "bob", "--password-file", file, "--data-dir", dataDir},
			"SCEPTER_EST_PASSWORD", "--password-file"},
		{"ca rollover", map[string]string{"SCEPTER_ROOT_KEY_PASSPHRASE": "x"}, []string{"ca", "rollover", "--root-key-passphrase-file", file, "--data-dir", dataDir},
			"SCEPTER_ROOT_KEY_PASSPHRASE", "--root-key-passphrase-file"},
		{"ca root export", map[string]string{"SCEPTER_ROOT_KEY_PASSPHRASE": "x"}, []string{"ca", "root", "export", "--out", filepath.Join(out, "root.key"),
			"--root-key-passphrase-file", file, "--data-dir", dataDir}, "SCEPTER_ROOT_KEY_PASSPHRASE", "--root-key-passphrase-file"},
		{"ca export-keys", map[string]string{"SCEPTER_KEYS_PASSPHRASE": "x"}, []string{"ca", "export-keys", "--out", filepath.Join(out, "keys"),
			"--passphrase-file", file, "--data-dir", dataDir}, "SCEPTER_KEYS_PASSPHRASE", "--passphrase-file"},
		{"ca import-keys", map[string]string{"SCEPTER_KEYS_PASSPHRASE": "x"}, []string{"ca", "import-keys", "--in", filepath.Join(out, "keys"),
			"--passphrase-file", file, "--data-dir", t.TempDir()}, "SCEPTER_KEYS_PASSPHRASE", "--passphrase-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			var stderr string
			if tt.args[0] == "serve" {
				_, stderr, err = serveOnceWith(t, tt.vars, tt.args[1:]...)
			} else {
				e, _, errb := testEnv(tt.vars)
				err = run(context.Background(), e, tt.args)
				stderr = errb.String()
			}
			if err == nil {
				t.Fatalf("accepted both %s and %s\n%s", tt.both1, tt.both2, stderr)
			}
			if !strings.Contains(err.Error(), tt.both1) || !strings.Contains(err.Error(), tt.both2+" ") {
				t.Errorf("err = %q, want it to name %s and %s", err, tt.both1, tt.both2)
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit status %d for %q, want 2 (a misconfigured flag)", code, err)
			}
		})
	}
}
