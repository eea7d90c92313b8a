package estserver

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
)

// Routes returns where EST is served: /.well-known/est/OP for the default
// profile, /.well-known/est/LABEL/OP for the profile named LABEL. Any other
// path under the prefix (deeper, or with an empty segment) gets a reasoned
// 404 and a refusal in the audit trail, as an unknown label or operation
// does, not the mux's bare 404; so does the prefix without its slash,
// which the mux would otherwise answer with a bare 307 to the prefix,
// itself a 404. The server mounts them on its HTTPS listener only.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		est.PathPrefix + "{op}":         h,
		est.PathPrefix + "{label}/{op}": h,
		est.PathPrefix + "{path...}":    http.HandlerFunc(h.unknownPath),
		prefixRoot:                      http.HandlerFunc(h.unknownPath),
	}
}

// prefixRoot is EST's prefix without its slash, "/.well-known/est": a
// path that names no operation.
var prefixRoot = strings.TrimSuffix(est.PathPrefix, "/")

// UncleanPaths implements server.UncleanPathRouter: a path under the
// prefix with an empty, "." or ".." segment ("//simpleenroll",
// "x/../../est/cacerts") is refused and recorded like any other unknown
// path, not redirected by the mux to its cleaned form.
func (h *Handler) UncleanPaths() map[string]http.Handler {
	return map[string]http.Handler{est.PathPrefix: http.HandlerFunc(h.unknownPath)}
}

// sentPath is the request's path as sent (escaped: "%2e%2e" stays so, and
// reads as what the client typed), clipped for a reply and the trail.
func sentPath(r *http.Request) string {
	return pki.Clip(r.URL.EscapedPath(), len(est.PathPrefix)+64)
}

// uncleanReason says why an escaped path is not served for its shape: the
// prefix without its slash, which names no operation; a
// segment that is empty (a trailing "/" ends in one), "." or ".." (or
// their escaped forms), or that holds an escaped "/", which the mux
// would read as one segment and a client or proxy as two. "" when none.
func uncleanReason(escaped string) string {
	if escaped == prefixRoot {
		return "it names no operation"
	}
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	slash, dots, trailing := false, false, false
	for i, seg := range segs {
		s, err := url.PathUnescape(seg)
		if err != nil {
			s = seg
		}
		switch {
		case seg == "" && i == len(segs)-1:
			trailing = true
		case s == "" || s == "." || s == "..":
			dots = true
		case strings.Contains(s, "/"):
			slash = true
		}
	}
	switch {
	case dots:
		return `a path with an empty, "." or ".." segment is not served`
	case slash:
		return `a path with an escaped "/" (%2F) in a segment is not served`
	case trailing:
		return `a path with an empty, "." or ".." segment is not served (a trailing "/" ends in an empty one)`
	}
	return ""
}

// unknownPath answers a path under the EST prefix that names no label and
// operation: deeper than those, not clean, or the prefix without its slash
// (uncleanReason). The reply
// and the audit event quote the whole path as sent: without the prefix,
// /.well-known/est//cacerts would read "/cacerts", a path the client
// never asked for.
func (h *Handler) unknownPath(w http.ResponseWriter, r *http.Request) {
	path, why := sentPath(r), uncleanReason(r.URL.EscapedPath())
	if why != "" {
		why += "; "
	}
	h.fail(&call{w: w, r: r, op: path, noProfile: true}, pki.Errorf(pki.ENotFound,
		"unknown EST path %q: %sEST is served at %sOPERATION and %sLABEL/OPERATION", path, why, est.PathPrefix, est.PathPrefix))
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
	// A path that names no label and operation (deeper, or not clean) is
	// quoted whole, as sent, with its reason: its segments are no label.
	badPath := ""
	why := uncleanReason(r.URL.EscapedPath())
	switch segs := strings.Split(rest, "/"); {
	case !strings.HasPrefix(r.URL.Path, est.PathPrefix): // /.well-known/est
		c.noProfile = true
	case why != "" || len(segs) > 2:
		c.op, c.noProfile = sentPath(r), true
		badPath = fmt.Sprintf("unknown EST path %q", c.op)
		if why != "" {
			badPath += ": " + why
		}
	case len(segs) == 2:
		c.profile, c.op = pki.Clip(segs[0], 64), pki.Clip(segs[1], 64)
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
		// The URL named is one that answers: the path with its operation,
		// never the bare prefix, which names none (a 404 there too).
		if knownOp(c.op) && badPath == "" && unknown == "" {
			msg += c.op
		} else {
			msg += "OPERATION (" + strings.Join(operations, ", ") + ")"
		}
	}
	if unknown != "" {
		msg += fmt.Sprintf(" (there is no EST label %q)", unknown)
	}
	if badPath != "" {
		msg += " (" + badPath + ")"
	}
	if len(r.Header.Values("Authorization")) > 0 {
		msg += "; the credentials of this request crossed the network in the clear: unless this was a test, change them " +
			"(an EST user: scepter est user remove, then add it with a new password; a one-time challenge: use it over HTTPS now, before anyone who saw it can)"
	}
	h.fail(c, pki.Errorf(pki.EForbidden, "%s", msg))
}

// operations are the EST operations a client may name after the prefix
// (and a label), in RFC 7030's order.
var operations = []string{est.OpCACerts, est.OpSimpleEnroll, est.OpSimpleReenroll, est.OpServerKeyGen, est.OpCSRAttrs}

// knownOp: op is one of operations.
func knownOp(op string) bool { return slices.Contains(operations, op) }
