package server

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pkitest"
)

// The server's own error log lets errorLogBurst lines a minute through and
// then says how many it left out.
func TestQuietWriter(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	l := log.New(&quietWriter{w: &buf, clock: clock}, "", 0)
	for i := range 1000 {
		l.Printf("http: TLS handshake error %d", i)
	}
	if n := strings.Count(buf.String(), "\n"); n != errorLogBurst {
		t.Fatalf("%d lines for 1000 errors, want %d", n, errorLogBurst)
	}
	clock.Advance(time.Minute)
	buf.Reset()
	l.Printf("http: TLS handshake error again")
	want := fmt.Sprintf("http: %d more server errors were not logged since 2026-11-25T12:00:00Z\nhttp: TLS handshake error again\n", 1000-errorLogBurst)
	if buf.String() != want {
		t.Fatalf("after a minute:\n%q\nwant\n%q", buf.String(), want)
	}
}

// Refusals are summarised: the first at once, then at most one line a
// minute with the count.
func TestTally(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	g, err := NewGuard(Limits{MaxConns: 1, MaxInflight: 1, RateLimit: 1, RateBurst: 1}, clock, slogTo(&buf))
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		g.limited.add()
	}
	clock.Advance(time.Minute)
	g.limited.add()
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, "count=1\n") || !strings.Contains(out, "count=500 ") {
		t.Fatalf("log:\n%s", out)
	}
}

func slogTo(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
