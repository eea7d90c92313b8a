package agent

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// runLog is what a long-running agent did, as offsets from its start.
type runLog struct {
	// renewals are the times of the checks that asked the server (whether
	// it answered or not), posts those that ran post_renew.
	renewals, posts []time.Duration
}

// runFor runs the long-running agent on f's clock for d and notes when it
// asked the server and when it ran post_renew.
func runFor(t *testing.T, f *fixture, d time.Duration) runLog {
	t.Helper()
	start := f.clock.Now()
	var got runLog
	renewals, posts := f.renewer.count(), f.postRuns()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.agent.Sleep = func(ctx context.Context, wait time.Duration) error {
		// Called after each round of checks, at the time they ran.
		at := f.clock.Now().Sub(start)
		if n := f.renewer.count(); n != renewals {
			got.renewals, renewals = append(got.renewals, at), n
		}
		if n := f.postRuns(); n != posts {
			got.posts, posts = append(got.posts, at), n
		}
		f.clock.Advance(wait)
		if f.clock.Now().Sub(start) >= d {
			cancel()
		}
		return ctx.Err()
	}
	if err := f.agent.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return got
}

func seconds(s ...int) []time.Duration {
	d := make([]time.Duration, len(s))
	for i, n := range s {
		d[i] = time.Duration(n) * time.Second
	}
	return d
}

// A post_renew command that keeps failing is retried on its own backoff,
// and neither sets nor extends the renewal's: a certificate that comes due
// while the command waits for its next attempt is renewed at once, even
// when check_interval is shorter than the backoff. A renewal that fails
// still backs off as before.
func TestRunFailingPostRenewHasItsOwnBackoff(t *testing.T) {
	const failing = "echo renewed >> post.log; exit 1"
	setup := func(t *testing.T, life time.Duration) *fixture {
		f := newFixture(t, fixtureOpts{life: life})
		// Backoffs with jitter 0.5: 45s, 90s, 180s, 180s…
		f.cfg.RetryInitial, f.cfg.RetryMax, f.cfg.CheckInterval = time.Minute, 4*time.Minute, 20*time.Second
		f.cert().PostRenew = failing
		return f
	}

	t.Run("a certificate due during the command's backoff", func(t *testing.T) {
		// The reviewer's case: each renewal is due 30s after the one
		// before (a 4m certificate renewed 3m30s before its end: not so
		// close to its lifetime that the loop guard holds it back).
		f := setup(t, 4*time.Minute)
		f.cert().RenewBefore = 3*time.Minute + 30*time.Second
		got := runFor(t, f, 2*time.Minute)
		want := seconds(30, 60, 90)
		if !slices.Equal(got.renewals, want) {
			t.Errorf("renewals at %v, want %v: each at its renewal point whatever post_renew does", got.renewals, want)
		}
		// Each renewal runs its own command; none is rerun in between
		// (its backoff outlasts the 30s).
		if !slices.Equal(got.posts, want) {
			t.Errorf("post_renew ran at %v, want %v", got.posts, want)
		}
		for i, c := range f.renewer.issued[1:] {
			if prev := f.renewer.issued[i]; !c.NotBefore.Equal(RenewalPoint(prev, f.cert().RenewBefore)) {
				t.Errorf("renewal %d issued at %v, the one before due at %v", i+2, c.NotBefore, RenewalPoint(prev, f.cert().RenewBefore))
			}
		}
	})

	t.Run("the command is retried with backoff", func(t *testing.T) {
		f := setup(t, 0)
		f.clock.Set(RenewalPoint(f.first, 0))
		got := runFor(t, f, 10*time.Minute)
		if want := seconds(0); !slices.Equal(got.renewals, want) {
			t.Errorf("renewals at %v, want %v", got.renewals, want)
		}
		// Not at every check (every 20s): at its own backoff.
		if want := seconds(0, 45, 135, 315, 495); !slices.Equal(got.posts, want) {
			t.Errorf("post_renew ran at %v, want %v", got.posts, want)
		}
		if n := strings.Count(f.logs.String(), "post_renew command failed"); n != 5 {
			t.Errorf("%d failures logged, want 5", n)
		}
		// An agent started again runs the pending command at once, and
		// not again once it succeeded.
		f.cert().PostRenew = "echo renewed >> post.log"
		got = runFor(t, f, 10*time.Minute)
		if want := seconds(0); !slices.Equal(got.posts, want) || len(got.renewals) != 0 {
			t.Errorf("after a restart: post_renew ran at %v, renewals at %v; want %v and none", got.posts, got.renewals, want)
		}
	})

	t.Run("a failing renewal backs off as before", func(t *testing.T) {
		f := setup(t, 0)
		// A renewal whose command fails leaves it pending; then the new
		// certificate comes due and the server is down.
		f.clock.Set(RenewalPoint(f.first, 0))
		if err := f.agent.RunOnce(context.Background()); err == nil {
			t.Fatal("a failed post_renew did not fail the run")
		}
		f.clock.Set(RenewalPoint(f.pair().cert, 0))
		f.renewer.failFor = 1000
		got := runFor(t, f, 10*time.Minute)
		// The renewal's backoff counts the renewal's failures only, not
		// the command's in between.
		if want := seconds(0, 45, 135, 315, 495); !slices.Equal(got.renewals, want) {
			t.Errorf("renewal attempts at %v, want %v", got.renewals, want)
		}
		if want := seconds(0, 45, 135, 315, 495); !slices.Equal(got.posts, want) {
			t.Errorf("post_renew ran at %v, want %v", got.posts, want)
		}
	})
}
