package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/pkitest"
)

// A form announced larger than the console takes is refused 413 before it
// is read: a client that sends "Expect: 100-continue" gets the 413, not
// "100 Continue" and then a connection reset, and sends none of the form.
// A chunked one (no length announced) is refused 413 as it is read.
func TestTooLargeFormRefusedBeforeItIsSent(t *testing.T) {
	e := newEnv(t, console.Options{})
	b := e.as("operator")
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	t.Cleanup(client.CloseIdleConnections)
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"2 MB, announced", 2 << 20, false},
		{"one byte over, announced", console.MaxFormBytes + 1, false},
		{"2 MB, chunked", 2 << 20, true},
	} {
		form := "csrf=" + b.csrf() + "&reason="
		form += strings.Repeat("x", tc.size-len(form))
		body := pkitest.NewCountingReader(form)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/ui/requests/x/reject", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(form))
		if tc.chunked {
			req.ContentLength = -1
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Expect", "100-continue")
		for _, c := range b.cookies {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(page), "the form is larger than 65536 bytes") {
			t.Errorf("%s: %d, want 413\n%s", tc.name, resp.StatusCode, page)
		}
		if sent := body.Sent(); !tc.chunked && sent != 0 {
			t.Errorf("%s: %d bytes of the form sent before the 413, want none", tc.name, sent)
		}
	}
}
