package console

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
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
