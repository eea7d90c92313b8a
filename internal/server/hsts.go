package server

import "net/http"

// StrictTransportSecurity is the Strict-Transport-Security value of every
// answer over HTTPS: a year, so that a browser that has been to the console
// or the API once never goes to them in clear (nor sends a token so).
const StrictTransportSecurity = "max-age=31536000"

// setStrictTransport sets Strict-Transport-Security on the answer to r
// when r came over HTTPS; never over plain HTTP (RFC 6797 section 7.2).
func setStrictTransport(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil {
		w.Header().Set("Strict-Transport-Security", StrictTransportSecurity)
	}
}

// strictTransport sets Strict-Transport-Security before next answers.
func strictTransport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setStrictTransport(w, r)
		next.ServeHTTP(w, r)
	})
}
