package scepserver

import "net/http"

// Routes returns where SCEP is served (stdlib ServeMux patterns): /scep,
// the path legacy devices hard-code, the forms clients build by appending
// to a configured URL, and one path per profile. The server mounts them
// (internal/server); the handler reads the profile from the path.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"/scep":                         h,
		"/scep/{$}":                     h,
		"/scep/pkiclient.exe":           h,
		"/cgi-bin/pkiclient.exe":        h,
		"/scep/{profile}":               h,
		"/scep/{profile}/pkiclient.exe": h,
	}
}
