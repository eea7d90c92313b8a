package main

import (
	"context"
	"errors"
	"strings"
	"testing"
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
