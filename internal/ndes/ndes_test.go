package ndes_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"

	"github.com/scepter/scepter/internal/ndes"
	"github.com/scepter/scepter/internal/pki"
)

const (
	user = "ndes-admin@example.com"
	pass = "correct horse battery staple"
)

// minter stands in for the admin service: it mints secrets the way
// admin.Service does (20 random bytes, unpadded base32) and records what it
// was asked and what it issued.
type minter struct {
	mu     sync.Mutex
	calls  []call
	issued map[[32]byte]pki.Challenge
	fail   error
}

type call struct {
	ttl            time.Duration
	profile, actor string
}

func (m *minter) NewChallenge(ctx context.Context, ttl time.Duration, profile, actor string) (string, pki.Challenge, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, call{ttl, profile, actor})
	if m.fail != nil {
		return "", pki.Challenge{}, m.fail
	}
	b := make([]byte, 20)
	rand.Read(b)
	secret := strings.TrimRight(base32.StdEncoding.EncodeToString(b), "=")
	id := make([]byte, 10)
	rand.Read(id)
	now := time.Now()
	h := sha256.Sum256([]byte(secret))
	ch := pki.Challenge{ID: base32.StdEncoding.EncodeToString(id), Hash: h[:], Profile: profile, CreatedAt: now, ExpiresAt: now.Add(ttl), CreatedBy: actor}
	if m.issued == nil {
		m.issued = map[[32]byte]pki.Challenge{}
	}
	m.issued[h] = ch
	return secret, ch, nil
}

func (m *minter) lookup(secret string) (pki.Challenge, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.issued[sha256.Sum256([]byte(secret))]
	return ch, ok
}

func (m *minter) call(i int) call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[i]
}

func (m *minter) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

func (m *minter) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls)
}

// auditLog stands in for the store's audit trail: it keeps what is
// appended, or refuses it with fail.
type auditLog struct {
	mu     sync.Mutex
	events []pki.AuditEvent
	fail   error
	key    []byte
}

func (a *auditLog) AppendAudit(ctx context.Context, events ...pki.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.events = append(a.events, events...)
	return nil
}

func (a *auditLog) LoginNameKey(ctx context.Context, candidate []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.key == nil {
		a.key = candidate
	}
	return a.key, nil
}

func (a *auditLog) list() []pki.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]pki.AuditEvent(nil), a.events...)
}

type fixture struct {
	m      *minter
	audit  *auditLog
	srv    *httptest.Server
	logMu  *sync.Mutex
	logBuf *bytes.Buffer
}

func (f *fixture) logs() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.logBuf.String()
}

func newFixture(t *testing.T, cfg ndes.Config) *fixture {
	t.Helper()
	if cfg.Username == "" && cfg.Password == "" {
		cfg.Username, cfg.Password = user, pass
	}
	m := &minter{}
	audit := &auditLog{}
	if cfg.Audit == nil {
		cfg.Audit = audit
	}
	var logBuf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logBuf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := ndes.New(m, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for pattern, handler := range h.Routes() {
		mux.Handle(pattern, handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{m: m, audit: audit, srv: srv, logMu: &mu, logBuf: &logBuf}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) do(t *testing.T, method, path string, auth bool, u, p string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func (f *fixture) get(t *testing.T) []byte {
	t.Helper()
	resp, body := f.do(t, http.MethodGet, "/certsrv/mscep_admin/", true, user, pass)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return body
}

// decodeStrict decodes the body the strict way: it must be FF FE, then
// UTF-16LE.
func decodeStrict(t *testing.T, body []byte) string {
	t.Helper()
	if len(body) < 2 || body[0] != 0xFF || body[1] != 0xFE {
		t.Fatalf("body does not start with the UTF-16LE byte order mark: % x", body[:min(len(body), 8)])
	}
	if len(body)%2 != 0 {
		t.Fatalf("odd body length %d", len(body))
	}
	units := make([]uint16, (len(body)-2)/2)
	for i := range units {
		units[i] = binary.LittleEndian.Uint16(body[2+2*i:])
	}
	return string(utf16.Decode(units))
}

// --- parsers written the way MDMs parse the NDES page ---

// fleetRegex is the expression Fleet applies (ee/server/service/scep_proxy.go).
var fleetRegex = regexp.MustCompile(`(?i)The enrollment challenge password is: <B> (?P<password>\S*)`)

// fleetParse decodes as Fleet does: BOMOverride over a UTF-16 decoder that
// ignores the BOM, with the given fallback byte order (big-endian before
// Fleet PR #29708, little-endian since).
func fleetParse(body []byte, fallback unicode.Endianness) string {
	dec := unicode.BOMOverride(unicode.UTF16(fallback, unicode.IgnoreBOM).NewDecoder())
	text, err := io.ReadAll(transform.NewReader(bytes.NewReader(body), dec))
	if err != nil {
		return ""
	}
	m := fleetRegex.FindStringSubmatch(string(text))
	if m == nil {
		return ""
	}
	return m[fleetRegex.SubexpIndex("password")]
}

// zentralParse decodes like Python's bytes.decode("utf-16") (the BOM picks
// the byte order) and applies Zentral's expression.
var zentralRegex = regexp.MustCompile(`challenge password is: <B> ([A-Z0-9]{16,32}) </B>`)

func zentralParse(body []byte) string {
	text, err := unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder().Bytes(body)
	if err != nil {
		return ""
	}
	m := zentralRegex.FindStringSubmatch(string(text))
	if m == nil {
		return ""
	}
	return m[1]
}

// manageEngineParse tries charsets in ManageEngine's order until the text
// has the marker, then cuts between its two markers.
func manageEngineParse(body []byte) string {
	decoders := []func([]byte) (string, bool){
		func(b []byte) (string, bool) { // Java UTF_16: BOM, else big-endian
			s, err := unicode.UTF16(unicode.BigEndian, unicode.UseBOM).NewDecoder().Bytes(b)
			return string(s), err == nil
		},
		func(b []byte) (string, bool) { return string(b), true }, // UTF-8
		func(b []byte) (string, bool) { // UTF-16LE
			s, err := unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM).NewDecoder().Bytes(b)
			return string(s), err == nil
		},
	}
	for _, d := range decoders {
		page, ok := d(body)
		if !ok || !strings.Contains(page, "The enrollment challenge password is") {
			continue
		}
		const start = "The enrollment challenge password is: <B> "
		end := strings.Index(page, " </B> <P> This password can be used only once")
		i := strings.Index(page, start)
		if i < 0 || end < i+len(start) {
			return ""
		}
		return page[i+len(start) : end]
	}
	return ""
}

// tailStripParse is the .NET connector's way: StreamReader (BOM detection),
// remove NDES's exact tail including the NUL, take the last n characters.
func tailStripParse(body []byte, n int) string {
	text, err := unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder().Bytes(body)
	if err != nil {
		return ""
	}
	const tail = " </B> <P> This password can be used only once and will expire within 60 minutes. <P> Each enrollment requires a new challenge password. You can refresh this web page to obtain a new challenge password. </P> <P ID=locPageDesc> For more information see  <A HREF=http://go.microsoft.com/fwlink/?LinkId=67852>Using Network Device Enrollment Service </A>. </P> <P></Font></Body></HTML>\x00"
	s := string(text)
	if !strings.HasSuffix(s, tail) {
		return ""
	}
	s = strings.TrimSuffix(s, tail)
	if len(s) < n {
		return ""
	}
	return s[len(s)-n:]
}

func TestParsersFindAnIssuedChallenge(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	body := f.get(t)
	text := decodeStrict(t, body)
	want := fleetParse(body, unicode.LittleEndian)
	if want == "" {
		t.Fatalf("Fleet's parser found no password in:\n%s", text)
	}
	ch, ok := f.m.lookup(want)
	if !ok {
		t.Fatalf("password %q on the page is not a challenge the minter issued", want)
	}
	if ch.ExpiresAt.Sub(ch.CreatedAt) != 60*time.Minute {
		t.Fatalf("challenge lifetime %s", ch.ExpiresAt.Sub(ch.CreatedAt))
	}
	parsers := map[string]string{
		"fleet (UTF-16BE fallback, before PR 29708)": fleetParse(body, unicode.BigEndian),
		"fleet (UTF-16LE fallback)":                  fleetParse(body, unicode.LittleEndian),
		"zentral":                                    zentralParse(body),
		"manageengine":                               manageEngineParse(body),
		".NET tail strip":                            tailStripParse(body, len(want)),
	}
	for name, got := range parsers {
		if got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if f.logs() == "" || strings.Contains(f.logs(), want) {
		t.Fatalf("log missing or contains the password:\n%s", f.logs())
	}
	if !strings.Contains(f.logs(), ch.ID) {
		t.Fatalf("log does not name the challenge ID:\n%s", f.logs())
	}
}

func TestPageIsShapedLikeNDES(t *testing.T) {
	f := newFixture(t, ndes.Config{CAThumbprint: "a656fa66ab12b433a2da5cf7cc153d9a01020304"})
	resp, body := f.do(t, http.MethodGet, "/certsrv/mscep_admin/", true, user, pass)
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-16" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	text := decodeStrict(t, body)
	if !strings.HasSuffix(text, "</Font></Body></HTML>\x00") {
		t.Fatalf("page does not end like NDES's: %q", text[max(0, len(text)-40):])
	}
	secret := fleetParse(body, unicode.LittleEndian)
	for _, s := range []string{
		"<Title>Network Device Enrollment Service</Title>",
		"<P> The thumbprint (hash value) for the CA certificate is: <B> A656FA66 AB12B433 A2DA5CF7 CC153D9A 01020304 </B> ",
		"<P> The enrollment challenge password is: <B> " + secret + " </B> <P> This password can be used only once and will expire within 60 minutes. <P> Each enrollment requires a new challenge password.",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("page lacks %q:\n%s", s, text)
		}
	}
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(secret) {
		t.Fatalf("password %q is not 32 base32 characters", secret)
	}
}

// The page shows the thumbprint of the CA in charge at each request: after
// a rollover's switch, devices compare it with what GetCACert sends then.
func TestThumbprintFollowsTheCA(t *testing.T) {
	before, after := &x509.Certificate{Raw: []byte("issuing CA before the switch")}, &x509.Certificate{Raw: []byte("issuing CA after it")}
	var current atomic.Pointer[x509.Certificate]
	current.Store(before)
	f := newFixture(t, ndes.Config{CACert: current.Load})
	for _, ca := range []*x509.Certificate{before, after} {
		current.Store(ca)
		sum := sha1.Sum(ca.Raw)
		hexSum := strings.ToUpper(hex.EncodeToString(sum[:]))
		want := "The thumbprint (hash value) for the CA certificate is: <B> " +
			strings.Join([]string{hexSum[0:8], hexSum[8:16], hexSum[16:24], hexSum[24:32], hexSum[32:40]}, " ") + " </B>"
		if text := decodeStrict(t, f.get(t)); !strings.Contains(text, want) {
			t.Errorf("page lacks %q:\n%s", want, text)
		}
	}
}

func TestNoThumbprintSentenceWithoutThumbprint(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	text := decodeStrict(t, f.get(t))
	if strings.Contains(text, "thumbprint") {
		t.Fatalf("thumbprint sentence without a thumbprint:\n%s", text)
	}
}

func TestEachFetchIsANewChallenge(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	seen := map[string]bool{}
	for range 5 {
		s := fleetParse(f.get(t), unicode.LittleEndian)
		if s == "" || seen[s] {
			t.Fatalf("password %q empty or repeated", s)
		}
		seen[s] = true
	}
	if f.m.count() != 5 {
		t.Fatalf("minter called %d times", f.m.count())
	}
}

func TestTTLAndProfilePassedThrough(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	f.get(t)
	if c := f.m.call(0); c.ttl != 60*time.Minute || c.profile != "" || !strings.HasPrefix(c.actor, "ndes:127.0.0.1") {
		t.Fatalf("default call %+v", c)
	}

	f = newFixture(t, ndes.Config{TTL: 15 * time.Minute, Profile: "wifi"})
	text := decodeStrict(t, f.get(t))
	if c := f.m.call(0); c.ttl != 15*time.Minute || c.profile != "wifi" {
		t.Fatalf("call %+v", c)
	}
	if !strings.Contains(text, "will expire within 15 minutes.") {
		t.Fatalf("page does not state 15 minutes:\n%s", text)
	}

	// A lifetime that is not whole minutes is rounded up on the page.
	f = newFixture(t, ndes.Config{TTL: 90 * time.Second})
	text = decodeStrict(t, f.get(t))
	if f.m.call(0).ttl != 90*time.Second || !strings.Contains(text, "within 2 minutes.") {
		t.Fatalf("call %+v page %s", f.m.call(0), text)
	}
}

func TestEveryPath(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	for _, p := range []string{
		"/certsrv/mscep_admin/", "/certsrv/mscep_admin", "/certsrv/mscep_admin/default.aspx",
		"/CertSrv/mscep_admin/", "/CertSrv/mscep_admin", "/CertSrv/mscep_admin/default.aspx",
		"/certsrv/mscep_admin/?x=1",
	} {
		resp, body := f.do(t, http.MethodGet, p, true, user, pass)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", p, resp.StatusCode)
			continue
		}
		if s := fleetParse(body, unicode.LittleEndian); s == "" {
			t.Errorf("%s: no password", p)
		} else if _, ok := f.m.lookup(s); !ok {
			t.Errorf("%s: password not issued by the minter", p)
		}
	}
	for _, p := range []string{"/certsrv/mscep_admin/other", "/certsrv/mscep_admin/default.aspx/x", "/certsrv/mscep/mscep.dll"} {
		if resp, _ := f.do(t, http.MethodGet, p, true, user, pass); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestHandlerRefusesOtherPathsWhenMountedDirectly(t *testing.T) {
	h, err := ndes.New(&minter{}, ndes.Config{Username: user, Password: pass, Audit: &auditLog{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]int{"/certsrv/mscep_admin/": 200, "/CERTSRV/MSCEP_ADMIN/DEFAULT.ASPX": 200, "/": 404, "/certsrv/": 404} {
		req := httptest.NewRequest(http.MethodGet, p, nil)
		req.SetBasicAuth(user, pass)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: status %d, want %d", p, rec.Code, want)
		}
	}
}

func TestWithoutCredentials(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	for _, p := range []string{"/certsrv/mscep_admin/", "/certsrv/mscep_admin", "/certsrv/mscep_admin/default.aspx"} {
		resp, body := f.do(t, http.MethodGet, p, false, "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: status %d", p, resp.StatusCode)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="scepter"` {
			t.Fatalf("WWW-Authenticate %q", got)
		}
		if bytes.Contains(body, []byte("password is")) {
			t.Fatal("401 body carries the page")
		}
	}
	if f.m.count() != 0 {
		t.Fatal("a challenge was minted without credentials")
	}
}

func TestWrongCredentials(t *testing.T) {
	// More wrong logins than the default lockout allows: see lockout_test.go.
	f := newFixture(t, ndes.Config{Lockout: ndes.Lockout{Failures: 100}})
	for _, c := range [][2]string{
		{user, "wrong"},
		{user, pass + "x"},
		{user, pass[:len(pass)-1]},
		{user, ""},
		{"someone", pass},
		{"", pass},
		{strings.ToUpper(user), pass},
		{"", ""},
	} {
		resp, _ := f.do(t, http.MethodGet, "/certsrv/mscep_admin/", true, c[0], c[1])
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="scepter"` {
			t.Fatalf("%q/%q: status %d", c[0], c[1], resp.StatusCode)
		}
	}
	// Another scheme is not Basic.
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/certsrv/mscep_admin/", nil)
	req.Header.Set("Authorization", "Bearer "+pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bearer: status %d", resp.StatusCode)
	}
	if f.m.count() != 0 {
		t.Fatal("a challenge was minted for wrong credentials")
	}
	if strings.Contains(f.logs(), "wrong") && strings.Contains(f.logs(), pass) {
		t.Fatal("log carries a password")
	}
}

// TestFleetClientFlow follows Fleet's HTTP client (go-ntlmssp Negotiator
// with Basic credentials): ask without credentials first, and send Basic
// only after a 401 that does not offer Negotiate or NTLM.
func TestFleetClientFlow(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	resp, _ := f.do(t, http.MethodGet, "/certsrv/mscep_admin/", false, "", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: status %d", resp.StatusCode)
	}
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		if strings.HasPrefix(v, "Negotiate") || strings.HasPrefix(v, "NTLM") {
			t.Fatalf("offers %q: Fleet's client would try NTLM instead of Basic", v)
		}
	}
	resp, body := f.do(t, http.MethodGet, "/certsrv/mscep_admin/", true, user, pass)
	if resp.StatusCode != http.StatusOK || fleetParse(body, unicode.LittleEndian) == "" {
		t.Fatalf("basic: status %d", resp.StatusCode)
	}
}

func TestHead(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	resp, body := f.do(t, http.MethodHead, "/certsrv/mscep_admin/", true, user, pass)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("status %d body %d bytes", resp.StatusCode, len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-16" {
		t.Fatalf("Content-Type %q", ct)
	}
	if f.m.count() != 0 {
		t.Fatal("HEAD spent a challenge")
	}
	resp, _ = f.do(t, http.MethodHead, "/certsrv/mscep_admin", false, "", "")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("HEAD without credentials: status %d", resp.StatusCode)
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		resp, _ := f.do(t, m, "/certsrv/mscep_admin/", true, user, pass)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d", m, resp.StatusCode)
		}
		if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "HEAD") {
			t.Errorf("%s: Allow %q", m, allow)
		}
	}
	if f.m.count() != 0 {
		t.Fatal("a challenge was minted for another method")
	}
}

func TestMinterFailure(t *testing.T) {
	f := newFixture(t, ndes.Config{})
	f.m.setFail(pki.Wrap(pki.EInternal, errors.New("database is locked"), "store challenge"))
	resp, body := f.do(t, http.MethodGet, "/certsrv/mscep_admin/", true, user, pass)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	text := decodeStrict(t, body)
	if strings.Contains(text, "password is:") || strings.Contains(text, "database") {
		t.Fatalf("error page: %s", text)
	}
	if fleetParse(body, unicode.LittleEndian) != "" || zentralParse(body) != "" || manageEngineParse(body) != "" {
		t.Fatal("a parser found a password on the error page")
	}
	if !strings.Contains(f.logs(), "database is locked") {
		t.Fatalf("failure not logged:\n%s", f.logs())
	}
}

func TestNewValidates(t *testing.T) {
	m := &minter{}
	bad := []ndes.Config{
		{},
		{Username: user},
		{Password: pass},
		{Username: "a:b", Password: pass},
		{Username: user, Password: pass, TTL: 30 * time.Second},
		{Username: user, Password: pass, TTL: -time.Minute},
		{Username: user, Password: pass, TTL: 31 * 24 * time.Hour},
		{Username: user, Password: pass, CAThumbprint: "xyz"},
		{Username: user, Password: pass, CAThumbprint: "abcd"},
	}
	for _, cfg := range bad {
		cfg.Audit = &auditLog{}
		if _, err := ndes.New(m, cfg, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := ndes.New(nil, ndes.Config{Username: user, Password: pass, Audit: &auditLog{}}, nil); err == nil {
		t.Error("New accepted a nil minter")
	}
	if _, err := ndes.New(m, ndes.Config{Username: user, Password: pass}, nil); err == nil {
		t.Error("New accepted no audit trail")
	}
	for _, tp := range []string{
		"",
		"A6:56:FA:66:AB:12:B4:33:A2:DA:5C:F7:CC:15:3D:9A:01:02:03:04",
		"a656fa66 ab12b433 a2da5cf7 cc153d9a",
		strings.Repeat("ab", 32),
	} {
		if _, err := ndes.New(m, ndes.Config{Username: user, Password: pass, CAThumbprint: tp, Audit: &auditLog{}}, nil); err != nil {
			t.Errorf("thumbprint %q: %v", tp, err)
		}
	}
}
