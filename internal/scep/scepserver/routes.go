package scepserver

import "net/http"

// Routes returns where SCEP is served (stdlib ServeMux patterns): /scep,
// the path legacy devices hard-code, the forms clients build by appending
// to a configured URL, and one path per profile. The server mounts them
// (internal/server); the handler reads the profile from the path.
//
// NDES's path, /certsrv/mscep/mscep.dll, is served too (in both spellings
// found in NDES URLs: IIS matches paths without regard to case), for
// Options.NDESProfile: devices and MDMs set up for NDES ask there unless
// told otherwise, and Windows' NDES client (Intune) below it, at
// mscep.dll/pkiclient.exe (Intune's troubleshooting guide shows it in IIS
// logs).
func (h *Handler) Routes() map[string]http.Handler {
	ndes := http.HandlerFunc(h.serveNDES)
	return map[string]http.Handler{
		"/scep":                                  h,
		"/scep/{$}":                              h,
		"/scep/pkiclient.exe":                    h,
		"/cgi-bin/pkiclient.exe":                 h,
		"/scep/{profile}":                        h,
		"/scep/{profile}/pkiclient.exe":          h,
		"/certsrv/mscep/mscep.dll":               ndes,
		"/certsrv/mscep/mscep.dll/pkiclient.exe": ndes,
		"/CertSrv/mscep/mscep.dll":               ndes,
		"/CertSrv/mscep/mscep.dll/pkiclient.exe": ndes,
	}
}
