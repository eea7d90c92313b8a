package server_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/server"
)

// Every answer over HTTPS carries Strict-Transport-Security, the guard's
// own refusals (429, 503) and the mux's 404 included, as the API's and the
// console's answers do; none over plain HTTP (RFC 6797 section 7.2). r100:
// the guard's 429 and 503 on the HTTPS listener had none.
func TestEveryHTTPSAnswerHasStrictTransportSecurity(t *testing.T) {
	tlsConf := selfSigned(t)
	held, entered, release := holding(1)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	mux, err := server.TLSMux(server.Handlers{})
	if err != nil {
		t.Fatal(err)
	}
	// One path of the mux (an unknown one: its 404), the rest the
	// holding handler's.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nowhere" {
			mux.ServeHTTP(w, r)
			return
		}
		held.ServeHTTP(w, r)
	})
	for _, tc := range []struct {
		scheme string
		want   string
	}{{"https", server.StrictTransportSecurity}, {"http", ""}} {
		var conf *tls.Config
		if tc.scheme == "https" {
			conf = tlsConf
		}
		// A burst of 3 (the 404, the held request, the 503), one slot,
		// no queue; each case has a guard of its own.
		s := serveGuarded(t, server.Limits{MaxConns: 10, MaxInflight: 1, RateLimit: 0.001, RateBurst: 3}, 10*time.Second, conf, h)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		t.Cleanup(client.CloseIdleConnections)
		base := tc.scheme + "://" + s.addr
		check := func(name, path string, wantStatus int) {
			t.Helper()
			resp, err := client.Get(base + path)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.scheme, name, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantStatus {
				t.Errorf("%s %s: HTTP %d, want %d", tc.scheme, name, resp.StatusCode, wantStatus)
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != tc.want {
				t.Errorf("%s %s (HTTP %d): Strict-Transport-Security %q, want %q", tc.scheme, name, resp.StatusCode, got, tc.want)
			}
		}
		check("the mux's 404", "/nowhere", http.StatusNotFound)
		// 503: the one slot held.
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := client.Get(base + "/scep?slow=1")
			if err == nil {
				resp.Body.Close()
			}
		}()
		<-entered
		check("503 busy", "/api/v1/whoami", http.StatusServiceUnavailable)
		release <- struct{}{}
		<-done
		// 429: the burst is spent.
		check("429 rate limited", "/scep?operation=GetCACaps", http.StatusTooManyRequests)
		check("429 rate limited, API", "/api/v1/whoami", http.StatusTooManyRequests)
	}
}
