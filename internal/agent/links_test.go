package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
