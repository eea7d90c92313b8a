// Package ndes serves an NDES-compatible one-time password page, so MDMs
// and scripts that fetch challenge passwords from Microsoft's Network Device
// Enrollment Service (Fleet's NDES integration, Zentral, ManageEngine,
// PowerShell modules, hand-written connectors) work against scepter
// unchanged: point their "NDES admin URL" at /certsrv/mscep_admin/ here.
//
// # What real NDES answers, and what its clients parse
//
// NDES serves GET /certsrv/mscep_admin/ (IIS: the path is case-insensitive;
// NDES's own pages spell it /CertSrv/mscep_admin) behind Windows
// authentication (NTLM/Negotiate, Basic when enabled). On success it answers
// 200 with an HTML page whose key sentences are
//
//	The thumbprint (hash value) for the CA certificate is: <B> A656FA66 AB12B433 … </B>
//	The enrollment challenge password is: <B> 1ED0DD50F7459D6E </B>
//	This password can be used only once and will expire within 60 minutes.
//
// The page is UTF-16 little-endian, starting with the byte order mark FF FE,
// and ends with a NUL character after </HTML>; its <Meta> nevertheless says
// charset=UTF-8. The other states NDES reports, also as 200 pages, are
// "The password cache is full." (by default NDES keeps at most 5 unused
// passwords, for 60 minutes) and "You do not have sufficient permission to
// enroll with SCEP." (the account lacks enroll rights on the template).
//
// Where this comes from (public code of NDES clients and emulators, found
// with the code and issue search):
//
//   - Fleet (fleetdm/fleet, ee/server/service/scep_proxy.go): regex
//     `(?i)The enrollment challenge password is: <B> (?P<password>\S*)` on
//     the body decoded with golang.org/x/text's BOMOverride; the fallback
//     without a BOM was UTF-16BE until PR #29708 (June 2025, "Microsoft uses
//     UTF16LE and not UTF16BE") and is UTF-16LE since. Substrings
//     "The password cache is full." and "You do not have sufficient
//     permission to enroll with SCEP." select its error messages. Its client
//     (go-ntlmssp Negotiator) first asks without credentials and sends Basic
//     only after a 401 that does not offer NTLM/Negotiate. Fleet's blog "How
//     to test a Windows NDES SCEP server" (Windows Server 2022) notes the
//     page is UTF-16 and shows its text.
//   - Zentral (zentral/contrib/mdm/scep/microsoft_ca.py): Python
//     bytes.decode("utf-16") (BOM decides the byte order) and regex
//     `challenge password is: <B> ([A-Z0-9]{16,32}) </B>`.
//   - ManageEngine MDM (AdcsResponseHandler.java): tries UTF-16 (BOM, else
//     big-endian), UTF-8, …, UTF-16LE until the text contains "The
//     enrollment challenge password is", then takes what lies between
//     "The enrollment challenge password is: <B> " and
//     " </B> <P> This password can be used only once"; "The password cache
//     is full" is its cache-limit state.
//   - PSNDESEnrollment (Get-NDESOTP.ps1): "contains a Byte Order mark,
//     probably UTF-16 LE encoded", decoded with Encoding.Unicode.
//   - A .NET connector reads the page with StreamReader (which only detects
//     UTF-16 by its BOM) and strips the exact tail
//     " </B> <P> This password can be used only once and will expire within
//     60 minutes. … </P> <P></Font></Body></HTML>\0", NUL included.
//   - Fleet's mock-ndes and an independent C# NDES emulator reproduce the
//     same markup (Meta charset=UTF-8, the teal title table, the
//     locPageDesc paragraph).
//
// # What this package serves
//
// The same markup and sentences, UTF-16LE with the FF FE byte order mark
// (which every parser above reads correctly, including Fleet before and after
// its endianness fix and decoders whose BOM-less default is big-endian) and
// the trailing NUL, with Content-Type "text/html; charset=utf-16". The
// password sits exactly where NDES puts it: after "The enrollment challenge
// password is: <B> " and before " </B> <P> This password can be used only
// once". The thumbprint is the configured CA hash in upper-case groups of 8
// hex digits, as NDES shows it (the page in Fleet's blog shows 32 digits, an
// MD5 hash; MD5, SHA-1 and SHA-256 are accepted here); without one the
// thumbprint sentence is left out.
//
// The password is a fresh one-time challenge from the enrollment service,
// valid for Config.TTL (default 60 minutes, the NDES default) and bound to
// Config.Profile. Our challenges are 32 characters of upper-case base32, not
// NDES's 16 hex digits: every parser above that reads the text between the
// markers takes them, but a script that looks for a run of exactly 16 hex
// digits does not.
//
// There is no password cache, so the "cache is full" state never occurs,
// and one account has the right to fetch passwords, so neither does the
// permission state. Wrong or missing credentials get 401 with
// `WWW-Authenticate: Basic realm="scepter"`; only GET and HEAD are allowed,
// and HEAD answers the headers without minting a challenge. The password is
// never logged; the challenge's public ID is.
//
// Five wrong logins from one address within 15 minutes lock that address
// out: 429 with Retry-After, one minute, doubling with each further wrong
// login up to 15 minutes, and a right password is refused as well while it
// lasts (see Lockout). Each wrong login is an audit event
// (ndes.login_failed, by "ndes:ADDR", with the user name tried: as sent
// when it is the page's, otherwise only as a keyed tag, since it may be the
// password typed into the wrong field), the one that locks the address out
// is ndes.login_locked, and the requests refused during a lockout are
// recorded once a minute with their count (RefusalRecordEvery), as the
// console records its failed logins. Because the credentials and the passwords the page
// hands out must not cross the network in clear, the server mounts it on
// the HTTPS listener, and on plain HTTP only for loopback clients.
package ndes

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/pki"
)

// Minter creates one-time challenges; the admin service implements it.
type Minter interface {
	NewChallenge(ctx context.Context, ttl time.Duration, profile, actor string) (string, pki.Challenge, error)
}

// AuditLog is the audit trail the page records its refused logins in; the
// store implements it.
type AuditLog interface {
	AppendAudit(ctx context.Context, events ...pki.AuditEvent) error
	// LoginNameKey is the store's key of names that are no account's
	// (credential.NameTag), the same on every node; candidate is stored
	// when there is none yet.
	LoginNameKey(ctx context.Context, candidate []byte) ([]byte, error)
}

// Config configures the page.
type Config struct {
	// Username and Password protect the page (HTTP Basic); both required.
	Username string
	Password string
	// TTL is how long each password stays valid; 0 means DefaultTTL.
	// Between MinTTL and MaxTTL.
	TTL time.Duration
	// Profile binds the passwords to one profile; empty: any profile.
	Profile string
	// CAThumbprint is the hex hash of the CA certificate shown on the page
	// (SHA-1 recommended; MD5 and SHA-256 accepted; spaces and colons
	// ignored). Optional.
	CAThumbprint string
	// CACert, when set, is the CA certificate whose SHA-1 thumbprint the
	// page shows, asked for on every request (instead of CAThumbprint), so
	// the page follows a CA rollover's switch as GetCACert does.
	CACert func() *x509.Certificate
	// Lockout is the back-off after failed logins; zero fields take the
	// defaults.
	Lockout Lockout
	// Clock times the lockouts; nil means the system clock.
	Clock pki.Clock
	// Audit records the refused logins; required.
	Audit AuditLog
}

const (
	// DefaultTTL is NDES's default password lifetime.
	DefaultTTL = 60 * time.Minute
	// MinTTL and MaxTTL bound Config.TTL; MaxTTL is the enrollment
	// service's limit for one-time challenges.
	MinTTL = time.Minute
	MaxTTL = 30 * 24 * time.Hour
	// Realm is the Basic authentication realm.
	Realm = "scepter"
)

// Paths are the paths Register serves, as NDES spells them in lower case
// and in the /CertSrv/ form its own pages show.
var Paths = []string{
	"/certsrv/mscep_admin/",
	"/certsrv/mscep_admin",
	"/certsrv/mscep_admin/default.aspx",
	"/CertSrv/mscep_admin/",
	"/CertSrv/mscep_admin",
	"/CertSrv/mscep_admin/default.aspx",
}

// Handler serves the page. It is an http.Handler for Paths, in any letter
// case as IIS serves them (FoldedPaths), and answers 404 for any other
// path.
type Handler struct {
	minter     Minter
	userHash   [32]byte
	passHash   [32]byte
	ttl        time.Duration
	minutes    int
	profile    string
	thumbprint string // formatted, "" to leave the sentence out
	caCert     func() *x509.Certificate
	failures   *failures
	clock      pki.Clock
	log        *slog.Logger
	audit      AuditLog
	nameKey    credential.NameKey // the store's LoginNameKey, read once
}

// New checks cfg and returns the handler. It refuses to build one without
// both a username and a password.
func New(m Minter, cfg Config, log *slog.Logger) (*Handler, error) {
	if m == nil {
		return nil, errors.New("ndes: a challenge minter is required")
	}
	if cfg.Audit == nil {
		return nil, errors.New("ndes: an audit trail is required: refused logins are audit events")
	}
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("ndes: the password page needs a username and a password")
	}
	if strings.Contains(cfg.Username, ":") {
		return nil, errors.New("ndes: the username must not contain ':' (HTTP Basic cannot carry it)")
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < MinTTL || ttl > MaxTTL {
		return nil, fmt.Errorf("ndes: password lifetime must be between %s and %s", MinTTL, MaxTTL)
	}
	thumb, err := formatThumbprint(cfg.CAThumbprint)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := cfg.Clock
	if clock == nil {
		clock = pki.SystemClock{}
	}
	return &Handler{
		minter:     m,
		userHash:   sha256.Sum256([]byte(cfg.Username)),
		passHash:   sha256.Sum256([]byte(cfg.Password)),
		ttl:        ttl,
		minutes:    int((ttl + time.Minute - 1) / time.Minute),
		profile:    cfg.Profile,
		thumbprint: thumb,
		caCert:     cfg.CACert,
		failures:   newFailures(cfg.Lockout),
		clock:      clock,
		log:        log,
		audit:      cfg.Audit,
	}, nil
}

// formatThumbprint turns a hex hash into NDES's display: upper case, groups
// of 8 digits separated by spaces.
func formatThumbprint(s string) (string, error) {
	s = strings.NewReplacer(" ", "", ":", "", "\t", "").Replace(s)
	if s == "" {
		return "", nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", errors.New("ndes: CA thumbprint must be hex")
	}
	switch len(b) {
	case 16, 20, 32: // MD5, SHA-1, SHA-256
	default:
		return "", fmt.Errorf("ndes: CA thumbprint has %d bytes; want 20 (SHA-1), 16 (MD5) or 32 (SHA-256)", len(b))
	}
	s = strings.ToUpper(hex.EncodeToString(b))
	var groups []string
	for i := 0; i < len(s); i += 8 {
		groups = append(groups, s[i:i+8])
	}
	return strings.Join(groups, " "), nil
}

// Routes returns the handler's ServeMux patterns: every path in Paths,
// each exactly (not its subtree). The server mounts them.
func (h *Handler) Routes() map[string]http.Handler {
	routes := map[string]http.Handler{}
	for _, p := range Paths {
		if strings.HasSuffix(p, "/") {
			p += "{$}" // exactly this path, not the subtree
		}
		routes[p] = h
	}
	return routes
}

// FoldedPaths are Paths, which NDES clients spell in any case
// (/CERTSRV/MSCEP_ADMIN/): IIS ignores it. Implements server.FoldingRouter.
func (h *Handler) FoldedPaths() []string {
	var lower []string
	for _, p := range Paths {
		if p == strings.ToLower(p) {
			lower = append(lower, p)
		}
	}
	return lower
}

func isPagePath(p string) bool {
	switch strings.ToLower(p) {
	case "/certsrv/mscep_admin/", "/certsrv/mscep_admin", "/certsrv/mscep_admin/default.aspx":
		return true
	}
	return false
}

// ServeHTTP answers one request for the page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isPagePath(r.URL.Path) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	host := remoteHost(r)
	key := clientKey(host)
	now := h.clock.Now()
	// A locked-out address is refused before its credentials are looked
	// at: a right guess now must look exactly like a wrong one.
	if wait, n := h.failures.locked(key, now); wait > 0 {
		if n > 0 {
			until := now.Add(wait).UTC().Format(time.RFC3339)
			h.log.Warn("ndes: password page: login refused unchecked: address locked out", "remote", host, "until", until, "attempts", n)
			h.record(r, pki.AuditEvent{Time: now, Type: pki.EventNDESLoginFailed, Actor: "ndes:" + host, Outcome: "failure",
				Reason: fmt.Sprintf("locked out until %s, not checked: %s from this address since the last such record", until, pki.Plural(n, "attempt")),
				Detail: h.userTried(r)})
		}
		tooManyFailures(w, wait)
		return
	}
	if !h.authorized(r) {
		_, _, present := r.BasicAuth()
		if !present { // how Fleet's client starts: not a failure
			unauthorized(w)
			return
		}
		ev := pki.AuditEvent{Time: now, Type: pki.EventNDESLoginFailed, Actor: "ndes:" + host, Outcome: "failure",
			Reason: "wrong credentials", Detail: h.userTried(r)}
		if lock := h.failures.fail(key, now); lock > 0 {
			h.log.Warn("ndes: password page: wrong credentials; address locked out", "remote", host, "for", lock.String())
			ev.Type, ev.Reason = pki.EventNDESLoginLocked, "wrong credentials; locked out until "+now.Add(lock).UTC().Format(time.RFC3339)
			h.record(r, ev)
			tooManyFailures(w, lock)
			return
		}
		h.log.Warn("ndes: password page: wrong credentials", "remote", host)
		h.record(r, ev)
		unauthorized(w)
		return
	}
	h.failures.succeed(key)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-16")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Pragma", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		// The headers a GET would get; no challenge is spent on a HEAD.
		w.WriteHeader(http.StatusOK)
		return
	}
	secret, ch, err := h.minter.NewChallenge(r.Context(), h.ttl, h.profile, "ndes:"+host)
	if err != nil {
		h.log.Error("ndes: password page: cannot create a challenge", "remote", host, "profile", h.profile, "code", string(pki.ErrorCode(err)), "err", err)
		writePage(w, http.StatusInternalServerError, errorPage)
		return
	}
	h.log.Info("ndes: challenge issued", "challenge_id", ch.ID, "profile", h.profile, "expires", ch.ExpiresAt.UTC().Format(time.RFC3339), "remote", host)
	writePage(w, http.StatusOK, h.passwordPage(secret))
}

// record appends a refused login to the audit trail. The refusal stands
// either way: a write that fails is logged, and the answer is the same.
func (h *Handler) record(r *http.Request, ev pki.AuditEvent) {
	// The client may have hung up; its refusal is recorded all the same.
	if err := h.audit.AppendAudit(context.WithoutCancel(r.Context()), ev); err != nil {
		h.log.Warn("ndes: password page: a refused login is not in the audit trail", "event", ev.Type, "actor", ev.Actor, "reason", ev.Reason, "err", err)
	}
}

// userTried names, for the audit trail, the user name a request tried: as
// sent when it is the page's, otherwise only by its tag (credential.NameTag
// under the store's LoginNameKey, as the console and EST name unknown
// names), since another name is often the password typed into the user
// field, and every auditor reads the trail. Never the password.
func (h *Handler) userTried(r *http.Request) string {
	name, _, ok := r.BasicAuth()
	switch {
	case !ok:
		return "no credentials"
	case name == "":
		return "no user name"
	}
	u := sha256.Sum256([]byte(name))
	if subtle.ConstantTimeCompare(u[:], h.userHash[:]) == 1 {
		return "user " + name
	}
	key, err := h.loginNameKey(r.Context())
	if err != nil {
		h.log.Warn("ndes: password page: an unknown user name left untagged", "err", err)
		return "unknown name (no tag: the store's key is unreadable)"
	}
	return "unknown name (tag " + credential.NameTag(key, name) + ")"
}

// loginNameKey is the store's LoginNameKey, made by the first node that
// needs it and then the same for every node and every run, read once.
func (h *Handler) loginNameKey(ctx context.Context) ([]byte, error) {
	key, err := h.nameKey.Get(context.WithoutCancel(ctx), h.audit)
	if err != nil {
		return nil, fmt.Errorf("ndes: the key of unknown names: %w", err)
	}
	return key, nil
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	http.Error(w, "401 unauthorized", http.StatusUnauthorized)
}

// tooManyFailures answers a locked-out address: 429 and how long to wait,
// in whole seconds rounded up.
func tooManyFailures(w http.ResponseWriter, wait time.Duration) {
	seconds := int64((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(seconds, 10))
	// The page is read by a person, who is told when, as the other
	// lockouts tell (r138).
	http.Error(w, "429 too many failed logins from this address; try again in "+pki.ShortDuration(time.Duration(seconds)*time.Second), http.StatusTooManyRequests)
}

// authorized compares user and password in constant time, also in their
// lengths (both sides are hashed), and always compares both.
func (h *Handler) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	match := subtle.ConstantTimeCompare(u[:], h.userHash[:]) & subtle.ConstantTimeCompare(p[:], h.passHash[:])
	return ok && match == 1
}

func remoteHost(r *http.Request) string { return pki.ClientHost(r.RemoteAddr) }

// The page follows NDES's markup (see the package comment). Its Meta says
// UTF-8 like NDES's does; the byte order mark, which takes precedence in
// browsers and in every client we know of, says UTF-16LE.
const (
	pageHead = `<HTML><Head><Meta HTTP-Equiv="Content-Type" Content="text/html; charset=UTF-8">` +
		`<Title>Network Device Enrollment Service</Title></Head><Body BgColor=#FFFFFF><Font ID=locPageFont Face="Arial">` +
		`<Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080><TR><TD>` +
		`<Font ID=locPageTitleFont Face="Arial" Size=-1 Color=#FFFFFF><LocID ID=locMSCertSrv>Network Device Enrollment Service</LocID></Font>` +
		`</TD></TR></Table>` +
		`<P ID=locPageTitle> Network Device Enrollment Service allows you to obtain certificates for routers or other network devices using the Simple Certificate Enrollment Protocol (SCEP). </P>`
	pageTail = ` <P ID=locPageDesc> For more information see  <A HREF=http://go.microsoft.com/fwlink/?LinkId=67852>Using Network Device Enrollment Service </A>. </P>` +
		` <P></Font></Body></HTML>`

	errorPage = pageHead + `<P> A challenge password could not be created. Please contact your system administrator. </P>` + pageTail
)

func (h *Handler) passwordPage(secret string) string {
	var b strings.Builder
	b.WriteString(pageHead)
	b.WriteString(`<P> To complete certificate enrollment for your network device you will need the following information: `)
	if thumbprint := h.currentThumbprint(); thumbprint != "" {
		b.WriteString(`<P> The thumbprint (hash value) for the CA certificate is: <B> `)
		b.WriteString(thumbprint)
		b.WriteString(` </B> `)
	}
	b.WriteString(`<P> The enrollment challenge password is: <B> `)
	b.WriteString(html.EscapeString(secret))
	b.WriteString(` </B> <P> This password can be used only once and will expire within `)
	b.WriteString(strconv.Itoa(h.minutes))
	b.WriteString(` minutes. <P> Each enrollment requires a new challenge password. You can refresh this web page to obtain a new challenge password. </P>`)
	b.WriteString(pageTail)
	return b.String()
}

// currentThumbprint is the formatted SHA-1 of the CA certificate in charge
// now when Config.CACert is set, else the configured thumbprint.
func (h *Handler) currentThumbprint() string {
	if h.caCert == nil {
		return h.thumbprint
	}
	cert := h.caCert()
	if cert == nil {
		return ""
	}
	sum := sha1.Sum(cert.Raw)
	thumbprint, _ := formatThumbprint(hex.EncodeToString(sum[:])) // 20 bytes of hex: no error
	return thumbprint
}

// writePage sends s as NDES does: UTF-16LE with a byte order mark, and a
// terminating NUL character.
func writePage(w http.ResponseWriter, status int, s string) {
	body := encodeUTF16LE(s)
	w.Header().Set("Content-Type", "text/html; charset=utf-16")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// encodeUTF16LE returns FF FE, s in UTF-16LE, and a NUL character.
func encodeUTF16LE(s string) []byte {
	units := utf16.Encode([]rune(s))
	out := make([]byte, 2, 2+2*len(units)+2)
	out[0], out[1] = 0xFF, 0xFE
	for _, u := range units {
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	return binary.LittleEndian.AppendUint16(out, 0)
}
