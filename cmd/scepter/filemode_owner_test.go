//go:build unix

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A config or secret file that another user may change without write
// access to it is refused as one that group or others may write (exit 2,
// naming the file and the chown or chmod to run): one another user owns,
// one in a directory anyone may write (they may replace it), and one
// reached through a symbolic link in such a directory. A sticky directory
// (/tmp's 01777) lets no one replace another's file, and passes. So is
// one in a directory another user owns (its owner may chmod it). Before,
// a root agent ran the post_renew of a config owned by nobody.
func TestConfigAndSecretFileOwnerAndDirectory(t *testing.T) {
	type check func(t *testing.T, file string) error
	serve := func(flag string) check {
		return func(t *testing.T, file string) error {
			e, _, _ := testEnv(nil)
			fs, f := newServeFlags(e)
			return parseFlags(fs, e, []string{flag, file}, 0, f.sections())
		}
	}
	// `agent status` exits 1 for the certificate it cannot find, after
	// reading its config (its files are missing, not their directory,
	// which would be a configuration error).
	agentStatus := func(t *testing.T, file string) error {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, []string{"agent", "status", "--config", file})
		if exitCode(err) == 1 {
			return nil
		}
		return err
	}
	kinds := []struct {
		name, flag, content string
		run                 check
	}{
		{"serve config", "--config", "est_client_ca_file = \"/etc/scepter/clients.pem\"\n", serve("--config")},
		{"challenge file", "--challenge-file", "s3cret\n", serve("--challenge-file")},
		{"manufacturer CA file", "--est-client-ca-file", "-----BEGIN CERTIFICATE-----\n", serve("--est-client-ca-file")},
		{"agent config", "--config", "[[certificate]]\nname = \"a\"\nprotocol = \"scep\"\nurl = \"http://127.0.0.1:1/scep\"\n" +
			"ca_fingerprint = \"sha256:" + strings.Repeat("ab", 32) + "\"\nkey_path = \"/nonexistent-key.pem\"\ncert_path = \"/nonexistent-cert.pem\"\n", agentStatus},
	}
	// Each case makes the file (and link) under base and returns the path
	// to give and what the refusal must say ("" when accepted).
	cases := []struct {
		name  string
		root  bool // needs root (to give the file away)
		setup func(t *testing.T, base, content string) (path string, want []string)
	}{
		{"owned by another user", true, func(t *testing.T, base, content string) (string, []string) {
			file := writeIn(t, base, "file", content, 0o644)
			if err := os.Chown(file, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return file, []string{"belongs to user", "uid 65534", "not to root:", "may change", "chown root " + file}
		}},
		{"owned by us, in a directory another user owns", true, func(t *testing.T, base, content string) (string, []string) {
			dir := mkdirMode(t, base, "theirs", 0o755)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return writeIn(t, dir, "file", content, 0o600), []string{"directory " + dir, "belongs to user", "uid 65534", "may replace the file, and so change", "move the file"}
		}},
		{"in a 0755 directory under a 0777 one", false, func(t *testing.T, base, content string) (string, []string) {
			open := mkdirMode(t, base, "open", 0o777)
			dir := mkdirMode(t, open, "ours", 0o755)
			return writeIn(t, dir, "file", content, 0o600), []string{"is under directory " + open, "0777", "may replace the file, and so change", "chmod go-w " + open}
		}},
		{"owned by us, in a private directory", false, func(t *testing.T, base, content string) (string, []string) {
			return writeIn(t, base, "file", content, 0o644), nil
		}},
		{"in a 0777 directory", false, func(t *testing.T, base, content string) (string, []string) {
			dir := mkdirMode(t, base, "open", 0o777)
			return writeIn(t, dir, "file", content, 0o600), []string{"directory " + dir, "0777", "may replace the file, and so change", "chmod go-w " + dir}
		}},
		{"in a 0775 directory", false, func(t *testing.T, base, content string) (string, []string) {
			dir := mkdirMode(t, base, "group", 0o775)
			return writeIn(t, dir, "file", content, 0o600), []string{"directory " + dir, "chmod go-w " + dir}
		}},
		{"in a 01777 directory", false, func(t *testing.T, base, content string) (string, []string) {
			dir := mkdirMode(t, base, "sticky", 0o1777)
			return writeIn(t, dir, "file", content, 0o600), nil
		}},
		{"symlink from a 0777 directory", false, func(t *testing.T, base, content string) (string, []string) {
			file := writeIn(t, base, "file", content, 0o600)
			dir := mkdirMode(t, base, "open", 0o777)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(file, link); err != nil {
				t.Fatal(err)
			}
			return link, []string{"directory " + dir, "chmod go-w " + dir}
		}},
		{"symlink to a file in a 0777 directory", false, func(t *testing.T, base, content string) (string, []string) {
			dir := mkdirMode(t, base, "open", 0o777)
			file := writeIn(t, dir, "file", content, 0o600)
			link := filepath.Join(base, "link")
			if err := os.Symlink(file, link); err != nil {
				t.Fatal(err)
			}
			return link, []string{"directory " + dir, "chmod go-w " + dir}
		}},
		{"symlink from a 01777 directory", false, func(t *testing.T, base, content string) (string, []string) {
			file := writeIn(t, base, "file", content, 0o600)
			dir := mkdirMode(t, base, "sticky", 0o1777)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(file, link); err != nil {
				t.Fatal(err)
			}
			return link, nil
		}},
	}
	for _, k := range kinds {
		for _, c := range cases {
			t.Run(k.name+" "+c.name, func(t *testing.T) {
				if c.root && os.Geteuid() != 0 {
					t.Skip("only root may give a file to another user")
				}
				path, want := c.setup(t, t.TempDir(), k.content)
				err := k.run(t, path)
				if want == nil {
					if err != nil {
						t.Fatalf("err = %v, want none", err)
					}
					return
				}
				if exitCode(err) != 2 {
					t.Fatalf("err = %v (exit %d), want a usage error", err, exitCode(err))
				}
				for _, w := range append(want, k.flag+" "+path) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			})
		}
	}
}

// writeIn writes content to dir/name with mode perm, past the umask.
func writeIn(t *testing.T, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	writeTestFile(t, p, content)
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// mkdirMode makes dir/name with mode perm (the sticky bit included), past
// the umask.
func mkdirMode(t *testing.T, dir, name string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	mode := perm.Perm()
	if perm&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// A given --tls-key is refused as the generated one is when it may be
// changed or replaced by another user, or read by any user; a group may
// read it (Debian's ssl-cert group). r46: 0666 in a 0775 directory served.
func TestGivenTLSKeyModes(t *testing.T) {
	parse := func(file string) error {
		e, _, _ := testEnv(nil)
		fs, f := newServeFlags(e)
		return parseFlags(fs, e, []string{"--tls-key", file}, 0, f.sections())
	}
	for _, tc := range []struct {
		name     string
		dir, key os.FileMode
		want     string
	}{
		{"0600", 0o700, 0o600, ""},
		{"0640 (a group reads it)", 0o750, 0o640, ""},
		{"0644", 0o700, 0o644, "any user may read the server's HTTPS key"},
		{"0666", 0o700, 0o666, "group or others may change the server's HTTPS key"},
		{"0600 in a 0775 directory", 0o775, 0o600, "may replace the file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := mkdirMode(t, t.TempDir(), "tls", tc.dir)
			file := writeIn(t, dir, "server.key", "-----BEGIN PRIVATE KEY-----\n", tc.key)
			err := parse(file)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v (exit %d), want exit 2 with %q", err, exitCode(err), tc.want)
			}
		})
	}
}
