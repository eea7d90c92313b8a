package health_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store/migrate"
)

// schemaT0 is the checks' clock's start; any date does.
var schemaT0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

// schemaState is a store's SchemaAhead: what the test sets.
type schemaState struct{ err atomic.Pointer[error] }

func (s *schemaState) SchemaAhead() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// TestStoreSchemaCheck: /readyz passes while the store's schema is this
// node's, and fails once the store is known to be newer, naming both
// versions and saying to upgrade the node; a store that could not tell
// fails the check plainly, without its error's text.
func TestStoreSchemaCheck(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantLine string
	}{
		{"matching schema", nil, http.StatusOK, "store schema: ok\n"},
		{"newer schema", fmt.Errorf("unavailable: %w", &migrate.TooNewError{Have: 27, Known: 25}), http.StatusServiceUnavailable,
			"store schema: seen at version 27, newer than this node's 25: upgrade this node, or restart it if the store was restored to its version\n"},
		{"other error", fmt.Errorf("secret detail"), http.StatusServiceUnavailable, "store schema: failed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &schemaState{}
			if tt.err != nil {
				st.err.Store(&tt.err)
			}
			c := health.New(health.Options{Clock: pkitest.NewClock(schemaT0)}, health.StoreSchema(st))
			code, body := get(t, c.Routes()["GET "+health.ReadyPath], health.ReadyPath)
			if code != tt.wantCode || !strings.Contains(body, tt.wantLine) {
				t.Errorf("/readyz: %d %q, want %d with %q", code, body, tt.wantCode, tt.wantLine)
			}
			if strings.Contains(body, "secret") {
				t.Errorf("/readyz shows the error's text: %q", body)
			}
		})
	}
}

// The check's state is what the store last learnt: a probe after the
// store learns the schema is newer (and the cached outcome is stale) fails.
func TestStoreSchemaCheckFollowsTheStore(t *testing.T) {
	clock := pkitest.NewClock(schemaT0)
	st := &schemaState{}
	c := health.New(health.Options{Clock: clock}, health.StoreSchema(st))
	if s := c.Status(); !s.Ready() {
		t.Fatalf("not ready at the store's own schema: %v", s.Failed())
	}
	var err error = &migrate.TooNewError{Have: 9, Known: 8}
	st.err.Store(&err)
	clock.Advance(health.DefaultCacheFor)
	if s := c.Status(); s.Ready() {
		t.Fatal("ready after the store's schema went past this node's")
	}
}
