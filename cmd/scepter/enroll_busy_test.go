package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// SCEP `enroll --max-wait` asks again after a PKIOperation answered 503
// with Retry-After (a server or balancer under load), within --max-wait,
// and enrolls once the server answers (here a proxy in front of scepter
// serve, 503 twice, then passing through); a bare 503, or one without
// --max-wait, ends the run as before, its key kept. Before (r117), every
// 503 ended the run.
func TestEnrollWaitsOutA503WithRetryAfter(t *testing.T) {
	s := startServe(t, "")
	upstream, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	upstream.Path = ""
	forward := httputil.NewSingleHostReverseProxy(upstream)
	var mu sync.Mutex
	var busy int
	var retryAfter string
	var passed int
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("operation") == "PKIOperation" {
			mu.Lock()
			if busy > 0 {
				busy--
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				mu.Unlock()
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			passed++
			mu.Unlock()
		}
		forward.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	for _, tt := range []struct {
		name       string
		busy       int
		retryAfter string
		maxWait    string
		wantErr    string
	}{
		{"Retry-After: 1 twice", 2, "1", "30s", ""},
		{"a bare 503", 1, "", "30s", "PKIOperation: HTTP 503: busy; no answer came"},
		{"no --max-wait", 1, "1", "0s", "PKIOperation: HTTP 503: busy; no answer came"},
		// r134: a wait the server asks for beyond --max-wait names both;
		// r144 D2: and the server is not asked again before it.
		{"Retry-After beyond --max-wait", 1000, "60", "2s", "PKIOperation: HTTP 503: busy; not asked again within --max-wait 2s: the server asked to wait 1m, until "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			busy, retryAfter, passed = tt.busy, tt.retryAfter, 0
			mu.Unlock()
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			started := time.Now()
			out, err := runCLI("enroll", "--url", proxy.URL+"/scep", "--challenge", "test", "--ca-fingerprint", s.fingerprint,
				"--subject", "CN=busy-scep", "--max-wait", tt.maxWait, "--poll-interval", "1s", "--out", path("cert.pem"), "--key-out", path("key.pem"))
			took := time.Since(started)
			mu.Lock()
			left, through := busy, passed
			mu.Unlock()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "its key is kept in "+path("key.pem")) {
					t.Fatalf("enroll: %v, want %q and the key kept\n%s", err, tt.wantErr, out)
				}
				if through != 0 || left != 0 && tt.busy == 1 {
					t.Errorf("the server was asked again (%d 503s left, %d passed)", left, through)
				}
				return
			}
			if err != nil {
				t.Fatalf("enroll: %v\n%s", err, out)
			}
			if took < 2*time.Second {
				t.Errorf("enroll took %s, want at least 2 s (Retry-After: 1, twice)", took)
			}
			if left != 0 || through != 1 {
				t.Errorf("%d 503s left, %d requests passed, want 0 and 1", left, through)
			}
			if !strings.Contains(out, "warning: PKIOperation: HTTP 503: busy; asking again in 1s") {
				t.Errorf("enroll did not say it asks again:\n%s", out)
			}
			if !pki.SamePublicKey(loadKey(t, path("key.pem")).Public(), certKey(t, path("cert.pem"))) {
				t.Error("the certificate is not for the key")
			}
		})
	}
}
