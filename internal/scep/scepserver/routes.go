package scepserver

import "net/http"

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
	}
}

const ndesPath = "/certsrv/mscep/mscep.dll"

// FoldedPaths are NDES's paths, which devices and MDMs spell in any case
// (/CertSrv/mscep/mscep.dll, /CERTSRV/MSCEP/MSCEP.DLL): IIS ignores it.
// Implements server.FoldingRouter; every other path keeps its case.
func (h *Handler) FoldedPaths() []string {
	return []string{ndesPath, ndesPath + "/pkiclient.exe"}
}
