// Package api is the admin API under /api/v1/: JSON over HTTPS, bearer
// tokens with roles (package auth), on the operations of package ops, which
// the console uses too. Every route is declared once, in routes.go, with
// what the OpenAPI description at /api/v1/openapi.json says of it, so the
// two cannot drift apart.
package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/httpjson"
	"github.com/scepter/scepter/internal/muxpath"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/printable"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/strictjson"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// Handler serves /api/v1/.
type Handler struct {
	ops    *ops.Ops
	log    *slog.Logger
	routes []route
}

// New builds the API.
func New(o *ops.Ops, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{ops: o, log: log}
	h.routes = h.table()
	return h
}

// Routes implements server.Router: every route of the table, behind
// authentication, plus the OpenAPI description and a JSON 404 for the rest
// of /api/ and for /api, which the mux would otherwise redirect to /api/
// with a bare 307.
func (h *Handler) Routes() map[string]http.Handler {
	m := map[string]http.Handler{
		"GET " + openAPIPath: http.HandlerFunc(h.serveOpenAPI),
		"/api/":              http.HandlerFunc(h.noRoute),
		"/api":               http.HandlerFunc(h.noRoute),
	}
	// One mux pattern per path: ServeMux answers 405 with Allow for the
	// other methods of a path it knows.
	for _, rt := range h.routes {
		m[rt.method+" "+Prefix+rt.path] = h.wrap(rt)
	}
	for pattern, handler := range m {
		m[pattern] = strictTransport(handler)
	}
	return m
}

// strictTransport sends Strict-Transport-Security, for a year, on the
// answers over HTTPS (only there: RFC 6797 section 7.2), so that a client
// that has been told never sends its token in clear.
func strictTransport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// noRoute answers what no route took: 405 with Allow when the path is a
// route's with another method, else 404; JSON either way, with the
// headers of every other API answer. Allow names HEAD beside GET, as the
// console's does: ServeMux serves HEAD wherever it serves GET.
func (h *Handler) noRoute(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	var allow []string
	for _, rt := range h.routes {
		if muxpath.Matches(Prefix+rt.path, r.URL.Path) {
			allow = append(allow, rt.method)
		}
	}
	if r.URL.Path == openAPIPath {
		// Not in the table (it is no operation of the API), but a route.
		allow = append(allow, http.MethodGet)
	}
	if slices.Contains(allow, http.MethodGet) {
		allow = append(allow, http.MethodHead)
	}
	slices.Sort(allow)
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		httpjson.WriteError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here; allowed: "+strings.Join(allow, ", "), nil)
		return
	}
	msg := "no such API route: " + r.Method + " " + printable.String(pki.Clip(r.URL.Path, 200))
	if !strings.HasPrefix(r.URL.Path, Prefix+"/") {
		msg += " (the API is served under " + Prefix + "/; its description: " + openAPIPath + ")"
	}
	httpjson.WriteError(w, http.StatusNotFound, msg, nil)
}

// Prefix is where the API lives.
const Prefix = "/api/v1"

// openAPIPath is where the API's OpenAPI description is served.
const openAPIPath = Prefix + "/openapi.json"

// call is one request as a handler sees it.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	p    auth.Principal
	ctx  context.Context
	body []byte
	q    *query // the query parameters, checked against the route's
}

// wrap authenticates, bounds the body and maps errors for one route.
func (h *Handler) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		p, err := h.authenticate(r)
		if err != nil {
			if errors.Is(err, auth.ErrUnauthenticated) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="scepter"`)
				msg := "a valid API token is required: Authorization: Bearer scepter_…"
				// The secret of a revoked or expired token is told so; an
				// unknown one only the rule.
				var ended *auth.EndedTokenError
				if errors.As(err, &ended) {
					msg = ended.Error() + "; " + msg
				}
				httpjson.WriteError(w, http.StatusUnauthorized, msg, codeDetail("unauthorized"))
				return
			}
			h.fail(w, err)
			return
		}
		if err := auth.Require(p, rt.role); err != nil {
			// A change refused so is audited (a read only logged).
			h.ops.NoteRoleRefusal(r.Context(), err, r.Method, r.URL.Path)
			h.fail(w, err)
			return
		}
		c := &call{w: w, r: r, p: p, ctx: r.Context()}
		// Every route refuses query parameters it does not take, before it
		// changes anything: a misspelt filter, or a dry_run=1 that no route
		// knows, must not pass as accepted.
		if c.q, err = c.query(rt.paramNames()...); err != nil {
			h.fail(w, err)
			return
		}
		if rt.body != "" || r.ContentLength != 0 {
			if c.body, err = readBody(w, r); err != nil {
				h.fail(w, err)
				return
			}
		}
		if rt.body == "" && len(bytes.TrimSpace(c.body)) > 0 {
			// A route without a body must not read one as accepted either:
			// {"dry_run":true} on an approval would issue the certificate.
			// An empty object is what many clients send with any POST.
			if err := c.decode(&struct{}{}); err != nil {
				// Not "a JSON object is required" (null, [], text): it
				// requires none.
				msg := rt.path + " takes no body (send none, or {})"
				if bi := (badInput{}); !errors.As(err, &bi) || bi.msg != notAnObject {
					msg += ": " + err.Error()
				}
				h.fail(w, badInput{msg})
				return
			}
		}
		if err := rt.fn(c); err != nil {
			// A role the route allows that ops refuses all the same.
			h.ops.NoteRoleRefusal(r.Context(), err, r.Method, r.URL.Path)
			h.fail(w, err)
		}
	})
}

// NoteTokenInClear implements server.ClearTokenNoter: the plain listener,
// which refused r, tells the API that r's Authorization header crossed the
// network in clear, and a token of this store's in it is logged and
// audited by name (auth.Service.NoteTokenInClear), in whichever form it
// was sent (clearSecrets). It reports whether the header held anything in
// an API token's form, a token of this store's or not.
func (h *Handler) NoteTokenInClear(r *http.Request) bool {
	remote := pki.ClientHost(r.RemoteAddr)
	secrets := clearSecrets(r.Header.Values("Authorization"))
	for _, secret := range secrets {
		h.ops.Auth().NoteTokenInClear(r.Context(), secret, remote)
	}
	return len(secrets) > 0
}

// maxClearSecrets bounds the store lookups one request sent in clear
// makes: more than any client's header holds by mistake.
const maxClearSecrets = 4

// clearSecrets are the values in an API token's form (auth.TokenPrefix)
// that Authorization headers carry, each once: as a bearer token, as the
// credentials of another scheme, as either half of Basic's user:password
// (curl -u x:TOKEN), or bare, without a scheme. Whichever way it was sent,
// it crossed the network in clear.
func clearSecrets(values []string) []string {
	var out []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, auth.TokenPrefix) && !slices.Contains(out, s) && len(out) < maxClearSecrets {
			out = append(out, s)
		}
	}
	for _, v := range values {
		v = strings.TrimSpace(v)
		scheme, creds, ok := strings.Cut(v, " ")
		if !ok {
			add(v)
			continue
		}
		add(creds)
		if strings.EqualFold(scheme, "Basic") {
			if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(creds)); err == nil {
				user, password, _ := strings.Cut(string(b), ":")
				add(password)
				add(user)
			}
		}
	}
	return out
}

// authenticate reads the bearer token. A request with two Authorization
// headers is refused, as EST refuses it: Header.Get reads the first, and a
// proxy in front may have checked the other one.
func (h *Handler) authenticate(r *http.Request) (auth.Principal, error) {
	if n := len(r.Header.Values("Authorization")); n > 1 {
		return auth.Principal{}, badf("the request carries more than one Authorization header (%d); send one", n)
	}
	v := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	return h.ops.Auth().AuthenticateToken(r.Context(), strings.TrimSpace(token))
}

// badInput is a request the API cannot read: 400.
type badInput struct{ msg string }

func (e badInput) Error() string { return e.msg }

func badf(format string, args ...any) error { return badInput{fmt.Sprintf(format, args...)} }

// refusedf is a value the API read and refuses (a filter, time, limit or
// lifetime out of bounds): 422 with the reason, as the console answers
// it. 400 stays for a request it cannot read.
func refusedf(format string, args ...any) error {
	return pki.Errorf(pki.EBadRequest, "%s", fmt.Sprintf(format, args...))
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return nil, badInput{"the body must be application/json"}
	}
	tooBig := statusErr{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes)}
	if r.ContentLength > MaxBodyBytes {
		// Refused as announced, unread: reading would send a client that
		// sent "Expect: 100-continue" its "100 Continue", and it would be
		// sending the body while the 413 closed the connection, which it
		// would see reset. A chunked body is bounded as it is read.
		return nil, tooBig
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return nil, tooBig
	}
	if err != nil {
		return nil, badf("reading the body: %v", err)
	}
	return b, nil
}

// notAnObject is decode's refusal of a body that is no JSON object.
const notAnObject = "a JSON object is required"

// decode reads the body as exactly one JSON object into v: unknown fields,
// wrong types (null among them, but for a pointer field) and trailing
// data are refused.
func (c *call) decode(v any) error {
	if body := bytes.TrimSpace(c.body); len(body) == 0 || body[0] != '{' {
		// null would decode into v as nothing at all, and an array or a
		// string name a Go type in the decoder's error.
		return badInput{notAnObject}
	}
	if !utf8.Valid(c.body) {
		// encoding/json would put U+FFFD in place of each bad byte without a
		// word: a password stored that way is not the one the client sent,
		// and the checks for UTF-8 after decoding would never see it.
		return badInput{"the body is not valid UTF-8"}
	}
	if err := strictjson.CheckText(c.body); errors.Is(err, strictjson.ErrTooDeep) {
		return badf("%v, which no request of this API needs", err)
	} else if err != nil {
		return badInput{err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return badf("field %q: want %s, got %s", typeErr.Field, jsonKind(typeErr.Type), typeErr.Value)
		case errors.As(err, &syntaxErr):
			return badf("malformed JSON at byte %d", syntaxErr.Offset)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return badf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return badf("malformed JSON: %v", err)
	}
	if dec.More() {
		return badInput{"trailing data after the JSON object"}
	}
	// encoding/json matches keys regardless of case and lets the last of
	// two equal keys win: {"role":"auditor","ROLE":"admin"} would make an
	// admin token while reading as an auditor's.
	if err := strictjson.CheckKeys(c.body, v); err != nil {
		return badInput{err.Error()}
	}
	return checkNulls(c.body, v)
}

// statusErr is an answer with a status of its own.
type statusErr struct {
	status int
	msg    string
}

func (e statusErr) Error() string { return e.msg }

// fail maps an error to its status. Only pki.Error messages and the API's
// own input errors reach the client; anything else is logged and answered
// "internal error".
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var bi badInput
	var se statusErr
	switch {
	case errors.As(err, &bi):
		httpjson.WriteError(w, http.StatusBadRequest, bi.msg, nil)
		return
	case errors.As(err, &se):
		httpjson.WriteError(w, se.status, se.msg, nil)
		return
	case errors.Is(err, auth.ErrUnauthenticated):
		httpjson.WriteError(w, http.StatusUnauthorized, "not authenticated", codeDetail("unauthorized"))
		return
	}
	if pki.ErrorCode(err) == pki.EUnavailable {
		if enroll.Gated(err) {
			// A state that lasts until this node is upgraded, which the
			// schema watch logs once at ERROR.
			h.log.Warn("api: refused: this node issues nothing now", "err", err)
		} else {
			h.log.Error("api: store unavailable", "err", err)
		}
		w.Header().Set("Retry-After", strconv.Itoa(pki.RetryAfter(err)))
		// An operator's call: say why the store cannot write when it
		// knows (a full disk, a lock, read-only), as the console does.
		httpjson.WriteError(w, http.StatusServiceUnavailable, store.UnavailableMessage(err), nil)
		return
	}
	var pe *pki.Error
	if !errors.As(err, &pe) {
		h.log.Error("api: internal error", "err", err)
		httpjson.WriteError(w, http.StatusInternalServerError, "internal error", nil)
		return
	}
	// The code names the kind of answer, one per status: a 422's is not
	// pe.Code (bad_request for most), which a client switching on it would
	// take for a request that could not be read (400, whose detail is
	// null). httpjson.ErrorBody's doc lists them.
	status, code := http.StatusUnprocessableEntity, "unprocessable"
	switch pe.Code {
	case pki.EForbidden:
		status, code = http.StatusForbidden, "forbidden"
	case pki.EUnauthorized:
		status, code = http.StatusUnauthorized, "unauthorized"
	case pki.ENotFound:
		status, code = http.StatusNotFound, "not_found"
	case pki.EConflict:
		status, code = http.StatusConflict, "conflict"
	case pki.EInternal:
		h.log.Error("api: internal error", "err", err)
		httpjson.WriteError(w, http.StatusInternalServerError, "internal error", nil)
		return
	}
	httpjson.WriteError(w, status, pe.Message, codeDetail(code))
}

// codeDetail is the detail of a refusal, {"code": code}: every 401 has
// one ("unauthorized"), whichever way the token was found wanting (none,
// unknown, revoked, expired), as httpjson.ErrorBody's doc says.
func codeDetail(code string) map[string]string { return map[string]string{"code": code} }

// --- query parameters -------------------------------------------------------

// query reads query parameters, refusing unknown ones and repeated ones.
type query struct {
	v    map[string][]string
	errs []string
}

func (c *call) query(allowed ...string) (*query, error) {
	// url.URL.Query drops a pair it cannot read (a ';', a bad escape)
	// without a word: a filter would vanish and the answer still be 200.
	v, err := url.ParseQuery(c.r.URL.RawQuery)
	if err != nil {
		return nil, badf("malformed query string: %v (separate parameters with '&', escape ';' as %%3B)", err)
	}
	q := &query{v: v}
	for k, vs := range q.v {
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known && len(allowed) == 0 {
			return nil, badf("unknown query parameter %q: this route takes none", pki.Clip(k, 64))
		}
		if !known {
			return nil, badf("unknown query parameter %q (allowed: %s)", pki.Clip(k, 64), strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, badf("query parameter %q given %d times", pki.Clip(k, 64), len(vs))
		}
	}
	return q, nil
}

func (q *query) str(k string) string {
	if vs := q.v[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (q *query) int(k string, def, lo, hi int) int {
	s := q.str(k)
	if s == "" {
		return def
	}
	// Atoi takes a sign: +5 is no whole number as written here.
	n, err := strconv.Atoi(s)
	if err != nil || s[0] == '+' || n < lo || n > hi {
		q.errs = append(q.errs, fmt.Sprintf("%s=%q: want a whole number from %d to %d", k, s, lo, hi))
		return def
	}
	return n
}

func (q *query) time(k string) time.Time {
	s := q.str(k)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	switch {
	case err != nil:
		q.errs = append(q.errs, fmt.Sprintf("%s=%q: want an RFC 3339 time such as 2026-11-30T12:00:00Z", k, s))
	case t.Before(time.Unix(0, 0)):
		// 0001-01-01T00:00:00Z is the zero time.Time, which the store reads
		// as no bound: until=year 1 would answer everything, not nothing.
		// Nothing here is older than 1970, so refuse what is.
		q.errs = append(q.errs, fmt.Sprintf("%s=%q: want a time from 1970 on", k, s))
	}
	return t
}

// maxQueryDuration bounds a duration in a query: 100 years, beyond every
// certificate's end.
const maxQueryDuration = 100 * 365 * 24 * time.Hour

func (q *query) duration(k string) time.Duration {
	s := q.str(k)
	if s == "" {
		return 0
	}
	d, err := parseDuration(s)
	if err != nil || d <= 0 || d > maxQueryDuration {
		// Zero too: it would read as no filter at all. The bound is named,
		// as "positive" alone would not explain why 100000d is refused.
		q.errs = append(q.errs, fmt.Sprintf("%s=%q: want a positive duration of at most %dd (100 years), such as 30d or 12h",
			k, s, maxQueryDuration/(24*time.Hour)))
	}
	return d
}

func (q *query) err() error {
	if len(q.errs) > 0 {
		return refusedf("%s", strings.Join(q.errs, "; "))
	}
	return nil
}

// parseDuration takes Go durations and days ("30d"), without a sign (Go
// and Atoi take a +; a negative one is out of every bound anyway).
func parseDuration(s string) (time.Duration, error) {
	if strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("bad duration %q", pki.Clip(s, 64))
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 36500 {
			return 0, fmt.Errorf("bad duration %q", pki.Clip(s, 64))
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// jsonKind names the JSON value a Go type decodes from, for an error that
// should speak of the request, not of our types.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}
