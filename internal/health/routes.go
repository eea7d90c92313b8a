package health

import (
	"io"
	"net/http"
	"strconv"
)

// The probes' paths: the process is up, and it can issue.
const (
	LivePath  = "/healthz"
	ReadyPath = "/readyz"
)

// Paths are the probes' paths, for limits that must never queue them
// behind other requests (server.Limits.MonitoringPaths).
func Paths() []string { return []string{LivePath, ReadyPath} }

// Routes are /healthz and /readyz (server.Router). Both are
// unauthenticated and answer plain text, never with a secret or an error
// message.
func (c *Checker) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET " + LivePath:  http.HandlerFunc(c.serveHealthz),
		"GET " + ReadyPath: http.HandlerFunc(c.serveReadyz),
	}
}

// serveHealthz: the process is up and serves HTTP.
func (c *Checker) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, "ok\n")
}

// serveReadyz: 200 when every check passed, 503 naming those that failed.
func (c *Checker) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	st := c.Status()
	code := http.StatusOK
	if !st.Ready() {
		code = http.StatusServiceUnavailable
	}
	reply(w, code, st.text())
}

func reply(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	io.WriteString(w, body)
}
