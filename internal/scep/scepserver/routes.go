package scepserver

import (
	"net/http"
	"strings"

	"github.com/scepter/scepter/internal/pki"
)

// Routes returns where SCEP is served (stdlib ServeMux patterns): /scep,
// the path legacy devices hard-code, the forms clients build by appending
// to a configured URL, and one path per profile. The server mounts them
// (internal/server); the handler reads the profile from the path.
//
// NDES's path, /certsrv/mscep/mscep.dll, is served too (in any letter
// case, as IIS serves it: FoldedPaths), for
// Options.NDESProfile: devices and MDMs set up for NDES ask there unless
// told otherwise, and Windows' NDES client (Intune) below it, at
// mscep.dll/pkiclient.exe (Intune's troubleshooting guide shows it in IIS
// logs).
func (h *Handler) Routes() map[string]http.Handler {
	ndes := http.HandlerFunc(h.serveNDES)
	return map[string]http.Handler{
		"/scep":                         h,
		"/scep/{$}":                     h,
		"/scep/pkiclient.exe":           h,
		"/cgi-bin/pkiclient.exe":        h,
		"/scep/{profile}":               h,
		"/scep/{profile}/pkiclient.exe": h,
		ndesPath:                        ndes,
		ndesPath + "/pkiclient.exe":     ndes,
		// Any other path below /scep/ (a profile's with a trailing
		// slash, one level too deep) is none of SCEP's: said so, with
		// the paths that are, rather than the mux's bare 404.
		"/scep/": http.HandlerFunc(h.unknownPath),
	}
}

// MisspeltPrefixes are SCEP's case-sensitive paths: a request for one of
// them (or below it) spelled in another case (/SCEP, /Scep/pkiclient.exe)
// is told, with the paths served, rather than given the mux's bare 404.
// Implements server.MisspeltPathRouter; none of them is served so.
func (h *Handler) MisspeltPrefixes() map[string]http.Handler {
	refuse := http.HandlerFunc(h.unknownPath)
	return map[string]http.Handler{"/scep": refuse, "/cgi-bin/pkiclient.exe": refuse}
}

// servedPaths names where SCEP is served, for a 404's reason.
const servedPaths = "SCEP is served at /scep and /scep/PROFILE (a profile's name), each also with /pkiclient.exe after it, " +
	"at /cgi-bin/pkiclient.exe, and at " + ndesPath + " (in any case, NDES's); other paths are case-sensitive"

// unknownPath answers a request for a path that looks like SCEP's and is
// none: 404, saying which paths are.
func (h *Handler) unknownPath(w http.ResponseWriter, r *http.Request) {
	r.Pattern = "" // no route took it: metrics count it as unmatched
	msg := "404 not found: nothing is served at " + pki.Clip(r.URL.Path, 200)
	if name, ok := strings.CutPrefix(strings.TrimSuffix(r.URL.Path, "/"), "/scep/"); ok && strings.HasSuffix(r.URL.Path, "/") && !strings.Contains(name, "/") {
		if _, known := h.svc.Profile(name); known {
			msg += " (the profile " + name + " is served at /scep/" + name + ", without the trailing slash)"
		}
	}
	httpError(w, http.StatusNotFound, msg+"; "+servedPaths)
}

const ndesPath = "/certsrv/mscep/mscep.dll"

// FoldedPaths are NDES's paths, which devices and MDMs spell in any case
// (/CertSrv/mscep/mscep.dll, /CERTSRV/MSCEP/MSCEP.DLL): IIS ignores it.
// Implements server.FoldingRouter; every other path keeps its case.
func (h *Handler) FoldedPaths() []string {
	return []string{ndesPath, ndesPath + "/pkiclient.exe"}
}
