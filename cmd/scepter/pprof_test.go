package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// --pprof-listen takes only a loopback address, from a flag or the
// environment alike, and refuses anything else as a usage error before the
// server does anything.
func TestPprofListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "192.0.2.1:6060", "[::]:6060", "[::ffff:192.0.2.1]:6060",
		"[fe80::1%eth0]:6060", "example.com:6060", "127.0.0.1", "127.0.0.1:", "localhost"} {
		t.Run(addr, func(t *testing.T) {
			dir := t.TempDir()
			e, _, _ := testEnv(nil)
			err := run(context.Background(), e, []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "off", "--pprof-listen", addr})
			if err == nil || !strings.Contains(err.Error(), "--pprof-listen") || exitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want a usage error naming --pprof-listen", err, exitCode(err))
			}
		})
	}
	e, _, _ := testEnv(map[string]string{"SCEPTER_PPROF_LISTEN": "0.0.0.0:6060"})
	err := run(context.Background(), e, []string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--est-listen", "off"})
	if err == nil || !strings.HasPrefix(err.Error(), "SCEPTER_PPROF_LISTEN ") || exitCode(err) != 2 {
		t.Fatalf("SCEPTER_PPROF_LISTEN: err = %v (exit %d), want a usage error naming the variable", err, exitCode(err))
	}
	for _, addr := range []string{"", "127.0.0.1:6060", "127.1.2.3:0", "[::1]:6060", "localhost:6060", "LOCALHOST:0", "[::ffff:127.0.0.1]:0"} {
		if err := (&pprofFlags{listen: addr}).check(); err != nil {
			t.Errorf("%q refused: %v", addr, err)
		}
	}
}

// With --pprof-listen the profiling endpoints answer on their own loopback
// listener, not on the public one, and go away with the server.
func TestPprofServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	e := env{stdout: &out, stderr: &errb, lookupEnv: func(string) (string, bool) { return "", false }, generateKey: testKeys.Generate}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, e, []string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--est-listen", "off",
			"--challenge", "test", "--pprof-listen", "127.0.0.1:0"})
	}()
	pprofRE := regexp.MustCompile(`pprof: +(http://127\.0\.0\.1:\d+/debug/pprof/)`)
	publicRE := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Data directory:") {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s\n%s", err, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start within 60 s:\n%s\n%s", out.String(), errb.String())
		}
	}
	m := pprofRE.FindStringSubmatch(out.String())
	pub := publicRE.FindStringSubmatch(out.String())
	if m == nil || pub == nil {
		t.Fatalf("no pprof or public address in the banner:\n%s", out.String())
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(m[1]); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET %s: %d\n%.300s", m[1], code, body)
	}
	if code, body := get(m[1] + "heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("GET heap profile: %d\n%.300s", code, body)
	}
	if code, _ := get("http://" + pub[1] + "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("the public listener answers /debug/pprof/ with %d, want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(m[1], "http://"), "/debug/pprof/")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the pprof listener %s is still open after the server stopped", addr)
	}
}

// --pprof-listen off, as README's defaults column shows it and as
// --est-listen takes it, is off: the server starts without profiling
// endpoints, from the flag or the environment alike, where it was refused
// as no loopback address (exit 2, r124 observation 5).
func TestPprofListenOff(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"--pprof-listen", "off"}, nil},
		{"environment", nil, map[string]string{"SCEPTER_PPROF_LISTEN": "off"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errb syncBuffer
			e := env{stdout: &out, stderr: &errb, generateKey: testKeys.Generate, lookupEnv: func(k string) (string, bool) {
				v, ok := c.env[k]
				return v, ok
			}}
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, e, append([]string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--est-listen", "off",
					"--challenge", "test"}, c.args...))
			}()
			deadline := time.Now().Add(60 * time.Second)
			for !strings.Contains(out.String(), "Data directory:") {
				select {
				case err := <-done:
					t.Fatalf("serve ended: %v (exit %d)\n%s\n%s", err, exitCode(err), out.String(), errb.String())
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("serve did not start within 60 s:\n%s\n%s", out.String(), errb.String())
				}
			}
			if strings.Contains(out.String(), "pprof:") || strings.Contains(errb.String(), "profiling endpoints are on") {
				t.Errorf("profiling endpoints served with --pprof-listen off:\n%s\n%s", out.String(), errb.String())
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("serve: %v", err)
			}
		})
	}
}

// A --pprof-listen address that cannot be bound stops the start before it
// is recorded: the audit trail shows no server.started for it.
func TestPprofBusyPortRecordsNoStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	e, _, _ := testEnv(nil)
	err = run(context.Background(), e, []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "off",
		"--challenge", "test", "--pprof-listen", busy.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "pprof") {
		t.Fatalf("serve with a busy --pprof-listen: %v, want it refused", err)
	}
	e, out, errb := testEnv(nil)
	if err := run(context.Background(), e, []string{"audit", "list", "--json", "--type", "server.started", "--data-dir", dir}); err != nil {
		t.Fatalf("audit list: %v\n%s", err, errb)
	}
	if strings.Contains(out.String(), "server.started") {
		t.Errorf("a start that failed is in the audit trail:\n%s", out)
	}
}

// A web page the operator's browser loads can point a name of its own at
// 127.0.0.1 (DNS rebinding) and read the profiling endpoints as same-origin:
// they answer only requests addressed to a loopback host.
func TestPprofRefusesForeignHost(t *testing.T) {
	h := pprofMux()
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:6060", http.StatusOK},
		{"127.0.0.1", http.StatusOK},
		{"[::1]:6060", http.StatusOK},
		{"localhost:6060", http.StatusOK},
		{"LocalHost", http.StatusOK},
		{"rebind.attacker.example:6060", http.StatusMisdirectedRequest},
		{"rebind.attacker.example", http.StatusMisdirectedRequest},
		{"192.0.2.1:6060", http.StatusMisdirectedRequest},
		{"localhost.attacker.example", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	} {
		req := httptest.NewRequest(http.MethodGet, "/debug/pprof/cmdline", nil)
		req.Host = tc.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Host %q: %d, want %d", tc.host, rec.Code, tc.want)
		}
	}
}
