package server_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/server"
)

// The NDES page hands out credentials: on the HTTPS listener it is served
// to anyone (who then needs its password), on plain HTTP only to loopback
// clients; everyone else gets 403 naming the https URL.
func TestNDESPageOnPlainHTTPOnlyForLoopback(t *testing.T) {
	ndes := routes{"/certsrv/mscep_admin/{$}": named("ndes")}
	withTLS := server.Handlers{SCEP: routes{"/scep": named("scep")}, NDES: ndes, HTTPSPort: "8443"}
	plain, err := server.PlainMux(withTLS)
	if err != nil {
		t.Fatal(err)
	}
	secure, err := server.TLSMux(withTLS)
	if err != nil {
		t.Fatal(err)
	}
	noTLS, err := server.PlainMux(server.Handlers{NDES: ndes})
	if err != nil {
		t.Fatal(err)
	}
	// r126 D1: the HTTPS listener on ::1 alone, the plain one elsewhere.
	onV6, err := server.PlainMux(server.Handlers{NDES: ndes, HTTPSPort: "8443", HTTPSHost: "::1", HTTPSNames: []string{"::1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mux    http.Handler
		remote string
		host   string
		want   int
		body   string // a substring of the answer
	}{
		{"plain, 127.0.0.1", plain, "127.0.0.1:5000", "ca.example:8080", 200, "ndes"},
		{"plain, 127.0.0.2", plain, "127.0.0.2:5000", "ca.example:8080", 200, "ndes"},
		{"plain, ::1", plain, "[::1]:5000", "ca.example:8080", 200, "ndes"},
		{"plain, v4-mapped loopback", plain, "[::ffff:127.0.0.1]:5000", "ca.example", 200, "ndes"},
		{"plain, LAN client", plain, "192.168.1.20:5000", "ca.example:8080", 403, "https://ca.example:8443/certsrv/mscep_admin/"},
		{"plain, IPv6 client", plain, "[2001:db8::5]:5000", "[2001:db8::1]:8080", 403, "https://[2001:db8::1]:8443/certsrv/mscep_admin/"},
		{"plain, host without port", plain, "10.0.0.9:5000", "ca.example", 403, "https://ca.example:8443/"},
		{"plain, no HTTPS listener", noTLS, "10.0.0.9:5000", "ca.example", 403, "--est-listen"},
		{"plain, HTTPS listener on ::1 only", onV6, "192.168.1.20:5000", "127.0.0.1:8080", 403, "https://[::1]:8443/certsrv/mscep_admin/"},
		{"plain, SCEP unaffected", plain, "192.168.1.20:5000", "ca.example", 200, "scep"},
		{"HTTPS, LAN client", secure, "192.168.1.20:5000", "ca.example:8443", 200, "ndes"},
		// Its password sent over plain HTTP is said to have crossed in
		// clear, as the API and EST say of theirs (r105).
		{"plain, LAN client with credentials", plain, "192.168.1.20:5000", "ca.example:8080", 403,
			"https://ca.example:8443/certsrv/mscep_admin/; the credentials this request carried crossed the network in clear"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/certsrv/mscep_admin/"
			if strings.Contains(tc.name, "SCEP") {
				path = "/scep"
			}
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.RemoteAddr, req.Host = tc.remote, tc.host
			if strings.Contains(tc.name, "credentials") {
				req.SetBasicAuth("mdm", "secret")
			}
			rec := httptest.NewRecorder()
			tc.mux.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("%d %q, want %d with %q", rec.Code, rec.Body.String(), tc.want, tc.body)
			}
		})
	}
}

// prefixRoutes is a router with a raw-prefix route, like the OCSP responder.
type prefixRoutes struct{ routes }

func (p prefixRoutes) RawPrefixes() map[string]http.Handler {
	return map[string]http.Handler{"/ocsp/": named("raw")}
}

// A raw prefix sees the path as sent: "//" in an OCSP GET's base64 is not
// cleaned into a redirect by ServeMux.
func TestRawPrefixSeesUncleanedPaths(t *testing.T) {
	h, err := server.PlainMux(server.Handlers{SCEP: routes{"/scep": named("scep")}, OCSP: prefixRoutes{routes{"POST /ocsp": named("post")}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodGet, "/ocsp/MEIwQDA+MDwwOjAJBgUrDgMCGgUABBT//abc=", "raw"},
		{http.MethodGet, "/ocsp/a//b", "raw"},
		{http.MethodPost, "/ocsp", "post"},
		{http.MethodGet, "/scep", "scep"},
	} {
		req := httptest.NewRequest(tc.method, "http://x"+tc.path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %q, want 200 %q", tc.method, tc.path, rec.Code, rec.Body.String(), tc.want)
		}
	}
}

// uncleanRoutes is a router that answers unclean paths under its prefix,
// like the EST handler.
type uncleanRoutes struct{ routes }

func (u uncleanRoutes) UncleanPaths() map[string]http.Handler {
	return map[string]http.Handler{"/.well-known/est/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("unclean " + r.URL.Path + " " + r.Pattern))
	})}
}

// An unclean path under an UncleanPathRouter's prefix reaches its handler
// as sent instead of the mux's redirect to the cleaned path; clean paths
// under it, and unclean ones under a router that does not answer them
// (these stubs; the real console and API do:
// TestConsoleAndAPIRefuseUncleanPaths), are the mux's as before.
func TestUncleanPathsUnderPrefix(t *testing.T) {
	h, err := server.TLSMux(server.Handlers{
		EST:     uncleanRoutes{routes{"/.well-known/est/{op}": named("est")}},
		Console: routes{"/ui/": named("console")}, API: routes{"/api/": named("api")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		want     int
		body     string // a substring of the answer
		location string
	}{
		{"/.well-known/est//simpleenroll", 200, "unclean /.well-known/est//simpleenroll /.well-known/est/", ""},
		{"/.well-known/est/x/../../est/cacerts", 200, "unclean /.well-known/est/x/../../est/cacerts", ""},
		{"/.well-known/est/./cacerts", 200, "unclean", ""},
		{"/.well-known/est/../scep", 200, "unclean", ""},
		{"/.well-known/est/cacerts", 200, "est", ""},
		{"/.well-known/est/%2e%2e", 200, "est", ""}, // clean as sent: the mux's, and the handler's
		{"/ui//x", 307, "", "/ui/x"},
		{"/api/../ui/", 307, "", "/ui/"},
		{"/api/./v1", 307, "", "/api/v1"},
		{"/ui/x", 200, "console", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "https://x"+tc.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.body) || rec.Header().Get("Location") != tc.location {
				t.Errorf("%d %q, Location %q; want %d with %q, Location %q", rec.Code, rec.Body.String(), rec.Header().Get("Location"),
					tc.want, tc.body, tc.location)
			}
		})
	}
}

// The plain listener sends the console and the API to the HTTPS listener
// by a name of its certificate, whatever Host the request names (a Host
// of the client's choosing would make it an open redirect); without an HTTPS
// listener they do not exist, and the 404 says why, as it does for EST.
func TestConsoleOnPlainHTTP(t *testing.T) {
	console := routes{"/ui/": named("console"), "/api/": named("api")}
	withTLS, err := server.PlainMux(server.Handlers{Console: console, API: console, HTTPSPort: "8443", HTTPSNames: []string{"ca.example", "2001:db8::2"}})
	if err != nil {
		t.Fatal(err)
	}
	noName, err := server.PlainMux(server.Handlers{Console: console, API: console, HTTPSPort: "8443"})
	if err != nil {
		t.Fatal(err)
	}
	noTLS, err := server.PlainMux(server.Handlers{SCEP: routes{"/scep": named("scep")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, host string
		mux                      http.Handler
		local                    net.Addr
		want                     int
		location, body           string
	}{
		{"redirect", "GET", "/ui/?a=b", "ca.example:8080", withTLS, nil, 301, "https://ca.example:8443/ui/?a=b", ""},
		{"another name of the certificate", "GET", "/ui/", "[2001:DB8::2]:8080", withTLS, nil, 301, "https://[2001:db8::2]:8443/ui/", ""},
		{"hostile Host", "GET", "/ui/", "evil.example", withTLS, nil, 301, "https://ca.example:8443/ui/", ""},
		{"hostile Host, API", "GET", "/api/v1/certificates", "evil.example:80", withTLS, nil, 301, "https://ca.example:8443/api/v1/certificates", ""},
		{"hostile Host, POST", "POST", "/api/v1/challenges", "evil.example", withTLS, nil, 403, "", "https://ca.example:8443/api/v1/challenges"},
		{"no name: the address reached", "GET", "/ui/", "evil.example", noName,
			&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 8080}, 301, "https://[2001:db8::1]:8443/ui/", ""},
		{"no HTTPS listener, /ui/", "GET", "/ui/", "ca.example", noTLS, nil, 404, "", "--est-listen is off"},
		{"no HTTPS listener, /api/", "GET", "/api/v1/certificates", "ca.example", noTLS, nil, 404, "", "--est-listen is off"},
		// EST too says why, not the mux's bare "404 page not found".
		{"no HTTPS listener, EST", "GET", "/.well-known/est/cacerts", "ca.example", noTLS, nil, 404, "", "EST is served over HTTPS only (RFC 7030 section 3.3), and this server has no HTTPS listener (--est-listen is off)"},
		{"no HTTPS listener, EST label", "POST", "/.well-known/est/a/simpleenroll", "ca.example", noTLS, nil, 404, "", "--est-listen is off"},
		{"no HTTPS listener, unclean EST path", "GET", "/.well-known/est/a//cacerts", "ca.example", noTLS, nil, 404, "", "--est-listen is off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			req.Host = tc.host
			if tc.local != nil {
				req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, tc.local))
			}
			rec := httptest.NewRecorder()
			tc.mux.ServeHTTP(rec, req)
			if rec.Code != tc.want || rec.Header().Get("Location") != tc.location || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("%d, Location %q, %q; want %d, %q, with %q", rec.Code, rec.Header().Get("Location"), rec.Body.String(),
					tc.want, tc.location, tc.body)
			}
		})
	}
}

// A path that holds EST's prefix after other segments, as strongSwan's pki
// asks when its --url names a label, is told where EST's paths are; other
// unknown paths keep the plain 404, and EST's own paths are EST's.
func TestMisplacedESTPathIsExplained(t *testing.T) {
	h, err := server.TLSMux(server.Handlers{EST: routes{"/.well-known/est/": named("est")}, SCEP: routes{"/scep": named("scep")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want int
		body string // a substring of the answer
	}{
		{"/approval/.well-known/est/simpleenroll", 404, "EST's paths begin with /.well-known/est/"},
		{"/a/b/.well-known/est/cacerts", 404, "reaches the default profile only"},
		{"/x/.well-known/est", 404, "LABEL/OPERATION"},
		{"/nothing/here", 404, "404 page not found"},
		// r109 D1: above EST's prefix, where EST is; never a redirect.
		{"/.well-known", 404, "nothing is served at /.well-known; EST is, at /.well-known/est/OPERATION"},
		{"/.well-known/", 404, "nothing is served at /.well-known/; EST is, at /.well-known/est/OPERATION"},
		{"/.well-known/est/simpleenroll", 200, "est"},
		{"/scep", 200, "scep"},
	} {
		req := httptest.NewRequest(http.MethodPost, "https://x"+tc.path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s: %d %q, want %d with %q", tc.path, rec.Code, rec.Body.String(), tc.want, tc.body)
		}
	}
}
