package console

import (
	"net/http"

	"github.com/scepter/scepter/internal/pki"
)

// UncleanPaths implements server.UncleanPathRouter: a path under /ui/ with
// an empty, "." or ".." segment ("/ui//certificates",
// "/ui/static/../login") answers the console's 404 page, with its security
// headers, not ServeMux's bare redirect to the cleaned path, which carries
// none of them.
func (h *Handler) UncleanPaths() map[string]http.Handler {
	return map[string]http.Handler{Prefix: secured(http.HandlerFunc(h.uncleanPath))}
}

func (h *Handler) uncleanPath(w http.ResponseWriter, r *http.Request) {
	rq, _ := h.session(r)
	h.errorPage(w, rq, http.StatusNotFound, "there is no page "+pki.Clip(r.URL.Path, 200)+
		` (a path with an empty, "." or ".." segment is not served, nor redirected to its cleaned form)`)
}
