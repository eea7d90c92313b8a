package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

// A body announced larger than the API takes is refused 413 before it is
// read: a client that sends "Expect: 100-continue" (curl, above 1 MB)
// gets the 413, not "100 Continue" and then a connection reset, and
// sends none of the body. A chunked one (no length announced) is refused
// 413 as it is read.
func TestTooLargeBodyRefusedBeforeItIsSent(t *testing.T) {
	e := newEnv(t)
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	t.Cleanup(client.CloseIdleConnections)
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"2 MB, announced", 2 << 20, false},
		{"one byte over, announced", api.MaxBodyBytes + 1, false},
		{"2 MB, chunked", 2 << 20, true},
	} {
		body := pkitest.NewCountingReader(`{"reason":"` + strings.Repeat("x", tc.size) + `"}`)
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/certificates/01/revoke", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(tc.size + len(`{"reason":""}`))
		if tc.chunked {
			req.ContentLength = -1
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.tokens[pki.RoleOperator])
		req.Header.Set("Expect", "100-continue")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "the body is larger than 65536 bytes") {
			t.Errorf("%s: %d %s, want 413", tc.name, resp.StatusCode, b)
		}
		if sent := body.Sent(); !tc.chunked && sent != 0 {
			t.Errorf("%s: %d bytes of the body sent before the 413, want none", tc.name, sent)
		}
	}
}
