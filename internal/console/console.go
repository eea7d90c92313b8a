// Package console is the web console at /ui/: server-rendered pages
// (html/template, embedded) for people, on the same operations as the admin
// API (package ops), with sessions, CSRF protection and login lockout from
// package auth.
package console

import (
	"log/slog"
	"net/http"

	"github.com/scepter/scepter/internal/ops"
)

// Options tune the console.
type Options struct {
	// InsecureCookies drops the Secure attribute (tests over plain HTTP
	// only; the console is served on the HTTPS listener).
	InsecureCookies bool
}

// Handler serves /ui/.
type Handler struct {
	ops  *ops.Ops
	log  *slog.Logger
	opts Options
}

// New builds the console.
func New(o *ops.Ops, log *slog.Logger, opts Options) (*Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{ops: o, log: log, opts: opts}, nil
}

// Routes implements server.Router. The pages land in the next change;
// until then /ui/ says so.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"/ui/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "501 not implemented: the console lands in the next change; the API is at /api/v1/", http.StatusNotImplemented)
		}),
	}
}
