//go:build unix

package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
// may not (Debian's /etc/ssl/certs 0755 and /etc/ssl/private 0710): the
// layout links cert_path into the state directory beside the key, so once
// renewed others can no longer read it there. The renewal and status say
// so, naming the key's directory (r88 D1: it happened in silence).
func TestWarnsWhenTheCertificateMovesBehindTheKeyDirectory(t *testing.T) {
	for _, tt := range []struct {
		name    string
		keyDir  os.FileMode
		certDir os.FileMode
		warned  bool
	}{
		{"private 0710, certs 0755", 0o710, 0o755, true},
		{"private 0700, certs 0755", 0o700, 0o755, true},
		{"private 0711, certs 0755", 0o711, 0o755, false},
		{"private 0710, certs 0750", 0o710, 0o750, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			private := filepath.Join(f.dir, "private")
			if err := os.Mkdir(private, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(f.dir, "key.pem"), filepath.Join(private, "key.pem")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(private, tt.keyDir); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f.dir, tt.certDir); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(f.dir, 0o700) })
			f.cert().KeyPath = filepath.Join(private, "key.pem")
			want := "cert_path " + filepath.Join(f.dir, "cert.pem") + " is linked into " + filepath.Join(private, stateDirName, "dev") +
				", inside the key's directory " + private
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

// A state directory that group or others may write (by a chmod after the
// agent made it) is named by status, exit 1, and refused by a run whether
// the certificate is due or not: whoever may write it may switch
// `current`, and with it the key and certificate (r94 D4).
func TestStateDirectoryOthersMayWrite(t *testing.T) {
	for _, which := range []string{stateDirName, filepath.Join(stateDirName, "dev")} {
		t.Run(which, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			ctx := context.Background()
			f.clock.Set(RenewalPoint(f.first, 0))
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 1 {
				t.Fatalf("first renewal: err %v, %d renewals", err, f.renewer.count())
			}
			dir := filepath.Join(f.dir, which)
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			st := f.agent.Status()
			if st[0].Problem == nil || !strings.Contains(st[0].Problem.Error(), dir+" is writable by group or others") {
				t.Errorf("status: problem %v, want one naming %s", st[0].Problem, dir)
			}
			// Not due: refused all the same, and nothing asked.
			f.clock.Set(epoch.Add(time.Hour))
			if err := f.agent.RunOnce(ctx); err == nil {
				t.Errorf("a run that is not due went on")
			}
			if !strings.Contains(f.logs.String(), dir+" is writable by group or others") {
				t.Errorf("the log does not name %s:\n%s", dir, f.logs.String())
			}
			if n := f.renewer.count(); n != 1 {
				t.Errorf("%d renewals, want 1", n)
			}
		})
	}
}

// A key_path and cert_path spelled through a symbolic link in a safe
// directory, leading into a directory under one others may write, fail
// like the files there would: whoever may write the 0777 directory may
// rename the key's real directory and put their own in its place. Before,
// only the spelled directories were checked, and status and the renewal
// said nothing (r108 D1). The mirror (a link in the 0777 directory
// leading to a safe one) was refused already and still is.
func TestRefusesKeysReachedThroughALinkIntoADirectoryOthersMayWrite(t *testing.T) {
	for _, tt := range []struct {
		name     string
		linkIn   string // where the link to the files' directory is: "safe" or "open"
		filesIn  string // which directory holds the files' directory
		openMode os.FileMode
		refused  bool
	}{
		{name: "link in a safe directory into a 0777 one", linkIn: "safe", filesIn: "open", openMode: 0o777, refused: true},
		{name: "link in a safe directory into a 0775 one", linkIn: "safe", filesIn: "open", openMode: 0o775, refused: true},
		{name: "link in a safe directory into a 01777 one", linkIn: "safe", filesIn: "open", openMode: 0o777 | os.ModeSticky},
		{name: "link in a 0777 directory into a safe one", linkIn: "open", filesIn: "safe", openMode: 0o777, refused: true},
		{name: "link and files in safe directories", linkIn: "safe", filesIn: "safe", openMode: 0o777},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			top := t.TempDir()
			dirs := map[string]string{"safe": filepath.Join(top, "safe"), "open": filepath.Join(top, "open")}
			for _, d := range dirs {
				if err := os.Mkdir(d, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dirs["open"], tt.openMode); err != nil {
				t.Fatal(err)
			}
			real := filepath.Join(dirs[tt.filesIn], "files")
			if err := os.Mkdir(real, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"key.pem", "cert.pem"} {
				if err := os.Rename(filepath.Join(f.dir, name), filepath.Join(real, name)); err != nil {
					t.Fatal(err)
				}
			}
			link := filepath.Join(dirs[tt.linkIn], "L")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			f.cert().KeyPath, f.cert().CertPath = filepath.Join(link, "key.pem"), filepath.Join(link, "cert.pem")
			f.cfg.OnceAttempts = 1
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			err := f.agent.RunOnce(context.Background())
			status := f.agent.Status()[0].Problem
			if !tt.refused {
				if err != nil || status != nil {
					t.Fatalf("RunOnce: %v; status problem: %v", err, status)
				}
				return
			}
			if err == nil {
				t.Fatal("RunOnce: no error")
			}
			want := dirs["open"] + ", has mode"
			if status == nil || !strings.Contains(status.Error(), want) || !strings.Contains(status.Error(), "chmod go-w "+dirs["open"]) {
				t.Errorf("status problem %v does not say %q and the chmod", status, want)
			}
			if !strings.Contains(f.logs.String(), want) {
				t.Errorf("the log does not say %q:\n%s", want, f.logs.String())
			}
			if f.renewer.count() != 0 {
				t.Errorf("%d renewals asked for, want none", f.renewer.count())
			}
			if _, err := os.Lstat(filepath.Join(real, stateDirName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the state directory was made: %v", err)
			}
		})
	}
}

// A directory the agent writes in that its user may not write fails
// status, naming it: a renewal would fail there at the renewal point.
// Before, status exited 0 and only the renewal found out (r108,
// Observations). Root may write any directory of a writable mount, so the
// test runs as another user only (as the nobody user: see the report of
// r108's fix).
func TestStatusNamesADirectoryTheAgentCannotWrite(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write every directory; run as another user")
	}
	for _, tt := range []struct {
		name    string
		keyDir  os.FileMode
		certDir os.FileMode // 0: the certificate beside the key
		want    string      // the setting named; "" when none
	}{
		{name: "writable", keyDir: 0o700},
		{name: "key's directory read-only", keyDir: 0o500, want: "key_path"},
		{name: "certificate's directory read-only", keyDir: 0o700, certDir: 0o500, want: "cert_path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			if tt.certDir != 0 {
				certDir := t.TempDir()
				if err := os.Rename(filepath.Join(f.dir, "cert.pem"), filepath.Join(certDir, "cert.pem")); err != nil {
					t.Fatal(err)
				}
				f.cert().CertPath = filepath.Join(certDir, "cert.pem")
				if err := os.Chmod(certDir, tt.certDir); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(certDir, 0o700) })
			}
			if err := os.Chmod(f.dir, tt.keyDir); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(f.dir, 0o700) })
			st := f.agent.Status()[0]
			if tt.want == "" {
				if st.Problem != nil {
					t.Fatalf("status problem: %v", st.Problem)
				}
				return
			}
			if st.Problem == nil || !st.Failing(f.clock.Now()) {
				t.Fatal("status: no problem")
			}
			for _, want := range []string{tt.want + " ", "cannot be written by this user", "a renewal would fail there"} {
				if !strings.Contains(st.Problem.Error(), want) {
					t.Errorf("status problem %v does not say %q", st.Problem, want)
				}
			}
		})
	}
}
