// Package loglimit keeps a burst of identical warnings and errors from
// flooding the log. When the store is unavailable (a full disk, a database
// outage) every request fails the same way and each failure logs the same
// line: thousands a minute from a fleet that retries, on a disk that may be
// the full one. The operator needs to see the condition and how often it
// happens, not every instance of it.
//
// Handler passes at most a limit of records of one level and message per
// window (New's arguments: 10 per 10 s by default) and counts the rest;
// the first record of that message after the window brings a line saying
// how many were left out. Records below Warn (each issuance, for one: their
// volume is the traffic's) pass untouched. The audit trail lives in the
// store and is not affected.
package loglimit

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults: a burst of ten of one message shows it is a pattern; after
// that one line every ten seconds at most, plus the count left out.
const (
	DefaultLimit  = 10
	DefaultWindow = 10 * time.Second
	// maxKeys bounds the messages tracked. Messages are constant strings
	// in our code, a few hundred at most; past the bound a new message
	// passes unlimited rather than evicting one that is being limited.
	maxKeys = 4096
)

// Handler limits repeated records of level Warn and above; see the package
// comment.
type Handler struct {
	next  slog.Handler
	limit int
	every time.Duration
	st    *state // shared by the handlers WithAttrs and WithGroup derive
}

type state struct {
	mu   sync.Mutex
	seen map[key]*Window
}

type key struct {
	level slog.Level
	msg   string
}

// Window counts the lines of one kind within a period: the first limit
// pass, the rest are counted, and the first line after the period opens
// the next one and learns how many the last left out. The zero Window
// passes its first line. It is not safe for concurrent use: its owner
// holds a lock around Admit.
type Window struct {
	start   time.Time
	passed  int
	dropped int
}

// Admit counts a line at t against at most limit per every. It says
// whether the line passes and, for the first line of a new period, how
// many the last period left out and when it began. A line stamped before
// the period's start (clocks are not monotonic across lines) counts in
// the current period.
func (w *Window) Admit(t time.Time, limit int, every time.Duration) (pass bool, dropped int, since time.Time) {
	if t.Sub(w.start) >= every {
		dropped, since = w.dropped, w.start
		*w = Window{start: t, passed: 1}
		return true, dropped, since
	}
	if w.passed < limit {
		w.passed++
		return true, 0, time.Time{}
	}
	w.dropped++
	return false, 0, time.Time{}
}

// Over says that at t, with periods of every, w's period has ended and
// left no line out: the next line starts afresh and learns of none, so an
// owner may forget w without losing a count.
func (w *Window) Over(t time.Time, every time.Duration) bool {
	return t.Sub(w.start) >= every && w.dropped == 0
}

// New wraps next. limit and every of zero or less mean DefaultLimit and
// DefaultWindow.
func New(next slog.Handler, limit int, every time.Duration) *Handler {
	if limit <= 0 {
		limit = DefaultLimit
	}
	if every <= 0 {
		every = DefaultWindow
	}
	return &Handler{next: next, limit: limit, every: every, st: &state{seen: make(map[key]*Window)}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler; the result shares h's counts.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), limit: h.limit, every: h.every, st: h.st}
}

// WithGroup implements slog.Handler; the result shares h's counts.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), limit: h.limit, every: h.every, st: h.st}
}

// Handle implements slog.Handler. Windows run on the records' own times, so
// no clock is read here.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || r.Time.IsZero() {
		// A record without a time (built by hand) cannot be placed in a
		// window: it passes.
		return h.next.Handle(ctx, r)
	}
	pass, dropped, since := h.admit(key{r.Level, r.Message}, r.Time)
	if !pass {
		return nil
	}
	if dropped > 0 {
		note := slog.NewRecord(r.Time, r.Level, "repeated log lines left out", r.PC)
		note.AddAttrs(slog.String("message", r.Message), slog.Int("left_out", dropped),
			slog.Time("since", since))
		if err := h.next.Handle(ctx, note); err != nil {
			return err
		}
	}
	return h.next.Handle(ctx, r)
}

// admit counts a record of k at t. It says whether the record passes and,
// for the first record of a new window, how many the last window left out
// and when that window began.
func (h *Handler) admit(k key, t time.Time) (pass bool, dropped int, since time.Time) {
	st := h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	w := st.seen[k]
	if w == nil {
		if len(st.seen) >= maxKeys {
			st.forget(t, h.every)
			if len(st.seen) >= maxKeys {
				return true, 0, time.Time{}
			}
		}
		w = &Window{}
		st.seen[k] = w
	}
	return w.Admit(t, h.limit, h.every)
}

// forget drops the windows that are Over at t: they would start afresh
// on their next record anyway.
func (st *state) forget(t time.Time, every time.Duration) {
	for k, w := range st.seen {
		if w.Over(t, every) {
			delete(st.seen, k)
		}
	}
}

// TakeLeftOut takes, at t, the lines w's period left out once that period
// has ended, for an owner that records them by itself rather than wait
// for a next line that may never come; the record of them opens the next
// period, as a line that passes does. Before the period's end it takes
// nothing and says how long is left.
func (w *Window) TakeLeftOut(t time.Time, every time.Duration) (dropped int, left time.Duration) {
	if d := t.Sub(w.start); d < every {
		return 0, every - d
	}
	if dropped = w.dropped; dropped > 0 {
		*w = Window{start: t, passed: 1}
	}
	return dropped, 0
}
