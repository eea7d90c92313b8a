// Package server is the one place where every HTTP route of `scepter serve`
// is mounted, on the plain HTTP listener and on the HTTPS listener. Each
// handler package declares its own patterns (a Routes method beside its
// handler); this package decides which listener serves which.
package server

import (
	"fmt"
	"net/http"
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
	// NDES is the NDES-compatible password page.
	NDES Router
}

// PlainMux is the mux of the plain HTTP listener.
func PlainMux(h Handlers) (*http.ServeMux, error) {
	return mount(h.SCEP, h.NDES)
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
