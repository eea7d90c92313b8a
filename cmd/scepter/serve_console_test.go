package main

import (
	"io"
	"net/http"
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
