package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
)

// Sessions, CSRF and login.
//
//   - The session cookie (scepter_session) holds the secret auth.Login
//     returns: HttpOnly, Secure (unless Options.InsecureCookies),
//     SameSite=Strict, Path=/ui/, expiring with the session. The store
//     keeps only its hash; logout deletes it there.
//   - Every change is a POST whose form carries the session's CSRF token
//     (auth.CSRFToken, derived from the secret, so it needs no storage);
//     one without a valid token is refused with 403, as is one whose
//     Origin (or, without one, Referer) names another site, or whose
//     Sec-Fetch-Site says it came from one.
//   - The login form has no session yet: a random pre-session cookie
//     (scepter_login) and the same value in a hidden field (double
//     submit), so another site cannot log a browser in to an account of
//     its choosing (login CSRF).
//   - Lockout after repeated failures is auth's (per user, with backoff);
//     the page says until when, and a wrong password and an unknown user
//     get the same answer.
const (
	SessionCookie = "scepter_session"
	LoginCookie   = "scepter_login"
	// LoggedOutCookie carries "You have logged out." from the logout to
	// the login page it redirects to: a link another site hands out cannot
	// set it, as it could a query parameter.
	LoggedOutCookie = "scepter_logged_out"
	loggedOutTTL    = 2 * time.Minute
	// loginTokenTTL bounds how long a login form may stay open.
	loginTokenTTL = time.Hour
)

// session returns the logged-in person of a request, or
// auth.ErrUnauthenticated.
func (h *Handler) session(r *http.Request) (*req, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, auth.ErrUnauthenticated
	}
	p, err := h.auth.SessionPrincipal(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	return &req{p: p, secret: c.Value, csrf: auth.CSRFToken(c.Value)}, nil
}

func (h *Handler) cookie(name, value string, expires time.Time, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix, Expires: expires, MaxAge: maxAge,
		HttpOnly: true, Secure: !h.opts.InsecureCookies, SameSite: http.SameSiteStrictMode}
}

func (h *Handler) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, h.cookie(name, "", time.Unix(1, 0), -1))
}

// page wraps a GET handler that needs a logged-in person: without a session
// it sends the browser to the login page, which comes back here after. Its
// query may hold the parameters takes names, each once.
func (h *Handler) page(fn func(w http.ResponseWriter, r *http.Request, rq *req) error, takes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkQuery(r, takes); err != nil {
			h.badQuery(w, r, err)
			return
		}
		rq, err := h.session(r)
		if errors.Is(err, auth.ErrUnauthenticated) {
			h.clearStaleSession(w, r)
			target := Prefix + "login"
			if r.URL.RequestURI() != Prefix {
				// The dashboard's ?days= too: the login comes back to it.
				target += "?" + url.Values{"next": {r.URL.RequestURI()}}.Encode()
			}
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if err != nil {
			h.fail(w, r, nil, err)
			return
		}
		if err := fn(w, r, rq); err != nil {
			h.ops.NoteRoleRefusal(r.Context(), err, r.Method, r.URL.Path) // logged, not audited: a read
			h.fail(w, r, rq, err)
		}
	})
}

// action wraps a POST handler: the body is bounded and parsed, the request
// must come from a page of this site with the session's CSRF token, and
// the person must be logged in.
func (h *Handler) action(fn func(w http.ResponseWriter, r *http.Request, rq *req) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.readForm(w, r); err != nil {
			rq, _ := h.session(r)
			h.fail(w, r, rq, err)
			return
		}
		rq, err := h.session(r)
		// Where the form came from is judged before the session: a
		// browser keeps the SameSite=Strict cookie off a cross-site POST,
		// so a missing session there says nothing about the session, and
		// "your session has ended" would send a person still logged in
		// to log in again.
		if err := sameOrigin(r); err != nil {
			h.errorPage(w, rq, http.StatusForbidden, err.Error())
			return
		}
		if errors.Is(err, auth.ErrUnauthenticated) {
			h.clearStaleSession(w, r)
			h.errorPage(w, nil, http.StatusForbidden, "your session has ended (or you logged out): log in again, then repeat what you were doing")
			return
		}
		if err != nil {
			h.fail(w, r, nil, err)
			return
		}
		if !auth.CheckCSRF(rq.secret, r.PostForm.Get("csrf")) {
			h.errorPage(w, rq, http.StatusForbidden, "this form lacks the anti-forgery token of your session, or it does not match (a form from an earlier session, or from another site): reload the page and try again")
			return
		}
		if err := fn(w, r, rq); err != nil {
			// A change the person's role does not allow is audited.
			h.ops.NoteRoleRefusal(r.Context(), err, r.Method, r.URL.Path)
			h.fail(w, r, rq, err)
		}
	})
}

// clearStaleSession drops a session cookie that no longer names a session.
func (h *Handler) clearStaleSession(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(SessionCookie); err == nil {
		h.clearCookie(w, SessionCookie)
	}
}

// readForm bounds the body and parses a urlencoded form (a body of another
// type leaves the form empty, so its CSRF check fails).
func (h *Handler) readForm(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > MaxFormBytes {
		// Refused as announced, unread: reading would send a client that
		// sent "Expect: 100-continue" its "100 Continue", and it would be
		// sending the body while the 413 closed the connection, which it
		// would see reset. A chunked body is bounded as it is read.
		return &http.MaxBytesError{Limit: MaxFormBytes}
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return mbe
		}
		return badInputf("the form cannot be read: %v", err)
	}
	// A field sent twice (reason=superseded&reason=keyCompromise) cannot
	// be read one way: refused, as the API refuses a repeated JSON key,
	// rather than one of the values taken and the other dropped.
	return repeated("form field", r.PostForm)
}

// badQuery answers a query string checkQuery refused: 400 with the reason,
// whether or not there is a session (the reason names only what the page
// takes, never anything behind the login), but to a person logged in as
// every other page of theirs is, with the navigation and the user, not as
// if logged out with a "Log in" link.
func (h *Handler) badQuery(w http.ResponseWriter, r *http.Request, err error) {
	rq, _ := h.session(r)
	h.errorPage(w, rq, http.StatusBadRequest, message(err))
}

// checkQuery refuses, as bad input, a query string a page cannot read: a
// malformed one, a parameter the page does not take (takes names those it
// does) or one given more than once.
func checkQuery(r *http.Request, takes []string) error {
	qs, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		// The pages read r.URL.Query(), which drops such a pair
		// silently: a filter would vanish from what is shown.
		return badInputf("malformed query string: separate parameters with '&', escape ';' as %%3B")
	}
	if err := unknownParam(qs, takes); err != nil {
		// Ignored, it would look applied: /ui/audit?before_id=5 showed
		// the newest page as if it were the page asked for.
		return err
	}
	// Query().Get takes the first: status=valid&status=revoked would list
	// valid ones alone, as the API refuses it.
	return repeated("query parameter", qs)
}

// apiNames are the API's names of the console's filters where the two
// differ, so that a parameter copied from an API call is told the
// console's name.
var apiNames = map[string]string{
	"before_id":       "before",
	"expiring_within": "expiring",
	"issued_after":    "issued_from",
	"issued_before":   "issued_to",
}

// unknownParam refuses a parameter not in takes (the first such in order,
// so the answer is the same every time).
func unknownParam(qs url.Values, takes []string) error {
	var unknown []string
	for k := range qs {
		if !slices.Contains(takes, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	k := unknown[0]
	if len(takes) == 0 {
		return badInputf("unknown query parameter %q: this page takes none", clip(k))
	}
	if own, ok := apiNames[k]; ok && slices.Contains(takes, own) {
		return badInputf("unknown query parameter %q: that is the API's name; the console's is %q (allowed: %s)", k, own, strings.Join(takes, ", "))
	}
	return badInputf("unknown query parameter %q (allowed: %s)", clip(k), strings.Join(takes, ", "))
}

// repeated refuses values with a key given more than once (the first such
// key in order, so the answer is the same every time).
func repeated(what string, v url.Values) error {
	keys := make([]string, 0, len(v))
	for k, vs := range v {
		if len(vs) > 1 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	return badInputf("the %s %q is given %d times: it is refused rather than one of its values taken; send it once", what, clip(keys[0]), len(v[keys[0]]))
}

// sameOrigin refuses a request that says it comes from another site. A
// browser sends Sec-Fetch-Site and, on a POST, Origin; with the
// no-referrer policy of these pages Origin may be "null", which names no
// site (the CSRF token and the SameSite=Strict cookie still hold then).
func sameOrigin(r *http.Request) error {
	refuse := errors.New("this form was sent from another site; it is refused (open the console and use its own form)")
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
	default:
		return refuse
	}
	src := r.Header.Get("Origin")
	if src == "" || src == "null" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return nil
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" || !strings.EqualFold(hostPort(u.Host, u.Scheme), hostPort(r.Host, u.Scheme)) {
		return refuse
	}
	return nil
}

// hostPort adds the scheme's default port to a host without one.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "443"
	if scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port)
}

// loginPage is the login form.
type loginPage struct {
	Token, User, Next string
	// LockedUntil is set when the login is locked.
	LockedUntil time.Time
}

// loginForm shows the login form (or, to a person logged in, the
// dashboard).
func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r, []string{"next"}); err != nil {
		h.badQuery(w, r, err)
		return
	}
	if rq, err := h.session(r); err == nil && rq != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	var msg string
	if c, err := r.Cookie(LoggedOutCookie); err == nil && c.Value == "1" {
		msg = "You have logged out."
		h.clearCookie(w, LoggedOutCookie)
	}
	h.showLogin(w, r, http.StatusOK, loginPage{Next: r.URL.Query().Get("next")}, msg, "")
}

// showLogin renders the login form with a fresh pre-session token.
func (h *Handler) showLogin(w http.ResponseWriter, r *http.Request, code int, lp loginPage, msg, errMsg string) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		h.fail(w, r, nil, err)
		return
	}
	lp.Token = base64.RawURLEncoding.EncodeToString(b)
	lp.Next = safeNext(lp.Next)
	http.SetCookie(w, h.cookie(LoginCookie, lp.Token, h.ops.Now().Add(loginTokenTTL), int(loginTokenTTL/time.Second)))
	v := h.newView(nil, "Log in", "", lp)
	v.Message, v.Error = msg, errMsg
	h.render(w, code, "login", v)
}

// login checks the form and the password and opens a session.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if err := h.readForm(w, r); err != nil {
		h.fail(w, r, nil, err)
		return
	}
	name := r.PostForm.Get("username")
	lp := loginPage{User: name, Next: r.PostForm.Get("next")}
	if len(lp.User) > 128 {
		// Not shown again in the form, but still tried: it is an unknown
		// name like any other, answered and counted towards a lockout alike.
		lp.User = ""
	}
	if err := sameOrigin(r); err != nil {
		h.showLogin(w, r, http.StatusForbidden, lp, "", err.Error())
		return
	}
	c, err := r.Cookie(LoginCookie)
	token := r.PostForm.Get("csrf")
	if err != nil || c.Value == "" || token == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(token)) != 1 {
		h.showLogin(w, r, http.StatusForbidden, lp, "", "The login form had expired or did not come from this site. Please log in again.")
		return
	}
	password := r.PostForm.Get("password")
	if name == "" || password == "" {
		h.showLogin(w, r, http.StatusUnprocessableEntity, lp, "", "Enter your user name and password.")
		return
	}
	secret, ses, err := h.auth.Login(r.Context(), name, password, remoteHost(r))
	var locked *auth.LockedError
	switch {
	case errors.As(err, &locked):
		lp.LockedUntil = locked.Until
		// As the API's and EST's 429s: when to come back, for a client
		// that reads the header rather than the page.
		w.Header().Set("Retry-After", strconv.Itoa(secondsUntil(locked.Until, h.ops.Now())))
		h.showLogin(w, r, http.StatusTooManyRequests, lp, "", "Too many failed logins: logging in is locked until "+
			locked.Until.UTC().Format("2006-01-02 15:04:05 UTC")+". Try again after that.")
		return
	case errors.Is(err, auth.ErrLocked):
		h.showLogin(w, r, http.StatusTooManyRequests, lp, "", "Too many failed logins: logging in is locked for a while. Try again later.")
		return
	case errors.Is(err, auth.ErrUnauthenticated):
		h.showLogin(w, r, http.StatusUnauthorized, lp, "", "Wrong user name or password.")
		return
	case err != nil:
		h.fail(w, r, nil, err)
		return
	}
	maxAge := int(ses.ExpiresAt.Sub(h.ops.Now()) / time.Second)
	http.SetCookie(w, h.cookie(SessionCookie, secret, ses.ExpiresAt, max(maxAge, 1)))
	h.clearCookie(w, LoginCookie)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, safeNext(lp.Next), http.StatusSeeOther)
}

// secondsUntil is a Retry-After: whole seconds until t, rounded up, at
// least 1.
func secondsUntil(t, now time.Time) int {
	return max(int((t.Sub(now)+time.Second-1)/time.Second), 1)
}

// logoutRoute is logout behind the CSRF check; a browser whose session has
// ended already is just sent to the login page (there is nothing to end).
func (h *Handler) logoutRoute() http.Handler {
	checked := h.action(h.logout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := h.session(r); errors.Is(err, auth.ErrUnauthenticated) {
			h.clearStaleSession(w, r)
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		checked.ServeHTTP(w, r)
	})
}

// logout ends the session.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := h.auth.Logout(r.Context(), rq.secret); err != nil {
		return err
	}
	h.clearCookie(w, SessionCookie)
	http.SetCookie(w, h.cookie(LoggedOutCookie, "1", h.ops.Now().Add(loggedOutTTL), int(loggedOutTTL/time.Second)))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
	return nil
}

// safeNext keeps a post-login target only when it is a page of the console
// (never another site: no scheme, no host, no "//"), its path already
// clean: http.Redirect cleans the path it is given, so /ui/../../evil
// would leave the console and /ui//evil.example land elsewhere in it. A
// path with a "." or ".." segment, an empty one ("//") or a backslash, in
// plain or in percent-encoded form (%2e%2e, %2F%2F, %5C), is refused for the
// default page, never cleaned into another target; so is a fragment
// (no page of the console links to one, and http.Redirect would clean
// it as a part of the path).
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, Prefix) || strings.ContainsAny(next, "\\\r\n#") {
		return Prefix
	}
	// What http.Redirect cleans is the text before the query, as written.
	raw, _, _ := strings.Cut(next, "?")
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || !cleanConsolePath(raw) || !cleanConsolePath(u.Path) ||
		strings.HasPrefix(u.Path, Prefix+"login") || strings.HasPrefix(u.Path, Prefix+"logout") {
		return Prefix
	}
	return next
}

// cleanConsolePath reports whether p is under /ui/ and path.Clean leaves
// it as it is (but for the trailing slash, which Clean drops), and it
// holds no backslash.
func cleanConsolePath(p string) bool {
	if !strings.HasPrefix(p, Prefix) || strings.Contains(p, "\\") {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c == p
}

// remoteHost is the client's address without the port (the Guard has put
// a trusted proxy's forwarded client there).
func remoteHost(r *http.Request) string { return pki.ClientHost(r.RemoteAddr) }
