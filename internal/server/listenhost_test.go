package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
)

// hostsFile resolves as this test's hosts file: localhost is 127.0.0.1
// only (as on many machines), ca.example is ::1, v4.example 127.0.0.1.
func hostsFile(_ context.Context, name string) ([]netip.Addr, error) {
	switch name {
	case "localhost", "v4.example":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	case "ca.example":
		return []netip.Addr{netip.MustParseAddr("::1")}, nil
	}
	return nil, errors.New("no such host")
}

// r126 D1: the plain listener's refusal of EST and its redirect of the
// console name the HTTPS listener where it listens: a name of its
// certificate that reaches it, else its address, never one (127.0.0.1,
// in the default certificate) where only the plain listener is. Each URL
// named is then fetched over TLS.
func TestPlainListenerNamesWhereHTTPSListens(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	def := pki.DefaultProfile()
	p := fixture.New(t, fixture.Options{Config: enroll.Config{Profiles: map[string]pki.Profile{def.Name: def}, DefaultProfile: def.Name}})
	// start serves EST and a console on an HTTPS listener at httpsAddr and
	// the plain listener at plainAddr, as serve mounts them.
	start := func(plainAddr, httpsAddr string, names []string) (plain, https *httptest.Server) {
		t.Helper()
		plain, https = httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil)
		for _, s := range []struct {
			srv  *httptest.Server
			addr string
		}{{plain, plainAddr}, {https, httpsAddr}} {
			ln, err := net.Listen("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			s.srv.Listener.Close()
			s.srv.Listener = ln
		}
		host := server.ListenerHost(https.Listener.Addr())
		_, port, _ := net.SplitHostPort(https.Listener.Addr().String())
		h := server.Handlers{EST: estserver.New(p.Service, p.Log, estserver.Options{}), Console: routes{"/ui/": named("console")},
			HTTPSPort: port, HTTPSHost: host, HTTPSNames: server.NamesReaching(context.Background(), names, host, hostsFile)}
		var err error
		if plain.Config.Handler, err = server.PlainMux(h); err != nil {
			t.Fatal(err)
		}
		if https.Config.Handler, err = server.TLSMux(h); err != nil {
			t.Fatal(err)
		}
		plain.Start()
		https.StartTLS()
		t.Cleanup(plain.Close)
		t.Cleanup(https.Close)
		return plain, https
	}
	defaultNames := []string{"localhost", "127.0.0.1", "::1"}
	for _, tc := range []struct {
		name               string
		plainAddr, tlsAddr string
		names              []string
		host               string // the request's Host; "" is the plain listener's address
		want               string // the HTTPS base named; PORT is the HTTPS listener's
	}{
		{"HTTPS on ::1, Host 127.0.0.1", "127.0.0.1:0", "[::1]:0", defaultNames, "", "https://[::1]:PORT"},
		{"HTTPS on ::1, Host localhost (127.0.0.1 only)", "127.0.0.1:0", "[::1]:0", defaultNames, "localhost", "https://[::1]:PORT"},
		{"HTTPS on ::1, Host of a name resolving there", "127.0.0.1:0", "[::1]:0", []string{"localhost", "ca.example", "::1"}, "ca.example", "https://ca.example:PORT"},
		{"HTTPS on ::1, another Host: the first name that reaches it", "127.0.0.1:0", "[::1]:0", []string{"127.0.0.1", "ca.example"}, "evil.example", "https://ca.example:PORT"},
		{"HTTPS on ::1, no name reaches it: its address", "127.0.0.1:0", "[::1]:0", []string{"localhost", "127.0.0.1"}, "", "https://[::1]:PORT"},
		{"HTTPS on 127.0.0.1, plain on ::1", "[::1]:0", "127.0.0.1:0", defaultNames, "", "https://localhost:PORT"},
		{"HTTPS on 127.0.0.1, Host 127.0.0.1", "[::1]:0", "127.0.0.1:0", defaultNames, "127.0.0.1", "https://127.0.0.1:PORT"},
		{"both on 127.0.0.1, Host localhost", "127.0.0.1:0", "127.0.0.1:0", defaultNames, "localhost", "https://localhost:PORT"},
		{"HTTPS on every address, Host 127.0.0.1", "127.0.0.1:0", "[::]:0", defaultNames, "", "https://127.0.0.1:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, https := start(tc.plainAddr, tc.tlsAddr, tc.names)
			_, port, _ := net.SplitHostPort(https.Listener.Addr().String())
			want := strings.ReplaceAll(tc.want, "PORT", port)
			client := https.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			// The test's names resolve as hostsFile says, and reach
			// httptest's certificate, which holds none of them.
			client.Transport.(*http.Transport).TLSClientConfig.ServerName = "example.com"
			client.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				h, port, _ := net.SplitHostPort(addr)
				if ips, err := hostsFile(ctx, h); err == nil {
					addr = net.JoinHostPort(ips[0].String(), port)
				}
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
			send := func(method, path string) (*http.Response, string) {
				t.Helper()
				req, err := http.NewRequest(method, plain.URL+path, strings.NewReader("x"))
				if err != nil {
					t.Fatal(err)
				}
				if tc.host != "" {
					_, plainPort, _ := net.SplitHostPort(plain.Listener.Addr().String())
					req.Host = net.JoinHostPort(tc.host, plainPort)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}
			// Each URL named answers over TLS: something listens there.
			reachable := func(u, wantBody string) {
				t.Helper()
				resp, err := client.Get(u)
				if err != nil {
					t.Errorf("%s: %v", u, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), wantBody) {
					t.Errorf("%s: %d %q", u, resp.StatusCode, b)
				}
			}
			resp, body := send(http.MethodPost, "/.well-known/est/simpleenroll")
			if wantURL := want + "/.well-known/est/simpleenroll"; resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "use "+wantURL) {
				t.Errorf("EST on the plain listener: %d %q, want 403 naming %s", resp.StatusCode, body, wantURL)
			}
			reachable(want+"/.well-known/est/cacerts", "")
			resp, _ = send(http.MethodGet, "/ui/")
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != want+"/ui/" {
				t.Errorf("/ui/ on the plain listener: %d, Location %q; want 301 to %s/ui/", resp.StatusCode, loc, want)
			}
			reachable(want+"/ui/", "console")
		})
	}
}

// NamesReaching keeps a certificate's names that reach the listener's
// address; every name for a listener on every address.
func TestNamesReaching(t *testing.T) {
	names := []string{"localhost", "127.0.0.1", "::1", "ca.example", "v4.example", "nowhere.example", "::ffff:127.0.0.1"}
	for _, tc := range []struct {
		host string
		want []string
	}{
		{"", names},
		{"::1", []string{"::1", "ca.example"}},
		{"127.0.0.1", []string{"localhost", "127.0.0.1", "v4.example", "::ffff:127.0.0.1"}},
		{"192.0.2.1", nil},
	} {
		if got := server.NamesReaching(context.Background(), names, tc.host, hostsFile); !slices.Equal(got, tc.want) {
			t.Errorf("listener on %q: %q, want %q", tc.host, got, tc.want)
		}
	}
	for addr, want := range map[string]string{"127.0.0.1:1": "127.0.0.1", "[::1]:1": "::1", "0.0.0.0:1": "", "[::]:1": "", "[::ffff:10.0.0.1]:1": "10.0.0.1"} {
		if got := server.ListenerHost(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))); got != want {
			t.Errorf("ListenerHost(%s) = %q, want %q", addr, got, want)
		}
	}
}
