package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// With --est-listen off there is no console and no API: the banner says
// so, and the plain listener's /ui/ and /api/ answer 404 saying why rather
// than a bare 404.
func TestConsoleOffWithoutHTTPS(t *testing.T) {
	s := serveInProcess(t, nil, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test")
	if s.ended {
		t.Fatalf("serve ended: %v\n%s", s.err, s.errb.String())
	}
	out := s.out
	if !strings.Contains(out.String(), "Console and API:     off (they are served on the HTTPS listener; --est-listen is off)") {
		t.Errorf("the banner does not say the console is off:\n%s", out.String())
	}
	m := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no address in the banner:\n%s", out.String())
	}
	for _, path := range []string{"/ui/", "/ui", "/api/v1/certificates"} {
		resp, err := http.Get("http://" + m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "--est-listen is off") {
			t.Errorf("GET %s: %d %q, want 404 saying why", path, resp.StatusCode, body)
		}
	}
}

// The plain listener's redirect to the console goes to a name of the
// HTTPS certificate, not to the Host the request names.
func TestConsoleRedirectIgnoresHost(t *testing.T) {
	s := startServe(t, "")
	base := strings.TrimSuffix(s.scepURL, "/scep")
	port := s.estURL[strings.LastIndex(s.estURL, ":")+1:]
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for host, want := range map[string]string{
		"evil.example":         "https://127.0.0.1:" + port + "/ui/",
		"evil.example:" + port: "https://127.0.0.1:" + port + "/ui/",
		"127.0.0.1":            "https://127.0.0.1:" + port + "/ui/",
	} {
		req, err := http.NewRequest(http.MethodGet, base+"/ui/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Errorf("Host %s: %d, Location %q; want 301 to %s", host, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

// Removing the last console user (the API and the CLI allow it) leaves
// the next start serving the CA, SCEP and EST: the banner says how to add
// a user, and the old password file is left alone.
func TestServeStartsWithoutConsoleUser(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test"}
	if _, errOut, err := serveOnceWith(t, nil, args...); err != nil {
		t.Fatalf("first start: %v\n%s", err, errOut)
	}
	passwordFile := filepath.Join(dir, adminPasswordFile)
	before, err := os.ReadFile(passwordFile)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("admin", "user", "remove", "admin", "--data-dir", dir); err != nil {
		t.Fatalf("admin user remove: %v\n%s", err, out)
	}
	out, errOut, err := serveOnceWith(t, nil, args...)
	if err != nil {
		t.Fatalf("a start without a console user: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "Console login:       no console user: add one with 'scepter admin user add") {
		t.Errorf("the banner does not say how to add a console user:\n%s", out)
	}
	if after, err := os.ReadFile(passwordFile); err != nil || string(after) != string(before) {
		t.Errorf("the password file changed: %q, %v", after, err)
	}
	if users, err := runCLI("admin", "user", "list", "--data-dir", dir); err != nil || strings.Contains(users, "admin ") {
		t.Errorf("a user was made: %v\n%s", err, users)
	}
}

// The HTTPS certificate's default names take in the host --est-listen
// names, unless it is a wildcard or named already; --est-server-name's
// are taken as given.
func TestServerNamesTakeTheListenHost(t *testing.T) {
	for _, tt := range []struct {
		listen string
		given  []string
		want   string
	}{
		{"127.0.0.1:8443", nil, "localhost,127.0.0.1"},
		{"[::1]:8443", nil, "localhost,127.0.0.1,::1"},
		{"192.0.2.7:8443", nil, "localhost,127.0.0.1,192.0.2.7"},
		{"est.example:8443", nil, "localhost,127.0.0.1,est.example"},
		{":8443", nil, "localhost,127.0.0.1"},
		{"[::]:8443", nil, "localhost,127.0.0.1"},
		{"0.0.0.0:8443", nil, "localhost,127.0.0.1"},
		{"[::1]:8443", []string{"est.example"}, "est.example"},
	} {
		_, f := newServeFlags(env{})
		f.estListen = tt.listen
		for _, n := range tt.given {
			f.estServerNames.Set(n)
		}
		if got := strings.Join(f.serverNames(), ","); got != tt.want {
			t.Errorf("--est-listen %s, --est-server-name %v: names %s, want %s", tt.listen, tt.given, got, tt.want)
		}
	}
}
