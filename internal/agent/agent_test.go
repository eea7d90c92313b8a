package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// The certificate is renewed at its renewal point and not a second
// before; the new pair has a new key and the old names; post_renew runs
// once per renewal.
func TestRenewsAtTheRenewalPointAndNotBefore(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	point := RenewalPoint(f.first, 0) // 20 days into 30
	if want := epoch.Add(20 * 24 * time.Hour); !point.Equal(want) {
		t.Fatalf("renewal point %s, want %s", point, want)
	}
	for _, at := range []time.Time{epoch, epoch.Add(19 * 24 * time.Hour), point.Add(-time.Second)} {
		f.clock.Set(at)
		if err := f.agent.RunOnce(ctx); err != nil {
			t.Fatalf("at %s: %v", at, err)
		}
		if n := f.renewer.count(); n != 0 {
			t.Fatalf("at %s (renewal point %s): %d renewals", at, point, n)
		}
		if p := f.pair(); !p.cert.Equal(f.first) {
			t.Fatalf("at %s: the certificate changed", at)
		}
	}
	// Nothing was moved before a renewal: the files are still regular.
	if fi, err := os.Lstat(filepath.Join(f.dir, "cert.pem")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("cert.pem before any renewal: %v %v", fi.Mode(), err)
	}
	if f.postRuns() != 0 {
		t.Fatal("post_renew ran without a renewal")
	}

	f.clock.Set(point)
	if err := f.agent.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.renewer.count(); n != 1 {
		t.Fatalf("at the renewal point: %d renewals, want 1", n)
	}
	p := f.pair()
	if p.cert.Equal(f.first) || !p.cert.Equal(f.renewer.issued[0]) {
		t.Fatal("the renewed certificate is not in place")
	}
	if pki.SamePublicKey(p.key.Public(), f.first.PublicKey) {
		t.Error("rekey (the default) kept the old key")
	}
	if keys.KeyTypeOf(p.key.Public()) != keys.P256 {
		t.Errorf("new key is %s, want the old key's type p256", keys.KeyTypeOf(p.key.Public()))
	}
	if p.cert.Subject.String() != f.first.Subject.String() || len(p.cert.DNSNames) != 1 || p.cert.DNSNames[0] != "device-1.example" {
		t.Errorf("renewed %s %v, want the old names", p.cert.Subject, p.cert.DNSNames)
	}
	if n := f.postRuns(); n != 1 {
		t.Errorf("post_renew ran %d times, want 1", n)
	}
	for _, name := range []string{"key.pem", "cert.pem"} {
		if fi, err := os.Lstat(filepath.Join(f.dir, name)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s after the renewal is not a link through the generations", name)
		}
	}
	expectMode(t, filepath.Join(f.dir, "key.pem"), 0o600)

	// Again at once: the new certificate is not due.
	if err := f.agent.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.renewer.count(); n != 1 {
		t.Errorf("renewed again right after a renewal: %d", n)
	}
	if n := f.postRuns(); n != 1 {
		t.Errorf("post_renew ran %d times, want 1", n)
	}
	// And at the new point, once more, each time with one post_renew.
	f.clock.Set(RenewalPoint(p.cert, 0))
	if err := f.agent.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, m := f.renewer.count(), f.postRuns(); n != 2 || m != 2 {
		t.Errorf("second renewal: %d renewals, %d post_renew runs; want 2 and 2", n, m)
	}
	expectClean(t, f)
}

func TestRenewBefore(t *testing.T) {
	f := newFixture(t, fixtureOpts{extra: "renew_before = \"7d\"\n"})
	ctx := context.Background()
	f.clock.Set(f.first.NotAfter.Add(-7*24*time.Hour - time.Second))
	if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 0 {
		t.Fatalf("a second before renew_before: err %v, %d renewals", err, f.renewer.count())
	}
	f.clock.Advance(time.Second)
	if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 1 {
		t.Fatalf("at renew_before: err %v, %d renewals", err, f.renewer.count())
	}
}

func TestRekeyFalseAndKeyType(t *testing.T) {
	t.Run("rekey false keeps the key", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{extra: "rekey = false\n"})
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if p := f.pair(); p.cert.Equal(f.first) || !pki.SamePublicKey(p.key.Public(), f.first.PublicKey) {
			t.Error("want a new certificate for the same key")
		}
	})
	t.Run("key_type", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{extra: "key_type = \"p384\"\n"})
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if kt := keys.KeyTypeOf(f.pair().key.Public()); kt != keys.P384 {
			t.Errorf("new key is %s, want p384", kt)
		}
	})
	t.Run("same type as the current key", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{keyType: keys.P384})
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if kt := keys.KeyTypeOf(f.pair().key.Public()); kt != keys.P384 {
			t.Errorf("new key is %s, want p384 like the old one", kt)
		}
	})
}

// A post_renew command that fails or hangs is logged and fails the run
// (the service still has the old certificate); the renewal stays, and the
// next run runs the command again until it succeeds.
func TestPostRenewFailureDoesNotUndoTheRenewal(t *testing.T) {
	for _, tt := range []struct {
		name, cmd string
		timeout   time.Duration
		want      []string
	}{
		{"fails", "echo renewed >> post.log; echo 'reload failed' >&2; exit 3", time.Minute, []string{"post_renew command failed", "reload failed", "exit status 3"}},
		// (the timeout leaves a loaded machine time to start the shell)
		{"hangs", "echo renewed >> post.log; sleep 60", 2 * time.Second, []string{"post_renew command failed", "timed out after 2s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{})
			f.cert().PostRenew, f.cert().PostRenewTimeout = tt.cmd, tt.timeout
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			start := time.Now()
			if err := f.agent.RunOnce(context.Background()); err == nil {
				t.Fatal("a failed post_renew did not fail the run")
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("RunOnce took %s: the timeout did not end the command", d)
			}
			if p := f.pair(); p.cert.Equal(f.first) {
				t.Error("the renewal was undone")
			}
			if n := f.postRuns(); n != 1 {
				t.Errorf("post_renew ran %d times", n)
			}
			for _, w := range tt.want {
				if !strings.Contains(f.logs.String(), w) {
					t.Errorf("log does not mention %q", w)
				}
			}
			// The marker stays: the next run runs it again, once it works
			// for good.
			f.cert().PostRenew = "echo renewed >> post.log"
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := f.postRuns(); n != 2 {
				t.Errorf("post_renew ran %d times after a second run, want 2", n)
			}
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := f.postRuns(); n != 2 {
				t.Errorf("post_renew ran %d times after it succeeded, want 2", n)
			}
		})
	}
}

// A post_renew command that keeps failing does not keep the certificate
// from being renewed when it is due again: the failure is reported at
// every run, and the renewals go on.
func TestFailingPostRenewDoesNotStopRenewals(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cert().PostRenew = "echo renewed >> post.log; exit 1"
	f.clock.Set(RenewalPoint(f.first, 0))
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Fatal("a failed post_renew did not fail the run")
	}
	renewed := f.pair().cert
	if renewed.Equal(f.first) {
		t.Fatal("not renewed")
	}
	// Not due yet: the command runs again, and the run fails.
	if err := f.agent.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "dev") {
		t.Errorf("RunOnce = %v, want the failing command reported", err)
	}
	if c := f.pair().cert; !c.Equal(renewed) {
		t.Fatal("renewed before its renewal point")
	}
	// Due again: renewed, though the command still fails.
	f.clock.Set(RenewalPoint(renewed, 0))
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Error("a failed post_renew did not fail the run")
	}
	if c := f.pair().cert; c.Equal(renewed) {
		t.Fatal("a failing post_renew command kept the due certificate from being renewed")
	}
	if n := f.postRuns(); n != 4 {
		t.Errorf("post_renew ran %d times, want 4 (two renewals, a retry, and the retry before the second renewal)", n)
	}
	// Once it works, it runs once more and the runs succeed.
	f.cert().PostRenew = "echo renewed >> post.log"
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.postRuns(); n != 5 {
		t.Errorf("post_renew ran %d times, want 5", n)
	}
}

// --once tries a failing renewal OnceAttempts times with growing waits,
// and exits with an error naming the certificate.
func TestOnceRetriesWithBackoff(t *testing.T) {
	t.Run("succeeds on the third attempt", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.renewer.failFor = 2
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		// retry_initial 10s, jitter 0.5: 7.5s, then 15s.
		if want := []time.Duration{7500 * time.Millisecond, 15 * time.Second}; !equalDurations(f.sleeps, want) {
			t.Errorf("waits %v, want %v", f.sleeps, want)
		}
		if f.renewer.count() != 3 || f.pair().cert.Equal(f.first) || f.postRuns() != 1 {
			t.Errorf("%d attempts, renewed %v, %d post_renew runs", f.renewer.count(), !f.pair().cert.Equal(f.first), f.postRuns())
		}
	})
	t.Run("gives up", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.renewer.failFor = 100
		f.cfg.OnceAttempts = 4
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		err := f.agent.RunOnce(context.Background())
		if err == nil || !strings.Contains(err.Error(), "dev") {
			t.Fatalf("err = %v, want one naming the certificate", err)
		}
		if f.renewer.count() != 4 || len(f.sleeps) != 3 {
			t.Errorf("%d attempts and %d waits, want 4 and 3", f.renewer.count(), len(f.sleeps))
		}
		if !f.pair().cert.Equal(f.first) || f.postRuns() != 0 {
			t.Error("a failed renewal changed the files or ran post_renew")
		}
		if !strings.Contains(f.logs.String(), "connection refused") {
			t.Error("the log does not say why")
		}
	})
	t.Run("a server's refusal", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.renewer.failFor, f.renewer.err = 100, &client.FailureError{FailInfo: "badTime", Text: "outside the renewal window"}
		f.cfg.OnceAttempts = 1
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err == nil {
			t.Fatal("no error")
		}
		if !strings.Contains(f.logs.String(), "outside the renewal window") {
			t.Errorf("the log does not give the server's reason:\n%s", f.logs)
		}
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The long-running agent sleeps until the renewal point, renews, sleeps
// until the next point; failures back off exponentially up to retry_max;
// it returns nil when its context ends.
func TestRunSleepsUntilTheRenewalPointAndBacksOff(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cfg.CheckInterval = 1000 * 24 * time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.renewer.failFor = 0
	stopAfter := 2
	sleep := f.agent.Sleep
	f.agent.Sleep = func(c context.Context, d time.Duration) error {
		err := sleep(c, d)
		if len(f.sleeps) >= stopAfter {
			cancel()
			return context.Canceled
		}
		return err
	}
	if err := f.agent.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil when stopped", err)
	}
	// First sleep: from the start to the renewal point; renewal; then
	// until the new certificate's point.
	first := RenewalPoint(f.first, 0).Sub(epoch)
	if len(f.sleeps) != 2 || f.sleeps[0] != first || f.sleeps[1] != 20*24*time.Hour {
		t.Errorf("sleeps %v, want [%s 480h0m0s]", f.sleeps, first)
	}
	if f.renewer.count() != 1 || f.postRuns() != 1 {
		t.Errorf("%d renewals, %d post_renew runs; want 1 and 1", f.renewer.count(), f.postRuns())
	}

	// A server that is down: 7.5s, 15s, 30s, 60s, 120s, 225s, 225s… (retry_max 5m, jitter 0.5).
	f2 := newFixture(t, fixtureOpts{})
	f2.cfg.CheckInterval = 1000 * 24 * time.Hour
	f2.renewer.failFor = 1000
	f2.clock.Set(f2.first.NotAfter.Add(-time.Hour))
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	sleep2 := f2.agent.Sleep
	f2.agent.Sleep = func(c context.Context, d time.Duration) error {
		err := sleep2(c, d)
		if len(f2.sleeps) >= 8 {
			cancel2()
			return context.Canceled
		}
		return err
	}
	if err := f2.agent.Run(ctx2); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{7500 * time.Millisecond, 15 * time.Second, 30 * time.Second, 60 * time.Second, 120 * time.Second, 225 * time.Second, 225 * time.Second, 225 * time.Second}
	if !equalDurations(f2.sleeps, want) {
		t.Errorf("waits %v, want %v", f2.sleeps, want)
	}
	if f2.renewer.count() != 8 {
		t.Errorf("%d attempts, want 8", f2.renewer.count())
	}
}

// A renewed certificate that is due at once, or nearly (renew_before
// close to, equal to or beyond the lifetime), is not renewed in a loop: a
// renewal point one second after the renewal escaped a test of "already
// past", and the agent renewed once a second. Over one lifetime it is
// renewed at most about ten times, with a warning; a renew_before well
// inside the lifetime is left alone.
func TestRunDoesNotLoopOnACertificateDueAtOnce(t *testing.T) {
	for _, tt := range []struct {
		life        time.Duration
		renewBefore string
		guarded     bool // warned, and renewed at most loopShare+1 times in a lifetime
		minRenewals int
	}{
		{6 * time.Minute, "5m59s", true, 1},
		{6 * time.Minute, "5m50s", true, 1},
		{6 * time.Minute, "6m", true, 1},
		{6 * time.Minute, "7m", true, 1},
		{30 * 24 * time.Hour, "60d", true, 1},
		{30 * 24 * time.Hour, "719h", true, 1},
		// Every minute: renew_before well inside the lifetime.
		{6 * time.Minute, "5m", false, 5},
	} {
		t.Run(tt.renewBefore+"/"+tt.life.String(), func(t *testing.T) {
			f := newFixture(t, fixtureOpts{life: tt.life, extra: fmt.Sprintf("renew_before = %q\n", tt.renewBefore)})
			f.cfg.CheckInterval = tt.life / 20
			start := f.first.NotAfter.Add(-tt.life / 100)
			f.clock.Set(start) // due
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sleep := f.agent.Sleep
			f.agent.Sleep = func(c context.Context, d time.Duration) error {
				err := sleep(c, d)
				if !f.clock.Now().Before(start.Add(tt.life)) || f.renewer.count() > 100 {
					cancel()
					return context.Canceled
				}
				return err
			}
			if err := f.agent.Run(ctx); err != nil {
				t.Fatal(err)
			}
			n := f.renewer.count()
			warned := strings.Contains(f.logs.String(), "already due")
			if n < tt.minRenewals {
				t.Errorf("%d renewals in one lifetime, want at least %d", n, tt.minRenewals)
			}
			if tt.guarded && (n > loopShare+1 || !warned) {
				t.Errorf("%d renewals in one lifetime (warned: %v); want at most %d, and a warning", n, warned, loopShare+1)
			}
			if !tt.guarded && warned {
				t.Error("warned of a loop where there is none")
			}
			// It never expires for want of a renewal.
			if p := f.pair(); !f.clock.Now().Before(p.cert.NotAfter) {
				t.Errorf("the certificate in place expired at %s", p.cert.NotAfter)
			}
		})
	}
}

// --once renews a certificate that will be due again at once, and says so.
func TestOnceWarnsOfACertificateDueAgainAtOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{life: 6 * time.Minute, extra: "renew_before = \"5m59s\"\n"})
	f.clock.Set(f.first.NotAfter.Add(-time.Minute))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.renewer.count() != 1 {
		t.Errorf("%d renewals, want 1", f.renewer.count())
	}
	if !strings.Contains(f.logs.String(), "already due") {
		t.Error("no warning that the renewed certificate is due again at once")
	}
	// A --once run keeps no state: it says that every run renews it, not
	// that a hold it cannot keep will spare the next one (r80).
	if logs := f.logs.String(); !strings.Contains(logs, "every --once run will renew it again") || strings.Contains(logs, "next_attempt") {
		t.Errorf("the --once warning promises a hold: %s", logs)
	}
}

// The long-running agent ends promptly when its context is cancelled,
// with a real timer.
func TestRunStopsWhenCancelled(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.agent.Sleep = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.agent.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancellation")
	}
}

// What the server returns is checked before it is installed.
func TestRefusesAWrongCertificate(t *testing.T) {
	for _, tt := range []struct{ wrong, want string }{
		{"key", "not for our key"},
		{"ca", "does not chain to the CA with fingerprint"},
		{"name", "names other than the one in place (subject"},
		{"sans", "DNS names [], not [device-1.example]"},
		{"more sans", "DNS names [device-1.example evil.example], not [device-1.example]"},
	} {
		t.Run(tt.wrong, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.renewer.wrong = tt.wrong
			f.cfg.OnceAttempts = 1
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(context.Background()); err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(f.logs.String(), tt.want) {
				t.Errorf("log does not say %q", tt.want)
			}
			if !f.pair().cert.Equal(f.first) || f.postRuns() != 0 {
				t.Error("the wrong certificate was installed")
			}
		})
	}
	t.Run("the pinned CA is not among the server's", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.cfg.OnceAttempts = 1
		f.cert().CAFingerprint = client.Fingerprint(newTestCA(t, epoch, false).cert)
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err == nil || !strings.Contains(f.logs.String(), "no certificate from the server matches CA fingerprint") {
			t.Errorf("err = %v", err)
		}
	})
}

// The installed chain is the one the certificate verified with, beside it
// or after it.
func TestChainFiles(t *testing.T) {
	t.Run("own file", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{intermediate: true, extra: "chain_path = \"chain.pem\"\n"})
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		chain, err := loadCerts(filepath.Join(f.dir, "chain.pem"))
		if err != nil || len(chain) != 2 || !chain[0].Equal(f.ca.inter) || !chain[1].Equal(f.ca.cert) {
			t.Errorf("chain.pem: %d certificates, %v", len(chain), err)
		}
		if p := f.pair(); len(p.extra) != 0 {
			t.Errorf("cert.pem holds %d more certificates", len(p.extra))
		}
	})
	t.Run("full chain", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{intermediate: true, extra: "chain_path = \"cert.pem\"\n"})
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if p := f.pair(); len(p.extra) != 2 || !p.extra[0].Equal(f.ca.inter) {
			t.Errorf("cert.pem holds %d certificates after the leaf, want the issuing CA and the root", len(p.extra))
		}
	})
	t.Run("combined", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{intermediate: true, combined: true, extra: "chain_path = \"all.pem\"\n"})
		f.clock.Set(f.first.NotAfter.Add(-time.Hour))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		p := f.pair()
		if p.cert.Equal(f.first) || len(p.extra) != 2 {
			t.Errorf("all.pem: renewed %v, %d CA certificates", !p.cert.Equal(f.first), len(p.extra))
		}
		b, _ := os.ReadFile(filepath.Join(f.dir, "all.pem"))
		if i, j := bytes.Index(b, []byte("CERTIFICATE")), bytes.Index(b, []byte("PRIVATE KEY")); i < 0 || j < i {
			t.Error("all.pem: want the certificates first, then the key")
		}
		if fi, err := os.Lstat(filepath.Join(f.dir, "all.pem")); err != nil || !fi.Mode().IsRegular() {
			t.Error("all.pem is not a regular file")
		}
		expectMode(t, filepath.Join(f.dir, "all.pem"), 0o600)
	})
}

// A key and certificate that do not belong together are reported and
// left alone.
func TestMismatchedFilesAreLeftAlone(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	writePEM(t, filepath.Join(f.dir, "key.pem"), 0o600, other)
	before, _ := os.ReadFile(filepath.Join(f.dir, "key.pem"))
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	err := f.agent.RunOnce(context.Background())
	if err == nil || f.renewer.count() != 0 {
		t.Fatalf("err = %v, %d renewals", err, f.renewer.count())
	}
	if !strings.Contains(f.logs.String(), "does not match") {
		t.Error("the log does not say the pair does not match")
	}
	after, _ := os.ReadFile(filepath.Join(f.dir, "key.pem"))
	if !bytes.Equal(before, after) {
		t.Error("the key file was changed")
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.clock.Set(epoch.Add(24 * time.Hour))
	var out bytes.Buffer
	st := f.agent.Status()
	if err := WriteStatus(&out, st, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, w := range []string{"dev (scep, http://127.0.0.1:1/scep)", "subject:       CN=device-1,O=Acme", "serial:        " + pki.SerialText(f.first.SerialNumber),
		"expires:       2031-04-13 09:00:00Z (in 29d0h)", "next renewal:  2031-04-03 09:00:00Z (in 19d0h)", "layout:        regular files"} {
		if !strings.Contains(s, w) {
			t.Errorf("status does not say %q:\n%s", w, s)
		}
	}
	if st[0].Problem != nil {
		t.Errorf("problem %v", st[0].Problem)
	}

	f.clock.Set(RenewalPoint(f.first, 0).Add(time.Hour))
	out.Reset()
	WriteStatus(&out, f.agent.Status(), f.clock.Now())
	if !strings.Contains(out.String(), "(due now, 1h00m ago)") {
		t.Errorf("status of a due certificate:\n%s", out.String())
	}

	os.Remove(filepath.Join(f.dir, "key.pem"))
	out.Reset()
	st = f.agent.Status()
	WriteStatus(&out, st, f.clock.Now())
	if st[0].Problem == nil || !strings.Contains(out.String(), "problem:       key file "+filepath.Join(f.dir, "key.pem")+" is missing") {
		t.Errorf("status with the key missing:\n%s", out.String())
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	writePEM(t, filepath.Join(f.dir, "key.pem"), 0o600, other)
	out.Reset()
	WriteStatus(&out, f.agent.Status(), f.clock.Now())
	if !strings.Contains(out.String(), "does not match") {
		t.Errorf("status with another key:\n%s", out.String())
	}
}

// A request held for approval is asked for again with the same key.
func TestPendingRequestKeepsItsKey(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.renewer.failFor, f.renewer.err = 1, &client.PendingError{TransactionID: "T1"}
	f.cfg.OnceAttempts = 1
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Fatal("a pending request is not a success")
	}
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.renewer.keys) != 2 || !pki.SamePublicKey(f.renewer.keys[0], f.renewer.keys[1]) {
		t.Error("the second attempt used another key")
	}
	if n := strings.Count(f.logs.String(), askingAgain); n != 1 {
		t.Errorf("%d attempts say they ask about the held request, want 1:\n%s", n, f.logs)
	}
	if !pki.SamePublicKey(f.pair().key.Public(), f.renewer.keys[0]) {
		t.Error("the installed key is not the requested one")
	}
	if _, err := os.Stat(filepath.Join(newLayout(f.cert(), nil).state, pendingKeyPEM)); !os.IsNotExist(err) {
		t.Errorf("the pending key is still kept: %v", err)
	}
}

// A held request the server then refuses (an operator rejected it) is not
// asked about again with its key: the next attempt makes a new request.
func TestRejectedPendingRequestIsForgotten(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.renewer.failFor, f.renewer.err = 1, &client.PendingError{TransactionID: "T1"}
	f.cfg.OnceAttempts = 1
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Fatal("a pending request is not a success")
	}
	f.renewer.failFor, f.renewer.err = 2, &client.FailureError{FailInfo: "badRequest", Text: "the request was rejected: unknown device"}
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Fatal("a rejected request is not a success")
	}
	if _, err := os.Stat(filepath.Join(newLayout(f.cert(), nil).state, pendingKeyPEM)); !os.IsNotExist(err) {
		t.Errorf("the rejected request's key is still kept: %v", err)
	}
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.renewer.keys) != 3 || !pki.SamePublicKey(f.renewer.keys[0], f.renewer.keys[1]) || pki.SamePublicKey(f.renewer.keys[1], f.renewer.keys[2]) {
		t.Error("want the held request's key asked about once more, then a new key")
	}
}

// Two agents never work on one certificate at once.
func TestLockedCertificateIsSkipped(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	l := newLayout(f.cert(), nil)
	if err := l.stateDir(); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(filepath.Join(l.state, lockName))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Errorf("RunOnce = %v; a certificate another agent is renewing is skipped", err)
	}
	if f.renewer.count() != 0 || !strings.Contains(f.logs.String(), "another scepter agent") {
		t.Errorf("%d renewals while locked", f.renewer.count())
	}
	unlock()
	if err := f.agent.RunOnce(context.Background()); err != nil || f.renewer.count() != 1 {
		t.Errorf("after unlocking: err %v, %d renewals", err, f.renewer.count())
	}
}

func expectMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
	}
}

// expectClean: nothing temporary is left, and one generation.
func expectClean(t *testing.T, f *fixture) {
	t.Helper()
	l := newLayout(f.cert(), nil)
	var found []string
	filepath.WalkDir(f.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), tmpInfix) {
			found = append(found, p)
		}
		return nil
	})
	if len(found) > 0 {
		t.Errorf("temporary files left: %v", found)
	}
	if l.combined() {
		return
	}
	gens, err := l.generations()
	if err != nil {
		t.Fatal(err)
	}
	cur, err := l.currentGen()
	if err != nil || len(gens) != 1 || gens[0] != cur {
		t.Errorf("generations %v, current %q (%v); want just the current one", gens, cur, err)
	}
	for _, name := range []string{markerName, pendingKeyPEM, pendingSentName} {
		if _, err := os.Stat(filepath.Join(l.state, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there", name)
		}
	}
}

// Missing files fail --once with a message naming them, and create nothing.
func TestMissingFiles(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	gone := filepath.Join(f.dir, "gone")
	f.cert().KeyPath, f.cert().CertPath = filepath.Join(gone, "key.pem"), filepath.Join(gone, "cert.pem")
	err := f.agent.RunOnce(context.Background())
	if err == nil || !strings.Contains(f.logs.String(), "is missing") {
		t.Fatalf("err = %v\n%s", err, f.logs)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("%s was created", gone)
	}
	os.Remove(filepath.Join(f.dir, "cert.pem"))
	f.cert().KeyPath, f.cert().CertPath = filepath.Join(f.dir, "key.pem"), filepath.Join(f.dir, "cert.pem")
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Fatal("no error with the certificate missing")
	}
	if f.renewer.count() != 0 {
		t.Error("asked the server")
	}
}

// Where the state directory cannot be made, a certificate that is not due
// is still looked at; one that is due fails, naming the directory.
func TestStateDirectoryUnavailable(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if err := os.WriteFile(filepath.Join(f.dir, stateDirName), []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Errorf("not due: %v", err)
	}
	f.clock.Set(RenewalPoint(f.first, 0))
	err := f.agent.RunOnce(context.Background())
	if err == nil || !strings.Contains(f.logs.String(), "state directory "+filepath.Join(f.dir, stateDirName, "dev")) || f.renewer.count() != 0 {
		t.Errorf("due: err %v, %d renewals\n%s", err, f.renewer.count(), f.logs)
	}
	if !f.pair().cert.Equal(f.first) {
		t.Error("the files changed")
	}
}

// A key its group could read stays readable by its group after a renewal,
// so that a service reading it through the group keeps working; others
// never get to read it.
func TestRenewedKeyKeepsGroupRead(t *testing.T) {
	for _, c := range []struct {
		before, after os.FileMode
		combined      bool
	}{
		{0o600, 0o600, false},
		{0o640, 0o640, false},
		{0o644, 0o640, false},
		{0o604, 0o600, false},
		{0o640, 0o640, true},
	} {
		t.Run(fmt.Sprintf("%04o combined=%v", c.before, c.combined), func(t *testing.T) {
			f := newFixture(t, fixtureOpts{combined: c.combined})
			name := "key.pem"
			if c.combined {
				name = "all.pem"
			}
			if err := os.Chmod(filepath.Join(f.dir, name), c.before); err != nil {
				t.Fatal(err)
			}
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if f.pair().cert.Equal(f.first) {
				t.Fatal("not renewed")
			}
			expectMode(t, filepath.Join(f.dir, name), c.after)
		})
	}
}

// A SCEP certificate with an RSA or EC key is renewable with or without a
// challenge_file (an EC key's reply is keyed from a challenge the renewer
// makes up when none is set): a check long before the renewal point finds
// nothing wrong and sends nothing. A key the server can encrypt no reply
// to is refused at once, naming its type.
func TestSCEPRenewableBeforeDue(t *testing.T) {
	for _, tt := range []struct {
		name           string
		keyType, extra string
	}{
		{"EC key", keys.P256, ""},
		{"RSA key", keys.RSA2048, ""},
		{"EC key with a challenge_file", keys.P256, "challenge_file = \"challenge.txt\"\n"},
	} {
		f := newFixture(t, fixtureOpts{keyType: tt.keyType, extra: tt.extra})
		f.agent.Renewers = nil // the real SCEP renewer; its URL answers nothing
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	err := SCEPRenewer{}.Renewable(&Certificate{Protocol: ProtocolSCEP}, edKey.Public())
	if err == nil || !strings.Contains(err.Error(), "only to an RSA or EC key") {
		t.Errorf("an Ed25519 key: %v, want it refused", err)
	}
}

// A renewal whose answer was never installed (the disk full, a crash) is
// asked for again with the same key: a server that issued it answers with
// that certificate (and one whose renewal revoked the old certificate
// would otherwise refuse every later attempt).
func TestLostRenewalIsAskedAgainWithTheSameKey(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cfg.OnceAttempts = 1
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	f.agent.hook = func(step string) error {
		if strings.HasPrefix(step, "generation") {
			return errStop
		}
		return nil
	}
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Fatal("the stopped install succeeded")
	}
	f.agent.hook = nil
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.renewer.count(); n != 2 {
		t.Fatalf("%d renewals asked for, want 2", n)
	}
	if !pki.SamePublicKey(f.renewer.issued[0].PublicKey, f.renewer.issued[1].PublicKey) {
		t.Error("the second attempt asked with another key than the lost renewal's")
	}
	if !strings.Contains(f.logs.String(), askingAgain) {
		t.Error("the second attempt does not say it asks again with the lost renewal's key")
	}
	if !pki.SamePublicKey(f.pair().key.Public(), f.renewer.issued[1].PublicKey) {
		t.Error("the installed key is not the renewal's")
	}
	if _, err := os.Stat(filepath.Join(newLayout(f.cert(), nil).state, pendingKeyPEM)); err == nil {
		t.Error("the kept key is still there after the renewal was installed")
	}
}

// A post_renew command that succeeds while something it started in the
// background keeps its output open (a daemon's reload) has succeeded.
func TestPostRenewBackgroundChildIsNoFailure(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cert().PostRenew = "echo renewed >> post.log; (sleep 5 &)"
	f.clock.Set(f.first.NotAfter.Add(-time.Hour))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatalf("a post_renew whose background child holds its output failed the run: %v", err)
	}
	if !strings.Contains(f.logs.String(), "still holds its output") {
		t.Errorf("the log does not say a background process held the output:\n%s", f.logs.String())
	}
}

// A damaged file of the agent's own state is set aside with a warning
// that names it, never in silence: a pending key may be the only way to
// collect a certificate already issued, and a marker the only reminder
// that post_renew has not run.
func TestDamagedStateFileIsNamedInAWarning(t *testing.T) {
	tests := []struct {
		name, file, content, want string
	}{
		{"pending key that is no key", pendingKeyPEM, "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "kept key of an earlier renewal"},
		{"empty pending key", pendingKeyPEM, "", "kept key of an earlier renewal"},
		{"marker without a fingerprint", markerName, "half a line", "post_renew marker holds no certificate fingerprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			l := newLayout(f.cert(), nil)
			if err := l.stateDir(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(l.state, tt.file)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			var warned bool
			for _, line := range strings.Split(f.logs.String(), "\n") {
				if strings.Contains(line, "level=WARN") && strings.Contains(line, tt.want) && strings.Contains(line, path) {
					warned = true
				}
			}
			if !warned {
				t.Errorf("no warning naming %s and saying %q:\n%s", path, tt.want, f.logs.String())
			}
			if n := strings.Count(f.logs.String(), tt.want); n > 1 {
				t.Errorf("warned %d times, want once", n)
			}
		})
	}
}

// A clock set back while the agent sleeps (a device clock corrected by
// NTP) does not make it sleep as long as the clock went back: its next
// check and a failed renewal's retry were counted from the old time.
func TestRunAfterTheClockWentBack(t *testing.T) {
	const back = 2 * 24 * time.Hour
	cases := []struct {
		name    string
		failFor int
		start   func(f *fixture) time.Time
	}{
		{"not due", 0, func(f *fixture) time.Time { return epoch }},
		{"due, the server down", 1000, func(f *fixture) time.Time { return f.first.NotAfter.Add(-time.Hour) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.renewer.failFor = c.failFor
			f.clock.Set(c.start(f))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sleep := f.agent.Sleep
			f.agent.Sleep = func(ctx context.Context, d time.Duration) error {
				err := sleep(ctx, d)
				switch len(f.sleeps) {
				case 1:
					f.clock.Advance(-back)
				case 3:
					cancel()
					return context.Canceled
				}
				return err
			}
			if err := f.agent.Run(ctx); err != nil {
				t.Fatal(err)
			}
			for i, d := range f.sleeps {
				if d > f.cfg.CheckInterval {
					t.Errorf("sleep %d of %v: %v, more than check_interval (%v)", i+1, f.sleeps, d, f.cfg.CheckInterval)
				}
			}
			// The retry after the jump comes within retry_max (5m).
			if c.failFor > 0 && (f.renewer.count() != 2 || f.sleeps[1] > f.cfg.RetryMax) {
				t.Errorf("%d attempts over %v of sleep, want 2, the second within %v", f.renewer.count(), f.sleeps, f.cfg.RetryMax)
			}
		})
	}
}

// A renewal that starts after the agent's clock: a few seconds are taken
// as the clock's drift, and it is installed at once with a warning; more,
// while the certificate in place is good (not expired, not known revoked),
// and it is parked until its start (see parked_test.go for the rest). A
// certificate that fails any other check is refused either way.
func TestRenewalWhenTheLocalClockIsBehind(t *testing.T) {
	cases := []struct {
		name   string
		behind time.Duration
		wrong  string
		want   string // "installed", "parked" or "refused"
	}{
		{"a few seconds", 10 * time.Second, "", "installed"},
		{"an hour", time.Hour, "", "parked"},
		{"a week", 7 * 24 * time.Hour, "", "parked"},
		{"an hour, another CA", time.Hour, "ca", "refused"},
		{"an hour, another key", time.Hour, "key", "refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.renewer.serverAhead, f.renewer.wrong = c.behind, c.wrong
			f.clock.Set(RenewalPoint(f.first, 0))
			err := f.agent.RunOnce(context.Background())
			installed := f.pair().cert.Equal(f.renewer.issued[0])
			_, perr := os.Lstat(f.parkedPath())
			got := "refused"
			switch {
			case err == nil && installed:
				got = "installed"
			case err == nil && perr == nil:
				got = "parked"
			}
			if got != c.want {
				t.Fatalf("RunOnce = %v, installed %v, parked %v: %s; want %s", err, installed, perr == nil, got, c.want)
			}
			if got != "refused" && !strings.Contains(f.logs.String(), "clock is behind") {
				t.Error("no warning that the clock is behind")
			}
		})
	}
}

// `agent status` says, and counts as failing (exit 1), a certificate that
// has expired and a renewal whose post_renew command has not run to
// success, so that a monitoring check of its exit status sees both; a
// command running now is named, not counted.
func TestStatusSaysExpiredAndPostRenewOwed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cert().PostRenew = "echo renewed >> post.log; exit 1"
	f.clock.Set(RenewalPoint(f.first, 0))
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Fatal("a failed post_renew did not fail the run")
	}
	renewed := f.pair().cert
	status := func() (CertStatus, string) {
		t.Helper()
		st := f.agent.Status()
		var out bytes.Buffer
		if err := WriteStatus(&out, st, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		return st[0], out.String()
	}
	s, out := status()
	if !s.Failing(f.clock.Now()) || s.PostRenewSince.IsZero() || s.PostRenewRunning != 0 ||
		!strings.Contains(out, "problem:       post_renew has not run to success for the certificate in place") {
		t.Errorf("status with post_renew owed: failing %v, since %v\n%s", s.Failing(f.clock.Now()), s.PostRenewSince, out)
	}

	// Once it succeeds, nothing is owed.
	f.cert().PostRenew = "echo renewed >> post.log"
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, out = status()
	if s.Failing(f.clock.Now()) || !s.PostRenewSince.IsZero() || strings.Contains(out, "problem") {
		t.Errorf("status after post_renew ran: failing %v\n%s", s.Failing(f.clock.Now()), out)
	}

	f.clock.Set(renewed.NotAfter)
	s, out = status()
	if !s.Failing(f.clock.Now()) || !strings.Contains(out, "problem:       the certificate has expired") || !strings.Contains(out, "expires:       ") {
		t.Errorf("status of an expired certificate: failing %v\n%s", s.Failing(f.clock.Now()), out)
	}
}

// `agent status` says when the certificate whose post_renew is still owed
// was installed in words for the past: "(2m ago)", not "(now, 2m ago)"
// (r100 W1), and "(just now)" within the minute.
func TestStatusSaysWhenThePostRenewOwedWasInstalled(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cert().PostRenew = "exit 1"
	f.clock.Set(RenewalPoint(f.first, 0))
	if err := f.agent.RunOnce(context.Background()); err == nil {
		t.Fatal("a failed post_renew did not fail the run")
	}
	since := f.agent.Status()[0].PostRenewSince
	if since.IsZero() {
		t.Fatal("no post_renew owed after it failed")
	}
	for _, tc := range []struct {
		after time.Duration
		want  string
	}{
		{0, "(just now)"},
		{59 * time.Second, "(just now)"},
		{2 * time.Minute, "(2m ago)"},
		{3*time.Hour + 5*time.Minute, "(3h05m ago)"},
		{-2 * time.Minute, "(in 2m)"}, // the clock set back since
	} {
		now := since.Add(tc.after)
		var out bytes.Buffer
		if err := WriteStatus(&out, f.agent.Status(), now); err != nil {
			t.Fatal(err)
		}
		want := "installed " + since.UTC().Format("2006-01-02 15:04:05Z") + " " + tc.want + ":"
		if !strings.Contains(out.String(), want) {
			t.Errorf("%v after the install: status lacks %q:\n%s", tc.after, want, out.String())
		}
	}
}
