package client

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/cms"
)

// A server that does not support GetCACaps (it answers 404, 405, 501 or
// 400 to the operation) offers no capabilities, as RFC 8894 §3.5.1 says a
// client should take it: single DES, refused unless allowed, in words that
// say GetCACaps is not supported. Before (r117), every HTTP error to
// GetCACaps stopped the client, even with --allow-insecure-des. A 5xx
// other than 501, a 401 or a 429 still stops it, and an HTML page
// answered with 200 is still no SCEP server.
func TestSCEPGetCACapsNotSupportedIsNoCapabilities(t *testing.T) {
	for _, tt := range []struct {
		status  int
		ct      string
		body    string
		wantErr string // in GetCACaps's error; "": no capabilities
	}{
		{http.StatusNotFound, "text/plain", "unknown operation", ""},
		{http.StatusMethodNotAllowed, "", "", ""},
		{http.StatusNotImplemented, "text/plain", "not implemented", ""},
		{http.StatusBadRequest, "text/plain", "Invalid operation", ""},
		{http.StatusInternalServerError, "text/plain", "oops", "GetCACaps: HTTP 500: oops"},
		{http.StatusBadGateway, "text/plain", "", "GetCACaps: HTTP 502"},
		{http.StatusServiceUnavailable, "text/plain", "busy", "GetCACaps: HTTP 503: busy"},
		{http.StatusUnauthorized, "text/plain", "who are you", "GetCACaps: HTTP 401: who are you"},
		{http.StatusTooManyRequests, "text/plain", "slow down", "GetCACaps: HTTP 429: slow down"},
		{http.StatusOK, "text/html", "<html>Welcome to nginx</html>", "GetCACaps: the server does not look like a SCEP server"},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.ct != "" {
					w.Header().Set("Content-Type", tt.ct)
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			for _, allowDES := range []bool{false, true} {
				var warned []string
				sc := &SCEP{URL: srv.URL + "/scep", AllowInsecureDES: allowDES, Warnf: func(format string, args ...any) {
					warned = append(warned, fmt.Sprintf(format, args...))
				}}
				caps, err := sc.GetCACaps(context.Background())
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Errorf("GetCACaps: %v, want %q", err, tt.wantErr)
					}
					continue
				}
				if err != nil || len(caps) != 0 {
					t.Errorf("GetCACaps: %v, %v; want no capabilities and no error", caps, err)
					continue
				}
				if len(warned) != 1 || !strings.Contains(warned[0], fmt.Sprintf("does not support GetCACaps (GetCACaps: HTTP %d", tt.status)) {
					t.Errorf("warnings %q, want one saying GetCACaps is not supported", warned)
				}
				cipher, _, err := sc.Algorithms(caps)
				switch {
				case allowDES && (err != nil || cipher != cms.DESCBC):
					t.Errorf("Algorithms with single DES allowed: %v, %v", cipher, err)
				case !allowDES && (err == nil || !strings.Contains(err.Error(), "the server does not support GetCACaps (GetCACaps: HTTP") ||
					!strings.Contains(err.Error(), "pass --allow-insecure-des")):
					t.Errorf("Algorithms: %v, want a refusal saying GetCACaps is not supported", err)
				}
			}
		})
	}
}
