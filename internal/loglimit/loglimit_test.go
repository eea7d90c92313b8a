package loglimit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// lines decodes the JSON lines the handler let through.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func newTestHandler(buf *bytes.Buffer, limit int, every time.Duration) *Handler {
	return New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}), limit, every)
}

func emit(t *testing.T, h slog.Handler, at time.Time, level slog.Level, msg string) {
	t.Helper()
	r := slog.NewRecord(at, level, msg, 0)
	r.AddAttrs(slog.String("err", "database or disk is full"))
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func count(ls []map[string]any, msg string) int {
	n := 0
	for _, l := range ls {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

func TestRepeatsAreLimitedPerWindow(t *testing.T) {
	tests := []struct {
		name      string
		level     slog.Level
		records   int
		wantFirst int // lines of the message in the first window
	}{
		{"errors beyond the limit are left out", slog.LevelError, 100, 10},
		{"warnings too", slog.LevelWarn, 100, 10},
		{"a burst within the limit passes whole", slog.LevelError, 7, 7},
		{"info is the traffic's volume and passes", slog.LevelInfo, 100, 100},
		{"debug passes", slog.LevelDebug, 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := newTestHandler(&buf, 10, 10*time.Second)
			for i := range tt.records {
				emit(t, h, t0.Add(time.Duration(i)*time.Millisecond), tt.level, "scep: cannot answer")
			}
			ls := lines(t, &buf)
			if got := count(ls, "scep: cannot answer"); got != tt.wantFirst {
				t.Fatalf("first window: %d lines, want %d", got, tt.wantFirst)
			}
			if got := count(ls, "repeated log lines left out"); got != 0 {
				t.Fatalf("a note before the window ended: %d", got)
			}

			// The first record after the window says how many were left
			// out, then passes itself.
			buf.Reset()
			emit(t, h, t0.Add(10*time.Second), tt.level, "scep: cannot answer")
			ls = lines(t, &buf)
			wantNotes := 0
			if left := tt.records - tt.wantFirst; left > 0 {
				wantNotes = 1
				if len(ls) != 2 || ls[0]["msg"] != "repeated log lines left out" {
					t.Fatalf("after the window: %v", ls)
				}
				if ls[0]["left_out"] != float64(left) || ls[0]["message"] != "scep: cannot answer" ||
					ls[0]["level"] != tt.level.String() {
					t.Fatalf("note: %v, want left_out %d at %s", ls[0], left, tt.level)
				}
				if since, _ := time.Parse(time.RFC3339Nano, ls[0]["since"].(string)); !since.Equal(t0) {
					t.Fatalf("note since %v, want %v", ls[0]["since"], t0)
				}
			}
			if got := count(ls, "repeated log lines left out"); got != wantNotes {
				t.Fatalf("notes: %d, want %d: %v", got, wantNotes, ls)
			}
			if got := count(ls, "scep: cannot answer"); got != 1 {
				t.Fatalf("after the window: %d lines of the message, want 1", got)
			}
		})
	}
}

func TestMessagesAndLevelsAreCountedApart(t *testing.T) {
	var buf bytes.Buffer
	h := newTestHandler(&buf, 3, time.Minute)
	for i := range 20 {
		at := t0.Add(time.Duration(i) * time.Second)
		emit(t, h, at, slog.LevelError, "scep: cannot answer")
		emit(t, h, at, slog.LevelError, "estserver: cannot answer")
		emit(t, h, at, slog.LevelWarn, "scep: cannot answer")
	}
	ls := lines(t, &buf)
	if got := count(ls, "scep: cannot answer"); got != 6 {
		t.Errorf("scep: %d lines, want 3 errors and 3 warnings", got)
	}
	if got := count(ls, "estserver: cannot answer"); got != 3 {
		t.Errorf("est: %d lines, want 3", got)
	}
}

func TestDerivedLoggersShareTheCount(t *testing.T) {
	var buf bytes.Buffer
	h := newTestHandler(&buf, 5, time.Minute)
	a := h.WithAttrs([]slog.Attr{slog.String("component", "scep")})
	b := h.WithGroup("g").WithAttrs([]slog.Attr{slog.String("component", "est")})
	for i := range 10 {
		emit(t, a, t0.Add(time.Duration(i)*time.Millisecond), slog.LevelError, "audit write failed")
		emit(t, b, t0.Add(time.Duration(i)*time.Millisecond), slog.LevelError, "audit write failed")
	}
	ls := lines(t, &buf)
	if got := count(ls, "audit write failed"); got != 5 {
		t.Fatalf("%d lines, want 5 across both loggers", got)
	}
	// The derived handlers still add their attributes.
	if ls[0]["component"] != "scep" {
		t.Fatalf("first line lost its attribute: %v", ls[0])
	}
}

// A record stamped before its window began (the wall clock stepped back)
// counts in that window instead of opening a new one.
func TestClockSteppingBackStaysInTheWindow(t *testing.T) {
	var buf bytes.Buffer
	h := newTestHandler(&buf, 2, time.Minute)
	emit(t, h, t0, slog.LevelError, "m")
	for range 5 {
		emit(t, h, t0.Add(-time.Hour), slog.LevelError, "m")
	}
	if got := count(lines(t, &buf), "m"); got != 2 {
		t.Fatalf("%d lines, want 2", got)
	}
}

// A record without a time cannot be placed in a window and passes.
func TestRecordsWithoutATimePass(t *testing.T) {
	var buf bytes.Buffer
	h := newTestHandler(&buf, 1, time.Minute)
	for range 5 {
		emit(t, h, time.Time{}, slog.LevelError, "m")
	}
	if got := count(lines(t, &buf), "m"); got != 5 {
		t.Fatalf("%d lines, want 5", got)
	}
}

// Past maxKeys distinct messages, new ones pass unlimited rather than
// pushing out a message being limited, and memory stays bounded.
func TestManyDistinctMessagesStayBounded(t *testing.T) {
	h := New(slog.DiscardHandler, 1, time.Minute)
	for i := range maxKeys + 100 {
		emit(t, h, t0, slog.LevelError, "m"+string(rune('a'+i%26))+time.Duration(i).String())
	}
	if n := len(h.st.seen); n > maxKeys {
		t.Fatalf("%d messages tracked, bound %d", n, maxKeys)
	}
	// Windows past their time that left nothing out make room.
	emit(t, h, t0.Add(2*time.Minute), slog.LevelError, "new")
	if _, ok := h.st.seen[key{slog.LevelError, "new"}]; !ok {
		t.Fatal("stale windows were not forgotten to make room")
	}
}

func TestConcurrentUse(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	h := New(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, nil), 10, time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := slog.New(h).With("g", g)
			for range 200 {
				l.Error("store unavailable")
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	// Every record is stamped now; all fall in one window unless the test
	// straddles its end, which lets one more burst through.
	if got := count(lines(t, &buf), "store unavailable"); got != 10 && got != 20 {
		t.Fatalf("%d lines from 1,600 records, want 10 (or 20 across a window's end)", got)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
