package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A key_path, cert_path or chain_path that is a symbolic link the agent
// did not make is refused before anything is renewed or touched: an
// install would replace the link, and the file it led to would keep the
// old certificate.
func TestForeignLinksAreRefused(t *testing.T) {
	tests := []struct {
		name  string
		opts  fixtureOpts
		links []string // files moved to ext/ and linked from where they were
		// relative: the links are relative ("../ext/x"), not absolute.
		relative bool
		want     string
	}{
		{name: "key and certificate", links: []string{"key.pem", "cert.pem"}, want: "key_path"},
		{name: "certificate only", links: []string{"cert.pem"}, want: "cert_path"},
		{name: "relative links", links: []string{"key.pem", "cert.pem"}, relative: true, want: "key_path"},
		{name: "chain", opts: fixtureOpts{intermediate: true, extra: "chain_path = \"chain.pem\"\n"}, links: []string{"chain.pem"}, want: "chain_path"},
		{name: "combined file", opts: fixtureOpts{combined: true}, links: []string{"all.pem"}, want: "key_path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			ext := filepath.Join(filepath.Dir(f.dir), filepath.Base(f.dir)+"-ext")
			if err := os.Mkdir(ext, 0o700); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(ext) })
			if tt.opts.extra != "" {
				if err := os.WriteFile(filepath.Join(f.dir, "chain.pem"), encodeCerts(f.ca.certs()...), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := map[string][]byte{}
			for _, name := range tt.links {
				path := filepath.Join(f.dir, name)
				moved := filepath.Join(ext, name)
				if err := os.Rename(path, moved); err != nil {
					t.Fatal(err)
				}
				target := moved
				if tt.relative {
					target = filepath.Join("..", filepath.Base(ext), name)
				}
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
				before[name], _ = os.ReadFile(moved)
			}
			f.clock.Set(f.first.NotAfter.Add(-1))
			err := f.agent.RunOnce(context.Background())
			if err == nil {
				t.Fatal("renewed through links the agent did not make")
			}
			if n := f.renewer.count(); n != 0 {
				t.Errorf("%d renewals, want none", n)
			}
			logs := f.logs.String()
			link := filepath.Join(f.dir, tt.links[0])
			if !strings.Contains(logs, tt.want+" "+link+" is a symbolic link to ") || !strings.Contains(logs, "which the agent did not make") {
				t.Errorf("the log does not name the link %s:\n%s", link, logs)
			}
			for _, name := range tt.links {
				path := filepath.Join(f.dir, name)
				if target, err := os.Readlink(path); err != nil || !strings.Contains(target, filepath.Base(ext)) {
					t.Errorf("%s now links to %q (%v)", name, target, err)
				}
				if after, _ := os.ReadFile(filepath.Join(ext, name)); !bytes.Equal(after, before[name]) {
					t.Errorf("%s changed", name)
				}
			}
			if _, err := os.Lstat(filepath.Join(f.dir, stateDirName)); err == nil {
				t.Errorf("a state directory was made")
			}
			var out bytes.Buffer
			WriteStatus(&out, f.agent.Status(), f.clock.Now())
			if !strings.Contains(out.String(), "which the agent did not make") {
				t.Errorf("status does not say it:\n%s", out.String())
			}
		})
	}
}

// secondAgent is another agent (another configuration) on the fixture's
// files, whose certificate is called name.
func (f *fixture) secondAgent(name string) (*Agent, *Certificate, *syncBuffer) {
	c := *f.cert()
	c.Name = name
	cfg := *f.cfg
	cfg.Certificates = []Certificate{c}
	logs := &syncBuffer{}
	a := &Agent{Config: &cfg, Clock: f.agent.Clock, Renewers: f.agent.Renewers, Jitter: f.agent.Jitter, Sleep: f.agent.Sleep,
		Log: slog.New(slog.NewTextHandler(logs, nil))}
	return a, &cfg.Certificates[0], logs
}

// Two configurations that give the same files two names: they lock each
// other out, and the second never takes over the files of the first.
func TestTwoNamesOnTheSameFiles(t *testing.T) {
	ctx := context.Background()
	t.Run("they lock each other out", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		other, oc, logs := f.secondAgent("dev2")
		l := newLayout(f.cert(), nil)
		if err := l.stateDir(); err != nil {
			t.Fatal(err)
		}
		unlock, err := l.lock()
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := other.RunOnce(ctx); err != nil {
			t.Errorf("RunOnce = %v; a certificate another agent is renewing is skipped", err)
		}
		if n := f.renewer.count(); n != 0 || !strings.Contains(logs.String(), "another scepter agent") {
			t.Errorf("%q renewed %d times while %q held its lock:\n%s", oc.Name, n, f.cert().Name, logs.String())
		}
	})
	t.Run("the second is refused", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 1 {
			t.Fatalf("first agent: err %v, %d renewals", err, f.renewer.count())
		}
		linked := f.pair()
		targets := map[string]string{}
		for _, name := range []string{"key.pem", "cert.pem"} {
			targets[name], _ = os.Readlink(filepath.Join(f.dir, name))
		}
		other, oc, logs := f.secondAgent("dev2")
		f.clock.Set(linked.cert.NotAfter.Add(-time.Hour))
		if err := other.RunOnce(ctx); err == nil {
			t.Fatal("a second name took over the files")
		}
		if n := f.renewer.count(); n != 1 {
			t.Errorf("%d renewals, want the first agent's one", n)
		}
		want := "a link into " + filepath.Join(f.dir, stateDirName, "dev") + `, the state directory of the agent's certificate \"dev\"` // quoted by slog
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
		for name, target := range targets {
			if now, _ := os.Readlink(filepath.Join(f.dir, name)); now != target {
				t.Errorf("%s now links to %q, was %q", name, now, target)
			}
		}
		if _, err := os.Stat(newLayout(oc, nil).state); err == nil {
			t.Errorf("a state directory for %q was made", oc.Name)
		}
		// The first goes on renewing them.
		if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 2 {
			t.Errorf("first agent afterwards: err %v, %d renewals", err, f.renewer.count())
		}
	})
	t.Run("a stale key left by a takeover is named", func(t *testing.T) {
		// What an earlier version left: "dev2" took the links over, and
		// "dev" kept its generation, with its superseded key.
		f := newFixture(t, fixtureOpts{})
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(f.dir, stateDirName)
		if err := os.CopyFS(filepath.Join(root, "dev2"), os.DirFS(filepath.Join(root, "dev"))); err != nil {
			t.Fatal(err)
		}
		gen, err := newLayout(f.cert(), nil).currentGen()
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(root, "dev2", currentName))
		for _, name := range []string{"key.pem", "cert.pem"} {
			os.Remove(filepath.Join(f.dir, name))
			if err := os.Symlink(filepath.Join(stateDirName, "dev2", currentName, name), filepath.Join(f.dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(gen, filepath.Join(root, "dev2", currentName)); err != nil {
			t.Fatal(err)
		}
		if err := f.agent.RunOnce(ctx); err == nil {
			t.Fatal("no error")
		}
		want := filepath.Join(root, "dev") + ` holds older files of \"dev\", a private key of a superseded certificate among them`
		if !strings.Contains(f.logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, f.logs.String())
		}
	})
}

// The same certificate, name and files, with the key's directory (or the
// certificate's) spelled through a symbolic link: the agent's own state
// directory reached another way is its own, and it renews. Before, with
// the certificate in another directory than the key, the absolute link
// into the state directory was taken for another [[certificate]]'s, and
// the refusal advised removing the state directory, which held the only
// key in service (r108 D2).
func TestStateDirectorySpelledThroughALink(t *testing.T) {
	for _, tt := range []struct {
		name              string
		keyLink, certLink bool // spell that file's directory through a link
	}{
		{name: "key's directory through a link", keyLink: true},
		{name: "certificate's directory through a link", certLink: true},
		{name: "both through links", keyLink: true, certLink: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, fixtureOpts{})
			certDir := t.TempDir()
			if err := os.Rename(filepath.Join(f.dir, "cert.pem"), filepath.Join(certDir, "cert.pem")); err != nil {
				t.Fatal(err)
			}
			f.cert().CertPath = filepath.Join(certDir, "cert.pem")
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 1 {
				t.Fatalf("first renewal: err %v, %d renewals", err, f.renewer.count())
			}
			links := t.TempDir()
			if tt.keyLink {
				link := filepath.Join(links, "k")
				if err := os.Symlink(f.dir, link); err != nil {
					t.Fatal(err)
				}
				f.cert().KeyPath = filepath.Join(link, "key.pem")
			}
			if tt.certLink {
				link := filepath.Join(links, "c")
				if err := os.Symlink(certDir, link); err != nil {
					t.Fatal(err)
				}
				f.cert().CertPath = filepath.Join(link, "cert.pem")
			}
			if p := f.agent.Status()[0].Problem; p != nil {
				t.Errorf("status problem: %v", p)
			}
			renewed := f.pair().cert
			f.clock.Set(renewed.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 2 {
				t.Fatalf("renewal through the link: err %v, %d renewals:\n%s", err, f.renewer.count(), f.logs.String())
			}
			if strings.Contains(f.logs.String(), "remove it") {
				t.Errorf("the log advises removing a state directory:\n%s", f.logs.String())
			}
			p := f.pair()
			if p.cert.Equal(renewed) {
				t.Error("the certificate in place did not change")
			}
		})
	}
}

// A key_path or cert_path that is a link leading nowhere is refused saying
// so: the file is missing, and the way out is to remove the link and
// enroll again. Before, the message said the missing target "would keep
// the old certificate" and advised copying it (r108 D4).
func TestDanglingLinkIsNamedSo(t *testing.T) {
	for _, tt := range []struct{ setting, file, what string }{
		{"cert_path", "cert.pem", "the certificate is missing"},
		{"key_path", "key.pem", "the key is missing"},
	} {
		t.Run(tt.setting, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			path := filepath.Join(f.dir, tt.file)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("nowhere.pem", path); err != nil {
				t.Fatal(err)
			}
			f.cfg.OnceAttempts = 1
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(context.Background()); err == nil {
				t.Fatal("RunOnce: no error")
			}
			if n := f.renewer.count(); n != 0 {
				t.Errorf("%d renewals, want none", n)
			}
			var out bytes.Buffer
			WriteStatus(&out, f.agent.Status(), f.clock.Now())
			want := tt.setting + " " + path + " is a symbolic link to nowhere.pem, which leads nowhere (" + filepath.Join(f.dir, "nowhere.pem") + " does not exist): " + tt.what + "; remove the link (rm " + path + ")"
			for where, text := range map[string]string{"status": out.String(), "log": f.logs.String()} {
				if !strings.Contains(text, want) {
					t.Errorf("the %s does not say %q:\n%s", where, want, text)
				}
				if strings.Contains(text, "cp -p") || strings.Contains(text, "keep the old certificate") {
					t.Errorf("the %s advises copying a file that does not exist:\n%s", where, text)
				}
			}
		})
	}
}
