package estserver

import (
	"net/http"

	"github.com/scepter/scepter/internal/est"
)

// Routes returns where EST is served: /.well-known/est/OP for the default
// profile, /.well-known/est/LABEL/OP for the profile named LABEL. The
// server mounts them on its HTTPS listener only.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		est.PathPrefix + "{op}":         h,
		est.PathPrefix + "{label}/{op}": h,
	}
}
