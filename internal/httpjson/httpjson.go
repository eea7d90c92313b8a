// Package httpjson writes the admin API's JSON answers, for the API
// itself and for the server's refusals of API paths before the API sees
// them (the plain listener, unclean paths, limits), so that a client
// meets one shape and one layout whichever refused it.
package httpjson

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ErrorBody is the shape of every refusal: {"error": "…", "detail": …}.
type ErrorBody struct {
	Error  string `json:"error"`
	Detail any    `json:"detail" doc:"{\"code\": C} when the operation refused the request: C is \"unauthorized\" (401), \"forbidden\" (403; also the plain HTTP listener's refusal of an API request, which must use HTTPS), \"not_found\" (404), \"conflict\" (409) or \"unprocessable\" (422: a value read and refused); {\"retry_after_seconds\": N} for a 429; null otherwise (a 400 is a request that could not be read; a 404 or 405 for a path or method that is no route's, on either listener, met no operation; a 503 gives its wait in Retry-After only)"`
}

// Write answers v as indented JSON with status; a v that cannot be
// encoded is a 500 in the error shape.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error","detail":null}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteError answers a refusal: msg says why, detail is null or the
// object ErrorBody's doc describes.
func WriteError(w http.ResponseWriter, status int, msg string, detail any) {
	Write(w, status, ErrorBody{Error: msg, Detail: detail})
}
