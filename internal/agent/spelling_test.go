package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/filetrust"
)

// paths spells key_path and cert_path relative to a directory that holds
// srv (the fixture's directory, where the files are), site -> srv and
// lnk -> srv/deep.
type paths struct{ key, cert string }

// spellingFixture is a fixture whose directory is reached also as
// root/site and root/lnk/.. .
func spellingFixture(t *testing.T) (f *fixture, root string, spell func(paths)) {
	t.Helper()
	f = newFixture(t, fixtureOpts{})
	root = t.TempDir()
	if err := os.Mkdir(filepath.Join(f.dir, "deep"), 0o700); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"srv": f.dir, "site": f.dir, "lnk": filepath.Join(f.dir, "deep")} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	spell = func(p paths) {
		t.Helper()
		c := f.cert()
		var err error
		// As ParseConfig makes them.
		if c.KeyPath, err = filetrust.KernelPath(root, p.key); err != nil {
			t.Fatal(err)
		}
		if c.CertPath, err = filetrust.KernelPath(root, p.cert); err != nil {
			t.Fatal(err)
		}
		// srv spelled directly: the fixture's directory itself.
		c.KeyPath = strings.Replace(c.KeyPath, filepath.Join(root, "srv"), f.dir, 1)
		c.CertPath = strings.Replace(c.CertPath, filepath.Join(root, "srv"), f.dir, 1)
	}
	return f, root, spell
}

// A certificate in the key's directory gets a relative link however
// either setting spells that directory, so that removing a symbolic link
// one of them went through leaves the links working. Before, key_path
// through a link and cert_path without it made an absolute certificate
// link through the link; once the link was removed it dangled, and the
// agent blamed "another [[certificate]]" named like this one (r133 D1).
func TestLinksSurviveAnotherSpellingOfTheKeyDirectory(t *testing.T) {
	direct := paths{"srv/key.pem", "srv/cert.pem"}
	for _, tt := range []struct {
		name         string
		first, later paths
		removeSite   bool // rm site after the first renewal
	}{
		{name: "direct", first: direct, later: direct},
		{name: "key through a directory link", first: paths{"site/key.pem", "srv/cert.pem"}, later: paths{"site/key.pem", "srv/cert.pem"}},
		{name: "key through a directory link, then direct", first: paths{"site/key.pem", "srv/cert.pem"}, later: direct},
		{name: "key through a directory link, removed afterwards", first: paths{"site/key.pem", "srv/cert.pem"}, later: direct, removeSite: true},
		{name: "certificate through a directory link, removed afterwards", first: paths{"srv/key.pem", "site/cert.pem"}, later: direct, removeSite: true},
		{name: "dot-dot after a link", first: paths{"site/key.pem", "lnk/../cert.pem"}, later: direct, removeSite: true},
		{name: "direct, then through a directory link", first: direct, later: paths{"site/key.pem", "site/cert.pem"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f, root, spell := spellingFixture(t)
			spell(tt.first)
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 1 {
				t.Fatalf("first renewal: err %v, %d renewals:\n%s", err, f.renewer.count(), f.logs.String())
			}
			for _, name := range []string{"key.pem", "cert.pem"} {
				target, err := os.Readlink(filepath.Join(f.dir, name))
				if err != nil || filepath.IsAbs(target) {
					t.Errorf("%s links to %q (%v), want a relative link into the state directory beside it", name, target, err)
				}
			}
			if tt.removeSite {
				if err := os.Remove(filepath.Join(root, "site")); err != nil {
					t.Fatal(err)
				}
			}
			spell(tt.later)
			s := f.agent.Status()[0]
			if s.Problem != nil {
				t.Fatalf("status problem: %v", s.Problem)
			}
			if !s.Linked {
				var out bytes.Buffer
				WriteStatus(&out, []CertStatus{s}, f.clock.Now())
				t.Errorf("status takes the agent's links for regular files:\n%s", out.String())
			}
			renewed := f.pair().cert
			f.clock.Set(renewed.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 2 {
				t.Fatalf("second renewal: err %v, %d renewals:\n%s", err, f.renewer.count(), f.logs.String())
			}
			if f.pair().cert.Equal(renewed) {
				t.Error("the certificate in place did not change")
			}
		})
	}
}

// A link into this certificate's state directory, made absolute through a
// directory link since removed (as earlier versions made it), is refused
// as the dangling link it is, not as another [[certificate]]'s: there is
// none, and the name the refusal gave was this certificate's own (r133
// D1).
func TestDanglingLinkThroughARemovedSpellingIsNamedSo(t *testing.T) {
	ctx := context.Background()
	f, root, spell := spellingFixture(t)
	spell(paths{"site/key.pem", "site/cert.pem"})
	f.cfg.OnceAttempts = 1
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 1 {
		t.Fatalf("first renewal: err %v, %d renewals:\n%s", err, f.renewer.count(), f.logs.String())
	}
	certPath := filepath.Join(f.dir, "cert.pem")
	old := filepath.Join(root, "site", stateDirName, "dev", currentName, "cert.pem")
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(old, certPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "site")); err != nil {
		t.Fatal(err)
	}
	spell(paths{"srv/key.pem", "srv/cert.pem"})
	f.clock.Set(f.first.NotAfter.Add(-time.Minute))
	err := f.agent.RunOnce(ctx)
	if err == nil {
		t.Fatal("RunOnce: no error")
	}
	var out bytes.Buffer
	WriteStatus(&out, f.agent.Status(), f.clock.Now())
	want := "cert_path " + certPath + " is a symbolic link to " + old + ", which leads nowhere"
	for where, text := range map[string]string{"status": out.String(), "log": f.logs.String()} {
		if !strings.Contains(text, want) {
			t.Errorf("the %s does not say %q:\n%s", where, want, text)
		}
		if strings.Contains(text, "another [[certificate]]") {
			t.Errorf("the %s blames another [[certificate]]:\n%s", where, text)
		}
	}
	if n := f.renewer.count(); n != 1 {
		t.Errorf("%d renewals, want 1", n)
	}
}

// `agent status` knows the agent's own links when the configuration
// spells the key's directory otherwise than the run that made them: a
// certificate in another directory (its link absolute, through key_path's
// spelling), or a link made absolute through a directory link by an
// earlier version. Before, it compared the link's text with what this
// spelling would make, and said "regular files; the first renewal moves
// them" about links (r133 D2).
func TestStatusKnowsItsLinksUnderAnotherSpelling(t *testing.T) {
	for _, tt := range []struct {
		name         string
		first, later paths
		// absolute: after the first renewal, cert.pem is made an
		// absolute link through site, as earlier versions made it.
		absolute bool
	}{
		{name: "certificate elsewhere, key through a link, then direct", first: paths{"site/key.pem", "other/cert.pem"}, later: paths{"srv/key.pem", "other/cert.pem"}},
		{name: "certificate elsewhere, key direct, then through a link", first: paths{"srv/key.pem", "other/cert.pem"}, later: paths{"site/key.pem", "other/cert.pem"}},
		{name: "certificate elsewhere, key after dot-dot", first: paths{"lnk/../key.pem", "other/cert.pem"}, later: paths{"site/key.pem", "other/cert.pem"}},
		{name: "absolute link through a directory link, direct", first: paths{"site/key.pem", "srv/cert.pem"}, later: paths{"srv/key.pem", "srv/cert.pem"}, absolute: true},
		{name: "absolute link through a directory link, through it", first: paths{"site/key.pem", "srv/cert.pem"}, later: paths{"site/key.pem", "site/cert.pem"}, absolute: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f, root, spell := spellingFixture(t)
			other := filepath.Join(root, "other")
			if err := os.Mkdir(other, 0o700); err != nil {
				t.Fatal(err)
			}
			spell(tt.first)
			if err := os.Rename(filepath.Join(f.dir, "cert.pem"), f.cert().CertPath); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 1 {
				t.Fatalf("first renewal: err %v, %d renewals:\n%s", err, f.renewer.count(), f.logs.String())
			}
			if tt.absolute {
				certPath := filepath.Join(f.dir, "cert.pem")
				if err := os.Remove(certPath); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(root, "site", stateDirName, "dev", currentName, "cert.pem"), certPath); err != nil {
					t.Fatal(err)
				}
			}
			spell(tt.later)
			s := f.agent.Status()[0]
			if s.Problem != nil {
				t.Fatalf("status problem: %v", s.Problem)
			}
			var out bytes.Buffer
			WriteStatus(&out, []CertStatus{s}, f.clock.Now())
			if !s.Linked || strings.Contains(out.String(), "regular files") {
				t.Errorf("status takes the agent's links for regular files:\n%s", out.String())
			}
			renewed := f.pair().cert
			f.clock.Set(renewed.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 2 {
				t.Fatalf("second renewal: err %v, %d renewals:\n%s", err, f.renewer.count(), f.logs.String())
			}
			if f.pair().cert.Equal(renewed) {
				t.Error("the certificate in place did not change")
			}
		})
	}
}
