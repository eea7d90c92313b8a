//go:build unix

package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
)

// slowPost logs its start and end, by its process ID, with a pause between.
const slowPost = `echo start $$ >> slow.log; sleep 1; echo end $$ >> slow.log`

// orphanPost leaves the state of an agent killed while post_renew ran: the
// renewal in place, its marker, and the command running on in its own
// process group, as recorded by the agent that started it.
func orphanPost(t *testing.T, f *fixture, command string) *exec.Cmd {
	t.Helper()
	ctx := context.Background()
	f.cert().PostRenew = "false"
	f.cfg.OnceAttempts = 1
	f.clock.Set(RenewalPoint(f.first, 0))
	if err := f.agent.RunOnce(ctx); err == nil || f.renewer.count() != 1 {
		t.Fatalf("the renewal with a failing post_renew: err %v, %d renewals", err, f.renewer.count())
	}
	l := newLayout(f.cert(), nil)
	fp := client.Fingerprint(f.pair().cert)
	if got := l.markerFingerprint(); got != fp {
		t.Fatalf("marker %q, want %q", got, fp)
	}
	f.cert().PostRenew = command
	cmd := exec.CommandContext(context.Background(), "/bin/sh", "-c", command)
	cmd.Dir = f.dir
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.saveRunning(running{pid: cmd.Process.Pid, identity: processIdentity(cmd.Process.Pid), forCert: fp}); err != nil {
		t.Fatal(err)
	}
	// Its parent is gone; init reaps it.
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	// Until it has logged its start.
	for i := 0; i < 200 && !strings.Contains(readFile(t, filepath.Join(f.dir, "slow.log")), "start"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return cmd
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// overlaps says whether two copies ran at once in a log of starts and ends.
func overlaps(log string) bool {
	running := 0
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		switch {
		case strings.HasPrefix(line, "start"):
			if running++; running > 1 {
				return true
			}
		case strings.HasPrefix(line, "end"):
			running--
		}
	}
	return false
}

// A post_renew command that outlives the agent that started it (killed
// while it ran) is waited for by the next run, never run a second time
// beside it; seen to end, it is not run again (r94 D3).
func TestPostRenewOfAKilledRunIsNotRunTwiceAtOnce(t *testing.T) {
	ctx := context.Background()
	t.Run("the next run waits for it", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		orphanPost(t, f, slowPost)
		if err := f.agent.RunOnce(ctx); err != nil {
			t.Fatalf("RunOnce = %v", err)
		}
		got := readFile(t, filepath.Join(f.dir, "slow.log"))
		if overlaps(got) || strings.Count(got, "start") != 1 || strings.Count(got, "end") != 1 {
			t.Errorf("post_renew ran twice, or not to its end:\n%s", got)
		}
		if !strings.Contains(f.logs.String(), "still runs") || !strings.Contains(f.logs.String(), "not running it again") {
			t.Errorf("the log does not say it waited:\n%s", f.logs.String())
		}
		if l := newLayout(f.cert(), nil); l.markerFingerprint() != "" {
			t.Error("the marker stays")
		}
		if _, err := os.Stat(filepath.Join(f.dir, stateDirName, "dev", runningName)); err == nil {
			t.Error("the record of the running command stays")
		}
	})
	t.Run("a new renewal's command waits for it", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		orphanPost(t, f, slowPost)
		f.clock.Set(RenewalPoint(f.pair().cert, 0))
		if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 2 {
			t.Fatalf("RunOnce = %v, %d renewals", err, f.renewer.count())
		}
		if got := readFile(t, filepath.Join(f.dir, "slow.log")); overlaps(got) || strings.Count(got, "end") != 2 {
			t.Errorf("want the earlier command, then the renewal's, one after the other:\n%s", got)
		}
	})
	t.Run("one that is gone runs again", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		cmd := orphanPost(t, f, `echo start >> slow.log; exec sleep 30`)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for processAlive(cmd.Process.Pid, "") {
			time.Sleep(10 * time.Millisecond)
		}
		f.cert().PostRenew = "echo start >> slow.log; echo end >> slow.log"
		if err := f.agent.RunOnce(ctx); err != nil {
			t.Fatalf("RunOnce = %v", err)
		}
		if got := readFile(t, filepath.Join(f.dir, "slow.log")); strings.Count(got, "start") != 2 || strings.Count(got, "end") != 1 {
			t.Errorf("post_renew did not run again:\n%s", got)
		}
	})
	t.Run("one that runs past post_renew_timeout is left", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		orphanPost(t, f, `echo start >> slow.log; sleep 5; echo end >> slow.log`)
		f.cert().PostRenewTimeout = 300 * time.Millisecond
		err := f.agent.RunOnce(ctx)
		if err == nil || !strings.Contains(f.logs.String(), "after post_renew_timeout") {
			t.Fatalf("RunOnce = %v; want a failure saying the earlier command still runs:\n%s", err, f.logs.String())
		}
		if got := readFile(t, filepath.Join(f.dir, "slow.log")); strings.Count(got, "start") != 1 {
			t.Errorf("post_renew ran again beside the earlier one:\n%s", got)
		}
		if l := newLayout(f.cert(), nil); l.markerFingerprint() == "" {
			t.Error("the marker is gone: the command would never run for this renewal")
		}
	})
}
