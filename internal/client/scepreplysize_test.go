package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// A reply beyond the bound on what is read is refused as "more than" the
// bound, not cut to it and judged by the bytes read as if that were its
// size (r113: "message of 4194304 bytes exceeds the 2097152 byte limit"
// for a reply of 300 MiB); one that fits is read whole (here judged no
// list of capabilities, but not by its size), and a refusal's
// start is still shown.
func TestSCEPReplyBeyondTheBound(t *testing.T) {
	const tooLarge = "the reply is more than 4194304 bytes"
	for _, tc := range []struct {
		name   string
		size   int
		status int
		want   string // in the error; "" for none about the size
	}{
		{"fits", maxResponseBytes, http.StatusOK, ""},
		{"one byte more", maxResponseBytes + 1, http.StatusOK, "GetCACaps: " + tooLarge},
		{"much more", 3 * maxResponseBytes, http.StatusOK, "GetCACaps: " + tooLarge},
		{"a large refusal", maxResponseBytes + 1, http.StatusInternalServerError, "GetCACaps: HTTP 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Content-Length", strconv.Itoa(tc.size))
				w.WriteHeader(tc.status)
				w.Write([]byte(strings.Repeat("x", tc.size)))
			}))
			defer srv.Close()
			c := &SCEP{URL: srv.URL + "/scep", HTTP: srv.Client()}
			_, err := c.GetCACaps(context.Background())
			switch {
			case tc.want == "" && err != nil && strings.Contains(err.Error(), "more than"):
				t.Errorf("%d bytes: %v, want them read", tc.size, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%d bytes: %v, want %q", tc.size, err, tc.want)
			}
		})
	}
}
