package console

import "net/http"

// Routes implements server.Router: every page and action of the console,
// each behind the security headers. Pages are GETs for any logged-in role
// (ops checks the role each needs); actions are POSTs with the session's
// CSRF token, which ops refuses to roles that may not do them.
func (h *Handler) Routes() map[string]http.Handler {
	routes := map[string]http.Handler{
		// Anything else under /ui/: a 404 page (405 for other methods).
		"/ui/": http.HandlerFunc(h.notFound),

		"GET /ui/static/{file}": http.HandlerFunc(h.serveStatic),
		"GET /ui/login":         http.HandlerFunc(h.loginForm),
		"POST /ui/login":        http.HandlerFunc(h.login),
		"POST /ui/logout":       h.logoutRoute(),

		// Pages: every role (auditor and up), each with the query
		// parameters it takes (any other is refused with 400): those of
		// its forms and of the links the console writes to it.
		"GET /ui/{$}": h.page(h.dashboard, "days"),
		"GET /ui/certificates": h.page(h.inventory, "q", "status", "profile", "protocol", "issuer", "expiring",
			"issued_from", "issued_to", "renewed", "sort", "limit", "cursor"),
		"GET /ui/certificates/{serial}":     h.page(h.certificate, "issuer"),
		"GET /ui/certificates/{serial}/pem": h.page(h.certificatePEM, "issuer", "chain"),
		"GET /ui/requests":                  h.page(h.requests, "status", "profile", "cursor"),
		"GET /ui/challenges":                h.page(h.challenges, "cursor"),
		"GET /ui/audit":                     h.page(h.audit, auditParams...),
		"GET /ui/audit/verify":              h.page(h.auditVerify, auditParams...),
		"GET /ui/cas":                       h.page(h.cas),

		// Actions: operator and up.
		"POST /ui/certificates/{serial}/revoke": h.action(h.revoke),
		"POST /ui/certificates/{serial}/unhold": h.action(h.unhold),
		"POST /ui/requests/{id}/approve":        h.action(h.approve),
		"POST /ui/requests/{id}/reject":         h.action(h.reject),
		"POST /ui/challenges":                   h.action(h.newChallenge),
		"POST /ui/challenges/{id}/delete":       h.action(h.deleteChallenge),
	}
	for pattern, handler := range routes {
		routes[pattern] = secured(handler)
	}
	return routes
}

// auditParams are the audit page's query parameters, which its
// verification repeats.
var auditParams = []string{"type", "serial", "since", "until", "limit", "before"}

// secured sends the security headers before the handler answers, and
// keeps every answer out of caches (the static files say otherwise).
func secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w)
		if r.TLS != nil {
			// A year, and only over HTTPS (RFC 6797 section 7.2): a browser
			// that has seen the console once does not go to it in clear.
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
