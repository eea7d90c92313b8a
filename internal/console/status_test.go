package console

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// TestStatusUnavailable: a store out of reach is a 503 page that says to
// try again, never a 500 or the store's error.
func TestStatusUnavailable(t *testing.T) {
	err := pki.Wrap(pki.EInternal, fmt.Errorf("%w: postgres: dial tcp 10.0.0.5:5432: connection refused", pki.ErrUnavailable), "listing")
	code, msg := status(err)
	if code != http.StatusServiceUnavailable || strings.Contains(msg, "10.0.0.5") || !strings.Contains(msg, "try again") {
		t.Errorf("status = %d %q", code, msg)
	}
}

// TestStatusUnavailableNamesTheCause: a 503 page gives the API's reason
// where the error carries one, and why the store cannot write where it
// knows, rather than "cannot be reached"; and the Retry-After sent with it
// (pki.RetryAfter, as the API sends) fits what it says.
func TestStatusUnavailableNamesTheCause(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		want       string
		retryAfter int
	}{
		{"audit trail changed", fmt.Errorf("revoke: record 26 exists after the head: %w", store.ErrAuditTampered),
			store.AuditTamperedMessage, int(store.AuditTamperedRetryAfter.Seconds())},
		{"disk full", fmt.Errorf("revoke: %w", fmt.Errorf("%w: %w: commit: database or disk is full (13)", store.ErrUnavailable, store.ErrDiskFull)),
			"the disk the database is on is full", pki.RetryAfterSeconds},
		{"locked", fmt.Errorf("%w: %w: database is locked (5)", store.ErrUnavailable, store.ErrLocked),
			"locked by another process", pki.RetryAfterSeconds},
		{"read-only", fmt.Errorf("%w: %w: postgres: read-only", store.ErrUnavailable, store.ErrReadOnly),
			"the database is read-only", pki.RetryAfterSeconds},
		{"file removed", fmt.Errorf("%w: sqlite: /data/scepter.db was removed while the server ran: %w; restore it and restart", store.ErrUnavailable, store.ErrFileGone),
			"the database file was removed or replaced", pki.RetryAfterSeconds},
		{"out of reach", fmt.Errorf("%w: dial tcp: connection refused", store.ErrUnavailable),
			"cannot be reached just now; try again in a few seconds", pki.RetryAfterSeconds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := status(tt.err)
			if code != http.StatusServiceUnavailable || !strings.Contains(msg, tt.want) {
				t.Errorf("status = %d %q, want 503 saying %q", code, msg, tt.want)
			}
			if tt.name != "out of reach" && strings.Contains(msg, "cannot be reached") {
				t.Errorf("status says %q: the database was reached", msg)
			}
			if got := pki.RetryAfter(tt.err); got != tt.retryAfter {
				t.Errorf("Retry-After %d, want %d", got, tt.retryAfter)
			}
		})
	}
}
