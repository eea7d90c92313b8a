package ocsp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAge bounds how long HTTP caches keep an answer, as it bounds a CRL's
// (internal/crl): the cache here drops an answer at a revocation, a proxy
// or CDN in front would keep it to its max-age, so a revoked certificate
// reads good behind a cache for minutes at most, whatever --ocsp-validity.
const maxAge = 5 * time.Minute

// Path is where the responder answers: POST to Path, GET to Path + "/" +
// the base64 request (RFC 6960 appendix A.1).
const Path = "/ocsp"

// Routes serves POST requests. GETs carry base64 in the path, which may hold
// "//" that http.ServeMux would clean away with a redirect, so they are
// served by RawPrefixes, ahead of the mux.
func (r *Responder) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST " + Path:       http.HandlerFunc(r.serveHTTP),
		"POST " + Path + "/": http.HandlerFunc(r.serveHTTP),
		"GET " + Path:        http.HandlerFunc(r.serveHTTP),
	}
}

// RawPrefixes implements server.PrefixRouter: every request under /ocsp/,
// its path uncleaned.
func (r *Responder) RawPrefixes() map[string]http.Handler {
	return map[string]http.Handler{Path + "/": http.HandlerFunc(r.serveHTTP)}
}

func (r *Responder) serveHTTP(w http.ResponseWriter, req *http.Request) {
	var der []byte
	var err error
	switch req.Method {
	case http.MethodPost:
		if req.ContentLength > MaxRequestBytes {
			// Refused as announced, unread, as the other handlers refuse
			// theirs: reading would send a client that asked "Expect:
			// 100-continue" its "100 Continue", and it would still be
			// sending when the answer closed the connection.
			err = malformed("request body of %d bytes, over %d", req.ContentLength, MaxRequestBytes)
			break
		}
		der, err = io.ReadAll(http.MaxBytesReader(w, req.Body, MaxRequestBytes))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = malformed("request body over %d bytes", MaxRequestBytes)
		}
	case http.MethodGet, http.MethodHead:
		der, err = decodeGET(req.URL)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "405 method not allowed: OCSP takes GET or POST", http.StatusMethodNotAllowed)
		return
	}
	a := Answer{DER: MalformedRequestResponse, Err: err}
	if err == nil {
		a = r.Respond(req.Context(), der)
	}
	h := w.Header()
	h.Set("Content-Type", "application/ocsp-response")
	status := http.StatusOK
	switch {
	case a.Cacheable && req.Method != http.MethodPost:
		// RFC 5019 §6.2: caches may keep the answer until it is to be
		// refreshed here, never beyond its nextUpdate, and no longer than
		// maxAge. Expires says the same as max-age, not nextUpdate (RFC
		// 5019's example): an HTTP/1.0 cache, or one that ignores max-age,
		// would keep a good answer for up to an hour after a revocation.
		now := r.clock.Now()
		age := max(0, int(min(maxAge, a.refreshAt().Sub(now)).Seconds()))
		sum := sha256.Sum256(a.DER)
		h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d, no-transform, must-revalidate", age))
		h.Set("Last-Modified", a.ThisUpdate.UTC().Format(http.TimeFormat))
		h.Set("Expires", now.Add(time.Duration(age)*time.Second).UTC().Format(http.TimeFormat))
		h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	case a.Err != nil && isTryLater(a.DER):
		h.Set("Cache-Control", "no-store")
		h.Set("Retry-After", "5")
		status = http.StatusServiceUnavailable
	default:
		h.Set("Cache-Control", "no-store")
	}
	if a.Err != nil {
		r.log.Debug("ocsp: error answer", "remote", req.RemoteAddr, "err", a.Err)
	}
	h.Set("Content-Length", fmt.Sprint(len(a.DER)))
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		w.Write(a.DER)
	}
}

func isTryLater(der []byte) bool { return string(der) == string(TryLaterResponse) }

// decodeGET reads the base64 request of a GET from the raw path: percent-
// escapes undone, the standard or URL-safe alphabet, padded or not.
func decodeGET(u *url.URL) ([]byte, error) {
	raw, ok := strings.CutPrefix(u.EscapedPath(), Path+"/")
	if !ok || raw == "" {
		return nil, malformed("a GET carries the base64 DER request after %s/", Path)
	}
	if len(raw) > 4*MaxRequestBytes {
		return nil, malformed("request path over %d bytes", 4*MaxRequestBytes)
	}
	s, err := url.PathUnescape(raw)
	if err != nil {
		return nil, malformed("bad percent-encoding")
	}
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(s); err == nil {
			return der, nil
		}
	}
	return nil, malformed("the request in the path is not base64")
}
