//go:build unix

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A key_path, cert_path or chain_path in a directory that group or others
// may write (without the sticky bit) fails its certificate, naming the
// directory and the chmod, before anything is written or asked: whoever
// may write there may rename their own key and certificate over the
// agent's. A sticky directory (/tmp's 01777) lets no one replace another's
// files, and is used. Before, the agent kept keys in a 0777 directory and
// said nothing.
func TestRefusesKeysInADirectoryOthersMayWrite(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mode    os.FileMode // of the directory of key_path and cert_path
		chain   os.FileMode // of the directory of chain_path; 0: none
		parent  os.FileMode // of the directory above key_path's; 0: left
		refused string      // the directory named in the refusal; "" when none
	}{
		{name: "0777", mode: 0o777, refused: "files"},
		{name: "0775", mode: 0o775, refused: "files"},
		{name: "0757", mode: 0o757, refused: "files"},
		{name: "01777 (sticky)", mode: 0o777 | os.ModeSticky},
		{name: "0755", mode: 0o755},
		{name: "chain_path in a 0777 directory", mode: 0o755, chain: 0o777, refused: "chain"},
		{name: "chain_path in a 01777 directory", mode: 0o755, chain: 0o777 | os.ModeSticky},
		{name: "0755 under a 0777 directory", mode: 0o755, parent: 0o777, refused: "parent"},
		{name: "0755 under a 01777 directory", mode: 0o755, parent: 0o777 | os.ModeSticky},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			if err := os.Chmod(f.dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(f.dir, 0o700) })
			if tt.parent != 0 {
				// Whoever may write it may rename the key's directory.
				if err := os.Chmod(filepath.Dir(f.dir), tt.parent); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(filepath.Dir(f.dir), 0o700) })
			}
			chainDir := filepath.Join(t.TempDir(), "chain")
			if tt.chain != 0 {
				if err := os.Mkdir(chainDir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(chainDir, tt.chain); err != nil {
					t.Fatal(err)
				}
				f.cert().ChainPath = filepath.Join(chainDir, "chain.pem")
			}
			dirs := map[string]string{"files": f.dir, "chain": chainDir, "parent": filepath.Dir(f.dir)}
			f.cfg.OnceAttempts = 1
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			err := f.agent.RunOnce(context.Background())
			status := f.agent.Status()[0].Problem
			if tt.refused == "" {
				if err != nil || status != nil {
					t.Fatalf("RunOnce: %v; status problem: %v", err, status)
				}
				if f.renewer.count() != 1 {
					t.Errorf("%d renewals, want 1", f.renewer.count())
				}
				return
			}
			if err == nil {
				t.Fatal("RunOnce: no error")
			}
			dir := dirs[tt.refused]
			for _, want := range []string{"the directory of", dir + ", has mode", "chmod go-w " + dir} {
				if !strings.Contains(f.logs.String(), want) {
					t.Errorf("the log does not say %q", want)
				}
				if status == nil || !strings.Contains(status.Error(), want) {
					t.Errorf("status problem %v does not say %q", status, want)
				}
			}
			if f.renewer.count() != 0 {
				t.Errorf("%d renewals asked for, want none", f.renewer.count())
			}
			if _, err := os.Lstat(filepath.Join(f.dir, stateDirName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the state directory was made: %v", err)
			}
			if !f.pair().cert.Equal(f.first) {
				t.Error("the certificate in place changed")
			}
		})
	}
}

// A certificate in a directory others may enter, with its key in one they
// may not (Debian's /etc/ssl/certs 0755 and /etc/ssl/private 0710
// root:ssl-cert): others read the certificate before the first renewal and
// after every one, the key's group its key, and no one else the key (r88
// D1: cert_path became a link into the key's directory, and others lost
// the certificate). The generations' certificates and the switch are
// beside the certificate, their keys beside the key. Checked with real
// reads as other users when the test runs as root, and always by walking
// the links: every directory on the way from cert_path to its file is one
// others may enter. Under umask 077, as the example units set it.
func TestCertificateStaysReadableBesideAPrivateKeyDirectory(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts fixtureOpts
	}{
		{"regular files", fixtureOpts{privateKey: true}},
		{"with a chain file", fixtureOpts{privateKey: true, intermediate: true, extra: "chain_path = \"chain.pem\"\n"}},
		{"the layout of earlier versions", fixtureOpts{privateKey: true, oldLayout: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			private := filepath.Join(f.dir, "private")
			for _, d := range []string{filepath.Dir(f.dir), f.dir} {
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			const nobody, group = 1234, 4321
			root := os.Geteuid() == 0
			if root {
				// As Debian: root:ssl-cert 0710 and 0640; the certificate
				// somebody else's, which the renewals keep.
				for _, p := range []string{private, f.cert().KeyPath} {
					if err := os.Chown(p, 0, group); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chmod(f.cert().KeyPath, 0o640); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(f.cert().CertPath, 4242, 4243); err != nil {
					t.Fatal(err)
				}
				if tt.opts.oldLayout {
					// As an earlier agent made them: like the key's directory.
					for _, d := range []string{filepath.Join(private, stateDirName), filepath.Join(private, stateDirName, "dev"), filepath.Join(private, stateDirName, "dev", genPrefix+"000001")} {
						if err := os.Chown(d, 0, group); err != nil {
							t.Fatal(err)
						}
						if err := os.Chmod(d, 0o710); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			old := syscall.Umask(0o077)
			defer syscall.Umask(old)
			asUser := canRunAs(t, nobody, nobody)
			for round := 0; round < 3; round++ {
				if round > 0 {
					f.clock.Set(RenewalPoint(f.pair().cert, 0))
					if err := f.agent.RunOnce(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				c := f.cert()
				for _, p := range []string{c.CertPath, c.ChainPath} {
					if p == "" || (p == c.ChainPath && round == 0) || (round == 0 && tt.opts.oldLayout) {
						// Before any renewal: no chain yet; the earlier
						// layout hides the certificate (the defect).
						continue
					}
					if err := othersMayRead(p); err != nil {
						t.Errorf("round %d: %v", round, err)
					}
					if asUser {
						if out, err := readAs(p, nobody, nobody); err != nil {
							t.Errorf("round %d: another user cannot read %s: %v: %s", round, p, err, out)
						}
					}
				}
				if round > 0 {
					expectClean(t, f)
					if err := checkPairAtPaths(f); err != nil {
						t.Fatal(err)
					}
					real, err := filepath.EvalSymlinks(c.KeyPath)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.HasPrefix(real, filepath.Join(private, stateDirName, "dev")+string(filepath.Separator)) {
						t.Errorf("the key is at %s, outside the key's directory", real)
					}
					if real, _ := filepath.EvalSymlinks(c.CertPath); strings.HasPrefix(real, private) {
						t.Errorf("the certificate is at %s, inside the key's directory", real)
					}
					wantKey := os.FileMode(0o600)
					if root {
						wantKey = 0o640
					}
					for p, want := range map[string]os.FileMode{c.KeyPath: wantKey, c.CertPath: 0o644} {
						if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
							t.Errorf("round %d: %s: %v, %v; want mode %04o", round, p, fi.Mode().Perm(), err, want)
						}
					}
					if root {
						if uid, gid, _ := ownerOf(c.CertPath); uid != 4242 || gid != 4243 {
							t.Errorf("round %d: the certificate belongs to %d:%d, want 4242:4243 (the file it replaced)", round, uid, gid)
						}
						if _, gid, _ := ownerOf(c.KeyPath); gid != group {
							t.Errorf("round %d: the key's group is %d, want %d", round, gid, group)
						}
					}
				}
				if asUser {
					if _, err := readAs(c.KeyPath, nobody, nobody); err == nil {
						t.Errorf("round %d: another user reads the key", round)
					}
					if out, err := readAs(c.KeyPath, nobody, group); err != nil {
						t.Errorf("round %d: the key's group cannot read it: %v: %s", round, err, out)
					}
				}
			}
		})
	}
}

// A chain_path in a third directory, one others may enter, while the
// certificate's is one they may not: the chain is linked through the
// switch beside the certificate, and others lose it once renewed; the
// renewal and status say so.
func TestWarnsWhenTheChainMovesBehindTheCertificateDirectory(t *testing.T) {
	for _, tt := range []struct {
		name     string
		certDir  os.FileMode
		chainDir os.FileMode
		warned   bool
	}{
		{"certificate 0750, chain 0755", 0o750, 0o755, true},
		{"certificate 0755, chain 0755", 0o755, 0o755, false},
		{"certificate 0750, chain 0750", 0o750, 0o750, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{intermediate: true})
			chains := filepath.Join(t.TempDir(), "chains")
			if err := os.Mkdir(chains, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(chains, tt.chainDir); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f.dir, tt.certDir); err != nil {
				t.Fatal(err)
			}
			f.cert().ChainPath = filepath.Join(chains, "chain.pem")
			want := "chain_path " + f.cert().ChainPath + " is linked into " + filepath.Join(f.dir, stateDirName, "dev") +
				", inside the certificate's directory " + f.dir
			st := f.agent.Status()[0]
			if got := strings.Contains(st.Warning, want); got != tt.warned {
				t.Errorf("status warning %q; want it to say %q: %v", st.Warning, want, tt.warned)
			}
			var out strings.Builder
			if err := WriteStatus(&out, []CertStatus{st}, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(out.String(), "warning:       "+want); got != tt.warned {
				t.Errorf("status:\n%s\nsays it: %v, want %v", out.String(), !tt.warned, tt.warned)
			}
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(f.logs.String(), "level=WARN msg=\""+want); got != tt.warned {
				t.Errorf("the renewal warned: %v, want %v:\n%s", got, tt.warned, f.logs.String())
			}
			f.pair()
		})
	}
}

// othersMayRead follows path link by link and says which directory on the
// way others may not enter, or that the file is not theirs to read.
func othersMayRead(path string) error {
	var walk func(p string, depth int) (string, error)
	walk = func(p string, depth int) (string, error) {
		if depth > 40 {
			return "", fmt.Errorf("%s: too many links", path)
		}
		cur := string(filepath.Separator)
		for _, part := range strings.Split(strings.TrimPrefix(filepath.Clean(p), cur), cur) {
			fi, err := os.Stat(cur)
			if err != nil {
				return "", err
			}
			if fi.Mode().Perm()&0o001 == 0 {
				return "", fmt.Errorf("reading %s takes entering %s (mode %04o), which others may not", path, cur, fi.Mode().Perm())
			}
			next := filepath.Join(cur, part)
			li, err := os.Lstat(next)
			if err != nil {
				return "", err
			}
			if li.Mode()&os.ModeSymlink != 0 {
				target, err := os.Readlink(next)
				if err != nil {
					return "", err
				}
				if !filepath.IsAbs(target) {
					target = filepath.Join(cur, target)
				}
				if next, err = walk(target, depth+1); err != nil {
					return "", err
				}
			}
			cur = next
		}
		return cur, nil
	}
	file, err := walk(path, 0)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm()&0o004 == 0 {
		return fmt.Errorf("%s (%s): others may not read it: %v", path, file, err)
	}
	return nil
}

// canRunAs: this process may run a command as uid:gid (it is root, and the
// system lets it change users).
func canRunAs(t *testing.T, uid, gid int) bool {
	if os.Geteuid() != 0 {
		t.Log("not root: the reads as another user are left out; the modes on the way are checked")
		return false
	}
	if out, err := readAs(os.DevNull, uid, gid); err != nil {
		t.Logf("cannot run a command as %d:%d (%v: %s): the modes on the way are checked", uid, gid, err, out)
		return false
	}
	return true
}

// readAs reads path with cat as uid:gid, with no other groups.
func readAs(path string, uid, gid int) ([]byte, error) {
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	return cmd.CombinedOutput()
}
