package scepserver_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A node whose enrollment service's gate is closed (its store's schema is
// newer than its binary's) answers each PKCSReq 503 with Retry-After and
// the gate's message, and logs none of them at ERROR: the state lasts
// until the node is upgraded, was logged once at ERROR by the schema
// watch, and a fleet retrying every few seconds would flood the log.
func TestGatedEnrollmentIsNotLoggedAtError(t *testing.T) {
	const message = "another node has upgraded the store's schema to version 27; upgrade this node (until then, try again later)"
	var logged bytes.Buffer
	ts := newTestServer(t, serverOptions{log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelError})),
		enroll: enroll.Config{IssuanceGate: func() error { return pki.Errorf(pki.EUnavailable, message) }}})
	der, _ := ts.build(t, reqParams{key: testKey(t, 1)})
	for range 3 {
		resp, body := ts.postTo(t, "/scep", der)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), message) {
			t.Fatalf("HTTP %d %q (Retry-After %q), want 503 %q with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"), message)
		}
	}
	if logged.Len() > 0 {
		t.Errorf("gated enrollments logged at ERROR:\n%s", logged.String())
	}
	if n := ts.certCount(t); n != 0 {
		t.Errorf("%d certificates recorded, want none", n)
	}
}
