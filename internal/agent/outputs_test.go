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

// A due certificate whose files could not all be written (a chain_path in
// a directory that does not exist, or under a file) is not renewed:
// nothing is asked of the server, nothing is switched, and --once fails
// at once, naming the setting, rather than issuing a certificate at each
// attempt and installing it half-way.
func TestOnceRefusesAnOutputPathThatCannotBeWritten(t *testing.T) {
	for _, tt := range []struct {
		name     string
		combined bool
		extra    string
		want     string
	}{
		{"chain in a missing directory", false, "chain_path = \"missing/chain.pem\"\n", "chain_path " + "%s/missing/chain.pem: its directory %s/missing does not exist"},
		{"chain under a file", false, "chain_path = \"cert.pem/chain.pem\"\n", "is not a directory"},
		{"chain a directory", false, "chain_path = \".\"\n", "is a directory"},
		{"one file, chain in a missing directory", true, "chain_path = \"missing/chain.pem\"\nrekey = false\n", "does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{combined: tt.combined, extra: tt.extra})
			f.clock.Set(f.first.NotAfter.Add(-time.Hour)) // due
			before := f.pair()
			err := f.agent.RunOnce(context.Background())
			if err == nil {
				t.Fatal("RunOnce succeeded")
			}
			want := tt.want
			if strings.Contains(want, "%s") {
				want = strings.ReplaceAll(want, "%s", f.dir)
			}
			if !strings.Contains(f.logs.String(), want) || !strings.Contains(f.logs.String(), "nothing was asked of the server") {
				t.Errorf("the log does not say %q, and that nothing was asked", want)
			}
			if n := f.renewer.count(); n != 0 {
				t.Errorf("the server was asked %d times", n)
			}
			if strings.Contains(f.logs.String(), "trying again") {
				t.Error("retried: the operator has to fix it")
			}
			if p := f.pair(); !p.cert.Equal(before.cert) {
				t.Error("the certificate in place changed")
			}
			if err := CheckOutputDirs(f.cfg); err == nil || !strings.Contains(err.Error(), `certificate 1 ("dev"): `) {
				t.Errorf("CheckOutputDirs = %v, want the certificate named", err)
			}
			if st := f.agent.Status(); st[0].Problem == nil {
				t.Error("status shows no problem")
			}
		})
	}
}

// An install that fails after it switched the renewal in is reported
// (--once exits 1) and not retried: a retry would ask for yet another
// certificate.
func TestOnceDoesNotRetryAnInstallThatSwitchedIn(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	renewing := false
	f.agent.hook = func(step string) error {
		if strings.HasPrefix(step, "generation gen-000001: removed") {
			renewing = true
			return errors.New("input/output error")
		}
		return nil
	}
	err := f.agent.RunOnce(context.Background())
	if !renewing {
		t.Fatal("the hook did not run at the removal of the old generation")
	}
	if err == nil {
		t.Fatal("RunOnce succeeded")
	}
	if n := f.renewer.count(); n != 1 {
		t.Errorf("%d certificates asked for, want 1", n)
	}
	logs := f.logs.String()
	if strings.Contains(logs, "renewal failed; trying again") || !strings.Contains(logs, "in place, but the install did not complete") {
		t.Errorf("the log does not say the renewal is in place")
	}
	if p := f.pair(); !p.cert.Equal(f.renewer.issued[0]) {
		t.Error("the renewal is not in place")
	}
	if f.postRuns() != 1 {
		t.Errorf("post_renew ran %d times, want 1 (the service must load the new pair)", f.postRuns())
	}
}

// A chain_path missing while the certificate in place has a chain (an
// install that stopped half-way) is a problem for status, is linked by the
// next run, and fails the run while it cannot be: never a silent success.
func TestMissingChainOfTheCertificateInPlace(t *testing.T) {
	f := newFixture(t, fixtureOpts{intermediate: true, extra: "chain_path = \"chains/chain.pem\"\n"})
	chains := filepath.Join(f.dir, "chains")
	if err := os.Mkdir(chains, 0o755); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(chains, "chain.pem")
	if _, err := os.Stat(chain); err != nil {
		t.Fatalf("no chain after the renewal: %v", err)
	}
	// As an install that stopped after its switch (or a run of an older
	// agent) leaves it.
	if err := os.Remove(chain); err != nil {
		t.Fatal(err)
	}
	st := f.agent.Status()
	if st[0].Problem == nil || !strings.Contains(st[0].Problem.Error(), "chain_path "+chain+" is missing") {
		t.Errorf("status problem = %v, want chain_path named as missing", st[0].Problem)
	}
	// Its directory gone: the run fails, and asks for nothing.
	if err := os.Remove(chains); err != nil {
		t.Fatal(err)
	}
	calls := f.renewer.count()
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Error("RunOnce succeeded with chain_path missing")
	}
	if f.renewer.count() != calls {
		t.Error("asked the server again")
	}
	// Back: linked, and all is well.
	if err := os.Mkdir(chains, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(chain); err != nil {
		t.Errorf("chain_path not linked: %v", err)
	}
	if st := f.agent.Status(); st[0].Problem != nil {
		t.Errorf("status problem = %v", st[0].Problem)
	}
	if f.renewer.count() != calls {
		t.Error("asked the server again")
	}
}
