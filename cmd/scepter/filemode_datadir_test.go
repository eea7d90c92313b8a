//go:build unix

package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/filetrust"
	"github.com/scepter/scepter/internal/pki"
)

// nobodyUID is the user the tests give files to: one that is not us and
// not root.
const nobodyUID = 65534

// needRoot skips a test that gives files to another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("only root may give files to another user")
	}
}

// servedDataDir is a data directory a serve (stopped again) set up.
func servedDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, stderr, err := serveOnce(t, "--data-dir", dir); err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr)
	}
	return dir
}

// chownAll gives path and all it holds to uid.
func chownAll(t *testing.T, path string, uid int) {
	t.Helper()
	err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// notOwnedBy lists what under dir uid does not own.
func notOwnedBy(t *testing.T, dir string, uid int) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := os.Lstat(p); err == nil {
			if owner, _ := filetrust.Owner(fi); owner != uid {
				out = append(out, p)
			}
		}
		return nil
	})
	return out
}

// runIn runs a command in this process with a deadline (a PostgreSQL
// --store that is not there must not hold the test).
func runIn(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, out, errb := testEnv(nil)
	err := run(ctx, e, args)
	return out.String() + errb.String(), err
}

// Run as root on a data directory another user owns (the service user of
// examples/scepter.service), a command that would make or change files
// there is refused, exit 2, naming the owner and how to run it as that
// user; nothing is left in the directory that the owner does not own.
// Before, 'sudo scepter ca rollover' made ca/next root's, and the server
// stopped issuing at the switch; 'sudo scepter store restore' left
// scepter.db root's, and the server could not start; a read opened the
// database and left -wal and -shm root's. With a PostgreSQL --store, a
// command that only opens the store is not refused; one that writes files
// in the data directory still is.
func TestCLIRefusedOnAnotherUsersDataDir(t *testing.T) {
	needRoot(t)
	dir := servedDataDir(t)
	backup := filepath.Join(t.TempDir(), "backup.db")
	if out, err := runIn("store", "backup", "--data-dir", dir, "--out", backup); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	keysFile := filepath.Join(t.TempDir(), "keys.pem")
	os.WriteFile(keysFile, []byte("x"), 0o600)
	chownAll(t, dir, nobodyUID)
	owner := filetrust.UserName(nobodyUID)
	pg := "postgres://scepter@127.0.0.1:1/scepter?connect_timeout=2"
	for _, tt := range []struct {
		args       []string
		refusedPG  bool // still refused with a PostgreSQL --store
		opensStore bool
	}{
		{[]string{"ca", "rollover", "--switch-in", "1h"}, true, false},
		{[]string{"ca", "rollover", "--discard"}, true, false},
		{[]string{"ca", "renew-ra"}, true, false},
		{[]string{"ca", "import-keys", "--in", keysFile}, true, false},
		{[]string{"ca", "root", "crl"}, true, false},
		{[]string{"store", "restore", "--in", backup}, true, false},
		{[]string{"store", "backup", "--out", filepath.Join(t.TempDir(), "b.db")}, false, true},
		{[]string{"certs", "list"}, false, true},
		{[]string{"certs", "show", "01"}, false, true},
		{[]string{"certs", "revoke", "01"}, false, true},
		{[]string{"certs", "unhold", "01"}, false, true},
		{[]string{"audit", "list"}, false, true},
		{[]string{"audit", "verify"}, false, true},
		{[]string{"challenge", "new"}, false, true},
		{[]string{"challenge", "list"}, false, true},
		{[]string{"requests", "list"}, false, true},
		{[]string{"requests", "approve", "1"}, false, true},
		{[]string{"requests", "reject", "1", "--reason", "no"}, false, true},
		{[]string{"admin", "token", "new", "--name", "a", "--role", "admin"}, false, true},
		{[]string{"admin", "token", "list"}, false, true},
		{[]string{"admin", "user", "list"}, false, true},
		{[]string{"est", "user", "list"}, false, true},
		{[]string{"est", "user", "remove", "a"}, false, true},
		{[]string{"ca", "show"}, false, true},
		{[]string{"ca", "export-keys", "--out", filepath.Join(t.TempDir(), "k.pem")}, false, true},
		{[]string{"ca", "root", "export", "--out", filepath.Join(t.TempDir(), "r.pem")}, false, true},
	} {
		name := strings.Join(tt.args[:2], " ")
		if tt.args[0] == "ca" && tt.args[1] == "root" || tt.args[0] == "admin" || tt.args[0] == "est" {
			name = strings.Join(tt.args[:3], " ")
		}
		t.Run(name, func(t *testing.T) {
			out, err := runIn(append(tt.args, "--data-dir", dir)...)
			if exitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want a usage error\n%s", err, exitCode(err), out)
			}
			for _, w := range []string{"--data-dir " + dir + " belongs to user " + owner + " (uid 65534), not to root, who runs 'scepter " + name + "'",
				"run it as " + owner, "sudo -u " + owner + " scepter " + name + " …", "runuser -u " + owner + " -- scepter " + name + " …"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tt.opensStore && !strings.Contains(err.Error(), "scepter.db-wal") {
				t.Errorf("error %q does not say which files opening the database makes", err)
			}
			if foreign := notOwnedBy(t, dir, nobodyUID); len(foreign) > 0 {
				t.Errorf("left in the data directory, not owned by uid 65534: %v", foreign)
			}

			_, err = runIn(append(tt.args, "--data-dir", dir, "--store", pg)...)
			refused := err != nil && strings.Contains(err.Error(), "belongs to user")
			if refused != tt.refusedPG {
				t.Errorf("with a PostgreSQL --store: err = %v, want refused for the data directory's owner: %v", err, tt.refusedPG)
			}
		})
	}
}

// Every command that takes --data-dir says how it uses it
// (dataDirUseOf), so that checkDataDirUser knows whether to refuse it.
func TestDataDirUseOfEveryCommand(t *testing.T) {
	for _, words := range flagCommands() {
		var set *flag.FlagSet
		e := env{stdout: io.Discard, stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false },
			probeFlags: func(fs *flag.FlagSet) { set = fs }}
		if err := run(context.Background(), e, words); !errors.Is(err, errProbed) {
			t.Fatalf("%q: %v", words, err)
		}
		_, known := dataDirUseOf(set.Name())
		if takes := set.Lookup("data-dir") != nil && set.Name() != "serve"; takes != known {
			t.Errorf("%s: takes --data-dir: %v, but dataDirUseOf knows it: %v", set.Name(), takes, known)
		}
	}
}

// In a data directory of ours, what another user owns of the CA's
// directory, the OCSP and HTTPS keys' and the CRL numbers' is refused by
// serve and by a command on the directory (exit 2, naming the path and
// the chown to run): that user could read the keys (a key file is
// readable by its owner whatever its mode), replace them, or lower the
// CRL numbers the check for a restored store relies on. Before, all were
// accepted.
func TestDataDirEntriesOwnedByAnotherUser(t *testing.T) {
	needRoot(t)
	for _, tt := range []struct {
		path    string // under the data directory; made when missing
		dir     bool
		changes string
	}{
		{"ca/issuing.key", false, "read or replace the CA's keys"},
		{"ca/ra.key", false, "read or replace the CA's keys"},
		{"ca/root.crt", false, "read or replace the CA's keys and certificates"},
		{"ca", true, "read or replace the CA's keys"},
		{"ca/next", true, "read or replace the CA's keys"},
		{"ocsp", true, "read or replace the OCSP responders' keys"},
		{"ocsp/0123abcd.key", false, "read or replace the OCSP responders' keys"},
		{"tls/server.key", false, "read or replace the HTTPS key"},
		{"crl-numbers", true, "lower the CRL numbers kept there"},
		{"crl-numbers/*", false, "lower the CRL numbers kept there"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			dir := servedDataDir(t)
			path := filepath.Join(dir, tt.path)
			if matches, _ := filepath.Glob(path); len(matches) > 0 {
				path = matches[0]
			} else if tt.dir {
				os.MkdirAll(path, 0o700)
			} else {
				os.MkdirAll(filepath.Dir(path), 0o700)
				os.WriteFile(path, []byte("x"), 0o600)
			}
			if err := os.Chown(path, nobodyUID, nobodyUID); err != nil {
				t.Fatal(err)
			}
			chown := "chown root "
			if tt.dir {
				chown = "chown -R root "
			}
			want := []string{path + " belongs to user " + filetrust.UserName(nobodyUID) + " (uid 65534), not to root: that user may " + tt.changes, "run: " + chown + path}
			_, stderr, err := serveOnce(t, "--data-dir", dir)
			wantUsageError(t, "serve", err, stderr, want)
			out, err := runIn("certs", "list", "--data-dir", dir)
			wantUsageError(t, "certs list", err, out, want)
		})
	}
}

// A data directory reached through a symbolic link in a directory group
// or others may write without the sticky bit is refused by serve and by a
// command on it (exit 2, naming the link's directory and the chmod): they
// could point it at another directory. That holds for a link as the last
// component (links/data) and for one earlier in the path (links/x/data).
// Through a link in a sticky or private directory it works. Before, all
// were accepted, and a link earlier in the path was never looked at.
func TestDataDirThroughSymlink(t *testing.T) {
	dir := servedDataDir(t)
	for _, tt := range []struct {
		name    string
		perm    os.FileMode
		middle  bool // the link is the data directory's parent
		refused bool
	}{
		{"0777", 0o777, false, true},
		{"0775", 0o775, false, true},
		{"01777", 0o1777, false, false},
		{"0700", 0o700, false, false},
		{"middle 0777", 0o777, true, true},
		{"middle 0775", 0o775, true, true},
		{"middle 01777", 0o1777, true, false},
		{"middle 0755", 0o755, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			links := mkdirMode(t, t.TempDir(), "links", tt.perm)
			link, target, dataDir := filepath.Join(links, "data"), dir, filepath.Join(links, "data")
			if tt.middle {
				link, target, dataDir = filepath.Join(links, "x"), filepath.Dir(dir), filepath.Join(links, "x", filepath.Base(dir))
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			_, stderr, serr := serveOnce(t, "--data-dir", dataDir)
			out, cerr := runIn("certs", "list", "--data-dir", dataDir)
			if !tt.refused {
				if serr != nil || cerr != nil {
					t.Fatalf("serve: %v\n%s\ncerts list: %v\n%s", serr, stderr, cerr, out)
				}
				return
			}
			want := []string{"--data-dir " + link + " is a symbolic link in directory " + links, "may point it at another directory", "chmod go-w " + links}
			if tt.middle {
				want[0] = "--data-dir " + dataDir + " leads through symbolic link " + link + " in directory " + links
			}
			wantUsageError(t, "serve", serr, stderr, want)
			wantUsageError(t, "certs list", cerr, out, want)
		})
	}
}

// The data directory's owner runs the commands root is refused: a read,
// and a CA rollover whose next CA is then the owner's, as the server
// needs. The test binary runs the commands as uid 65534 in a child.
func TestDataDirOwnerRunsCommands(t *testing.T) {
	if args := os.Getenv("SCEPTER_TEST_AS_OWNER_ARGS"); args != "" {
		runAsOwnerChild(strings.Split(args, "\n"))
	}
	needRoot(t)
	dir, asOwner := ownersDataDir(t)
	if out, err := asOwner("certs", "list", "--data-dir", dir); err != nil {
		t.Fatalf("certs list as the owner: %v\n%s", err, out)
	}
	if out, err := asOwner("ca", "rollover", "--switch-in", "1h", "--data-dir", dir); err != nil || !strings.Contains(out, "Next issuing CA created") {
		t.Fatalf("ca rollover as the owner: %v\n%s", err, out)
	}
	if foreign := notOwnedBy(t, dir, nobodyUID); len(foreign) > 0 {
		t.Errorf("not owned by the data directory's owner: %v", foreign)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", "next", "issuing.key")); err != nil {
		t.Errorf("no next CA: %v", err)
	}
}

// runAsOwnerChild is the child ownersDataDir's commands run in, as uid
// 65534: it runs args as scepter does and exits with its exit code;
// "shareStore DIR" takes DIR's store lock shared instead, "loadCA DIR"
// loads DIR's CA (past the checks of the data directory).
func runAsOwnerChild(args []string) {
	var err error
	switch args[0] {
	case "shareStore":
		_, err = shareStore(args[1])
	case "loadCA":
		_, _, err = ca.LoadOrCreate(args[1], ca.InitOptions{GenerateKey: testKeys.Generate}, pki.SystemClock{})
	default:
		e := env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: func(string) (string, bool) { return "", false }}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = run(ctx, e, args)
	}
	if err != nil {
		os.Stderr.WriteString("scepter: " + err.Error() + "\n")
	}
	os.Exit(exitCode(err))
}

// ownersDataDir is a data directory a serve set up, given to uid 65534,
// and a function that runs a command (runAsOwnerChild) as that user.
func ownersDataDir(t *testing.T) (dir string, asOwner func(args ...string) (string, error)) {
	t.Helper()
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir = filepath.Join(base, "data")
	if _, stderr, err := serveOnce(t, "--data-dir", dir); err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr)
	}
	chownAll(t, dir, nobodyUID)
	// The test binary, where uid 65534 may run it, and a temporary
	// directory of its own.
	bin := filepath.Join(base, "scepter.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(base, "tmp")
	os.Mkdir(tmp, 0o700)
	os.Chown(tmp, nobodyUID, nobodyUID)
	return dir, func(args ...string) (string, error) {
		cmd := exec.Command(bin, "-test.run=^TestDataDirOwnerRunsCommands$")
		cmd.Env = []string{"SCEPTER_TEST_AS_OWNER_ARGS=" + strings.Join(args, "\n"), "TMPDIR=" + tmp, "HOME=" + tmp, "PATH=/usr/bin:/bin",
			// The clock CI moves ahead (scepter_clockoffset) moves in the child too.
			"SCEPTER_TEST_CLOCK_OFFSET=" + os.Getenv("SCEPTER_TEST_CLOCK_OFFSET")}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// What a command run as root left in the service user's data directory,
// and the service user cannot use, is refused when that user runs serve
// or a command (exit 2), naming the path, the chown to run and that a
// command run as root likely left it; what root owns and the user may
// read (a root.crt of mode 0644) is accepted. Before, a root-owned
// ca/next gave "permission denied (… remove ca/next to discard it)",
// which does not undo the rollover the store recorded, tls/ or
// scepter.db a bare "permission denied", and a root-owned store.lock let
// the owner's commands run without the lock that keeps a store restore
// off the database.
func TestDataDirRootLeftovers(t *testing.T) {
	needRoot(t)
	for _, tt := range []struct {
		path    string // under the data directory, given to root with mode
		mode    os.FileMode
		refused bool
	}{
		{"ca/next", 0o700, true},
		{"ca/next/issuing.key", 0o600, true},
		{"ca/issuing.key", 0o600, true},
		{"ca/root.crt", 0o644, false},
		{"tls", 0o755, true}, // readable, but scepter writes there
		{"tls", 0o700, true},
		{"crl-numbers/*", 0o600, true},
		{"scepter.db", 0o600, true},
		{"scepter.db", 0o644, true},
		{"store.lock", 0o644, true},
		{"serve.lock", 0o600, true},
	} {
		t.Run(strings.ReplaceAll(tt.path, "/", "_")+"_"+tt.mode.String(), func(t *testing.T) {
			dir, asOwner := ownersDataDir(t)
			if tt.path == "ca/next" || tt.path == "ca/next/issuing.key" {
				if out, err := asOwner("ca", "rollover", "--switch-in", "1h", "--data-dir", dir); err != nil {
					t.Fatalf("ca rollover as the owner: %v\n%s", err, out)
				}
			}
			for _, name := range []string{storeLockFile, serveLockFile} {
				if f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
					f.Close()
					os.Chown(f.Name(), nobodyUID, nobodyUID)
				}
			}
			path := filepath.Join(dir, tt.path)
			if matches, _ := filepath.Glob(path); len(matches) > 0 {
				path = matches[0]
			} else if err := os.Mkdir(path, 0o700); err != nil { // tls/, which a serve without HTTPS does not make
				t.Fatal(err)
			}
			if err := os.Chown(path, 0, 0); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(path)
			chown := "run as root: chown " + filetrust.UserName(nobodyUID) + " " + path
			if fi.IsDir() {
				chown = "run as root: chown -R " + filetrust.UserName(nobodyUID) + " " + path
			}
			want := []string{path + " belongs to root, and " + filetrust.UserName(nobodyUID) + " (uid 65534), who runs scepter, cannot ", "a scepter command run as root likely left it", chown}
			for _, args := range [][]string{
				{"certs", "list", "--data-dir", dir},
				{"serve", "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", dir},
			} {
				if !tt.refused && args[0] == "serve" {
					continue // it would run: certs list shows it is accepted
				}
				out, err := asOwner(args...)
				code := -1
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				} else if err == nil {
					code = 0
				}
				if !tt.refused {
					if code != 0 {
						t.Errorf("%s as the owner: %v\n%s", args[0], err, out)
					}
					continue
				}
				if code != 2 {
					t.Errorf("%s as the owner: %v (exit %d), want exit 2\n%s", args[0], err, code, out)
				}
				for _, w := range want {
					if !strings.Contains(out, w) {
						t.Errorf("%s as the owner: output does not say %q\n%s", args[0], w, out)
					}
				}
				if strings.Contains(out, "to discard it") {
					t.Errorf("%s as the owner: advises removing ca/next\n%s", args[0], out)
				}
			}
		})
	}
}

// A store.lock root left, which the owner may not open, refuses the
// owner's command that would share it (exit 2, with the chown), instead
// of letting it run unguarded against a store restore; a data directory
// the owner may not write, with no store.lock, still runs unguarded.
func TestShareStoreRootsLockFile(t *testing.T) {
	needRoot(t)
	dir, asOwner := ownersDataDir(t)
	lock := filepath.Join(dir, storeLockFile)
	os.Remove(lock)
	os.Chmod(dir, 0o500)
	if out, err := asOwner("shareStore", dir); err != nil {
		t.Fatalf("no store.lock, data dir not writable: %v\n%s", err, out)
	}
	os.Chmod(dir, 0o700)
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := asOwner("shareStore", dir)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("root's store.lock: %v, want exit 2\n%s", err, out)
	}
	for _, w := range []string{lock + " belongs to root", "a scepter command run as root likely left it", "chown " + filetrust.UserName(nobodyUID) + " " + lock} {
		if !strings.Contains(out, w) {
			t.Errorf("output does not say %q\n%s", w, out)
		}
	}
}

// A next CA the server may not read (root's, left by a 'ca rollover' run
// as root) is not met with advice to remove ca/next, which would not undo
// the rollover the store recorded, but with the chown that gives it back.
func TestNextCAPermissionAdvice(t *testing.T) {
	needRoot(t)
	dir, asOwner := ownersDataDir(t)
	if out, err := asOwner("ca", "rollover", "--switch-in", "1h", "--data-dir", dir); err != nil {
		t.Fatalf("ca rollover as the owner: %v\n%s", err, out)
	}
	next := filepath.Join(dir, "ca", "next")
	key := filepath.Join(next, "issuing.key")
	if err := os.Chown(key, 0, 0); err != nil {
		t.Fatal(err)
	}
	out, err := asOwner("loadCA", dir)
	if err == nil {
		t.Fatalf("loading a next CA the owner may not read: no error\n%s", out)
	}
	if !strings.Contains(out, "permission denied") || !strings.Contains(out, "chown -R USER "+next) || strings.Contains(out, "to discard it") {
		t.Errorf("want the chown of %s and no advice to remove it:\n%s", next, out)
	}
}
