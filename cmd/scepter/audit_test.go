package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// A window that ends before it starts is refused, not answered with an
// empty list that looks like a quiet trail.
func TestAuditListRefusesAnEmptyWindow(t *testing.T) {
	for _, tc := range []struct {
		since, until string
	}{
		{"24h", "48h"},
		{"2026-12-01", "2026-11-30"},
		{"2026-11-30T12:00:00Z", "2026-11-30T12:00:00Z"},
	} {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, []string{"audit", "list", "--since", tc.since, "--until", tc.until, "--data-dir", t.TempDir()})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "is not after --since") {
			t.Errorf("--since %s --until %s: %v, want a usage error naming the window", tc.since, tc.until, err)
		}
	}
}

// A type no event of the trail has (a misspelt one) is pointed out, not
// answered with an empty list alone; a known type outside the window is
// not.
func TestAuditListNamesAnUnknownType(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := st.AppendAudit(ctx, pki.AuditEvent{Time: at, Type: pki.EventRevoked, Actor: "cli:root", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, tc := range []struct {
		args     []string
		wantHint bool
	}{
		{[]string{"--type", "certificate.revoke"}, true},
		{[]string{"--type", "certificate.revoke", "--json"}, true},
		{[]string{"--type", pki.EventRevoked, "--since", "2030-01-03"}, false},
		{[]string{"--type", pki.EventRevoked}, false},
	} {
		e, out, errOut := testEnv(nil)
		if err := run(ctx, e, append([]string{"audit", "list", "--data-dir", dir}, tc.args...)); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := strings.Contains(errOut.String(), "no event of type"); got != tc.wantHint {
			t.Errorf("%v: hint %v, want %v; stdout %q, stderr %q", tc.args, got, tc.wantHint, out.String(), errOut.String())
		}
	}
}
