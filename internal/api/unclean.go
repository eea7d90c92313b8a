package api

import (
	"net/http"

	"github.com/scepter/scepter/internal/httpjson"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/printable"
)

// UncleanPaths implements server.UncleanPathRouter: a path under /api/
// with an empty, "." or ".." segment ("/api/v1/./whoami",
// "/api/v1/certificates//pem") answers the API's JSON 404 with its reason,
// not ServeMux's bare redirect to the cleaned path, which carries none of
// the API's headers and which a client would follow with its token (a
// POST too).
func (h *Handler) UncleanPaths() map[string]http.Handler {
	return map[string]http.Handler{"/api/": strictTransport(http.HandlerFunc(uncleanPath))}
}

func uncleanPath(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	httpjson.WriteError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+printable.String(pki.Clip(r.URL.Path, 200))+
		` (a path with an empty, "." or ".." segment is not served, nor redirected to its cleaned form)`, nil)
}
