package crl_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// logBuffer is a log destination safe for Run's goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count is how many lines hold all of parts.
func (l *logBuffer) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// breakDir puts a file where a numbers directory should be: no CRL
// number can be written there, even by root (a chmod would not stop it).
func breakDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("in the way\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A node that cannot record CRL numbers in DATA/crl-numbers (a full disk)
// cannot serve the newer CRL another node published, which lists a new
// revocation. It serves no CRL of that CA rather than its older one: the
// CRL URL answers 503 with Retry-After, GetCRL's source EUnavailable,
// /readyz fails naming "CRL numbers", and the log says so at ERROR once,
// not at every update. Once it can write again, it serves the newest CRL
// and is ready, by itself. A node that never served a CRL is not handed
// the store's unrecorded either.
func TestCRLHeldBackWhileNumbersCannotBeRecorded(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	other, err := sqlite.Open(ctx, filepath.Join(f.Dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	dirA := filepath.Join(t.TempDir(), crl.NumbersDir)
	logs := &logBuffer{}
	a := crl.New(f.Store, f.Authority, f.Clock, slog.New(slog.NewTextHandler(logs, nil)),
		crl.Config{Numbers: crl.NewNumbers(dirA), Interval: time.Millisecond})
	b := crl.New(other, f.Authority, f.Clock, f.Log, crl.Config{Numbers: crl.NewNumbers(filepath.Join(t.TempDir(), crl.NumbersDir))})

	checker := health.New(health.Options{Clock: f.Clock}, a.ReadinessCheck())
	mux, err := server.PlainMux(server.Handlers{CRL: crl.NewHandler(a, f.Authority), Health: checker})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	crlPath := "/crl/" + issuer.ID + ".crl"

	f.Clock.Advance(time.Second)
	if err := a.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(crlPath); resp.StatusCode != http.StatusOK || parseCRL(t, body, issuer.Cert).Number.Int64() != 1 {
		t.Fatalf("before: %d, want 200 and CRL 1", resp.StatusCode)
	}

	breakDir(t, dirA)
	cert, _ := f.Issue(t, "revoked-elsewhere")
	f.Revoke(t, cert, 1)
	f.Clock.Advance(time.Second)
	if err := b.Update(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := a.Update(ctx); err == nil || !strings.Contains(err.Error(), "recording CRL number 2") {
			t.Fatalf("A's update with no room for the number: %v, want it to say so", err)
		}
	}
	// Run, once a millisecond, adds no line a second.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(runCtx) }()
	time.Sleep(50 * time.Millisecond)
	stop()
	<-done
	if n := logs.count("level=ERROR", "cannot record the number", "number=2"); n != 1 {
		t.Errorf("%d ERROR lines for the CRL held back, want 1", n)
	}
	if n := logs.count("level=WARN"); n != 0 {
		t.Errorf("%d WARN lines, want none (logged once at ERROR)", n)
	}

	resp, body := get(crlPath)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "cannot serve the newest CRL") {
		t.Errorf("CRL held back: %d, Retry-After %q, %.80q; want 503 saying why", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if _, err := a.CurrentCRL(ctx, issuer.ID); pki.ErrorCode(err) != pki.EUnavailable {
		t.Errorf("GetCRL's source: %v, want EUnavailable (503, never a stale CRL)", err)
	}
	// The reason, in words that name no file, as the store check gives
	// its own (r104 observation); the log names the directory.
	if resp, body := get("/readyz"); resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(string(body), "not ready: CRL numbers\n") ||
		!strings.Contains(string(body), "\nCRL numbers: cannot record: a file stands where its directory belongs (the log names the directory)\n") ||
		strings.Contains(string(body), dirA) {
		t.Errorf("/readyz: %d %q, want 503 naming CRL numbers and why, not the directory", resp.StatusCode, body)
	}
	if err := a.NumbersRecorded(); err == nil || !strings.Contains(err.Error(), "CRL numbers cannot be recorded in "+dirA) {
		t.Errorf("the check's error: %v, want it to name %s", err, dirA)
	}

	// A node with no CRL yet, on the same store, cannot write either: it
	// is not handed the store's newest unrecorded.
	dirC := filepath.Join(t.TempDir(), crl.NumbersDir)
	breakDir(t, dirC)
	c := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{Numbers: crl.NewNumbers(dirC)})
	if err := c.Update(ctx); err == nil {
		t.Error("a node that cannot read or write its numbers started without an error")
	}
	if _, err := c.CurrentCRL(ctx, issuer.ID); pki.ErrorCode(err) != pki.EUnavailable {
		t.Errorf("a new node's CRL: %v, want EUnavailable", err)
	}

	// Room again: A heals by itself at its next update.
	if err := os.Remove(dirA); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(ctx); err != nil {
		t.Fatal(err)
	}
	resp, body = get(crlPath)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healed: %d %q, want 200", resp.StatusCode, body)
	}
	if list := parseCRL(t, body, issuer.Cert); list.Number.Int64() != 2 || len(list.RevokedCertificateEntries) != 1 {
		t.Errorf("healed: CRL %v with %d entries, want 2 with 1", list.Number, len(list.RevokedCertificateEntries))
	}
	if err := a.NumbersRecorded(); err != nil {
		t.Errorf("healed: %v", err)
	}
	f.Clock.Advance(health.DefaultCacheFor)
	if resp, body := get("/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("healed: /readyz %d %q", resp.StatusCode, body)
	}
	if n := logs.count("level=INFO", "recorded again", "number=2"); n != 1 {
		t.Errorf("%d INFO lines on healing, want 1", n)
	}
}
