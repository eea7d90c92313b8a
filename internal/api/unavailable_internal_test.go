package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/httpjson"
	"github.com/scepter/scepter/internal/store"
)

// A 503 of the API says why the store cannot write when it knows, as the
// console's page and /readyz do: an operator told "try again later" of a
// full disk waits for nothing. The address of a database out of reach is
// never in it.
func TestUnavailableNamesTheCause(t *testing.T) {
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"disk full", fmt.Errorf("revoke: %w", fmt.Errorf("%w: %w: commit: database or disk is full (13)", store.ErrUnavailable, store.ErrDiskFull)),
			"the disk the database is on is full"},
		{"locked", fmt.Errorf("%w: %w: database is locked (5)", store.ErrUnavailable, store.ErrLocked), "locked by another process"},
		{"read-only", fmt.Errorf("%w: %w: postgres: read-only", store.ErrUnavailable, store.ErrReadOnly), "the database is read-only"},
		{"file removed", fmt.Errorf("%w: sqlite: /data/scepter.db was removed while the server ran: %w; restore it and restart", store.ErrUnavailable, store.ErrFileGone),
			"the database file was removed or replaced"},
		{"out of reach", fmt.Errorf("%w: postgres: dial tcp 10.0.0.5:5432: connection refused", store.ErrUnavailable), "cannot be reached just now"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.fail(w, tc.err)
			var body httpjson.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			msg := body.Error
			if w.Code != http.StatusServiceUnavailable || !strings.Contains(msg, tc.want) || strings.Contains(msg, "10.0.0.5") {
				t.Errorf("%d %q, want 503 saying %q", w.Code, msg, tc.want)
			}
			if w.Header().Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		})
	}
}
