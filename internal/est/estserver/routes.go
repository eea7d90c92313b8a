package estserver

import (
	"fmt"
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

// uncleanPath answers a path under the EST prefix that is not clean. The
// reply and the audit event quote the whole path as sent: without the
// prefix, /.well-known/est//cacerts would read "/cacerts", a path the
// client never asked for.
func (h *Handler) uncleanPath(w http.ResponseWriter, r *http.Request) {
	path := pki.Clip(r.URL.Path, len(est.PathPrefix)+64)
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

// HTTPSOnlyPrefixes implements server.HTTPSOnlyRouter: every EST path is
// refused on the plain HTTP listener by RefusePlainHTTP.
func (h *Handler) HTTPSOnlyPrefixes() []string {
	return []string{est.PathPrefix}
}

// RefusePlainHTTP answers an EST path on the plain HTTP listener (a client
// given the SCEP port's http:// URL) with 403 naming the HTTPS EST URL,
// httpsBase (RFC 7030 §3.3: EST runs over TLS only), and records the
// refusal as the handler's others. Credentials sent with it crossed the
// network in the clear, which the client is told: only it knows whether
// they were real.
func (h *Handler) RefusePlainHTTP(w http.ResponseWriter, r *http.Request, httpsBase string) {
	rest := strings.TrimPrefix(r.URL.Path, est.PathPrefix)
	c := &call{w: w, r: r, op: pki.Clip(rest, 64)}
	switch segs := strings.Split(rest, "/"); len(segs) {
	case 1:
	case 2:
		c.profile, c.op = pki.Clip(segs[0], 64), pki.Clip(segs[1], 64)
	default:
		c.noProfile = true
	}
	// A label is named in the URL to use only when it is one: a client's
	// typo (or its control characters) is not offered back as an address.
	unknown := ""
	if c.profile != "" {
		if _, ok := h.svc.Profile(c.profile); !ok {
			unknown, c.profile, c.noProfile = c.profile, "", true
		}
	}
	msg := "EST is served over HTTPS only (RFC 7030 section 3.3)"
	if httpsBase == "" {
		msg += ", and this server has no HTTPS listener (--est-listen is off)"
	} else {
		msg += ": use " + httpsBase + est.PathPrefix
		if c.profile != "" {
			msg += c.profile + "/"
		}
	}
	if unknown != "" {
		msg += fmt.Sprintf(" (there is no EST label %q)", unknown)
	}
	if len(r.Header.Values("Authorization")) > 0 {
		msg += "; the credentials of this request crossed the network in the clear: unless this was a test, change them " +
			"(an EST user: scepter est user remove, then add it with a new password; a one-time challenge: use it over HTTPS now, before anyone who saw it can)"
	}
	h.fail(c, pki.Errorf(pki.EForbidden, "%s", msg))
}
