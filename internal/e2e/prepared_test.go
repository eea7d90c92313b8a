package e2e

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A prepared data directory is what a server leaves after its first start:
// the CA (root, issuing CA, RSA-2048 RA key), the OCSP responder, the HTTPS
// certificate, the console's admin user and the SQLite store that records
// them. One real `scepter serve` makes it once per test binary (in the
// background from TestMain when the whole suite runs); a server started
// with serverOpts.prepared then runs on a copy of its own instead of
// making a CA, which saves the first start's CPU (about 0.2 s, mostly the
// RA key) for the many tests that check neither that start nor a CA of
// their own. Every copy holds the same CA: a test that tells two servers'
// CAs apart, or checks what a first start makes or prints, starts empty.
var (
	preparedOnce sync.Once
	preparedDir  string
	preparedErr  error
)

// preparedChallenge is the static challenge the prepared directory's
// server ran with: none is saved in it (challenge.txt), so a copy started
// without --challenge generates its own, as an empty one does.
const preparedChallenge = "prepared-data-dir-challenge"

// caShapingFlags make a first start other than the prepared one: a server
// given one of them must make its own CA.
var caShapingFlags = []string{"ca-key-type", "scep-ra", "root-key-passphrase-file", "est-server-name", "tls-cert", "tls-key", "public-url"}

// copyPrepared copies the prepared data directory to dataDir (which must
// not exist yet), or ends the test.
func copyPrepared(t testing.TB, dataDir string, args []string) {
	t.Helper()
	if f := caShapingFlag(args); f != "" {
		t.Fatalf("serverOpts.prepared with %s: the prepared CA was made without it; drop prepared so that the server makes its own", f)
	}
	preparedOnce.Do(prepareDataDir)
	if preparedErr != nil {
		t.Fatal(preparedErr)
	}
	if err := copyTree(preparedDir, dataDir); err != nil {
		t.Fatalf("copy the prepared data directory: %v", err)
	}
}

// caShapingFlag is the first flag of args that a first start would make
// another CA with (a caShapingFlags one, or a --pkcs11 one: keys in a
// token), or "".
func caShapingFlag(args []string) string {
	for _, f := range caShapingFlags {
		if flagValue(args, f) != "" {
			return "--" + f
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--pkcs11") || strings.HasPrefix(a, "-pkcs11") {
			name, _, _ := strings.Cut(a, "=")
			return name
		}
	}
	return ""
}

// prepareDataDir sets preparedDir, or preparedErr; run it through
// preparedOnce. It fails no test itself: every test that wants the
// directory reports preparedErr.
func prepareDataDir() {
	if buildErr != nil {
		preparedErr = fmt.Errorf("no prepared data directory: %w", buildErr)
		return
	}
	dir := filepath.Join(binDir, "prepared-data")
	for attempt := 0; ; attempt++ {
		err := firstStart(dir)
		if err == nil {
			preparedDir = dir
			return
		}
		// Another process may take the chosen port before the server binds
		// it, as in startServer: try again, from an empty directory.
		if attempt == 2 || !strings.Contains(err.Error(), "address already in use") {
			preparedErr = fmt.Errorf("prepare a data directory (a first start of scepter serve): %w", err)
			return
		}
	}
}

// firstStart runs `scepter serve` on an empty dir until it serves, and
// stops it: the data directory is then that of a server that ran once.
func firstStart(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	port, err := pickPort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, err := launch("", nil, scepterBin, "serve", "--data-dir", dir, "--listen", addr,
		"--est-listen", "127.0.0.1:0", "--challenge", preparedChallenge)
	if err != nil {
		return err
	}
	err = waitHTTP200(p, "http://"+addr+"/scep?operation=GetCACaps", readyTimeout)
	if err == nil {
		waitOutput(p, " listening on "+addr+"\n", 10*time.Second)
		if p.exited() || !strings.Contains(p.out.String(), " listening on "+addr+"\n") {
			err = fmt.Errorf("http://%s answered, but not from this server (exited: %v)", addr, p.exited())
		}
	}
	if stopErr := p.terminate(); err == nil {
		err = stopErr
	}
	if err == nil && p.err != nil {
		err = fmt.Errorf("scepter serve did not exit cleanly on SIGTERM: %v", p.err)
	}
	if err != nil {
		return fmt.Errorf("%v\n--- server output ---\n%s", err, p.out.String())
	}
	return nil
}

// copyTree copies the directories and regular files under src to dst,
// which must not exist, with their permissions.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
			return os.Chmod(target, info.Mode().Perm()) // past the umask
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		}
		return fmt.Errorf("%s: neither a directory nor a regular file (%v)", path, info.Mode())
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm) // past the umask
}

// TestPreparedCopies: each copy of the prepared data directory is a tree
// of its own with the template's files and modes (keys 0600, directories
// 0700: serve refuses looser ones), and no challenge.txt, so that a server
// started on it without --challenge generates one as on an empty one.
func TestPreparedCopies(t *testing.T) {
	t.Parallel()
	a := filepath.Join(t.TempDir(), "a")
	b := filepath.Join(t.TempDir(), "b")
	copyPrepared(t, a, nil)
	copyPrepared(t, b, nil)
	if fileExists(filepath.Join(a, "challenge.txt")) {
		t.Error("the prepared data directory holds a generated challenge")
	}
	n := 0
	err := filepath.WalkDir(preparedDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(preparedDir, path)
		want, err := os.Stat(path)
		if err != nil {
			return err
		}
		for _, dir := range []string{a, b} {
			got, err := os.Stat(filepath.Join(dir, rel))
			if err != nil {
				t.Errorf("copy lacks %s: %v", rel, err)
				continue
			}
			if got.Mode() != want.Mode() || (!d.IsDir() && got.Size() != want.Size()) {
				t.Errorf("%s: mode %v size %d in the copy, %v %d in the template", rel, got.Mode(), got.Size(), want.Mode(), want.Size())
			}
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca/root.crt", "ca/issuing.key", "ca/ra.key", "scepter.db", "tls/server.key", "admin-password.txt"} {
		if !fileExists(filepath.Join(a, f)) {
			t.Errorf("the prepared data directory lacks %s", f)
		}
	}
	// A copy is not shared: what a server writes in one shows in no other.
	writeFile(t, filepath.Join(a, "ca", "ra.crt"), "changed in a\n")
	if readFile(t, filepath.Join(b, "ca", "ra.crt")) == "changed in a\n" || readFile(t, filepath.Join(preparedDir, "ca", "ra.crt")) == "changed in a\n" {
		t.Error("a change in one copy shows in another copy or in the template")
	}
	t.Logf("%d entries copied", n)
}

func TestCAShapingFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"--config", "x.toml", "--allow-insecure-des", "--est-listen", "127.0.0.1:0"}, ""},
		{[]string{"--ca-key-type", "rsa2048"}, "--ca-key-type"},
		{[]string{"--scep-ra=ca"}, "--scep-ra"},
		{[]string{"-root-key-passphrase-file", "pw"}, "--root-key-passphrase-file"},
		{[]string{"--est-server-name", "a.example"}, "--est-server-name"},
		{[]string{"--public-url", "http://ca.example"}, "--public-url"},
		{[]string{"--pkcs11-uri=pkcs11:token=t"}, "--pkcs11-uri"},
		{[]string{"--rate-limit", "0", "--pkcs11-module", "/lib/softhsm.so"}, "--pkcs11-module"},
	} {
		if got := caShapingFlag(tc.args); got != tc.want {
			t.Errorf("caShapingFlag(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
