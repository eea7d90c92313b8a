package scepserver_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
)

// A PKIOperation body announced larger than the limit is refused 413
// before it is read, behind the server's guard as `scepter serve` mounts
// it: a client that sends "Expect: 100-continue" gets the 413, not "100
// Continue" and then a connection reset, and sends none of the body.
func TestTooLargeBodyRefusedBeforeItIsSent(t *testing.T) {
	ts := newTestServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		g, err := server.NewGuard(server.Limits{MaxConns: 10, MaxInflight: 10}, pkitest.NewClock(captureTime), nil)
		if err != nil {
			t.Fatal(err)
		}
		return g.Handler(h)
	}})
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	t.Cleanup(client.CloseIdleConnections)
	for _, size := range []int{2 << 20, scepserver.DefaultMaxBodyBytes + 1} {
		body := pkitest.NewCountingReader(strings.Repeat("x", size))
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/scep?operation=PKIOperation", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(size)
		req.Header.Set("Content-Type", "application/x-pki-message")
		req.Header.Set("Expect", "100-continue")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%d bytes: %d %s, want 413", size, resp.StatusCode, b)
		}
		if sent := body.Sent(); sent != 0 {
			t.Errorf("%d bytes: %d of them sent before the 413, want none", size, sent)
		}
	}
}
