package enroll_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/keytest"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

const static = "static-secret"

type fixture struct {
	svc   *enroll.Service
	admin *admin.Service
	st    store.Store
	clock *pkitest.Clock
	auth  *ca.Authority
	dir   string // the data directory: the CA in dir/ca, the store
}

func newFixture(t *testing.T, profiles map[string]pki.Profile, def string) *fixture {
	t.Helper()
	return newFixtureWith(t, enroll.Config{Profiles: profiles, DefaultProfile: def})
}

// newFixtureWith builds a service on cfg; the static challenge is always set.
func newFixtureWith(t *testing.T, cfg enroll.Config) *fixture {
	t.Helper()
	dir := t.TempDir()
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
	if err != nil {
		t.Fatal(err)
	}
	st := sqlitetest.Open(t, filepath.Join(dir, "db"))
	cfg.StaticChallenge = static
	if cfg.Passwords == nil { // New's default, burning at the tests' cost
		cfg.Passwords = credential.NewRememberingPasswordChecker(0, clock.Now, enroll.AcceptedPasswordLifetime).WithBurnHash(testBurnHash())
	}
	svc, err := enroll.New(st, auth, clock, slog.New(slog.DiscardHandler), cfg)
	if err != nil {
		t.Fatal(err)
	}
	profiles, def := svc.Profiles()
	return &fixture{svc: svc, admin: admin.New(st, clock, nil, profiles, def), st: st, clock: clock, auth: auth, dir: dir}
}

// testKeys makes the RSA keys of the tests' CAs (their RAs): the RA key
// each fixture generated was the most of this package's test CPU after the
// password hashes. Any 8 keys drawn one after another are distinct, more
// than any test here draws, and none of these tests runs in parallel, so
// an RA a test takes for another CA's still has a key of its own.
var testKeys = keytest.NewPool(8)

// testPasswordCost is the argon2id cost of the EST users' password hashes
// the tests make, and of the fixture's unknown-user burn: the tests are
// about who may enroll, not about argon2id's cost (internal/credential's
// tests check HashPassword's), and at RFC 9106's 19 MiB the hashes and
// burns were most of this package's CPU under the race detector.
var testPasswordCost = credential.Cost{Time: 1, MemoryKiB: 64}

// testBurnHash is what the fixture's password checker verifies an unknown
// user's password against, at testPasswordCost.
var testBurnHash = sync.OnceValue(func() string {
	h, err := credential.HashPasswordWithCost("scepter-dummy-password", testPasswordCost)
	if err != nil {
		panic(err)
	}
	return h
})

var (
	ecOnce sync.Once
	ecKey  *ecdsa.PrivateKey
)

func key(t *testing.T) crypto.Signer {
	ecOnce.Do(func() { ecKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	return ecKey
}

func request(t *testing.T, challenge string, dns ...string) enroll.Request {
	t.Helper()
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "dev"}, DNSNames: dns,
		ExtraExtensions: []pkix.Extension{{Id: []int{2, 5, 29, 19}, Critical: true, Value: []byte{0x30, 0x03, 0x01, 0x01, 0xff}}}}, key(t))
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: challenge}, Protocol: pki.ProtocolSCEP, TransactionID: "tx", RemoteAddr: "127.0.0.1:1234"}
}

func auditTypes(t *testing.T, st store.Store) []string {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type+"/"+e.Outcome)
	}
	return out
}

func TestEnrollRecordsAndAudits(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	res, err := f.svc.Enroll(ctx, request(t, static, "dev.example"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Certificate.IsCA || !res.Certificate.BasicConstraintsValid {
		t.Error("issued certificate must carry CA:FALSE")
	}
	rec, err := f.st.Certificate(ctx, res.Record.IssuerID, res.Record.SerialHex)
	if err != nil {
		t.Fatalf("certificate not in the store: %v", err)
	}
	if rec.Profile != "default" || rec.Protocol != pki.ProtocolSCEP || rec.TransactionID != "tx" || rec.RequesterAddr != "127.0.0.1:1234" {
		t.Errorf("record %+v", rec)
	}
	if got := strings.Join(rec.SANs, ","); got != "dns:dev.example" {
		t.Errorf("SANs %q", got)
	}
	if _, err := f.svc.Enroll(ctx, request(t, "wrong")); pki.ErrorCode(err) != pki.EUnauthorized {
		t.Fatalf("wrong challenge: %v", err)
	}
	types := auditTypes(t, f.st)
	if strings.Join(types, " ") != "enrollment.failed/failure certificate.issued/success" {
		t.Errorf("audit events %v", types)
	}
	evs, _ := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed})
	for _, e := range evs {
		if strings.Contains(e.Reason+e.Detail, "wrong") || strings.Contains(e.Reason+e.Detail, static) {
			t.Errorf("audit event leaks a challenge: %+v", e)
		}
	}
}

func TestChallengeModes(t *testing.T) {
	profiles := map[string]pki.Profile{}
	for _, mode := range []string{enroll.ChallengeStatic, enroll.ChallengeOneTime, enroll.ChallengeAny} {
		p := pki.DefaultProfile()
		p.Name, p.ChallengeMode = mode, mode
		profiles[mode] = p
	}
	f := newFixture(t, profiles, enroll.ChallengeAny)
	ctx := context.Background()
	newOTP := func(profile string) string {
		s, _, err := f.admin.NewChallenge(ctx, time.Hour, profile, "test")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// None is minted for a profile that takes none: it could never be used.
	if _, _, err := f.admin.NewChallenge(ctx, time.Hour, "static", "test"); pki.ErrorCode(err) != pki.EBadRequest {
		t.Errorf("a one-time challenge minted for a static profile: %v", err)
	}
	tests := []struct {
		profile   string
		challenge string
		ok        bool
	}{
		// The static challenge belongs to one profile (the default, "any").
		{"any", static, true},
		{"static", static, false},
		{"onetime", static, false},
		// One-time challenges are bound to a profile (the default when
		// minted without one).
		{"static", newOTP(""), false},
		{"onetime", newOTP(""), false},
		{"onetime", newOTP("onetime"), true},
		{"any", newOTP(""), true},
		{"any", newOTP("any"), true},
		{"any", "", false},
	}
	for _, tt := range tests {
		req := request(t, tt.challenge)
		req.Profile = tt.profile
		_, err := f.svc.Enroll(ctx, req)
		if (err == nil) != tt.ok {
			t.Errorf("profile %s challenge %.6q…: err = %v, want ok=%v", tt.profile, tt.challenge, err, tt.ok)
		}
	}
	// Bound to the "static" profile, it works there and nowhere else.
	g := newFixtureWith(t, enroll.Config{Profiles: profiles, DefaultProfile: enroll.ChallengeAny, StaticChallengeProfile: "static"})
	for profile, ok := range map[string]bool{"static": true, "any": false} {
		req := request(t, static)
		req.Profile = profile
		if _, err := g.svc.Enroll(ctx, req); (err == nil) != ok {
			t.Errorf("static challenge bound to profile static, used at %s: err = %v, want ok=%v", profile, err, ok)
		}
	}
	if _, err := f.svc.Enroll(ctx, enroll.Request{CSR: request(t, static).CSR, Profile: "nope", Evidence: enroll.Evidence{Challenge: static}}); pki.ErrorCode(err) != pki.ENotFound {
		t.Errorf("unknown profile: %v", err)
	}
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOneTimeChallengeIsConsumedOnceUnderConcurrency(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range 16 {
		wg.Add(1)
		req := namedWithKey(t, newKey(t), otp, "dev")
		go func() {
			defer wg.Done()
			_, err := f.svc.Enroll(ctx, req)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case pki.ErrorCode(err) == pki.EForbidden && pki.ErrorMessage(err) == usedAlready:
				// Whether it lost the race before or after its check,
				// a copy is told the same (challengeGoneMeanwhile).
				refused++
			default:
				t.Errorf("unexpected error: %v, want forbidden: %s", err, usedAlready)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || refused != 15 {
		t.Fatalf("%d successes, %d refusals; want 1 and 15", ok, refused)
	}
	certs, _, _ := f.st.ListCertificates(ctx, store.CertFilter{})
	if len(certs) != 1 {
		t.Fatalf("%d certificates recorded", len(certs))
	}
	used, _ := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventChallengeUsed})
	if len(used) != 1 {
		t.Errorf("%d challenge.used events", len(used))
	}
}

func TestExpiredChallenge(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	otp, _, err := f.admin.NewChallenge(ctx, time.Minute, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(61 * time.Second)
	// Said as it is, as a used one is: whoever sends it holds the secret.
	if _, err := f.svc.Enroll(ctx, request(t, otp)); pki.ErrorCode(err) != pki.EForbidden ||
		pki.ErrorMessage(err) != "this one-time challenge password has expired; ask for a new one" {
		t.Fatalf("expired challenge: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second, admin.MaxChallengeTTL + time.Second} {
		if _, _, err := f.admin.NewChallenge(ctx, ttl, "", "test"); pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("ttl %v: %v", ttl, err)
		}
	}
	if _, _, err := f.admin.NewChallenge(ctx, time.Hour, "nope", "test"); pki.ErrorCode(err) != pki.EBadRequest {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestChallengeStoredHashed(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	secret, ch, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ch.Hash), secret) || len(secret) < 32 {
		t.Errorf("secret %q, stored %x", secret, ch.Hash)
	}
	got, err := f.st.LookupChallenge(ctx, credential.HashChallenge(secret), f.clock.Now())
	if err != nil || got.ID != ch.ID {
		t.Fatalf("lookup by hash: %v", err)
	}
	if _, err := f.st.LookupChallenge(ctx, []byte(secret), f.clock.Now()); !errors.Is(err, store.ErrChallengeUnusable) {
		t.Errorf("the raw secret must not be a stored key: %v", err)
	}
}

func TestNamePolicy(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name = "strict"
	p.SubjectRequired = []string{"CN"}
	p.SubjectFixed = map[string]string{"O": "Acme"}
	p.SubjectPatterns = map[string]string{"CN": "^dev[0-9]*$"}
	p.DNSPatterns = []string{`^[a-z0-9-]+\.acme\.example$`}
	p.URIPatterns = []string{`^tag:microsoft\.com,2022-09-14:sid:S-1-5-21-[0-9-]+$`}
	f := newFixture(t, map[string]pki.Profile{"strict": p}, "strict")
	ctx := context.Background()
	mkURI := func(subject pkix.Name, uri string) enroll.Request {
		u, _ := url.Parse(uri)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject, URIs: []*url.URL{u}}, key(t))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := x509.ParseCertificateRequest(der)
		return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolSCEP}
	}
	// Intune's strong-mapping SID URI (KB5014754) is accepted and kept.
	res, err := f.svc.Enroll(context.Background(), mkURI(pkix.Name{CommonName: "dev7"}, "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1004336348-1177238915-682003330-512"))
	if err != nil {
		t.Fatalf("Intune SID URI: %v", err)
	}
	if len(res.Certificate.URIs) != 1 || res.Certificate.URIs[0].Opaque == "" {
		t.Errorf("URIs %v", res.Certificate.URIs)
	}
	if _, err := f.svc.Enroll(context.Background(), mkURI(pkix.Name{CommonName: "dev8"}, "https://evil.example/")); pki.ErrorCode(err) != pki.EBadRequest {
		t.Errorf("URI outside the pattern: %v", err)
	}
	mk := func(subject pkix.Name, dns ...string) enroll.Request {
		der, err := csr.Create(csr.Template{Subject: subject, DNSNames: dns}, key(t))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := x509.ParseCertificateRequest(der)
		return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolSCEP}
	}
	res, err = f.svc.Enroll(ctx, mk(pkix.Name{CommonName: "dev1", Organization: []string{"Evil Corp"}}, "dev1.acme.example"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Certificate.Subject.String(); got != "CN=dev1,O=Acme" {
		t.Errorf("subject %q: the fixed O must replace the CSR's", got)
	}
	// The attributes that are not fixed keep their bytes (a BMPString CN
	// stays one), and a value that is no string is refused, not an
	// internal error.
	mkRaw := func(rdns pkix.RDNSequence, dns ...string) enroll.Request {
		raw, err := asn1.Marshal(rdns)
		if err != nil {
			t.Fatal(err)
		}
		der, err := csr.Create(csr.Template{RawSubject: raw, DNSNames: dns}, key(t))
		if err != nil {
			t.Fatal(err)
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolSCEP}
	}
	cnOID, oOID, ouOID := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.ObjectIdentifier{2, 5, 4, 11}
	bmpCN := asn1.RawValue{Class: asn1.ClassUniversal, Tag: 30, Bytes: []byte{0, 'd', 0, 'e', 0, 'v', 0, '4'}}
	res, err = f.svc.Enroll(ctx, mkRaw(pkix.RDNSequence{{{Type: oOID, Value: "Evil Corp"}}, {{Type: cnOID, Value: bmpCN}}}, "dev4.acme.example"))
	if err != nil {
		t.Fatalf("a BMPString CN at a profile with a fixed O: %v", err)
	}
	if got := res.Certificate.Subject.String(); got != "CN=dev4,O=Acme" {
		t.Errorf("subject %q, want CN=dev4,O=Acme", got)
	}
	if !bytes.Contains(res.Certificate.RawSubject, []byte{0x1e, 0x08, 0, 'd', 0, 'e', 0, 'v', 0, '4'}) {
		t.Errorf("the BMPString CN was re-encoded: %x", res.Certificate.RawSubject)
	}
	// The profile names its hosts and has no email patterns: no email
	// SAN, as no IP address without ranges.
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "dev6"}, DNSNames: []string{"dev6.acme.example"},
		EmailAddresses: []string{"ceo@bank.example"}}, key(t))
	if err != nil {
		t.Fatal(err)
	}
	withEmail, _ := x509.ParseCertificateRequest(der)
	if _, err := f.svc.Enroll(ctx, enroll.Request{CSR: withEmail, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolSCEP}); pki.ErrorCode(err) != pki.EBadRequest {
		t.Errorf("an email SAN at a profile with DNS patterns and no email patterns: %v, want badRequest", err)
	}
	nullOU := mkRaw(pkix.RDNSequence{{{Type: cnOID, Value: "dev5"}}, {{Type: ouOID, Value: asn1.RawValue{Tag: asn1.TagNull}}}}, "dev5.acme.example")
	if _, err := f.svc.Enroll(ctx, nullOU); pki.ErrorCode(err) != pki.EBadRequest {
		t.Errorf("an OU that is NULL at a profile with a fixed O: %v, want badRequest", err)
	}
	for name, req := range map[string]enroll.Request{
		"missing CN":    mk(pkix.Name{Organization: []string{"Acme"}}, "x.acme.example"),
		"CN pattern":    mk(pkix.Name{CommonName: "laptop"}, "x.acme.example"),
		"DNS pattern":   mk(pkix.Name{CommonName: "dev2"}, "dev2.evil.example"),
		"one DNS wrong": mk(pkix.Name{CommonName: "dev3"}, "dev3.acme.example", "evil.example"),
	} {
		if _, err := f.svc.Enroll(ctx, req); pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// IP SANs: a profile's ip_ranges bound them; without ranges a profile whose
// DNS patterns restrict host names allows no address, one without allows
// any.
func TestIPRanges(t *testing.T) {
	named := pki.DefaultProfile()
	named.Name, named.DNSPatterns = "named", []string{`^[a-z0-9-]+\.vpn\.acme\.example$`}
	ranged := named
	ranged.Name, ranged.IPRanges = "ranged", []string{"10.8.0.0/16", "fd00:8::/32"}
	open := pki.DefaultProfile()
	open.Name = "open"
	// The static challenge is good at its own profile only: a fixture each.
	svcs := map[string]*enroll.Service{}
	for _, p := range []pki.Profile{named, ranged, open} {
		svcs[p.Name] = newFixture(t, map[string]pki.Profile{p.Name: p}, p.Name).svc
	}
	mk := func(profile string, ips ...string) enroll.Request {
		tmpl := csr.Template{Subject: pkix.Name{CommonName: "gw-1"}, DNSNames: []string{"gw-1.vpn.acme.example"}}
		for _, ip := range ips {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
		}
		der, err := csr.Create(tmpl, key(t))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := x509.ParseCertificateRequest(der)
		return enroll.Request{CSR: req, Profile: profile, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolSCEP}
	}
	for _, tc := range []struct {
		profile string
		ips     []string
		ok      bool
	}{
		{"named", nil, true},
		{"named", []string{"8.8.8.8"}, false},
		{"ranged", []string{"10.8.1.2"}, true},
		{"ranged", []string{"10.8.1.2", "fd00:8::1"}, true},
		{"ranged", []string{"10.8.1.2", "10.9.0.1"}, false},
		{"ranged", []string{"8.8.8.8"}, false},
		{"open", []string{"8.8.8.8", "2001:db8::1"}, true},
	} {
		_, err := svcs[tc.profile].Enroll(context.Background(), mk(tc.profile, tc.ips...))
		if tc.ok && err != nil || !tc.ok && pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("profile %s, IP SANs %v: %v (want ok: %v)", tc.profile, tc.ips, err, tc.ok)
		}
	}
}

type fakeHook struct {
	allow  bool
	reason string
	err    error
	got    enroll.ChallengeCheck
}

func (h *fakeHook) Verify(_ context.Context, c enroll.ChallengeCheck) (bool, string, error) {
	h.got = c
	return h.allow, h.reason, h.err
}

func TestWebhookMode(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.ChallengeMode = "mdm", enroll.ChallengeWebhook
	hook := &fakeHook{}
	svc := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"mdm": p}, DefaultProfile: "mdm", Webhook: hook}).svc
	ctx := context.Background()
	hook.allow = true
	if _, err := svc.Enroll(ctx, request(t, "device-otp", "dev.example")); err != nil {
		t.Fatal(err)
	}
	if hook.got.Challenge != "device-otp" || hook.got.Profile != "mdm" || hook.got.RemoteAddr != "127.0.0.1" || len(hook.got.SANs) != 1 || len(hook.got.CSR) == 0 {
		t.Errorf("webhook asked %+v", hook.got)
	}
	hook.allow, hook.reason = false, "device not enrolled in MDM"
	if _, err := svc.Enroll(ctx, request(t, "device-otp")); pki.ErrorMessage(err) != "device not enrolled in MDM" {
		t.Errorf("deny: %v", err)
	}
	// A webhook that gives no answer judged nothing: the device is told
	// to come back (503), and its address is not locked out for it.
	hook.allow, hook.err = true, errors.New("timeout")
	for range 15 {
		if _, err := svc.Enroll(ctx, request(t, "device-otp")); pki.ErrorCode(err) != pki.EUnavailable {
			t.Fatalf("webhook down: %v, want unavailable", err)
		}
	}
	hook.err = nil
	if _, err := svc.Enroll(ctx, request(t, "device-otp")); err != nil {
		t.Errorf("the webhook back after 15 outages: %v", err)
	}
	// The static challenge does not bypass the webhook.
	hook.allow, hook.err = false, nil
	if _, err := svc.Enroll(ctx, request(t, static)); err == nil {
		t.Error("the static challenge bypassed the webhook")
	}
}

// A held request uses up its one-time challenge: a second request with it is
// refused, while the same client asking again is answered PENDING.
func TestHeldRequestConsumesOneTimeChallenge(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RequireApproval = "approval", true
	f := newFixture(t, map[string]pki.Profile{"approval": p}, "approval")
	ctx := context.Background()
	otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	first := request(t, otp)
	first.TransactionID = "tx-held-1"
	res, err := f.svc.Enroll(ctx, first)
	if err != nil || res.Pending == nil {
		t.Fatalf("first: %v %+v", err, res)
	}
	again, err := f.svc.Enroll(ctx, first)
	if err != nil || again.Pending == nil || again.Pending.ID != res.Pending.ID {
		t.Fatalf("the same request again: %v %+v", err, again)
	}
	second := request(t, otp)
	second.TransactionID = "tx-held-2"
	if _, err := f.svc.Enroll(ctx, second); pki.ErrorCode(err) != pki.EForbidden || pki.ErrorMessage(err) != usedAlready {
		t.Fatalf("a second request with a used one-time challenge: %v, want forbidden: %s", err, usedAlready)
	}
	reqs, _, _ := f.st.ListRequests(ctx, store.RequestFilter{})
	if len(reqs) != 1 {
		t.Errorf("%d requests held", len(reqs))
	}
	if _, err := f.svc.Approve(ctx, res.Pending.ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	done, err := f.svc.Enroll(ctx, first)
	if err != nil || done.Certificate == nil {
		t.Fatalf("after approval: %v", err)
	}
}

// Copies of one request sent at once (a device that gave up waiting and
// sent it again) with a one-time challenge are all answered PENDING, about
// the one held request: the copy that lost the race for the challenge too.
func TestHeldRequestCopiesAtOnce(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RequireApproval = "approval", true
	f := newFixture(t, map[string]pki.Profile{"approval": p}, "approval")
	ctx := context.Background()
	for round := range 5 {
		otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		req := request(t, otp)
		req.TransactionID = fmt.Sprintf("tx-copies-%d", round)
		const copies = 4
		results := make(chan *enroll.Result, copies)
		var wg sync.WaitGroup
		for range copies {
			wg.Go(func() {
				res, err := f.svc.Enroll(ctx, req)
				if err != nil || res.Pending == nil {
					t.Errorf("round %d: a copy got %v, want PENDING", round, err)
					return
				}
				results <- res
			})
		}
		wg.Wait()
		close(results)
		ids := map[string]bool{}
		for res := range results {
			ids[res.Pending.ID] = true
		}
		if len(ids) > 1 {
			t.Errorf("round %d: copies answered about %d held requests, want one", round, len(ids))
		}
	}
}

// A held request past its retention is neither answered nor approvable: a
// poll is told it expired without a decision (badRequest, not badCertId:
// the transaction is known), and the same client can ask again.
func TestHeldRequestRetention(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RequireApproval, p.RequestRetention = "approval", true, time.Hour
	f := newFixture(t, map[string]pki.Profile{"approval": p}, "approval")
	ctx := context.Background()
	req := request(t, static)
	req.TransactionID = "tx-retained"
	res, err := f.svc.Enroll(ctx, req)
	if err != nil || res.Pending == nil {
		t.Fatalf("%v %+v", err, res)
	}
	f.clock.Advance(2 * time.Hour)
	if _, err := f.svc.Approve(ctx, res.Pending.ID, "cli:test"); pki.ErrorCode(err) != pki.EConflict && pki.ErrorCode(err) != pki.ENotFound {
		t.Errorf("approving an expired request: %v", err)
	}
	if _, err := f.svc.Poll(ctx, pki.ProtocolSCEP, "approval", "tx-retained"); pki.ErrorCode(err) != pki.EBadRequest || !enroll.RequestExpired(err) ||
		!strings.Contains(pki.ErrorMessage(err), "expired at") {
		t.Errorf("polling an expired request: %v, want it said to have expired", err)
	}
	// Sent again with the same (static) challenge, it is the same
	// request: told it expired until the purge removes it (r140 D2), then
	// a new request.
	if again, err := f.svc.Enroll(ctx, req); !enroll.RequestExpired(err) || pki.ErrorCode(err) != pki.EBadRequest {
		t.Fatalf("the request sent again after its retention: %v %+v, want it told it expired", err, again)
	}
	if err := f.st.PurgeExpired(ctx, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	again, err := f.svc.Enroll(ctx, req)
	if err != nil || again.Pending == nil || again.Pending.ID == res.Pending.ID {
		t.Fatalf("a new request after the purge: %v %+v", err, again)
	}
}

// collidingStore answers the first ReserveSerial as a taken serial and
// records what was reserved and recorded.
type collidingStore struct {
	store.Store
	reserved []string
	recorded []string
}

func (c *collidingStore) ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error {
	c.reserved = append(c.reserved, serialHex)
	if len(tbs) == 0 {
		return errors.New("a serial was reserved without the TBS it will sign")
	}
	if len(c.reserved) == 1 {
		return fmt.Errorf("serial taken: %w", store.ErrConflict)
	}
	return c.Store.ReserveSerial(ctx, issuerID, serialHex, tbs, at)
}

// ReserveSerialClaiming is ReserveSerial for a SCEP transaction's
// issuance: the same answers, the claim made with the serial.
func (c *collidingStore) ReserveSerialClaiming(ctx context.Context, claim store.TransactionClaim, issuerID, serialHex string, tbs []byte) (bool, error) {
	c.reserved = append(c.reserved, serialHex)
	if len(tbs) == 0 {
		return false, errors.New("a serial was reserved without the TBS it will sign")
	}
	if len(c.reserved) == 1 {
		return false, fmt.Errorf("serial taken: %w", store.ErrConflict)
	}
	return c.Store.ReserveSerialClaiming(ctx, claim, issuerID, serialHex, tbs)
}

func (c *collidingStore) RecordIssuance(ctx context.Context, in store.Issuance) error {
	c.recorded = append(c.recorded, in.Certificate.SerialHex)
	return c.Store.RecordIssuance(ctx, in)
}

// The serial is reserved in the store before the CA key signs; a taken one
// is redrawn before anything is signed with it, so exactly one certificate
// is signed and recorded, with the second serial.
func TestSerialReservedBeforeSigning(t *testing.T) {
	f := newFixture(t, nil, "")
	cs := &collidingStore{Store: f.st}
	svc, err := enroll.New(cs, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Enroll(context.Background(), request(t, static))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.reserved) != 2 || len(cs.recorded) != 1 || cs.recorded[0] != cs.reserved[1] || res.Record.SerialHex != cs.reserved[1] {
		t.Errorf("reserved %v, recorded %v, returned %s; want two reservations and the second recorded", cs.reserved, cs.recorded, res.Record.SerialHex)
	}
	if err := f.st.ReserveSerial(context.Background(), res.Record.IssuerID, res.Record.SerialHex, nil, f.clock.Now()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("the issued serial is not in the serial registry: %v", err)
	}
}

// Fixed SANs are added to every certificate, and a renewal that keeps the
// CSR's names passes the name check with them.
func TestFixedSANs(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name = "vpn"
	p.SANFixed = []string{"dns:vpn.acme.example", "uri:urn:acme:fleet"}
	p.RenewalWindow = 1
	f := newFixture(t, map[string]pki.Profile{"vpn": p}, "vpn")
	ctx := context.Background()
	res, err := f.svc.Enroll(ctx, request(t, static, "dev.acme.example", "vpn.acme.example"))
	if err != nil {
		t.Fatal(err)
	}
	c := res.Certificate
	if strings.Join(c.DNSNames, ",") != "dev.acme.example,vpn.acme.example" || len(c.URIs) != 1 || c.URIs[0].String() != "urn:acme:fleet" {
		t.Errorf("DNS %v URIs %v", c.DNSNames, c.URIs)
	}
	// A name given twice, in any case, is issued once.
	twice, err := f.svc.Enroll(ctx, request(t, static, "dup.acme.example", "DUP.acme.example", "dup.acme.example", "vpn.acme.example"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(twice.Certificate.DNSNames, ","); got != "dup.acme.example,vpn.acme.example" {
		t.Errorf("DNS names %s, want each once", got)
	}
	renew := request(t, "", "dev.acme.example")
	renew.Renewal, renew.Evidence.SignerCert = true, c
	if _, err := f.svc.Enroll(ctx, renew); err != nil {
		t.Fatalf("renewal with the fixed SANs: %v", err)
	}
}

// An EST user whose password check cannot start before the request gives
// up (every slot of the checker busy with other checks) is told "temporarily
// unavailable" (503, try again), not that the password is wrong; with a slot
// free the same request enrolls.
func TestPasswordCheckBusyIsUnavailable(t *testing.T) {
	checker := credential.NewPasswordChecker(1)
	f := newFixtureWith(t, enroll.Config{Passwords: checker})
	ctx := context.Background()
	addESTUser(t, f, "dev", "device-pass")
	req := request(t, "")
	req.Evidence = enroll.Evidence{HTTPUser: "dev", HTTPPassword: "device-pass"}
	req.Protocol = pki.ProtocolEST

	release, err := checker.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The request gives up after wait. Given too little, it gives up
	// before it reaches the check (reading the user): wait longer.
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		rctx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(wait, cancel)
		_, err := f.svc.Enroll(rctx, req)
		timer.Stop()
		cancel()
		if pki.ErrorCode(err) == pki.EUnavailable {
			break
		}
		if wait > 10*time.Second {
			t.Fatalf("with every password check busy: %v (code %v), want EUnavailable", err, pki.ErrorCode(err))
		}
	}
	release()
	if _, err := f.svc.Enroll(ctx, req); err != nil {
		t.Fatalf("with a slot free: %v", err)
	}
}

// The service remembers an EST user's accepted password, but looks the user
// up on every request: a user removed is refused at once, and one added
// again under the same name with another password takes only the new one.
func TestRememberedPasswordStillNeedsTheUser(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{})
	ctx := context.Background()
	enrollAs := func(password string) error {
		req := request(t, "")
		req.Evidence = enroll.Evidence{HTTPUser: "dev", HTTPPassword: password}
		req.Protocol = pki.ProtocolEST
		_, err := f.svc.Enroll(ctx, req)
		return err
	}
	addESTUser(t, f, "dev", "first-password")
	for i := range 2 { // the second from memory
		if err := enrollAs("first-password"); err != nil {
			t.Fatalf("enrollment %d: %v", i+1, err)
		}
	}
	now := f.clock.Now()
	if err := f.st.DeleteESTUser(ctx, "dev", now, pki.AuditEvent{Time: now, Type: pki.EventESTUserRemoved, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	if err := enrollAs("first-password"); pki.ErrorCode(err) != pki.EUnauthorized {
		t.Errorf("after the user was removed: %v, want unauthorized", err)
	}
	addESTUser(t, f, "dev", "second-password")
	if err := enrollAs("first-password"); pki.ErrorCode(err) != pki.EUnauthorized {
		t.Errorf("the old password of a user added again: %v, want unauthorized", err)
	}
	if err := enrollAs("second-password"); err != nil {
		t.Errorf("the new password: %v", err)
	}
}

// addESTUser stores an EST user with password, as `scepter est user add` does.
func addESTUser(t *testing.T, f *fixture, name, password string) {
	t.Helper()
	hash, err := credential.HashPasswordWithCost(password, testPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if err := f.st.CreateESTUser(context.Background(), pki.ESTUser{Name: name, PasswordHash: hash, CreatedAt: now, CreatedBy: "test"},
		pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
}

// A key the profile refuses is refused before anything is written: the
// issuer applies the key policy before it reserves a serial, and a profile
// that holds requests for approval checks it before holding one.
func TestRefusedKeyWritesNothing(t *testing.T) {
	p384only := pki.DefaultProfile()
	p384only.Keys.ECCurves = []string{"P-384"}
	approval := p384only
	p384only.Name, approval.Name, approval.RequireApproval = "p384", "approval", true
	f := newFixture(t, map[string]pki.Profile{"p384": p384only, "approval": approval}, "p384")
	cs := &collidingStore{Store: f.st}
	svc, err := enroll.New(cs, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{
		StaticChallenge: static, Profiles: map[string]pki.Profile{"p384": p384only, "approval": approval}, DefaultProfile: "p384"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	for profile, challenge := range map[string]string{"p384": static, "approval": otp} {
		req := request(t, challenge) // a P-256 key
		req.Profile = profile
		_, err := svc.Enroll(ctx, req)
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), "P-256") {
			t.Errorf("%s: %v, want a refusal of the P-256 key", profile, err)
		}
	}
	if len(cs.reserved) != 0 || len(cs.recorded) != 0 {
		t.Errorf("reserved %v, recorded %v for refused keys", cs.reserved, cs.recorded)
	}
	if reqs, _, _ := f.st.ListRequests(ctx, store.RequestFilter{}); len(reqs) != 0 {
		t.Errorf("%d requests held with a refused key", len(reqs))
	}
}

// A request the issuer would refuse for its subject or names is refused at
// a profile that holds requests for approval too, before anything is held
// and without using up its one-time challenge: nobody is asked to approve
// what cannot be issued, and the device is told at once.
func TestApprovalRefusesWhatTheIssuerWould(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	f := newFixture(t, map[string]pki.Profile{"approval": approval}, "approval")
	ctx := context.Background()
	issuer, _ := f.auth.Active(f.clock.Now())
	cases := []struct {
		name    string
		subject pkix.Name
		dns     []string
		want    string
	}{
		{"long common name", pkix.Name{CommonName: strings.Repeat("a", 100)}, nil, "longer than 64"},
		{"empty DNS label", pkix.Name{CommonName: "dev"}, []string{"bad_name..example"}, "empty label"},
		{"control character", pkix.Name{CommonName: "dev\x1b[2Jx"}, nil, "U+001B"},
		{"the CA's name", issuer.Cert.Subject, nil, "name of a CA"},
		// Only the linter knows this bound (RFC 5280: 128 characters).
		{"long street address", pkix.Name{CommonName: "dev", StreetAddress: []string{strings.Repeat("s", 200)}}, nil, "street_address"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
			if err != nil {
				t.Fatal(err)
			}
			der, err := csr.Create(csr.Template{Subject: tc.subject, DNSNames: tc.dns}, key(t))
			if err != nil {
				t.Fatal(err)
			}
			cr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			req := enroll.Request{CSR: cr, Evidence: enroll.Evidence{Challenge: otp}, Protocol: pki.ProtocolSCEP,
				TransactionID: fmt.Sprintf("tx-refused-%d", i), RemoteAddr: "127.0.0.1:1234"}
			res, err := f.svc.Enroll(ctx, req)
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want a bad request saying %q", res, err, tc.want)
			}
			// The challenge is still good for a request that can be issued.
			good := request(t, otp)
			good.TransactionID = fmt.Sprintf("tx-good-%d", i)
			if res, err := f.svc.Enroll(ctx, good); err != nil || res.Pending == nil {
				t.Fatalf("the challenge after a refusal: %v %+v", err, res)
			}
		})
	}
	reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != len(cases) {
		t.Errorf("%d requests held, want only the %d good ones", len(reqs), len(cases))
	}
}

// A request held before the issuer's checks ran at hold time (or under a
// profile changed since) is refused at approval with a reason that says to
// reject it.
func TestApproveExplainsWhatCannotBeIssued(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	f := newFixture(t, map[string]pki.Profile{"approval": approval}, "approval")
	ctx := context.Background()
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "dev\x1b"}}, key(t))
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	r := pki.EnrollmentRequest{ID: "held-before", TransactionID: "tx-old", Profile: "approval", Protocol: pki.ProtocolSCEP,
		Status: pki.RequestPending, Subject: "CN=dev", CSR: der, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := f.st.CreateRequest(ctx, r, nil, pki.AuditEvent{Time: now, Type: pki.EventRequestPending, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Approve(ctx, r.ID, "cli:test")
	if pki.ErrorCode(err) != pki.EBadRequest {
		t.Fatalf("approving: %v, want a bad request", err)
	}
	if msg := pki.ErrorMessage(err); !strings.Contains(msg, "request held-before cannot be issued, reject it") || !strings.Contains(msg, "U+001B") {
		t.Errorf("approving: %q, want the request named, the advice to reject it and the reason", msg)
	}
}

func TestCheckRejectReason(t *testing.T) {
	for _, tc := range []struct {
		reason string
		ok     bool
	}{
		{"duplicate device", true},
		{"Gerät unbekannt – bitte IT anrufen", true},
		{strings.Repeat("r", enroll.MaxRejectReasonLen), true},
		{strings.Repeat("r", enroll.MaxRejectReasonLen+1), false},
		{"bad\r\nX-Evil: 1", false},
		{"bad\nsecond line", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"esc\x1b[31m", false},
		{"c1\u0085", false},
		{"line\u2028separator", false},
		{"<b>\u202e</b>", false},
		{"isolate\u2066x\u2069", false},
		{"mark\u200f", false},
		{"zero\u200bwidth", false},
		{"bom\ufeff", false},
		{"soft\u00adhyphen", false},
		{"word\u2060joiner", false},
		{"para\u2029separator", false},
		{"broken \xff utf-8", false},
	} {
		err := enroll.CheckRejectReason(tc.reason)
		if tc.ok != (err == nil) || (err != nil && pki.ErrorCode(err) != pki.EBadRequest) {
			t.Errorf("CheckRejectReason(%q) = %v, want ok %v", tc.reason, err, tc.ok)
		}
	}
}

// A reject reason goes to the device as it is: one with a line break, a NUL
// or an override is refused and the request stays pending; one stored
// before reasons were checked reaches the device quoted.
func TestRejectReasonReachesTheDeviceAsOneLine(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	f := newFixture(t, map[string]pki.Profile{"approval": approval}, "approval")
	ctx := context.Background()
	hold := func(tx string) *pki.EnrollmentRequest {
		t.Helper()
		req := request(t, static)
		req.TransactionID = tx
		res, err := f.svc.Enroll(ctx, req)
		if err != nil || res.Pending == nil {
			t.Fatalf("%v %+v", err, res)
		}
		return res.Pending
	}
	held := hold("tx-reject")
	evil := "bad\r\nX-Evil: 1\x00<b>\u202e"
	if err := f.admin.Reject(ctx, held.ID, evil, "cli:test"); pki.ErrorCode(err) != pki.EBadRequest {
		t.Fatalf("rejecting with %q: %v, want a bad request", evil, err)
	}
	if res, err := f.svc.Poll(ctx, pki.ProtocolSCEP, "approval", "tx-reject"); err != nil || res.Pending == nil {
		t.Fatalf("after a refused rejection: %v %+v, want still pending", err, res)
	}
	if err := f.admin.Reject(ctx, held.ID, "unknown device", "cli:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Poll(ctx, pki.ProtocolSCEP, "approval", "tx-reject"); pki.ErrorMessage(err) != "the request was rejected: unknown device" {
		t.Errorf("polling: %q", pki.ErrorMessage(err))
	}

	old := hold("tx-old-reason")
	now := f.clock.Now()
	if err := f.st.RejectRequest(ctx, old.ID, evil, "cli:test", now,
		pki.AuditEvent{Time: now, Type: pki.EventRequestRejected, Actor: "cli:test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Poll(ctx, pki.ProtocolSCEP, "approval", "tx-old-reason")
	if msg := pki.ErrorMessage(err); strings.ContainsAny(msg, "\r\n\x00\u202e") || !strings.Contains(msg, `X-Evil`) {
		t.Errorf("polling a request rejected with a reason stored unchecked: %q", msg)
	}
}

// PollBy tells a held request's state, the rejection reason included, only
// to the key that made it: any other key is told what it would be told of
// a transaction ID nobody holds.
func TestPollByAnotherKeyIsAnUnknownTransaction(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	f := newFixture(t, map[string]pki.Profile{"approval": approval}, "approval")
	ctx := context.Background()
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	strangerKey, err := x509.MarshalPKIXPublicKey(stranger.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, unknown := f.svc.PollBy(ctx, pki.ProtocolSCEP, "approval", "tx-nobody", strangerKey)
	if pki.ErrorCode(unknown) != pki.EBadCertID {
		t.Fatalf("an unknown transaction ID: %v", unknown)
	}
	req := request(t, static)
	req.TransactionID = "tx-rejected"
	res, err := f.svc.Enroll(ctx, req)
	if err != nil || res.Pending == nil {
		t.Fatalf("%v %+v", err, res)
	}
	requesterKey := req.CSR.RawSubjectPublicKeyInfo
	if res, err := f.svc.PollBy(ctx, pki.ProtocolSCEP, "approval", "tx-rejected", strangerKey); pki.ErrorCode(err) != pki.EBadCertID || pki.ErrorMessage(err) != pki.ErrorMessage(unknown) {
		t.Errorf("a pending request polled by another key: %v %+v, want %q", err, res, pki.ErrorMessage(unknown))
	}
	if err := f.admin.Reject(ctx, res.Pending.ID, "internal note SEC-4411", "cli:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PollBy(ctx, pki.ProtocolSCEP, "approval", "tx-rejected", strangerKey); pki.ErrorCode(err) != pki.EBadCertID || pki.ErrorMessage(err) != pki.ErrorMessage(unknown) {
		t.Errorf("a rejected request polled by another key: %v, want %q", err, pki.ErrorMessage(unknown))
	}
	if _, err := f.svc.PollBy(ctx, pki.ProtocolSCEP, "approval", "tx-rejected", requesterKey); !strings.Contains(pki.ErrorMessage(err), "SEC-4411") {
		t.Errorf("a rejected request polled by its requester: %v, want the reason", err)
	}
}

// An EST user's right password at a profile the user is not bound to is a
// policy refusal (EForbidden, EST 403), not a wrong password: however
// often a device pointed at the wrong label asks, it locks nobody out, and
// the user still enrolls at its own profile from the same address. A wrong
// password there still counts.
func TestUserAtAnotherProfileIsForbiddenNotAFailure(t *testing.T) {
	cases := []struct {
		name     string
		password string
		wantErr  pki.Code
		locked   bool
	}{
		{"the right password", "device-pass", pki.EForbidden, false},
		{"a wrong password", "guess", pki.EUnauthorized, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			own, other := pki.DefaultProfile(), pki.DefaultProfile()
			own.Name, other.Name = "own", "other"
			f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 3,
				Profiles: map[string]pki.Profile{"own": own, "other": other}, DefaultProfile: "own"})
			ctx := context.Background()
			hash, err := credential.HashPasswordWithCost("device-pass", testPasswordCost)
			if err != nil {
				t.Fatal(err)
			}
			now := f.clock.Now()
			if err := f.st.CreateESTUser(ctx, pki.ESTUser{Name: "dev", PasswordHash: hash, Profile: "own", CreatedAt: now, CreatedBy: "test"},
				pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded, Actor: "test", Outcome: "success"}); err != nil {
				t.Fatal(err)
			}
			enrollAt := func(profile, password string) error {
				req := request(t, "")
				req.Evidence = enroll.Evidence{HTTPUser: "dev", HTTPPassword: password}
				req.Protocol, req.Profile, req.RemoteAddr = pki.ProtocolEST, profile, "192.0.2.10:443"
				_, err := f.svc.Enroll(ctx, req)
				return err
			}
			for i := range 5 {
				if err := enrollAt("other", c.password); pki.ErrorCode(err) != c.wantErr {
					t.Fatalf("try %d at the other profile: %v, want %s", i, err, c.wantErr)
				}
			}
			err = enrollAt("own", "device-pass")
			if got := err != nil && strings.Contains(pki.ErrorMessage(err), "too many failed attempts"); got != c.locked {
				t.Errorf("at its own profile: %v; locked out %v, want %v", err, got, c.locked)
			}
		})
	}
}

// A one-time challenge presented at a profile it is not bound to proves
// its holder knows it: refused (EForbidden, EST 403, SCEP badRequest) with
// its reason, but no failed guess, so that a device pointed at the wrong
// profile does not lock its requester out; it still enrolls at its own
// profile from the same address. A wrong challenge there still counts,
// and locks out the guessable secrets there; the one-time challenge, which
// cannot be guessed, enrolls all the same.
func TestChallengeAtAnotherProfileIsForbiddenNotAFailure(t *testing.T) {
	cases := []struct {
		name    string
		est     bool
		right   bool
		wantErr pki.Code
	}{
		{"SCEP, the right challenge", false, true, pki.EForbidden},
		{"SCEP, a wrong challenge", false, false, pki.EUnauthorized},
		{"EST Basic, the right challenge", true, true, pki.EForbidden},
		{"EST Basic, a wrong challenge", true, false, pki.EUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			own, other := pki.DefaultProfile(), pki.DefaultProfile()
			own.Name, other.Name = "own", "other"
			f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 2,
				Profiles: map[string]pki.Profile{"own": own, "other": other}, DefaultProfile: "own"})
			ctx := context.Background()
			secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "own", "test")
			if err != nil {
				t.Fatal(err)
			}
			enrollAt := func(profile, challenge string) error {
				req := request(t, challenge)
				if c.est {
					req.Evidence = enroll.Evidence{HTTPUser: "device", HTTPPassword: challenge}
					req.Protocol = pki.ProtocolEST
				}
				req.Profile, req.RemoteAddr = profile, "192.0.2.10:443"
				_, err := f.svc.Enroll(ctx, req)
				return err
			}
			presented := secret
			if !c.right {
				presented = "a-guess"
			}
			// Fewer than ChallengeLockAfter, so the challenge stays usable.
			for i := range enroll.ChallengeLockAfter - 1 {
				if err := enrollAt("other", presented); pki.ErrorCode(err) != c.wantErr {
					t.Errorf("try %d at the other profile: %v, want %s", i, err, c.wantErr)
				}
			}
			err = enrollAt("other", "another-guess")
			if locked := err != nil && strings.Contains(pki.ErrorMessage(err), "too many failed attempts"); locked == c.right {
				t.Errorf("another guess at the other profile: %v; locked out %v, want %v", err, locked, !c.right)
			}
			if err := enrollAt("own", secret); err != nil {
				t.Errorf("at its own profile: %v", err)
			}
		})
	}
}

// A server-side key is of the CSR key's type and size, where the server
// makes it and the profile accepts it; anything else is refused naming
// what it makes, never answered with a key of another type.
func TestServerKeyGenMakesTheCSRKeysType(t *testing.T) {
	rsaOnly := pki.DefaultProfile()
	rsaOnly.Name, rsaOnly.ServerKeyGen, rsaOnly.Keys = "rsa-only", true, pki.KeyPolicy{RSAMinBits: 3072}
	both := pki.DefaultProfile()
	both.Name, both.ServerKeyGen = "both", true
	f := newFixture(t, map[string]pki.Profile{"rsa-only": rsaOnly, "both": both}, "both")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, profile string
		key           crypto.Signer
		want          string // the key type made; "" for a refusal
		says          string
	}{
		{"P-256", "both", key(t), "p256", ""},
		{"P-384", "both", p384, "p384", ""},
		{"P-521, not made", "both", p521, "", "the server makes p256, p384, rsa2048, rsa3072, rsa4096 keys"},
		{"P-256 at an RSA-only profile", "rsa-only", key(t), "", "the server makes rsa3072, rsa4096 keys"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: fmt.Sprintf("keygen-%d", i)}}, c.key)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			secret, _, err := f.admin.NewChallenge(context.Background(), time.Hour, c.profile, "test")
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.svc.Enroll(context.Background(), enroll.Request{CSR: parsed, Evidence: enroll.Evidence{Challenge: secret},
				Profile: c.profile, Protocol: pki.ProtocolEST, ServerKeyGen: true, TransactionID: fmt.Sprintf("tx-%d", i), RemoteAddr: "192.0.2.10:1"})
			if c.want == "" {
				if !errors.Is(err, enroll.ErrServerKeyType) || !strings.Contains(pki.ErrorMessage(err), c.says) {
					t.Fatalf("got %v, want a refusal saying %q", err, c.says)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keys.KeyTypeOf(res.PrivateKey); got != c.want || keys.KeyTypeOf(res.Certificate.PublicKey) != c.want {
				t.Errorf("made a %s key (certified %s), want %s", got, keys.KeyTypeOf(res.Certificate.PublicKey), c.want)
			}
		})
	}
}
