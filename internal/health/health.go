// Package health answers load balancers and orchestrators: /healthz says
// the process serves, /readyz that it can do its work (the store answers,
// the audit trail takes appends, the active issuing CA key and RA key
// sign). Readiness is a list of named
// checks; their outcome is reused for a few seconds, so a storm of probes
// costs one store read and one signature per key per period.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// Defaults of Options.
const (
	DefaultCacheFor = 5 * time.Second
	DefaultTimeout  = 5 * time.Second
)

// Check is one condition readiness depends on.
type Check struct {
	// Name says what failed in a /readyz answer ("store", "RA key"). It
	// is all a client learns: the error goes to the log only.
	Name string
	// Run returns nil when the condition holds.
	Run func(ctx context.Context) error
}

// Options configure a Checker.
type Options struct {
	// Clock decides when a cached outcome is stale (required).
	Clock pki.Clock
	Log   *slog.Logger
	// CacheFor is how long an outcome is reused (DefaultCacheFor).
	CacheFor time.Duration
	// Timeout bounds one run of the checks (DefaultTimeout): a check
	// that has not answered by then has failed.
	Timeout time.Duration
}

// Checker runs the readiness checks and serves /healthz and /readyz.
type Checker struct {
	checks   []Check
	clock    pki.Clock
	log      *slog.Logger
	cacheFor time.Duration
	timeout  time.Duration

	mu   sync.Mutex // held while the checks run: probes share one run
	at   time.Time
	have bool
	last Status
}

// Status is the outcome of one run of the checks.
type Status struct {
	// Checks are the checks' errors (nil: passed), in the order given.
	Checks []Result
}

// Result is one check's outcome.
type Result struct {
	Name string
	Err  error
}

// Ready reports whether every check passed.
func (s Status) Ready() bool { return len(s.Failed()) == 0 }

// Failed names the checks that failed.
func (s Status) Failed() []string {
	var out []string
	for _, r := range s.Checks {
		if r.Err != nil {
			out = append(out, r.Name)
		}
	}
	return out
}

// label is what a /readyz answer calls the check and its state.
func (r Result) label() (name, state string) {
	var shown *Shown
	switch {
	case r.Err == nil:
		return r.Name, "ok"
	case errors.Is(r.Err, ErrTimedOut):
		return r.Name, "timed out"
	case errors.As(r.Err, &shown):
		return shown.Name, shown.State
	}
	return r.Name, "failed"
}

// ErrTimedOut is the error of a check that did not answer within
// Options.Timeout.
var ErrTimedOut = errors.New("health: no answer in time")

// New returns a Checker for checks.
func New(o Options, checks ...Check) *Checker {
	if o.Clock == nil {
		o.Clock = pki.SystemClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.CacheFor <= 0 {
		o.CacheFor = DefaultCacheFor
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Checker{checks: slices.Clone(checks), clock: o.Clock, log: o.Log, cacheFor: o.CacheFor, timeout: o.Timeout}
}

// Status runs the checks, or returns the outcome of the last run when it is
// younger than CacheFor.
func (c *Checker) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if c.have && !now.Before(c.at) && now.Sub(c.at) < c.cacheFor {
		return c.last
	}
	st := c.run()
	c.logChange(st)
	c.at, c.have, c.last = now, true, st
	return st
}

// run runs every check at once and waits for them all, or for the timeout.
func (c *Checker) run() Status {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	type answer struct {
		i   int
		err error
	}
	answers := make(chan answer, len(c.checks)) // a late check never blocks
	for i, ch := range c.checks {
		go func() { answers <- answer{i, safeRun(ctx, ch)} }()
	}
	st := Status{Checks: make([]Result, len(c.checks))}
	for i, ch := range c.checks {
		st.Checks[i] = Result{Name: ch.Name, Err: ErrTimedOut}
	}
	for range c.checks {
		select {
		case a := <-answers:
			st.Checks[a.i].Err = a.err
		case <-ctx.Done():
			return st
		}
	}
	return st
}

// safeRun runs a check; a panic (a misbehaving HSM library) is a failure.
func safeRun(ctx context.Context, ch Check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("health: check %s panicked: %v", ch.Name, r)
		}
	}()
	return ch.Run(ctx)
}

// logChange logs readiness when it changes: each failure with its error
// when it starts, again when a failing check's cause as /readyz shows it
// changes (a token back, but its PIN now refused: a load balancer that
// follows /readyz sends no request whose error would say so), and the
// return to ready.
func (c *Checker) logChange(st Status) {
	var before []Result
	if c.have {
		before = c.last.Checks
	}
	for i, r := range st.Checks {
		if r.Err == nil {
			continue
		}
		switch {
		case i >= len(before) || before[i].Err == nil:
			c.log.Error("not ready: "+r.Name+" check failed", "err", r.Err)
		case shownAs(before[i]) != shownAs(r):
			name, state := r.label()
			c.log.Error("not ready: "+r.Name+" check still failing, now for another cause ("+name+": "+state+")", "err", r.Err)
		}
	}
	if c.have && !c.last.Ready() && st.Ready() {
		c.log.Info("ready again")
	}
}

// shownAs is what a /readyz answer says of r: its name and state.
func shownAs(r Result) string {
	name, state := r.label()
	return name + ": " + state
}

// text is the plain-text body of a /readyz answer: the verdict, then each
// check's state. No error text: it may name files or devices.
func (s Status) text() string {
	var b strings.Builder
	var failed []string
	for _, r := range s.Checks {
		if name, _ := r.label(); r.Err != nil {
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		b.WriteString("not ready: " + strings.Join(failed, ", ") + "\n")
	} else {
		b.WriteString("ready\n")
	}
	for _, r := range s.Checks {
		name, state := r.label()
		b.WriteString(name + ": " + state + "\n")
	}
	return b.String()
}
