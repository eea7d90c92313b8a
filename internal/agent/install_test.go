package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// Crash safety, in-process: the install is stopped after each of its steps
// in turn (the writer's test hook stands for a SIGKILL there), and
//   - at every step, and after the stop, key_path and cert_path hold a
//     matching pair, the old one or the new one;
//   - the next run recovers: it finishes or redoes the renewal, runs the
//     post_renew command exactly once in all, and leaves nothing behind.
//
// internal/e2e/agent_test.go kills real `scepter agent --once` processes.
func TestInstallStoppedAtEveryStep(t *testing.T) {
	scenarios := []struct {
		name string
		opts fixtureOpts
		// renewFirst: one complete renewal before the interrupted one, so
		// the files are already links through the generations.
		renewFirst bool
	}{
		{name: "regular files: migration and renewal", opts: fixtureOpts{}},
		{name: "linked files: renewal", opts: fixtureOpts{}, renewFirst: true},
		{name: "with a chain file", opts: fixtureOpts{intermediate: true, extra: "chain_path = \"chain.pem\"\n"}},
		{name: "with a chain file, linked", opts: fixtureOpts{intermediate: true, extra: "chain_path = \"chain.pem\"\n"}, renewFirst: true},
		{name: "full chain in the certificate file", opts: fixtureOpts{intermediate: true, extra: "chain_path = \"cert.pem\"\n"}},
		{name: "combined file", opts: fixtureOpts{combined: true}},
		{name: "combined file, renewed before", opts: fixtureOpts{combined: true}, renewFirst: true},
		{name: "keep the key", opts: fixtureOpts{extra: "rekey = false\n"}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			var steps []string
			for stopAt := 1; ; stopAt++ {
				if stopAt > 200 {
					t.Fatal("the install never completed")
				}
				var completed bool
				t.Run(fmt.Sprintf("stop at %d", stopAt), func(t *testing.T) {
					completed = crashAndRecover(t, sc.opts, sc.renewFirst, stopAt, &steps)
				})
				if completed || t.Failed() {
					break
				}
			}
			t.Logf("%d steps: %s", len(steps), strings.Join(steps, "; "))
		})
	}
}

// crashAndRecover stops the install at step stopAt and checks the files,
// then the recovery. It reports whether the install had fewer steps.
func crashAndRecover(t *testing.T, o fixtureOpts, renewFirst bool, stopAt int, stepsOut *[]string) (completed bool) {
	f := newFixture(t, o)
	ctx := context.Background()
	f.cfg.OnceAttempts = 1
	if renewFirst {
		f.clock.Set(RenewalPoint(f.first, 0))
		if err := f.agent.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	old := f.pair().cert
	postBefore := f.postRuns()
	f.clock.Set(RenewalPoint(old, 0))

	// Every certificate that may legitimately be on disk.
	known := func(c *x509.Certificate) bool {
		if c.Equal(old) {
			return true
		}
		for _, n := range f.renewer.issued {
			if c.Equal(n) {
				return true
			}
		}
		return false
	}
	var steps []string
	f.agent.hook = func(step string) error {
		steps = append(steps, strings.ReplaceAll(step, f.dir+string(filepath.Separator), ""))
		p, err := readPair(newLayout(f.cert(), nil))
		if err != nil {
			t.Fatalf("after step %q: %v", step, err)
		}
		if !known(p.cert) {
			t.Fatalf("after step %q: an unknown certificate is in place", step)
		}
		if len(steps) == stopAt {
			return errStop
		}
		return nil
	}
	err := f.agent.RunOnce(ctx)
	if len(steps) < stopAt {
		// The install has fewer steps: it ran to its end.
		if err != nil {
			t.Fatalf("an uninterrupted run failed: %v", err)
		}
		*stepsOut = steps
		return true
	}
	if err == nil || !strings.Contains(f.logs.String(), errStop.Error()) {
		t.Fatalf("stopped at %q: RunOnce = %v", steps[stopAt-1], err)
	}
	p := f.pair()
	if !known(p.cert) {
		t.Fatalf("stopped at %q: an unknown certificate is in place", steps[stopAt-1])
	}
	switched := !p.cert.Equal(old)

	// The next run, undisturbed.
	f.agent.hook = nil
	calls := f.renewer.count()
	if err := f.agent.RunOnce(ctx); err != nil {
		t.Fatalf("stopped at %q: the next run failed: %v", steps[stopAt-1], err)
	}
	p = f.pair()
	if p.cert.Equal(old) {
		t.Fatalf("stopped at %q: the next run did not renew", steps[stopAt-1])
	}
	if switched && f.renewer.count() != calls {
		t.Errorf("stopped at %q after the switch: the next run renewed again", steps[stopAt-1])
	}
	if !switched && f.renewer.count() != calls+1 {
		t.Errorf("stopped at %q before the switch: the next run did not renew", steps[stopAt-1])
	}
	if n := f.postRuns() - postBefore; n != 1 {
		t.Errorf("stopped at %q: post_renew ran %d times for one renewal", steps[stopAt-1], n)
	}
	if err := checkPairAtPaths(f); err != nil {
		t.Error(err)
	}
	expectClean(t, f)
	return false
}

// checkPairAtPaths reads key_path and cert_path as separate files (the way
// nginx does) and checks they match.
func checkPairAtPaths(f *fixture) error {
	c := f.cert()
	certs, err := loadCerts(c.CertPath)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(c.KeyPath)
	if err != nil {
		return err
	}
	key, err := parseKey(b)
	if err != nil {
		return err
	}
	if !pki.SamePublicKey(key.Public(), certs[0].PublicKey) {
		return errors.New("key_path and cert_path do not match")
	}
	return nil
}

// A migration interrupted half-way (key_path a link, cert_path still a
// regular file) shows a matching pair and is completed by the next run.
func TestHalfMigratedLayoutRecovers(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	l := newLayout(f.cert(), nil)
	calls := 0
	l.hook = func(step string) error {
		calls++
		if strings.HasPrefix(step, "link "+f.cert().KeyPath+": renamed") {
			return errStop
		}
		return nil
	}
	if err := l.stateDir(); err != nil {
		t.Fatal(err)
	}
	if err := l.migrate(); !errors.Is(err, errStop) {
		t.Fatalf("migrate = %v", err)
	}
	if fi, _ := os.Lstat(f.cert().KeyPath); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("key_path is not a link yet")
	}
	if fi, _ := os.Lstat(f.cert().CertPath); !fi.Mode().IsRegular() {
		t.Fatal("cert_path is not a regular file")
	}
	if p := f.pair(); !p.cert.Equal(f.first) {
		t.Fatal("the pair changed")
	}
	// Renewal starts by completing the migration.
	f.clock.Set(RenewalPoint(f.first, 0))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := f.pair(); p.cert.Equal(f.first) {
		t.Fatal("not renewed")
	}
	if !l.isOurLink(f.cert().CertPath, "cert.pem") {
		t.Error("cert_path was not migrated")
	}
	expectClean(t, f)
}

// Files replaced by hand (scepter enroll writes regular files over the
// links) are taken over again at the next renewal.
func TestFilesReplacedByHandAreTakenOver(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.clock.Set(RenewalPoint(f.first, 0))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// An operator enrolls anew: regular files replace the links.
	key, cert := f.pair().key, f.ca.issue(t, f.pair().key.Public(), f.first.Subject, nil, f.clock.Now(), 30*24*time.Hour)
	os.Remove(f.cert().KeyPath)
	os.Remove(f.cert().CertPath)
	writePEM(t, f.cert().KeyPath, 0o600, key)
	writePEM(t, f.cert().CertPath, 0o644, nil, cert)
	if p := f.pair(); !p.cert.Equal(cert) {
		t.Fatal("setup")
	}
	f.clock.Set(RenewalPoint(cert, 0))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := f.pair(); p.cert.Equal(cert) {
		t.Error("not renewed")
	}
	expectClean(t, f)
}

// Leftovers of a crash in the middle of writing a file (a temporary file
// with a part of a key) are removed, and the key files stay private.
func TestRecoverRemovesLeftovers(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	l := newLayout(f.cert(), nil)
	if err := l.stateDir(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		filepath.Join(f.dir, ".key.pem"+tmpInfix+"123"),
		filepath.Join(l.state, "."+currentName+tmpInfix+"abc"),
		filepath.Join(l.state, genPrefix+"000009", "key.pem"),
	} {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("-----BEGIN PRIVATE"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.recover(); err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(f.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.Contains(d.Name(), tmpInfix) || strings.HasPrefix(d.Name(), genPrefix)) {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if p := f.pair(); !p.cert.Equal(f.first) {
		t.Error("recovery changed the pair")
	}
}

// A configured path with glob characters matches itself only, so that
// cleaning up after an interrupted run touches no other directory's files.
func TestGlobQuote(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"[ab]", "a", "b*"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, ".key.pem"+tmpInfix+"x"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"[ab]", "b*"} {
		m, err := filepath.Glob(filepath.Join(globQuote(filepath.Join(dir, d)), globQuote(".key.pem"+tmpInfix)+"*"))
		if err != nil || len(m) != 1 || filepath.Dir(m[0]) != filepath.Join(dir, d) {
			t.Errorf("%s: %v, %v; want only its own file", d, m, err)
		}
	}
}

// A state directory that is there already is used only if it is one the
// agent could have made: not a link elsewhere, not writable by others.
func TestStateDirRefusesLinksAndLooseModes(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(t *testing.T, state string)
		want string
	}{
		{"a link", func(t *testing.T, state string) {
			elsewhere := t.TempDir()
			if err := os.Symlink(elsewhere, state); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
		{"writable by others", func(t *testing.T, state string) {
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, 0o777); err != nil {
				t.Fatal(err)
			}
		}, "writable by group or others"},
		{"another user's", func(t *testing.T, state string) {
			if os.Geteuid() != 0 {
				t.Skip("only root can give a directory away")
			}
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(state, 4242, 4242); err != nil {
				t.Fatal(err)
			}
		}, "belongs to another user"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.make(t, filepath.Join(dir, stateDirName))
			l := &layout{key: filepath.Join(dir, "key.pem"), state: filepath.Join(dir, stateDirName, "g")}
			if err := l.stateDir(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("stateDir: %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// A `current` that names a generation that is not there, or is not
// complete (changed by hand, or damaged), makes recovery remove nothing:
// the generation it should name may hold the only copy of the key.
func TestRecoverKeepsGenerationsWhenCurrentIsBroken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, state, gen string)
	}{
		{"current names a missing generation", func(t *testing.T, state, gen string) {
			repoint(t, state, genPrefix+"000099")
		}},
		{"current names an empty generation", func(t *testing.T, state, gen string) {
			if err := os.Mkdir(filepath.Join(state, genPrefix+"000099"), 0o700); err != nil {
				t.Fatal(err)
			}
			repoint(t, state, genPrefix+"000099")
		}},
		{"the current generation lost its key", func(t *testing.T, state, gen string) {
			if err := os.Rename(filepath.Join(state, gen, "key.pem"), filepath.Join(state, "key.pem.saved")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.clock.Set(RenewalPoint(f.first, 0))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			l := newLayout(f.cert(), nil)
			gen, err := l.currentGen()
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, l.state, gen)
			if _, err := l.recover(); err == nil || !strings.Contains(err.Error(), "no generation is removed") {
				t.Errorf("recover = %v, want an error that says nothing is removed", err)
			}
			f.clock.Advance(time.Hour)
			if err := f.agent.RunOnce(context.Background()); err == nil {
				t.Error("RunOnce succeeded with a broken current")
			}
			if _, err := os.Stat(filepath.Join(l.state, gen, "cert.pem")); err != nil {
				t.Errorf("the generation in use was removed: %v", err)
			}
		})
	}
}

func repoint(t *testing.T, state, gen string) {
	t.Helper()
	cur := filepath.Join(state, currentName)
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(gen, cur); err != nil {
		t.Fatal(err)
	}
}

// A `current` changed by hand or damaged fails the run, naming what is
// actually missing (r94 D6: a missing generation was said to have "no
// key.pem").
func TestRecoveryNamesWhatIsMissing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, state, gen string)
		want  string
	}{
		{"a generation that does not exist", func(t *testing.T, state, gen string) {
			if err := os.Remove(filepath.Join(state, currentName)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("gen-000050", filepath.Join(state, currentName)); err != nil {
				t.Fatal(err)
			}
		}, "points to gen-000050, which does not exist"},
		{"a generation without its key", func(t *testing.T, state, gen string) {
			if err := os.Remove(filepath.Join(state, gen, "key.pem")); err != nil {
				t.Fatal(err)
			}
		}, "which has no key.pem"},
		{"a generation without its certificate", func(t *testing.T, state, gen string) {
			if err := os.Remove(filepath.Join(state, gen, "cert.pem")); err != nil {
				t.Fatal(err)
			}
		}, "which has no cert.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.cfg.OnceAttempts = 1
			f.clock.Set(RenewalPoint(f.first, 0))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			l := newLayout(f.cert(), nil)
			gen, err := l.currentGen()
			if err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, l.state, gen)
			if err := f.agent.RunOnce(context.Background()); err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(f.logs.String(), tc.want) {
				t.Errorf("the log does not say %q:\n%s", tc.want, f.logs.String())
			}
		})
	}
}

// Running as root, a renewed chain file takes the owner and group of the
// chain file it replaces, not the certificate's (r94 D7).
func TestRenewedChainKeepsItsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give files away")
	}
	f := newFixture(t, fixtureOpts{intermediate: true, extra: "chain_path = \"chain.pem\"\n"})
	writePEM(t, filepath.Join(f.dir, "chain.pem"), 0o644, nil, f.ca.inter)
	owners := map[string][2]int{"key.pem": {1234, 4322}, "cert.pem": {1234, 4322}, "chain.pem": {0, 4322}}
	for name, o := range owners {
		if err := os.Chown(filepath.Join(f.dir, name), o[0], o[1]); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for i := 1; i <= 2; i++ { // the migration and a renewal, then another
		f.clock.Set(RenewalPoint(f.pair().cert, 0))
		if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != i {
			t.Fatalf("renewal %d: err %v, %d renewals", i, err, f.renewer.count())
		}
		for name, o := range owners {
			uid, gid, ok := ownerOf(filepath.Join(f.dir, name))
			if !ok || uid != o[0] || gid != o[1] {
				t.Errorf("after renewal %d, %s (through its link) belongs to %d:%d, want %d:%d", i, name, uid, gid, o[0], o[1])
			}
		}
	}
}
