// Package console is the web console at /ui/: server-rendered pages
// (html/template, embedded) for people, on the same operations as the admin
// API (package ops), with sessions, CSRF protection and login lockout from
// package auth.
//
// It calls nothing of the server but ops.Ops (and auth through ops.Auth),
// so it can do nothing the API cannot; each page and each action needs the
// role ops requires for it, and pki.Error codes become pages: EForbidden a
// 403 page, ENotFound a 404, EBadRequest and EConflict the form again with
// the reason. Routes are in routes.go, the session and CSRF rules in
// session.go.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/muxpath"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options tune the console.
type Options struct {
	// InsecureCookies drops the Secure attribute (tests over plain HTTP
	// only; the console is served on the HTTPS listener).
	InsecureCookies bool
}

// MaxFormBytes bounds a form's body.
const MaxFormBytes = 64 << 10

// Handler serves /ui/.
type Handler struct {
	ops    *ops.Ops
	auth   *auth.Service
	log    *slog.Logger
	opts   Options
	pages  map[string]*template.Template
	static map[string]staticFile
	// assets are the versioned URLs of the stylesheet and the script.
	assets assets
	// patterns are the routes' "METHOD /path" patterns, for the Allow
	// header of what no route takes (notFound).
	patterns []string
}

type assets struct{ CSS, JS string }

type staticFile struct {
	body  []byte
	ctype string
	hash  string
}

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"login", "error", "dashboard", "certs", "cert", "revoke", "requests", "challenges", "audit", "cas"}

// New builds the console.
func New(o *ops.Ops, log *slog.Logger, opts Options) (*Handler, error) {
	if o == nil {
		return nil, errors.New("console: no operations layer")
	}
	if o.Auth() == nil {
		return nil, errors.New("console: the operations layer has no auth service")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{ops: o, auth: o.Auth(), log: log, opts: opts, pages: map[string]*template.Template{}, static: map[string]staticFile{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := "application/octet-stream"
		switch path.Ext(p) {
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		case ".ico":
			ctype = "image/x-icon"
		}
		h.static[path.Base(p)] = staticFile{body: b, ctype: ctype, hash: hex.EncodeToString(sum[:8])}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	for _, f := range []string{"console.css", "console.js"} {
		if _, ok := h.static[f]; !ok {
			return nil, fmt.Errorf("console: static/%s is missing", f)
		}
	}
	h.assets = assets{CSS: Prefix + "static/console.css?v=" + h.static["console.css"].hash,
		JS: Prefix + "static/console.js?v=" + h.static["console.js"].hash}
	for pattern := range h.Routes() {
		h.patterns = append(h.patterns, pattern)
	}
	return h, nil
}

// Prefix is where the console lives.
const Prefix = "/ui/"

// view is what every page template gets.
type view struct {
	Title string
	// Nav is the menu entry of this page ("" for none).
	Nav string
	// User is the person logged in (nil on the login page).
	User *auth.Principal
	// CSRF is the session's anti-forgery token, for every form.
	CSRF string
	// CanOperate is whether the user may approve, reject, revoke and
	// manage challenges; actions are shown only then.
	CanOperate bool
	// Message is a confirmation shown at the top; Error a refusal.
	Message string
	Error   string
	Now     time.Time
	Assets  assets
	Page    any
}

// req is one request of a logged-in person.
type req struct {
	p      auth.Principal
	secret string
	csrf   string
}

func (h *Handler) newView(rq *req, title, nav string, page any) *view {
	v := &view{Title: title, Nav: nav, Now: h.ops.Now(), Assets: h.assets, Page: page}
	if rq != nil {
		p := rq.p
		v.User, v.CSRF, v.CanOperate = &p, rq.csrf, p.Role.Allows(pki.RoleOperator)
	}
	return v
}

// setSecurityHeaders is sent with every answer of the console.
func setSecurityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// render writes a page with a status. The page is rendered into a buffer
// first, so a template failure is a clean 500, never half a page.
func (h *Handler) render(w http.ResponseWriter, status int, name string, v *view) {
	t, ok := h.pages[name]
	if !ok {
		h.log.Error("console: no such template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("console: rendering a page", "page", name, "err", err)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage is the page of a refusal or a failure.
type errorPage struct {
	Status     int
	StatusText string
	// Back is a link to offer ("" for none).
	Back, BackText string
}

// badInput is a request the console cannot read at all (a form body that
// does not parse): 400 with the reason. A value it reads and refuses is a
// refusal (refusef), not bad input.
type badInput struct{ msg string }

func (e badInput) Error() string { return e.msg }

func badInputf(format string, args ...any) error { return badInput{fmt.Sprintf(format, args...)} }

// refusef is a value the console read and refuses (a filter, a date, a
// lifetime, a reason): EBadRequest, so 422 with the reason, as the API
// answers what ops refuses. Where ops checks a value itself, the console
// leaves the check to it, so both give the same reason.
func refusef(format string, args ...any) error { return pki.Errorf(pki.EBadRequest, format, args...) }

// status maps an error to its HTTP status and the text a person may see.
// Plain Go errors are internal: logged, never shown.
func status(err error) (int, string) {
	var bi badInput
	if errors.As(err, &bi) {
		return http.StatusBadRequest, bi.msg
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("the form is larger than %d bytes", mbe.Limit)
	}
	if ops.IsNotFound(err) {
		msg := pki.ErrorMessage(err)
		if msg == "internal error" {
			msg = "not found"
		}
		return http.StatusNotFound, msg
	}
	switch pki.ErrorCode(err) {
	case pki.EForbidden:
		return http.StatusForbidden, pki.ErrorMessage(err)
	case pki.EBadRequest, pki.EBadCertID, pki.EBadTime, pki.EBadAlg, pki.EBadMessageCheck:
		// Read, but refused by the rules (ops said no): 422, as the API
		// answers the same refusal.
		return http.StatusUnprocessableEntity, pki.ErrorMessage(err)
	case pki.EConflict:
		return http.StatusConflict, pki.ErrorMessage(err)
	case pki.EUnauthorized:
		return http.StatusUnauthorized, pki.ErrorMessage(err)
	case pki.EUnavailable:
		return http.StatusServiceUnavailable, store.UnavailableMessage(err)
	}
	return http.StatusInternalServerError, "internal error: the server could not complete this; the log says why"
}

// formError reports whether err is one a form is shown again for (the
// person can correct it): EBadRequest, EConflict, bad input.
func formError(err error) bool {
	var bi badInput
	if errors.As(err, &bi) {
		return true
	}
	c := pki.ErrorCode(err)
	return !ops.IsNotFound(err) && (c == pki.EBadRequest || c == pki.EConflict)
}

// fail renders the error page for err.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, rq *req, err error) {
	code, msg := status(err)
	if code >= http.StatusInternalServerError {
		h.log.Error("console: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(pki.RetryAfter(err)))
	}
	h.errorPage(w, rq, code, msg)
}

func (h *Handler) errorPage(w http.ResponseWriter, rq *req, code int, msg string) {
	title := http.StatusText(code)
	if title == "" {
		title = "Error"
	}
	ep := errorPage{Status: code, StatusText: title, Back: Prefix, BackText: "Back to the dashboard"}
	if rq == nil {
		ep.Back, ep.BackText = Prefix+"login", "Log in"
	}
	v := h.newView(rq, title, "", ep)
	v.Error = msg
	h.render(w, code, "error", v)
}

// statusFor is the status of a form shown again for err.
func statusFor(err error) int {
	code, _ := status(err)
	return code
}

// message is the text of err a person may see.
func message(err error) string {
	_, msg := status(err)
	return msg
}

// notFound answers anything under /ui/ that no route takes: 405 with the
// methods the path takes when a route has it with another method (GET
// /ui/logout, DELETE /ui/login), else 404 whatever the method, as the API
// answers: a path no route has is no resource, so it has no methods for an
// Allow header to name (RFC 9110 section 15.5.6; POST /ui/nothing-here was
// 405 with "Allow: GET, HEAD", though a GET there is 404).
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	rq, _ := h.session(r)
	if allow := h.allowed(r.URL.Path); len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.errorPage(w, rq, http.StatusMethodNotAllowed, r.URL.Path+" does not take "+r.Method+"; it takes "+strings.Join(allow, ", "))
		return
	}
	h.errorPage(w, rq, http.StatusNotFound, "there is no page "+r.URL.Path)
}

// allowed lists the methods of the routes whose pattern matches path
// (GET with HEAD, as ServeMux serves it), sorted; none for a path no route
// has. The catch-all "/ui/" has no method and names no path of its own.
func (h *Handler) allowed(path string) []string {
	var out []string
	for _, pattern := range h.patterns {
		method, p, ok := strings.Cut(pattern, " ")
		if !ok || !muxpath.Matches(p, path) {
			continue
		}
		out = append(out, method)
		if method == http.MethodGet {
			out = append(out, http.MethodHead)
		}
	}
	sort.Strings(out)
	return out
}

// serveStatic serves the embedded stylesheet and script. A request naming
// the current version may be cached for good; any other is revalidated.
func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := h.static[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Get("v") == f.hash {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	etag := `"` + f.hash + `"`
	w.Header().Set("ETag", etag)
	if strings.Contains(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Write(f.body)
}
