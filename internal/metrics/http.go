package metrics

import (
	"net/http"
	"strconv"
	"strings"
)

// Unmatched is the route label of a request no route took (a 404, a
// method no route allows, a CONNECT).
const Unmatched = "unmatched"

// Instrument wraps one listener's handler (the mux of server.PlainMux or
// server.TLSMux) and times every request it answers, labelled by the
// ServeMux pattern that took it: never the raw path, which holds serials,
// profile labels and OCSP requests in base64. It reads the pattern the
// mux records on the request (http.Request.Pattern), so it must wrap the
// mux itself, not a handler that passes the mux a copy of the request.
func (m *Metrics) Instrument(listener string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.clock.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		d := m.clock.Now().Sub(start)
		if d < 0 { // the wall clock was set back
			d = 0
		}
		m.requests.WithLabelValues(listener, route(r), method(r.Method), strconv.Itoa(rec.status())).Observe(d.Seconds())
	})
}

// route is the route label: the pattern without its method ("GET /crl/{file}"
// becomes "/crl/{file}"; the method has a label of its own).
func route(r *http.Request) string {
	// ServeMux puts the redirect's target in Pattern for CONNECT: client
	// input.
	if r.Pattern == "" || r.Method == http.MethodConnect {
		return Unmatched
	}
	p := r.Pattern
	if i := strings.IndexAny(p, " \t"); i >= 0 {
		p = strings.TrimLeft(p[i:], " \t")
	}
	return p
}

// method is the method label: the standard ones, anything else "other"
// (a client may send any token).
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// statusRecorder notes the status a handler answers with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 && code >= 200 { // 1xx are interim answers
		s.code = code
	}
	// http.MaxBytesReader tells the server to close the connection after
	// a body it cut short, through a method of the server's own writer
	// that no wrapper can pass on: the 413 that follows does it instead,
	// so the rest of an oversized body is not read.
	if code == http.StatusRequestEntityTooLarge && s.Header().Get("Connection") == "" {
		s.Header().Set("Connection", "close")
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush passes a flush on to the connection, for handlers that stream.
func (s *statusRecorder) Flush() {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// status is the status sent; 200 when the handler wrote nothing at all.
func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
