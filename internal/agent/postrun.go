package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runningName is the file, in the state directory, that names the
// post_renew command running: its process (the leader of the process
// group it runs in), which process that is, and the certificate it runs
// for. The command outlives an agent killed while it runs; the next run
// finds the file and, while that process still runs, waits for it rather
// than start a second copy beside it.
const runningName = "post-renew-running"

// running is a post_renew command started by an agent.
type running struct {
	pid      int
	identity string // processIdentity; "" when the system does not tell
	forCert  string // the fingerprint of the certificate it runs for
}

func (l *layout) saveRunning(r running) error {
	data := fmt.Sprintf("pid %d\nidentity %s\nfor %s\n", r.pid, r.identity, r.forCert)
	// Not a step of the install: the test hook does not stop it.
	nl := *l
	nl.hook = nil
	return nl.writeFile(filepath.Join(l.state, runningName), []byte(data), 0o600, "")
}

// readRunning reads the record; ok false when there is none, or it is
// damaged (a command it named cannot be waited for).
func (l *layout) readRunning() (r running, ok bool) {
	b, err := os.ReadFile(filepath.Join(l.state, runningName))
	if err != nil {
		return running{}, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "pid":
			r.pid, _ = strconv.Atoi(v)
		case "identity":
			r.identity = v
		case "for":
			r.forCert = v
		}
	}
	return r, r.pid > 0
}

func (l *layout) clearRunning() {
	if err := os.Remove(filepath.Join(l.state, runningName)); err == nil {
		syncDir(l.state)
	} else if !errors.Is(err, fs.ErrNotExist) {
		l.warnf("could not remove the record of the post_renew command that ran", "file", filepath.Join(l.state, runningName), "err", err)
	}
}

// postRenewPoll is how often a command an earlier run started is looked at.
const postRenewPoll = 50 * time.Millisecond

// awaitEarlierPostRenew waits for a post_renew command that an earlier run
// started and that still runs (the agent was killed while it ran), up to
// post_renew_timeout, so that two copies never run at once. It returns
// the fingerprint of the certificate that command ran for when it was seen
// to end (""  when none ran, or it was gone already: whether it completed
// is not known), and an error when it still runs after the wait.
func (a *Agent) awaitEarlierPostRenew(ctx context.Context, c *Certificate, l *layout, log *slog.Logger) (ended string, err error) {
	r, ok := l.readRunning()
	if !ok {
		return "", nil
	}
	if !processAlive(r.pid, r.identity) {
		l.clearRunning()
		return "", nil
	}
	log.Warn("the post_renew command an earlier run started still runs (that run ended while it ran); waiting for it to end before running the command again",
		"pid", r.pid, "post_renew_timeout", c.PostRenewTimeout)
	// On the real clock, as the command's own timeout.
	deadline := time.NewTimer(c.PostRenewTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(postRenewPoll)
	defer tick.Stop()
	for processAlive(r.pid, r.identity) {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("post_renew: the command an earlier run started (process %d) still runs: %w", r.pid, ctx.Err())
		case <-deadline.C:
			return "", fmt.Errorf("post_renew: the command an earlier run started still runs (process group %d) after post_renew_timeout (%s); it is not run again while it does (end it with kill -- -%d if it hangs)",
				r.pid, c.PostRenewTimeout, r.pid)
		case <-tick.C:
		}
	}
	l.clearRunning()
	return r.forCert, nil
}
