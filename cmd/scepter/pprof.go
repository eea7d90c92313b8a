package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"time"
)

// pprofFlags is --pprof-listen: Go's profiling endpoints (net/http/pprof)
// on a listener and mux of their own, for finding where the CPU time of an
// enrollment goes (go tool pprof http://127.0.0.1:6060/debug/pprof/profile).
// Off by default. Only a loopback address is accepted: the endpoints are
// unauthenticated, and a profile tells a lot about a running CA. Like every
// flag it can be given as SCEPTER_PPROF_LISTEN or pprof_listen in the
// config file.
type pprofFlags struct {
	listen string
}

func (p *pprofFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.listen, "pprof-listen", "", "serve Go's profiling endpoints (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060; 'off' (or empty, the default) to disable")
}

// off: no profiling endpoints. "off" is taken as --est-listen takes it,
// and as README's defaults column shows this flag's default.
func (p *pprofFlags) off() bool { return p.listen == "" || p.listen == "off" }

// check refuses an address that is not loopback (127.0.0.0/8, ::1 or
// localhost, with a port), as a usage error.
func (p *pprofFlags) check() error {
	if p.off() {
		return nil
	}
	if err := checkLoopbackAddr(p.listen); err != nil {
		return usageError{fmt.Sprintf("--pprof-listen %q: %v", p.listen, err)}
	}
	return nil
}

func checkLoopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want HOST:PORT on loopback, e.g. 127.0.0.1:6060")
	}
	if port == "" {
		return errors.New("no port; want HOST:PORT on loopback, e.g. 127.0.0.1:6060")
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || !ip.Unmap().IsLoopback() {
		return errors.New("not a loopback address: the profiling endpoints are unauthenticated; use 127.0.0.1, ::1 or localhost (and an SSH tunnel from elsewhere)")
	}
	return nil
}

// start opens the profiling listener when --pprof-listen is set and serves
// the pprof handlers there, never on the public listeners. It returns the
// banner lines naming it and a stop function that closes it (profiles in
// progress end with it). A bound address that is not loopback after all
// (a localhost that resolves elsewhere) is refused.
func (p *pprofFlags) start(log *slog.Logger) (lines []string, stop func(), err error) {
	if p.off() {
		return nil, func() {}, nil
	}
	ln, err := net.Listen("tcp", p.listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen (pprof): %w", err)
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err != nil || !ap.Addr().Unmap().IsLoopback() {
		ln.Close()
		return nil, nil, usageError{fmt.Sprintf("--pprof-listen %q: bound to %s, which is not loopback", p.listen, ln.Addr())}
	}
	srv := &http.Server{
		Handler:           pprofMux(),
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: a CPU profile or trace streams for as long as
		// its ?seconds= asks.
		IdleTimeout: 120 * time.Second,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof listener stopped", "err", err)
		}
	}()
	url := "http://" + ln.Addr().String() + "/debug/pprof/"
	log.Warn("profiling endpoints are on (--pprof-listen): unauthenticated, for any local user", "url", url)
	return []string{"pprof:               " + url + " (loopback only)"}, func() { srv.Close() }, nil
}

// pprofMux holds only the profiling handlers: importing net/http/pprof also
// registers them on http.DefaultServeMux, which no listener of ours serves.
// It answers only requests addressed to a loopback host: a web page in the
// operator's browser can point a name of its own at 127.0.0.1 (DNS
// rebinding) and would otherwise read the profiles as same-origin.
func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !pprofHostAllowed(r.Host) {
			http.Error(w, "the profiling endpoints answer only requests to 127.0.0.1, ::1 or localhost", http.StatusMisdirectedRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// pprofHostAllowed reports whether a request's Host (with or without a
// port) names a loopback address or localhost.
func pprofHostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}
