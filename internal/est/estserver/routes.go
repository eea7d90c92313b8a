package estserver

import (
	"net/http"

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

// unknownPath answers a path under the EST prefix that names no label and
// operation.
func (h *Handler) unknownPath(w http.ResponseWriter, r *http.Request) {
	path := pki.Clip(r.PathValue("path"), 64)
	h.fail(&call{w: w, r: r, op: path}, pki.Errorf(pki.ENotFound,
		"unknown EST path %q: EST is served at %sOPERATION and %sLABEL/OPERATION", path, est.PathPrefix, est.PathPrefix))
}
