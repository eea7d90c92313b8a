package crl

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// maxAge bounds how long HTTP caches keep a CRL, so a revocation reaches
// relying parties behind a cache within minutes, whatever the nextUpdate.
const maxAge = 5 * time.Minute

// Handler serves CRLs (/crl/{issuer-id}.crl) and the CA certificates
// (/ca/{issuer-id}.crt, the caIssuers URL), DER, with caching headers.
type Handler struct {
	p       *Publisher
	issuers Issuers
	roots   rootCRLs
}

// NewHandler serves p's CRLs and the certificates of issuers.
func NewHandler(p *Publisher, issuers Issuers) *Handler { return &Handler{p: p, issuers: issuers} }

// Routes implements server.Router.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /crl/{file}": http.HandlerFunc(h.serveCRL),
		"GET /ca/{file}":  http.HandlerFunc(h.serveCA),
	}
}

func (h *Handler) serveCRL(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
	if !ok || !isIssuerID(id) {
		notFound(w, "no such CRL: the path is /crl/ISSUER-ID.crl, ISSUER-ID being the hex SHA-256 of the issuing CA certificate")
		return
	}
	cert, known := h.issuerCert(id)
	if known && !cert.Issuing {
		h.serveRootCRL(w, r, id)
		return
	}
	c, err := h.p.serving(r.Context(), id)
	if known && pki.ErrorCode(err) == pki.EUnavailable {
		// A CRL held back (or the store unreachable): not an older CRL.
		w.Header().Set("Retry-After", strconv.Itoa(pki.RetryAfter(err)))
		httpError(w, http.StatusServiceUnavailable, pki.ErrorMessage(err))
		return
	}
	if err != nil {
		if known {
			w.Header().Set("Retry-After", "5")
			httpError(w, http.StatusServiceUnavailable, "the CRL of this CA is not published yet; try again in a few seconds")
			return
		}
		notFound(w, "no CA with this issuer ID")
		return
	}
	writeCRL(w, r, id, c, h.p.clock.Now())
}

// writeCRL answers with c, DER, and its caching headers.
func writeCRL(w http.ResponseWriter, r *http.Request, id string, c *store.CRL, now time.Time) {
	age := min(maxAge, c.NextUpdate.Sub(now))
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("ETag", fmt.Sprintf(`"%s-%d"`, id[:16], c.Number))
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d, no-transform", max(0, int(age.Seconds()))))
	// Last-Modified is for information only: ServeContent is given no
	// time, so that If-Modified-Since never answers 304. A CRL published
	// after a clock went back (or by a node whose clock is behind) has an
	// earlier thisUpdate than the one a cache holds; only the ETag, which
	// names the CRL's number, tells whether the cache's copy is current.
	w.Header().Set("Last-Modified", c.ThisUpdate.UTC().Format(http.TimeFormat))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(c.DER))
}

func (h *Handler) serveCA(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("file"), ".crt")
	if !ok || !isIssuerID(id) {
		notFound(w, "no such certificate: the path is /ca/ISSUER-ID.crt")
		return
	}
	cert, ok := h.issuerCert(id)
	if !ok {
		notFound(w, "no CA with this issuer ID")
		return
	}
	w.Header().Set("Content-Type", "application/pkix-cert")
	w.Header().Set("ETag", `"`+id[:16]+`"`)
	w.Header().Set("Cache-Control", "public, max-age=86400, no-transform")
	http.ServeContent(w, r, "", cert.NotBefore, bytes.NewReader(cert.Raw))
}

// issuerCert finds an issuing CA, or a certificate of its chain (the root),
// by the hex SHA-256 of its DER.
func (h *Handler) issuerCert(id string) (certRaw, bool) {
	for _, i := range h.issuers.Issuers() {
		if i.ID == id {
			return certRaw{Raw: i.Cert.Raw, NotBefore: i.Cert.NotBefore, Issuing: true}, true
		}
		for _, c := range i.Chain[1:] {
			if hexSHA256(c.Raw) == id {
				return certRaw{Raw: c.Raw, NotBefore: c.NotBefore}, true
			}
		}
	}
	return certRaw{}, false
}

type certRaw struct {
	Raw       []byte
	NotBefore time.Time
	Issuing   bool // an issuing CA (which has a CRL here), not its root
}

func isIssuerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func notFound(w http.ResponseWriter, msg string) { httpError(w, http.StatusNotFound, msg) }

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
