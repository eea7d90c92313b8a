package estserver

import (
	"net/http"
	"strings"

	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
)

// Routes returns where EST is served: /.well-known/est/OP for the default
// profile, /.well-known/est/LABEL/OP for the profile named LABEL. Any other
// path under the prefix (deeper, or with an empty segment) gets a reasoned
// 404 and a refusal in the audit trail, as an unknown label or operation
// does, not the mux's bare 404. The server mounts them on its HTTPS
// listener only.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		est.PathPrefix + "{op}":         h,
		est.PathPrefix + "{label}/{op}": h,
		est.PathPrefix + "{path...}":    http.HandlerFunc(h.unknownPath),
	}
}

// UncleanPaths implements server.UncleanPathRouter: a path under the
// prefix with an empty, "." or ".." segment ("//simpleenroll",
// "x/../../est/cacerts") is refused and recorded like any other unknown
// path, not redirected by the mux to its cleaned form.
func (h *Handler) UncleanPaths() map[string]http.Handler {
	return map[string]http.Handler{est.PathPrefix: http.HandlerFunc(h.uncleanPath)}
}

// uncleanPath answers a path under the EST prefix that is not clean.
func (h *Handler) uncleanPath(w http.ResponseWriter, r *http.Request) {
	path := pki.Clip(strings.TrimPrefix(r.URL.Path, est.PathPrefix), 64)
	h.fail(&call{w: w, r: r, op: path, noProfile: true}, pki.Errorf(pki.ENotFound,
		"unknown EST path %q: a path with an empty, \".\" or \"..\" segment is not served; EST is served at %sOPERATION and %sLABEL/OPERATION",
		path, est.PathPrefix, est.PathPrefix))
}

// unknownPath answers a path under the EST prefix that names no label and
// operation.
func (h *Handler) unknownPath(w http.ResponseWriter, r *http.Request) {
	path := pki.Clip(r.PathValue("path"), 64)
	h.fail(&call{w: w, r: r, op: path, noProfile: true}, pki.Errorf(pki.ENotFound,
		"unknown EST path %q: EST is served at %sOPERATION and %sLABEL/OPERATION", path, est.PathPrefix, est.PathPrefix))
}
