// Package server is the one place where every HTTP route of `scepter serve`
// is mounted, on the plain HTTP listener and on the HTTPS listener. Each
// handler package declares its own patterns (a Routes method beside its
// handler); this package decides which listener serves which, and (Guard,
// limits.go) bounds what anyone on the network can make a listener do
// before any authentication: open connections, requests in flight,
// requests per client address.
package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/httpjson"
	"github.com/scepter/scepter/internal/pki"
)

// Router is a handler package's set of routes: ServeMux patterns and the
// handler for each.
type Router interface {
	Routes() map[string]http.Handler
}

// PrefixRouter is a Router with routes that must see the request path as
// sent: ServeMux cleans paths (a "//" becomes "/" by redirect), which
// breaks OCSP GETs, whose base64 may hold "//". Each prefix is matched
// before the mux.
type PrefixRouter interface {
	RawPrefixes() map[string]http.Handler
}

// UncleanPathRouter is a Router that answers, under its prefixes, the
// requests whose path ServeMux would clean (an empty, "." or ".." segment,
// as in "//simpleenroll" or "x/../../est/cacerts"): the mux would redirect
// them to the cleaned path, which may lie elsewhere, unseen by the
// handler, which could neither refuse them with its reason nor record
// them. Clean paths under the prefixes go to the mux as usual.
type UncleanPathRouter interface {
	UncleanPaths() map[string]http.Handler
}

// FoldingRouter is a Router some of whose paths are served in any letter
// case, as IIS serves them (NDES's): a request for one of FoldedPaths,
// spelled in another case, is routed as that path. No other path is.
type FoldingRouter interface {
	FoldedPaths() []string
}

// MisspeltPathRouter is a Router whose paths are case-sensitive and that
// answers, itself, a request for one of MisspeltPrefixes (or a path below
// one) spelled in another case: with its reason, rather than the mux's
// bare 404. A path in the prefix's own case goes to the mux as usual.
type MisspeltPathRouter interface {
	MisspeltPrefixes() map[string]http.Handler
}

// HTTPSOnlyRouter is a Router served on the HTTPS listener only that
// answers, itself, a request for one of its paths that reached the plain
// listener: with its reason and the https URL to use (httpsBase,
// "https://HOST:PORT", or "" when there is no HTTPS listener), recorded as
// its other refusals are, rather than the mux's bare 404.
type HTTPSOnlyRouter interface {
	Router
	HTTPSOnlyPrefixes() []string
	RefusePlainHTTP(w http.ResponseWriter, r *http.Request, httpsBase string)
}

// Handlers are the parts of one server; a nil one is switched off.
type Handlers struct {
	// SCEP is served on both listeners: devices use plain HTTP (RFC 8894
	// protects the messages themselves), MDMs sometimes an https URL.
	SCEP Router
	// EST needs TLS (RFC 7030): HTTPS only.
	EST Router
	// NDES is the NDES-compatible password page. Its Basic credentials
	// and the challenges it hands out must not cross the network in
	// clear: it is served on HTTPS, and on plain HTTP only to loopback
	// clients (a local script or MDM connector).
	NDES Router
	// HTTPSPort is the HTTPS listener's port, which the plain listener's
	// refusal of the NDES page points to; empty when there is none.
	HTTPSPort string
	// HTTPSHost is the address the HTTPS listener is bound to (ListenerHost),
	// or "" when it listens on every address.
	HTTPSHost string
	// HTTPSNames are the names (DNS or IP) of the HTTPS listener's
	// certificate that reach it (NamesReaching). The plain listener's
	// redirects to the console and the API, and its refusal of EST, name
	// the one the request's Host names, else the first; with none,
	// HTTPSHost, else the address the client reached. Never a Host of the
	// client's choosing.
	HTTPSNames []string
	// CRL (CRLs and CA certificates) and OCSP are what relying parties
	// check: served on both listeners, plain HTTP being what CDP and AIA
	// URLs name (RFC 5280 relying parties do not fetch them over TLS).
	CRL  Router
	OCSP Router
	// Metrics (/metrics) and Health (/healthz, /readyz) are for
	// Prometheus, load balancers and orchestrators: served on both
	// listeners, unauthenticated, bounded by the Guard like the rest.
	Metrics Router
	Health  Router
	// API (/api/) and Console (/ui/) are for people and scripts with
	// credentials: HTTPS only; the plain listener redirects to it.
	API     Router
	Console Router
}

// PlainMux is the handler of the plain HTTP listener.
func PlainMux(h Handlers) (http.Handler, error) {
	// Mounted also when there is no console: then /ui/ and /api/ say why.
	toHTTPS := httpsRedirect{names: h.HTTPSNames, host: h.HTTPSHost, port: h.HTTPSPort}
	var ndes Router
	if h.NDES != nil {
		ndes = loopbackOnly{h.NDES, h.HTTPSPort, toHTTPS}
	}
	if n, ok := h.API.(ClearTokenNoter); ok {
		toHTTPS.noter = n
	}
	var httpsOnly Router
	if ho, ok := h.EST.(HTTPSOnlyRouter); ok {
		httpsOnly = plainRefusal{ho, toHTTPS}
	} else if h.EST == nil {
		httpsOnly = noEST{}
	}
	return mount(h.SCEP, ndes, h.CRL, h.OCSP, h.Metrics, h.Health, toHTTPS, httpsOnly)
}

// plainRefusal mounts an HTTPSOnlyRouter's refusal on the plain listener,
// for every path under its prefixes (an unclean one too, which the mux
// would otherwise redirect), naming the HTTPS listener as hr names it.
type plainRefusal struct {
	router HTTPSOnlyRouter
	hr     httpsRedirect
}

func (pr plainRefusal) refuse(w http.ResponseWriter, r *http.Request) {
	base := ""
	if pr.hr.port != "" {
		base = pr.hr.base(r)
	}
	pr.router.RefusePlainHTTP(w, r, base)
}

// Routes refuses every path under each prefix, and the prefix without its
// slash ("/.well-known/est"), which the mux would otherwise redirect to
// the prefix, over plain HTTP, a client following with its credentials.
func (pr plainRefusal) Routes() map[string]http.Handler {
	routes := map[string]http.Handler{}
	for _, prefix := range pr.router.HTTPSOnlyPrefixes() {
		routes[prefix] = http.HandlerFunc(pr.refuse)
		if root := strings.TrimSuffix(prefix, "/"); root != prefix && root != "" {
			routes[root] = http.HandlerFunc(pr.refuse)
		}
	}
	return routes
}

func (pr plainRefusal) UncleanPaths() map[string]http.Handler {
	routes := map[string]http.Handler{}
	for _, prefix := range pr.router.HTTPSOnlyPrefixes() {
		routes[prefix] = http.HandlerFunc(pr.refuse)
	}
	return routes
}

// noEST answers every EST path on the plain listener of a server with no
// HTTPS listener (--est-listen off) with 404 saying why, rather than the
// mux's bare "page not found", which tells a device's installer nothing.
type noEST struct{}

func (noEST) refuse(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "404 not found: EST is served over HTTPS only (RFC 7030 section 3.3), and this server has no HTTPS listener (--est-listen is off)", http.StatusNotFound)
}

// Routes refuses every path under the EST prefix and the prefix without
// its slash, which the mux would otherwise redirect.
func (n noEST) Routes() map[string]http.Handler {
	return map[string]http.Handler{est.PathPrefix: http.HandlerFunc(n.refuse), strings.TrimSuffix(est.PathPrefix, "/"): http.HandlerFunc(n.refuse)}
}

func (n noEST) UncleanPaths() map[string]http.Handler {
	return map[string]http.Handler{est.PathPrefix: http.HandlerFunc(n.refuse)}
}

// TLSMux is the handler of the HTTPS listener. Every answer carries
// Strict-Transport-Security, whichever router gives it (the API's and the
// console's set it themselves too).
func TLSMux(h Handlers) (http.Handler, error) {
	var misplaced Router
	if h.EST != nil {
		misplaced = &misplacedEST{}
	}
	mux, err := mount(h.SCEP, h.EST, h.NDES, h.CRL, h.OCSP, h.Metrics, h.Health, h.API, h.Console, misplaced)
	if err != nil {
		return nil, err
	}
	return strictTransport(mux), nil
}

// misplacedEST answers a path that no route takes and that holds EST's
// prefix after other segments with 404 saying where EST's paths are:
// strongSwan's pki (5.9) puts its --url's path first, so a profile's label
// given there asks for /LABEL/.well-known/est/simpleenroll. So is
// /.well-known itself (with its slash or not), above EST's paths: a client
// given the server's base URL to explore. Any other unknown path keeps the
// mux's plain 404.
//
// Its "/" matches every method, so a path served for other methods only
// (POST /healthz, POST /metrics) comes here rather than to the mux's own
// 405: it is answered as the mux answers it on the plain listener, 405
// with Allow (r128).
type misplacedEST struct {
	mux *http.ServeMux // the listener's, to learn a path's methods
}

// useMux implements muxUser.
func (m *misplacedEST) useMux(mux *http.ServeMux) { m.mux = mux }

func (m *misplacedEST) Routes() map[string]http.Handler {
	return map[string]http.Handler{"/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Pattern = "" // no route took it: metrics count it as unmatched
		if allow := allowedMethods(m.mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		if wellKnown := path.Dir(strings.TrimSuffix(est.PathPrefix, "/")); r.URL.Path == wellKnown || r.URL.Path == wellKnown+"/" {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "404 not found: nothing is served at "+r.URL.Path+"; EST is, at "+est.PathPrefix+"OPERATION, or "+
				est.PathPrefix+"LABEL/OPERATION for a profile's label (RFC 7030 section 3.2.2)", http.StatusNotFound)
			return
		}
		if !strings.Contains(r.URL.Path, strings.TrimSuffix(est.PathPrefix, "/")) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "404 not found: EST's paths begin with "+est.PathPrefix+" (RFC 7030 section 3.2.2): "+
			est.PathPrefix+"OPERATION, or "+est.PathPrefix+"LABEL/OPERATION for a profile's label; "+
			"a client that puts its URL's path before "+strings.TrimSuffix(est.PathPrefix, "/")+" (strongSwan's pki) reaches the default profile only",
			http.StatusNotFound)
	})}
}

// probedMethods are the methods a route may be mounted for.
var probedMethods = []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPatch, http.MethodPost, http.MethodPut}

// allowedMethods are the methods, in ServeMux's order (sorted), for which
// a route of mux other than the catch-all "/" takes r's path: none when
// no route does, or mux is nil.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	if mux == nil {
		return nil
	}
	var allow []string
	probe := r.Clone(r.Context())
	for _, m := range probedMethods {
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// muxUser is a Router that needs the mux it is mounted on.
type muxUser interface {
	useMux(*http.ServeMux)
}

// httpsRedirect sends the console and the API from the plain listener to
// the HTTPS one: a GET is redirected (a person typed http://), anything
// else is refused, so no credential is sent again in clear. An API request
// with an Authorization header is refused whatever its method: its token
// crossed the network in clear, which the client is told, and a client
// following a redirect would send it again. So is a console request whose
// Authorization header holds an API token (a script that took the console
// for the API): redirected, it would learn nothing of it. Another header
// there (a proxy's or a browser's Basic credentials for the site) leaves
// a console GET redirected, as a person typing http:// expects. A token
// of this server's in the header, in whatever form, is recorded either
// way (ClearTokenNoter). A path with an empty, "." or
// ".." segment is refused (404), not redirected: ServeMux would send it to
// its cleaned form, elsewhere. Without an HTTPS listener (port "") there is
// no console: 404, saying why. The API's refusals are in its JSON shape.
type httpsRedirect struct {
	names []string
	host  string // the HTTPS listener's address; "" for every address
	port  string
	noter ClearTokenNoter // the API's, to log and audit a token sent here; may be nil
}

// ClearTokenNoter is implemented by the API's handler: told of a request
// for the console or the API on the plain listener that carried an
// Authorization header, it logs and audits the token that crossed the
// network in clear, by name, so that the operator, not only the client,
// learns which one to revoke. It reports whether the header held anything
// in an API token's form (a bearer token, Basic's password, a bare value),
// whether or not a token of this server's.
type ClearTokenNoter interface {
	NoteTokenInClear(r *http.Request) bool
}

func (hr httpsRedirect) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	isAPI := isAPIPath(r.URL.Path)
	refuse := func(status int, msg string) {
		if isAPI {
			// A 403 carries the API's own 403 detail; a 404 (a path that
			// is no route's) null, as the API's 404 for one does.
			var detail any
			if status == http.StatusForbidden {
				detail = map[string]string{"code": "forbidden"}
			}
			httpjson.WriteError(w, status, msg, detail)
			return
		}
		http.Error(w, fmt.Sprintf("%d %s: %s", status, strings.ToLower(http.StatusText(status)), msg), status)
	}
	hasAuth := len(r.Header.Values("Authorization")) > 0
	tokenForm := false
	if hasAuth && hr.noter != nil {
		tokenForm = hr.noter.NoteTokenInClear(r)
	}
	sentToken := hasAuth && (isAPI || tokenForm)
	const crossed = "; the Authorization header of this request crossed the network in the clear: unless this was a test, " +
		"revoke its token (scepter admin token revoke NAME) and use a new one"
	if hr.port == "" {
		msg := "the console and the API are served on the HTTPS listener, and this server has none (--est-listen is off)"
		if sentToken {
			msg += crossed
		}
		refuse(http.StatusNotFound, msg)
		return
	}
	clean := isClean(r.URL.EscapedPath())
	target := hr.url(r)
	if !clean {
		target = hr.base(r) + "/ui/"
		if isAPI {
			target = hr.base(r) + "/api/v1/"
		}
	}
	switch {
	case sentToken && isAPI:
		refuse(http.StatusForbidden, "the API is served over HTTPS only: "+target+crossed)
	case sentToken:
		refuse(http.StatusForbidden, "the console is served over HTTPS only, and takes no API token (the API is at "+hr.base(r)+"/api/v1/): "+target+crossed)
	case !clean:
		refuse(http.StatusNotFound, fmt.Sprintf("there is no %s (a path with an empty, \".\" or \"..\" segment is not served, nor redirected to its cleaned form); "+
			"the console and the API are served over HTTPS only: %s", pki.Clip(r.URL.Path, 200), target))
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		refuse(http.StatusForbidden, "the console and the API are served over HTTPS only: "+target)
	default:
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	}
}

// Routes mounts serve at /ui/ and /api/, and at /ui and /api, which the
// mux would otherwise redirect to /ui/ and /api/ on this listener (a bare
// 307 that a client follows with its token and its POST, in clear again).
func (hr httpsRedirect) Routes() map[string]http.Handler {
	h := http.HandlerFunc(hr.serve)
	return map[string]http.Handler{"/ui/": h, "/api/": h, "/ui": h, "/api": h}
}

// UncleanPaths implements UncleanPathRouter: serve refuses those paths
// itself rather than the mux redirecting them.
func (hr httpsRedirect) UncleanPaths() map[string]http.Handler {
	h := http.HandlerFunc(hr.serve)
	return map[string]http.Handler{"/ui/": h, "/api/": h}
}

// isAPIPath reports whether a path is the admin API's: /api/ and under
// it, or /api.
func isAPIPath(p string) bool {
	return p == "/api" || strings.HasPrefix(p, "/api/")
}

// url is the request's URL on the HTTPS listener: at the certificate's
// name that the request's Host names, else at its first name (of those
// that reach the listener), else at the listener's address, else (a
// listener on every address) at the address the client reached. A Host that is none of the names is not
// followed: anyone who can make a browser send one (a DNS name pointed at
// this server) would otherwise choose where the redirect goes.
func (hr httpsRedirect) url(r *http.Request) string {
	u := hr.base(r) + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// base is url without the path: "https://HOST:PORT".
func (hr httpsRedirect) base(r *http.Request) string {
	asked := r.Host
	if h, _, err := net.SplitHostPort(asked); err == nil {
		asked = h
	}
	asked = strings.TrimSuffix(strings.TrimPrefix(asked, "["), "]")
	host := ""
	for _, name := range hr.names {
		if strings.EqualFold(name, asked) {
			host = name
			break
		}
	}
	if host == "" && len(hr.names) > 0 {
		host = hr.names[0]
	}
	if host == "" {
		host = hr.host
	}
	if host == "" {
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host, _, _ = net.SplitHostPort(a.String())
		}
	}
	if host == "" {
		host = "localhost"
	}
	return "https://" + net.JoinHostPort(host, hr.port)
}

// ListenerHost is the address a listener is bound to, as the plain
// listener's redirects name it ("::1", "192.0.2.10"), or "" when it
// listens on every address (0.0.0.0, ::).
func ListenerHost(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil || ap.Addr().IsUnspecified() {
		return ""
	}
	return ap.Addr().Unmap().WithZone("").String()
}

// NamesReaching are those of a certificate's names that reach a listener
// bound to host (ListenerHost): all of them when host is "" (every
// address); else an IP name that is host, and a DNS name that lookup
// resolves to host among its addresses. Another name would send a client
// where nothing listens: the plain listener on 127.0.0.1 and the HTTPS one
// on ::1 both hold 127.0.0.1 in the default certificate.
func NamesReaching(ctx context.Context, names []string, host string, lookup func(ctx context.Context, name string) ([]netip.Addr, error)) []string {
	if host == "" {
		return names
	}
	bound, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	reaches := func(a netip.Addr) bool { return a.Unmap().WithZone("") == bound.Unmap().WithZone("") }
	var out []string
	for _, name := range names {
		if ip, err := netip.ParseAddr(name); err == nil {
			if reaches(ip) {
				out = append(out, name)
			}
			continue
		}
		addrs, err := lookup(ctx, name)
		if err == nil && slices.ContainsFunc(addrs, reaches) {
			out = append(out, name)
		}
	}
	return out
}

// underPrefix reports whether p is prefix or a path below it.
func underPrefix(p, prefix string) bool {
	rest, ok := strings.CutPrefix(p, prefix)
	return ok && (rest == "" || strings.HasPrefix(rest, "/"))
}

func mount(routers ...Router) (handler http.Handler, err error) {
	mux := http.NewServeMux()
	defer func() {
		// ServeMux panics on a conflicting pattern: a programming error,
		// reported at start rather than crashing it.
		if r := recover(); r != nil {
			handler, err = nil, fmt.Errorf("server: %v", r)
		}
	}()
	raw := rawPrefixes{}
	unclean := rawPrefixes{}
	folded := map[string]string{} // lower case -> the path as mounted
	misspelt := map[string]http.Handler{}
	for _, r := range routers {
		if r == nil {
			continue
		}
		for pattern, handler := range r.Routes() {
			mux.Handle(pattern, handler)
		}
		if mu, ok := r.(muxUser); ok {
			mu.useMux(mux)
		}
		if fr, ok := r.(FoldingRouter); ok {
			for _, p := range fr.FoldedPaths() {
				folded[strings.ToLower(p)] = p
			}
		}
		if mr, ok := r.(MisspeltPathRouter); ok {
			for prefix, h := range mr.MisspeltPrefixes() {
				misspelt[prefix] = h
			}
		}
		if pr, ok := r.(PrefixRouter); ok {
			for prefix, h := range pr.RawPrefixes() {
				if _, dup := raw[prefix]; dup {
					return nil, fmt.Errorf("server: raw prefix %s mounted twice", prefix)
				}
				raw[prefix] = h
			}
		}
		if ur, ok := r.(UncleanPathRouter); ok {
			for prefix, h := range ur.UncleanPaths() {
				if _, dup := unclean[prefix]; dup {
					return nil, fmt.Errorf("server: unclean-path prefix %s mounted twice", prefix)
				}
				unclean[prefix] = h
			}
		}
	}
	if len(raw) == 0 && len(unclean) == 0 && len(folded) == 0 && len(misspelt) == 0 {
		return mux, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := folded[strings.ToLower(r.URL.Path)]; ok && p != r.URL.Path {
			u := *r.URL
			u.Path, u.RawPath = p, ""
			asked := r
			r = r.WithContext(r.Context())
			r.URL = &u
			// The mux records its pattern on the copy; metrics read it
			// on the request they passed in.
			defer func() { asked.Pattern = r.Pattern }()
		}
		for prefix, h := range misspelt {
			if underPrefix(strings.ToLower(r.URL.Path), strings.ToLower(prefix)) && !underPrefix(r.URL.Path, prefix) {
				h.ServeHTTP(w, r)
				return
			}
		}
		for prefix, h := range raw {
			if strings.HasPrefix(r.URL.Path, prefix) {
				// No mux pattern took it: the prefix names the route
				// (metrics label requests by pattern, never by path).
				r.Pattern = prefix
				h.ServeHTTP(w, r)
				return
			}
		}
		if r.Method != http.MethodConnect && !isClean(r.URL.EscapedPath()) {
			for prefix, h := range unclean {
				if strings.HasPrefix(r.URL.Path, prefix) {
					r.Pattern = prefix
					h.ServeHTTP(w, r)
					return
				}
			}
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// isClean reports whether an escaped path has no empty, "." or ".."
// segment (a trailing "/" is kept), escaped dots counted: ServeMux would
// redirect a path with a literal one to its cleaned form, and takes one
// spelled "%2e" or "%2E%2E" as it is, though it reads as the literal one
// (r.URL.Path holds "/./"), so that each form would be answered its own
// way.
func isClean(escaped string) bool {
	if escaped == "" || escaped[0] != '/' {
		return false
	}
	clean := path.Clean(escaped)
	if strings.HasSuffix(escaped, "/") && clean != "/" {
		clean += "/"
	}
	if clean != escaped {
		return false
	}
	for seg := range strings.SplitSeq(escaped, "/") {
		if strings.Contains(seg, "%") {
			if s, err := url.PathUnescape(seg); err == nil && (s == "." || s == "..") {
				return false
			}
		}
	}
	return true
}

// rawPrefixes are the PrefixRouter routes, by path prefix.
type rawPrefixes map[string]http.Handler

// loopbackOnly serves a router's routes to loopback clients only, and
// refuses everyone else with 403 and the https URL to use instead. The
// client is r.RemoteAddr: the TCP peer, or the forwarded client when
// Guard.Handler trusted a proxy (a reverse proxy on this host makes every
// request look local unless it is listed in Limits.TrustedProxies).
type loopbackOnly struct {
	Router
	httpsPort string
	hr        httpsRedirect // names the HTTPS listener when it listens on one address
}

func (lo loopbackOnly) Routes() map[string]http.Handler {
	routes := map[string]http.Handler{}
	for pattern, h := range lo.Router.Routes() {
		routes[pattern] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isLoopback(r.RemoteAddr) {
				h.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, lo.refusal(r), http.StatusForbidden)
		})
	}
	return routes
}

// FoldedPaths keeps the wrapped router's case-insensitive paths.
func (lo loopbackOnly) FoldedPaths() []string {
	if fr, ok := lo.Router.(FoldingRouter); ok {
		return fr.FoldedPaths()
	}
	return nil
}

func (lo loopbackOnly) refusal(r *http.Request) string {
	msg := lo.where(r)
	if r.Header.Get("Authorization") != "" {
		// As the API's and EST's refusals over plain HTTP say: the page's
		// password went over the network in clear.
		msg += "; the credentials this request carried crossed the network in clear: change the NDES page's password"
	}
	return msg
}

// where is the refusal's first part: what the page is and the HTTPS URL
// it is served at.
func (lo loopbackOnly) where(r *http.Request) string {
	const msg = "403 forbidden: this page hands out credentials and is served over HTTPS only"
	if lo.httpsPort == "" {
		return msg + " (this server has no HTTPS listener: see --est-listen)"
	}
	if lo.hr.host != "" {
		// The HTTPS listener is on one address, which the host the
		// client asked for may not reach: named as the redirects name it.
		return msg + ": " + lo.hr.base(r) + r.URL.EscapedPath()
	}
	// The host the client asked for, or the address it reached.
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host, _, _ = net.SplitHostPort(a.String())
		}
	}
	if host == "" {
		return msg + " (port " + lo.httpsPort + ")"
	}
	return msg + ": https://" + net.JoinHostPort(host, lo.httpsPort) + r.URL.EscapedPath()
}

// isLoopback reports whether a RemoteAddr (host:port, or a bare address)
// is 127.0.0.0/8 or ::1.
func isLoopback(remote string) bool {
	a, err := netip.ParseAddr(pki.ClientHost(remote))
	return err == nil && a.Unmap().IsLoopback()
}
