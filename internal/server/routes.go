// Package server is the one place where every HTTP route of `scepter serve`
// is mounted, on the plain HTTP listener and on the HTTPS listener. Each
// handler package declares its own patterns (a Routes method beside its
// handler); this package decides which listener serves which, and (Guard,
// limits.go) bounds what anyone on the network can make a listener do
// before any authentication: open connections, requests in flight,
// requests per client address.
package server

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Router is a handler package's set of routes: ServeMux patterns and the
// handler for each.
type Router interface {
	Routes() map[string]http.Handler
}

// Handlers are the parts of one server; a nil one is switched off.
type Handlers struct {
	// SCEP is served on both listeners: devices use plain HTTP (RFC 8894
	// protects the messages themselves), MDMs sometimes an https URL.
	SCEP Router
	// EST needs TLS (RFC 7030): HTTPS only.
	EST Router
	// NDES is the NDES-compatible password page. Its Basic credentials
	// and the challenges it hands out must not cross the network in
	// clear: it is served on HTTPS, and on plain HTTP only to loopback
	// clients (a local script or MDM connector).
	NDES Router
	// HTTPSPort is the HTTPS listener's port, which the plain listener's
	// refusal of the NDES page points to; empty when there is none.
	HTTPSPort string
}

// PlainMux is the mux of the plain HTTP listener.
func PlainMux(h Handlers) (*http.ServeMux, error) {
	var ndes Router
	if h.NDES != nil {
		ndes = loopbackOnly{h.NDES, h.HTTPSPort}
	}
	return mount(h.SCEP, ndes)
}

// TLSMux is the mux of the HTTPS listener.
func TLSMux(h Handlers) (*http.ServeMux, error) {
	return mount(h.SCEP, h.EST, h.NDES)
}

func mount(routers ...Router) (mux *http.ServeMux, err error) {
	mux = http.NewServeMux()
	defer func() {
		// ServeMux panics on a conflicting pattern: a programming error,
		// reported at start rather than crashing it.
		if r := recover(); r != nil {
			mux, err = nil, fmt.Errorf("server: %v", r)
		}
	}()
	for _, r := range routers {
		if r == nil {
			continue
		}
		for pattern, handler := range r.Routes() {
			mux.Handle(pattern, handler)
		}
	}
	return mux, nil
}

// loopbackOnly serves a router's routes to loopback clients only, and
// refuses everyone else with 403 and the https URL to use instead. The
// client is r.RemoteAddr: the TCP peer, or the forwarded client when
// Guard.Handler trusted a proxy (a reverse proxy on this host makes every
// request look local unless it is listed in Limits.TrustedProxies).
type loopbackOnly struct {
	Router
	httpsPort string
}

func (lo loopbackOnly) Routes() map[string]http.Handler {
	routes := map[string]http.Handler{}
	for pattern, h := range lo.Router.Routes() {
		routes[pattern] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isLoopback(r.RemoteAddr) {
				h.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, lo.refusal(r), http.StatusForbidden)
		})
	}
	return routes
}

func (lo loopbackOnly) refusal(r *http.Request) string {
	const msg = "403 forbidden: this page hands out credentials and is served over HTTPS only"
	if lo.httpsPort == "" {
		return msg + " (this server has no HTTPS listener: see --est-listen)"
	}
	// The host the client asked for, or the address it reached.
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host, _, _ = net.SplitHostPort(a.String())
		}
	}
	if host == "" {
		return msg + " (port " + lo.httpsPort + ")"
	}
	return msg + ": https://" + net.JoinHostPort(host, lo.httpsPort) + r.URL.EscapedPath()
}

// isLoopback reports whether a RemoteAddr (host:port, or a bare address)
// is 127.0.0.0/8 or ::1.
func isLoopback(remote string) bool {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
