package estserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
)

const captureDir = "../../../testdata/captures/est"

func profile(name string, edit func(*pki.Profile)) pki.Profile {
	p := pki.DefaultProfile()
	p.Name = name
	if edit != nil {
		edit(&p)
	}
	return p
}

func TestCACerts(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	r := f.get(c, "cacerts")
	wantStatus(t, r, http.StatusOK, "")
	if r.header.Get("Content-Length") == "" || r.header.Get("Content-Transfer-Encoding") != "base64" || r.header.Get("Content-Type") != "application/pkcs7-mime" {
		t.Errorf("headers %v", r.header)
	}
	if bytes.ContainsAny(r.body, "\r\n") {
		t.Error("the base64 body has line breaks (strongSwan cannot read them)")
	}
	der, _ := est.DecodeBase64(r.body)
	sd, err := cms.ParseSignedData(der)
	if err != nil || len(sd.Certificates) != 2 || !sd.Certificates[0].Equal(f.auth.Issuer.Cert) || !sd.Certificates[1].Equal(f.auth.Root) {
		t.Fatalf("cacerts: %v, %d certificates; want issuing CA then root", err, len(sd.Certificates))
	}
	// Our client, bootstrapping from the root's fingerprint alone.
	boot := &client.EST{URL: f.url, Fingerprint: client.Fingerprint(f.auth.Root), Now: f.clock.Now}
	certs, err := boot.CACerts(context.Background())
	if err != nil || len(certs) != 2 {
		t.Fatalf("bootstrap: %v", err)
	}
	wrong := &client.EST{URL: f.url, Fingerprint: "sha256:" + strings.Repeat("ab", 32), Now: f.clock.Now}
	if _, err := wrong.CACerts(context.Background()); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("a wrong fingerprint was trusted: %v", err)
	}
}

// During a rollover /cacerts also carries the next issuing CA.
func TestCACertsDuringRollover(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	next, _, err := ca.Rollover(f.dir, ca.RolloverOptions{SwitchAt: f.clock.Now().Add(time.Hour)}, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.auth.Reload(f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	certs, err := f.client("").CACerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 3 || !certs[2].Equal(next.Cert) {
		t.Fatalf("cacerts during a rollover: %d certificates, want the chain and the next CA", len(certs))
	}
}

func TestCSRAttrs(t *testing.T) {
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{
		profile("cb", func(p *pki.Profile) { p.RequireChannelBinding = true }),
		profile("rsa", func(p *pki.Profile) { p.Keys = pki.KeyPolicy{RSAMinBits: 3072, RSAMaxBits: 4096} }),
		profile("rsa-odd", func(p *pki.Profile) { p.Keys = pki.KeyPolicy{RSAMinBits: 2500, RSAMaxBits: 8192} }),
	}})
	type answer struct {
		binding, ec, rsa bool
		// chosen is the key a client following the advice makes, and
		// rsa2048 whether a 2048-bit key is what was asked for.
		chosen  string
		rsa2048 bool
	}
	for label, want := range map[string]answer{
		"":        {false, true, true, "p256", true},
		"cb":      {true, true, true, "p256", true},
		"rsa":     {false, false, true, "rsa3072", false},
		"rsa-odd": {false, false, true, "rsa3072", false},
	} {
		attrs, err := f.client(label).CSRAttrs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		advice := client.KeyAdviceOf(attrs)
		got := answer{
			est.Has(attrs, est.OIDChallengePassword),
			est.Has(attrs, asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}),
			est.Has(attrs, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}),
			advice.Choose(), advice.Accepts("rsa2048"),
		}
		if got != want {
			t.Errorf("label %q: csrattrs %+v, want %+v", label, got, want)
		}
	}
}

// RFC 8951: base64 with any line breaks, with or without padding, with or
// without Content-Transfer-Encoding; the inventory says est.
func TestSimpleEnrollBodies(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	key := newKey(t)
	raw := newCSR(t, key, "bodies", csr.Template{DNSNames: []string{"bodies.example"}})
	wrapped := func(width int, eol string) []byte {
		var b bytes.Buffer
		for i := 0; i < len(raw); i += width {
			b.Write(raw[i:min(i+width, len(raw))])
			b.WriteString(eol)
		}
		return b.Bytes()
	}
	for name, body := range map[string][]byte{
		"one line":         raw,
		"76 columns, CRLF": wrapped(76, "\r\n"),
		"64 columns, LF":   wrapped(64, "\n"),
		"unpadded":         bytes.TrimRight(raw, "="),
		"spaces":           bytes.ReplaceAll(wrapped(40, "\n"), []byte("\n"), []byte(" \n\t")),
	} {
		for _, cte := range []string{"", "base64", "binary"} {
			r := f.post(c, "simpleenroll", "alice", userPassword, body, map[string]string{"Content-Transfer-Encoding": cte})
			cert := f.issued(r)
			if cert.Subject.CommonName != "bodies" || !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Errorf("%s/%q: issued %s", name, cte, cert.Subject)
			}
			if r.header.Get("Content-Type") != est.ContentTypeCertsOnly {
				t.Errorf("content type %q", r.header.Get("Content-Type"))
			}
			if rec := f.record(cert); rec.Protocol != pki.ProtocolEST {
				t.Errorf("inventory protocol %q, want est", rec.Protocol)
			}
		}
	}
}

// The byte-exact requests of curl captured against another EST server are
// served by ours (the capture's user, estuser:estpass, made here).
func TestCapturedCurlRequests(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	hash, err := credential.HashPasswordWithCost("estpass", testPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateESTUser(context.Background(), pki.ESTUser{Name: "estuser", PasswordHash: hash, CreatedAt: f.clock.Now()}, pki.AuditEvent{Type: pki.EventESTUserAdded}); err != nil {
		t.Fatal(err)
	}
	c := f.httpClient(nil, 0)
	for _, name := range []string{"curl-est-simpleenroll-rsa2048", "curl-est-simpleenroll-rsa4096", "curl-est-simpleenroll-ecdsa-p256"} {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(captureDir, name, "request.body"))
			if err != nil {
				t.Fatal(err)
			}
			key, err := keys.LoadKeyFile(filepath.Join(captureDir, name, "client-key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			cert := f.issued(f.post(c, "simpleenroll", "estuser", "estpass", body, map[string]string{"Content-Transfer-Encoding": "base64"}))
			if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Error("the certificate does not carry the captured request's key")
			}
		})
	}
	body, _ := os.ReadFile(filepath.Join(captureDir, "curl-est-simpleenroll-badauth", "request.body"))
	wantStatus(t, f.post(c, "simpleenroll", "estuser", "wrongpass", body, nil), http.StatusUnauthorized, "not valid")
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{
		profile("iot", nil),
		profile("idevid", func(p *pki.Profile) { p.ManufacturerAuth = true }),
		profile("idevid-bound", func(p *pki.Profile) { p.ManufacturerAuth, p.ManufacturerSameSubject = true, true }),
	}})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	body := func(cn string) []byte { return newCSR(t, newKey(t), cn, csr.Template{}) }

	wantStatus(t, f.post(c, "simpleenroll", "", "", body("none"), nil), http.StatusUnauthorized, "authentication required")
	wantStatus(t, f.post(c, "simpleenroll", "alice", "wrong-password-1", body("wrong"), nil), http.StatusUnauthorized, "not valid")
	wantStatus(t, f.post(c, "simpleenroll", "mallory", userPassword, body("unknown-user"), nil), http.StatusUnauthorized, "not valid")
	f.issued(f.post(c, "simpleenroll", "alice", userPassword, body("right"), nil))

	// A user bound to one profile enrolls there only.
	addESTUser(t, f.st, f.clock, "bob", "bob-password-123", "iot")
	f.issued(f.post(c, "iot/simpleenroll", "bob", "bob-password-123", body("bob-iot"), nil))
	wantStatus(t, f.post(c, "simpleenroll", "bob", "bob-password-123", body("bob-default"), nil), http.StatusForbidden, "profile") // the right password: a policy refusal, not a failure

	// A one-time challenge as the Basic password, whatever the user: once.
	otp, _, err := f.adm.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	f.issued(f.post(c, "simpleenroll", "anyone", otp, body("otp-1"), nil))
	wantStatus(t, f.post(c, "simpleenroll", "anyone", otp, body("otp-2"), nil), http.StatusForbidden, "used already")
	// An EST user's name too.
	otp2, _, err := f.adm.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	f.issued(f.post(c, "simpleenroll", "alice", otp2, body("otp-alice"), nil))
	// One bound to an identity, presented for another, is refused with
	// the reason (its holder learns nothing), and not used up.
	bound, _, err := f.adm.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Hour, Subject: "CN=gw-7", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, f.post(c, "simpleenroll", "anyone", bound, body("gw-8"), nil), http.StatusForbidden, "bound to another subject")
	f.issued(f.post(c, "simpleenroll", "anyone", bound, body("gw-7"), nil))

	// A manufacturer certificate (IDevID) at a profile that accepts them.
	devKey := newKey(t)
	idevid := f.manufacturer.issue(t, "device-serial-42", devKey, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(24*time.Hour))
	mc := f.httpClient(tlsPair(idevid, devKey), 0)
	f.issued(f.post(mc, "idevid/simpleenroll", "", "", body("idevid"), nil))
	wantStatus(t, f.post(mc, "simpleenroll", "", "", body("idevid-elsewhere"), nil), http.StatusUnauthorized, "accepts no client certificate")
	// Bound to the device: only the IDevID's own subject.
	wantStatus(t, f.post(mc, "idevid-bound/simpleenroll", "", "", body("someone-else"), nil), http.StatusForbidden, "own subject")
	f.issued(f.post(mc, "idevid-bound/simpleenroll", "", "", body("device-serial-42"), nil))
	// Bound to its own subject, an IDevID enrolls its own names only.
	withNames := f.manufacturer.issue(t, "device-serial-43", devKey, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(24*time.Hour),
		func(c *x509.Certificate) { c.DNSNames = []string{"device-43.example"} })
	nc := f.httpClient(tlsPair(withNames, devKey), 0)
	named := func(dns ...string) []byte {
		return newCSR(t, newKey(t), "device-serial-43", csr.Template{DNSNames: dns})
	}
	wantStatus(t, f.post(nc, "idevid-bound/simpleenroll", "", "", named("vpn.example"), nil), http.StatusForbidden, "own names")
	wantStatus(t, f.post(nc, "idevid-bound/simpleenroll", "", "", named("device-43.example", "*.example"), nil), http.StatusForbidden, "own names")
	wantStatus(t, f.post(mc, "idevid-bound/simpleenroll", "", "", newCSR(t, newKey(t), "device-serial-42", csr.Template{DNSNames: []string{"device-42.example"}}), nil), http.StatusForbidden, "own names")
	f.issued(f.post(nc, "idevid-bound/simpleenroll", "", "", named("device-43.example"), nil))
	// An IDevID whose extended key usage excludes client authentication.
	serverOnly := f.manufacturer.issue(t, "device-serial-44", devKey, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(24*time.Hour),
		func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
	wantStatus(t, f.post(f.httpClient(tlsPair(serverOnly, devKey), 0), "idevid/simpleenroll", "", "", body("device-serial-44"), nil), http.StatusForbidden, "extended key usage")
	expired := f.manufacturer.issue(t, "old-device", devKey, f.clock.Now().Add(-48*time.Hour), f.clock.Now().Add(-24*time.Hour))
	wantStatus(t, f.post(f.httpClient(tlsPair(expired, devKey), 0), "idevid/simpleenroll", "", "", body("expired-idevid"), nil), http.StatusForbidden, "expired")
	unknown := newTestCA(t, "Someone Else", f.clock.Now())
	stranger := unknown.issue(t, "stranger", devKey, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(time.Hour))
	wantStatus(t, f.post(f.httpClient(tlsPair(stranger, devKey), 0), "idevid/simpleenroll", "", "", body("stranger"), nil), http.StatusUnauthorized, "manufacturer")
	// The manufacturer's CA certificate itself is no device's.
	wantStatus(t, f.post(f.httpClient(tlsPair(f.manufacturer.cert, f.manufacturer.key), 0), "idevid/simpleenroll", "", "", body("mfr-root"), nil),
		http.StatusUnauthorized, "CA certificate")

	// Every refusal is in the audit trail; nothing was recorded for them.
	evs, _ := f.st.ListAudit(ctx, store.AuditFilter{Limit: 200})
	refused := 0
	for _, e := range evs {
		if e.Outcome == "failure" {
			refused++
		}
		if strings.Contains(e.Reason+e.Detail, userPassword) || strings.Contains(e.Reason+e.Detail, otp) || strings.Contains(e.Reason+e.Detail, bound) {
			t.Errorf("audit event leaks a secret: %+v", e)
		}
	}
	if refused != 16 { // the bound challenge's misuse is audited as such too
		t.Errorf("%d refusals audited, want 16", refused)
	}
	certs, _, _ := f.st.ListCertificates(ctx, store.CertFilter{Limit: 100})
	if len(certs) != 8+1 { // eight enrollments and the server's own TLS certificate
		t.Errorf("%d certificates recorded, want 9", len(certs))
	}
}

// An address locked out after too many wrong passwords is told to come
// back later (429 with Retry-After), not that its credentials are wrong
// (401 would make a client prompt again), even with the right password;
// it is served again once the lock ends.
func TestLockedOut(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	body := func(cn string) []byte { return newCSR(t, newKey(t), cn, csr.Template{}) }
	for i := range 10 { // the default limit
		wantStatus(t, f.post(c, "simpleenroll", "alice", fmt.Sprintf("wrong-password-%d", i), body("guess"), nil), http.StatusUnauthorized, "not valid")
	}
	for _, tc := range []struct {
		name       string
		advance    time.Duration
		retryAfter string
	}{
		{"at once", 0, "60"},
		{"20.5 s later", 20*time.Second + 500*time.Millisecond, "40"}, // whole seconds, rounded up
	} {
		f.clock.Advance(tc.advance)
		r := f.post(c, "simpleenroll", "alice", userPassword, body("right"), nil)
		wantStatus(t, r, http.StatusTooManyRequests, "too many failed attempts")
		if got := r.header.Get("Retry-After"); got != tc.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", tc.name, got, tc.retryAfter)
		}
		if got := r.header.Get("WWW-Authenticate"); got != "" {
			t.Errorf("%s: 429 with WWW-Authenticate %q: a client would take it for wrong credentials", tc.name, got)
		}
	}
	f.clock.Advance(40 * time.Second)
	f.issued(f.post(c, "simpleenroll", "alice", userPassword, body("right"), nil))

	evs, _ := f.st.ListAudit(ctx, store.AuditFilter{Limit: 200})
	locked := 0
	for _, e := range evs {
		if e.Outcome == "failure" && strings.Contains(e.Reason, "too many failed attempts") {
			locked++
		}
	}
	if locked != 2 {
		t.Errorf("%d lockout refusals audited, want 2", locked)
	}
}

func TestReenroll(t *testing.T) {
	renew := profile("renew", func(p *pki.Profile) { p.RenewalWindow = 1; p.Validity = 24 * time.Hour })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{renew}})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	key := newKey(t)
	old := f.issued(f.post(c, "renew/simpleenroll", "alice", userPassword, newCSR(t, key, "renew-me", csr.Template{DNSNames: []string{"renew-me.example"}}), nil))
	chain := []*x509.Certificate{f.auth.Issuer.Cert}
	tc := f.httpClient(tlsPair(old, key, chain...), 0)

	// Without the certificate: 403, whatever else is presented.
	wantStatus(t, f.post(c, "renew/simplereenroll", "alice", userPassword, newCSR(t, key, "renew-me", csr.Template{DNSNames: []string{"renew-me.example"}}), nil),
		http.StatusForbidden, "TLS client certificate")
	// Names must be kept.
	wantStatus(t, f.post(tc, "renew/simplereenroll", "", "", newCSR(t, key, "someone-else", csr.Template{DNSNames: []string{"renew-me.example"}}), nil),
		http.StatusForbidden, "keep the subject")
	// A second CN before the old one is another subject too, though
	// pkix.Name would keep only the last CN and read it as the same.
	cnOID := asn1.ObjectIdentifier{2, 5, 4, 3}
	twoCNs, err := asn1.Marshal(pkix.RDNSequence{{{Type: cnOID, Value: "evil"}}, {{Type: cnOID, Value: "renew-me"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, f.post(tc, "renew/simplereenroll", "", "", newCSR(t, key, "", csr.Template{RawSubject: twoCNs, DNSNames: []string{"renew-me.example"}}), nil),
		http.StatusForbidden, "keep the subject")
	// Same key, then a new key.
	same := f.issued(f.post(tc, "renew/simplereenroll", "", "", newCSR(t, key, "renew-me", csr.Template{DNSNames: []string{"renew-me.example"}}), nil))
	newK := newKey(t)
	rekeyed := f.issued(f.post(tc, "renew/simplereenroll", "", "", newCSR(t, newK, "renew-me", csr.Template{DNSNames: []string{"renew-me.example"}}), nil))
	for _, n := range []*x509.Certificate{same, rekeyed} {
		if rec := f.record(n); rec.RenewedFrom == "" || rec.Protocol != pki.ProtocolEST {
			t.Errorf("renewal record %+v", rec)
		}
	}
	// Our client re-enrolls the same way.
	res, err := (&client.EST{URL: f.url + "/renew", Roots: f.roots, Now: f.clock.Now, Certificate: tlsPair(rekeyed, newK)}).Enroll(ctx, client.ESTRequest{
		Op: est.OpSimpleReenroll, MakeCSR: func([]byte) ([]byte, error) {
			return csr.Create(csr.Template{RawSubject: rekeyed.RawSubject, DNSNames: rekeyed.DNSNames}, newK)
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.verify(res.Certificate)

	// Revoked: refused as a credential that is no longer valid.
	rec := f.record(same)
	if _, _, err := f.st.RevokeCertificate(ctx, rec.IssuerID, rec.SerialHex, 1, f.clock.Now(), pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, f.post(f.httpClient(tlsPair(same, key), 0), "renew/simplereenroll", "", "", newCSR(t, key, "renew-me", csr.Template{DNSNames: []string{"renew-me.example"}}), nil),
		http.StatusUnauthorized, "revoked")
	// Not ours: refused.
	stranger := newTestCA(t, "Stranger CA", f.clock.Now()).issue(t, "renew-me", key, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(time.Hour))
	wantStatus(t, f.post(f.httpClient(tlsPair(stranger, key), 0), "renew/simplereenroll", "", "", newCSR(t, key, "renew-me", csr.Template{}), nil),
		http.StatusUnauthorized, "the client certificate was not issued by this CA")
	// Our certificate does not buy a first enrollment at simpleenroll.
	wantStatus(t, f.post(tc, "renew/simpleenroll", "", "", newCSR(t, newKey(t), "second-identity", csr.Template{}), nil),
		http.StatusUnauthorized, "re-enrollment")
	// Expired (the clock moves past its NotAfter, not past the server's
	// own TLS certificate's): refused.
	f.clock.Set(rekeyed.NotAfter.Add(time.Hour))
	expired := f.httpClient(tlsPair(rekeyed, newK), 0)
	wantStatus(t, f.post(expired, "renew/simplereenroll", "", "", newCSR(t, newK, "renew-me", csr.Template{DNSNames: []string{"renew-me.example"}}), nil),
		http.StatusForbidden, "expired")
}

// The renewal window applies as for SCEP.
func TestReenrollOutsideWindow(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	key := newKey(t)
	old := f.issued(f.post(c, "simpleenroll", "alice", userPassword, newCSR(t, key, "early", csr.Template{}), nil))
	r := f.post(f.httpClient(tlsPair(old, key), 0), "simplereenroll", "", "", newCSR(t, key, "early", csr.Template{}), nil)
	wantStatus(t, r, http.StatusForbidden, "renewal of this certificate opens at")
}

func TestChannelBinding(t *testing.T) {
	cb := profile("cb", func(p *pki.Profile) { p.RequireChannelBinding = true })
	for _, v := range []struct {
		name string
		tls  uint16
	}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}} {
		t.Run(v.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{cb}, minVersion: v.tls, maxVersion: v.tls})
			ctx := context.Background()
			key := newKey(t)
			cl := f.client("cb")
			cl.User, cl.Password = "alice", userPassword
			enroll := func(binding func(session []byte) []byte) (*client.ESTResult, error) {
				return cl.Enroll(ctx, client.ESTRequest{Op: est.OpSimpleEnroll, MakeCSR: func(session []byte) ([]byte, error) {
					if len(session) == 0 {
						t.Fatal("no channel binding on this connection")
					}
					t := csr.Template{RawSubject: mustDN(t, "CN=bound")}
					if b := binding(session); b != nil {
						t.ChallengePassword = est.ChannelBindingPassword(b)
					}
					return csr.Create(t, key)
				}})
			}
			res, err := enroll(func(s []byte) []byte { return s })
			if err != nil {
				t.Fatalf("the right binding: %v", err)
			}
			f.verify(res.Certificate)
			// A value taken from another TLS session.
			var other []byte
			if _, err := enroll(func(s []byte) []byte { other = s; return s }); err != nil {
				t.Fatal(err)
			}
			if _, err := enroll(func([]byte) []byte { return other }); err == nil || !strings.Contains(err.Error(), "does not match") {
				t.Errorf("a binding from another session: %v", err)
			}
			// None, where the profile demands one: 403, a policy refusal of a request whose credentials are right (401 would ask for them again).
			_, err = enroll(func([]byte) []byte { return nil })
			var he *client.HTTPError
			if !asHTTPError(err, &he) || he.Status != http.StatusForbidden || !strings.Contains(he.Reason, "channel binding") {
				t.Errorf("no binding: %v", err)
			}
			// At a profile that does not demand it, a wrong one is still refused.
			def := f.client("")
			def.User, def.Password = "alice", userPassword
			if _, err := def.Enroll(ctx, client.ESTRequest{Op: est.OpSimpleEnroll, MakeCSR: func([]byte) ([]byte, error) {
				return csr.Create(csr.Template{RawSubject: mustDN(t, "CN=unbound"), ChallengePassword: est.ChannelBindingPassword(other)}, key)
			}}); err == nil {
				t.Error("a stale binding was accepted where none is required")
			}
		})
	}
}

func TestServerKeyGen(t *testing.T) {
	keygen := profile("keygen", func(p *pki.Profile) { p.ServerKeyGen = true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{keygen}})
	ctx := context.Background()
	cl := f.client("keygen")
	cl.User, cl.Password = "alice", userPassword

	// Plain: PKCS#8 inside TLS, a key of the CSR key's type.
	csrKey := newKey(t)
	res, err := cl.Enroll(ctx, client.ESTRequest{Op: est.OpServerKeyGen, MakeCSR: func([]byte) ([]byte, error) {
		return csr.Create(csr.Template{RawSubject: mustDN(t, "CN=keygen")}, csrKey)
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.verify(res.Certificate)
	if res.KeyEncrypted || keys.KeyTypeOf(res.Key.Public()) != "p256" || res.Certificate.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(csrKey.Public()) {
		t.Errorf("plain serverkeygen: encrypted=%v key %s", res.KeyEncrypted, keys.KeyTypeOf(res.Key.Public()))
	}

	// Encrypted to the request's RSA key (AsymmetricDecryptKeyIdentifier).
	rsaKey, err := keys.Generate(keys.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	id := pkitest.SubjectKeyID(t, rsaKey.Public())
	idAttr, _ := asn1.Marshal(id)
	res, err = cl.Enroll(ctx, client.ESTRequest{Op: est.OpServerKeyGen, DecryptKey: rsaKey.(*rsa.PrivateKey), KeyID: id,
		MakeCSR: func([]byte) ([]byte, error) {
			return csr.Create(csr.Template{RawSubject: mustDN(t, "CN=keygen-enc"),
				Attributes: []csr.Attribute{{Type: est.OIDAsymmetricDecryptKeyIdentifier, Values: [][]byte{idAttr}}}}, rsaKey)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.KeyEncrypted {
		t.Error("the key was not encrypted")
	}
	f.verify(res.Certificate)

	// A key identifier we do not know, a symmetric key, an EC key: refused
	// before anything is issued.
	before := certCount(t, f)
	for name, tc := range map[string]struct {
		attr  asn1.ObjectIdentifier
		value []byte
		key   crypto.Signer
		want  string
	}{
		"unknown identifier": {est.OIDAsymmetricDecryptKeyIdentifier, []byte("nobody"), rsaKey, "names no key"},
		"symmetric key":      {est.OIDDecryptKeyIdentifier, []byte("psk"), rsaKey, "symmetric"},
		"EC key":             {est.OIDAsymmetricDecryptKeyIdentifier, pkitest.SubjectKeyID(t, csrKey.Public()), csrKey, "not RSA"},
	} {
		t.Run(name, func(t *testing.T) {
			v, _ := asn1.Marshal(tc.value)
			der := newCSR(t, tc.key, "bad", csr.Template{Attributes: []csr.Attribute{{Type: tc.attr, Values: [][]byte{v}}}})
			wantStatus(t, f.post(f.httpClient(nil, 0), "keygen/serverkeygen", "alice", userPassword, der, nil), http.StatusForbidden, tc.want)
		})
	}
	if after := certCount(t, f); after != before {
		t.Errorf("%d certificates issued for refused serverkeygen requests", after-before)
	}
	// The reply holds a private key: no cache may keep it.
	r := f.post(f.httpClient(nil, 0), "keygen/serverkeygen", "alice", userPassword, newCSR(t, csrKey, "keygen-cache", csr.Template{}), nil)
	if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("serverkeygen: HTTP %d, Cache-Control %q; want 200 and no-store", r.status, r.header.Get("Cache-Control"))
	}
	// A CSR key of a type the server does not make (RSA of an odd size,
	// P-521) is refused with 400 naming those it makes, not answered with
	// a key of another type.
	odd := map[string]func() (crypto.Signer, error){
		"RSA-2304": func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2304) },
		"P-521":    func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
	}
	for name, gen := range odd {
		t.Run(name, func(t *testing.T) {
			k, err := gen()
			if err != nil {
				t.Fatal(err)
			}
			r := f.post(f.httpClient(nil, 0), "keygen/serverkeygen", "alice", userPassword, newCSR(t, k, "keygen-odd", csr.Template{}), nil)
			wantStatus(t, r, http.StatusBadRequest, "the server makes p256, p384, rsa2048, rsa3072, rsa4096 keys")
		})
	}
	// A profile without it.
	wantStatus(t, f.post(f.httpClient(nil, 0), "serverkeygen", "alice", userPassword, newCSR(t, csrKey, "nope", csr.Template{}), nil),
		http.StatusForbidden, "does not allow server-side key generation")
}

// lockedBuffer is a log sink the server's goroutines write while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A challengePassword that cannot be a channel binding (openssl's prompt,
// a CSR reused from SCEP with its challenge) is ignored where the profile
// requires no binding, and goes nowhere: not the log, not an audit event,
// not a stored CSR. One that could be a binding is still checked, and
// where the profile requires a binding nothing is ignored.
func TestChallengePasswordThatIsNoBinding(t *testing.T) {
	cb := profile("cb", func(p *pki.Profile) { p.RequireChannelBinding = true })
	held := profile("held", func(p *pki.Profile) { p.RequireApproval = true })
	var log lockedBuffer
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{cb, held}, logTo: &log})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	notBindings := []string{
		"hello world!",
		"challenge password",
		"A1B2C3D4E5F60718293A4B5C6D7E8F90", // a one-time challenge (hex): base64 of 24 bytes
		base64.StdEncoding.EncodeToString(random(16)),
		base64.StdEncoding.EncodeToString(random(33)),
		base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)), // 32 bytes, but base64url: "____…"
	}
	for i, pw := range notBindings {
		body := newCSR(t, newKey(t), fmt.Sprintf("ignored-%d", i), csr.Template{ChallengePassword: pw})
		f.issued(f.post(c, "simpleenroll", "alice", userPassword, body, nil))
		wantStatus(t, f.post(c, "cb/simpleenroll", "alice", userPassword, body, nil), http.StatusForbidden, "does not match")
	}
	for _, n := range []int{12, 32, 48, 64} {
		for _, pw := range []string{base64.StdEncoding.EncodeToString(random(n)), base64.RawStdEncoding.EncodeToString(random(n))} {
			body := newCSR(t, newKey(t), fmt.Sprintf("stale-%d", n), csr.Template{ChallengePassword: pw})
			wantStatus(t, f.post(c, "simpleenroll", "alice", userPassword, body, nil), http.StatusForbidden, "does not match")
		}
	}
	// Held for approval: the request is stored without it.
	const scepChallenge = "scep-challenge-not-for-est"
	wantStatus(t, f.post(c, "held/simpleenroll", "alice", userPassword,
		newCSR(t, newKey(t), "held", csr.Template{ChallengePassword: scepChallenge}), nil), http.StatusAccepted, "")
	reqs, _, err := f.adm.Requests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("pending requests %+v, %v", reqs, err)
	}
	stored, err := x509.ParseCertificateRequest(reqs[0].CSR)
	if err != nil {
		t.Fatal(err)
	}
	if pw, err := csr.ChallengePassword(stored); err != nil || pw != "" || bytes.Contains(reqs[0].CSR, []byte(scepChallenge)) {
		t.Errorf("the held request was stored with its challengePassword %q (%v)", pw, err)
	}
	// Refused for another reason: the refusal does not carry it either.
	wantStatus(t, f.post(c, "simpleenroll", "alice", userPassword,
		newCSR(t, newKey(t), "", csr.Template{ChallengePassword: scepChallenge, RawSubject: []byte{0x30, 0x00}}), nil), http.StatusForbidden, "neither a subject")
	events, err := f.st.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil || len(events) == 0 {
		t.Fatalf("audit events: %d, %v", len(events), err)
	}
	trail := fmt.Sprintf("%+v", events)
	for _, pw := range append(notBindings, scepChallenge) {
		if strings.Contains(trail, pw) {
			t.Errorf("the audit trail holds the challengePassword %q", pw)
		}
		if strings.Contains(log.String(), pw) {
			t.Errorf("the log holds the challengePassword %q", pw)
		}
	}
}

func TestApproval(t *testing.T) {
	approval := profile("approval", func(p *pki.Profile) { p.RequireApproval = true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	key := newKey(t)
	body := newCSR(t, key, "held", csr.Template{})
	for range 2 {
		r := f.post(c, "approval/simpleenroll", "alice", userPassword, body, nil)
		wantStatus(t, r, http.StatusAccepted, "held for approval")
		if r.header.Get("Retry-After") != "7" {
			t.Errorf("Retry-After %q, want 7", r.header.Get("Retry-After"))
		}
	}
	// The same key and subject, even in a CSR signed anew, is the same request.
	r := f.post(c, "approval/simpleenroll", "alice", userPassword, newCSR(t, key, "held", csr.Template{}), nil)
	wantStatus(t, r, http.StatusAccepted, "")
	// Asking again needs credentials again: the CSR alone is no secret.
	wantStatus(t, f.post(c, "approval/simpleenroll", "", "", body, nil), http.StatusUnauthorized, "")
	wantStatus(t, f.post(c, "approval/simpleenroll", "alice", "wrong-password-9", body, nil), http.StatusUnauthorized, "")
	// A one-time challenge used up by holding a request still counts for
	// that request, and for no other.
	otp, _, err := f.adm.NewChallenge(ctx, time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	otpBody := newCSR(t, newKey(t), "held-otp", csr.Template{})
	for range 2 {
		wantStatus(t, f.post(c, "approval/simpleenroll", "x", otp, otpBody, nil), http.StatusAccepted, "")
	}
	wantStatus(t, f.post(c, "approval/simpleenroll", "x", otp, newCSR(t, newKey(t), "other", csr.Template{}), nil), http.StatusForbidden, "used already")
	reqs, _, err := f.adm.Requests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if err != nil || len(reqs) != 2 || reqs[1].Protocol != pki.ProtocolEST || reqs[1].Subject != "CN=held" {
		t.Fatalf("pending requests %+v, %v; want two EST requests", reqs, err)
	}
	if _, err := f.svc.Approve(ctx, reqs[1].ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, f.post(c, "approval/simpleenroll", "mallory", "x", body, nil), http.StatusUnauthorized, "")
	cert := f.issued(f.post(c, "approval/simpleenroll", "alice", userPassword, body, nil))
	again := f.issued(f.post(c, "approval/simpleenroll", "alice", userPassword, body, nil))
	if !cert.Equal(again) {
		t.Error("asking again after approval issued a second certificate")
	}
	// Rejected: the reason comes back.
	body2 := newCSR(t, newKey(t), "rejected", csr.Template{})
	wantStatus(t, f.post(c, "approval/simpleenroll", "alice", userPassword, body2, nil), http.StatusAccepted, "")
	reqs, _, _ = f.adm.Requests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if len(reqs) != 2 || reqs[0].Subject != "CN=rejected" {
		t.Fatalf("pending %+v", reqs)
	}
	if err := f.adm.Reject(ctx, reqs[0].ID, "unknown device", "cli:test"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, f.post(c, "approval/simpleenroll", "alice", userPassword, body2, nil), http.StatusForbidden, "unknown device")

	// Our client waits out the 202s and collects the certificate.
	cl := f.client("approval")
	cl.User, cl.Password = "alice", userPassword
	key3 := newKey(t)
	done := make(chan error, 1)
	go func() {
		res, err := cl.Enroll(ctx, client.ESTRequest{Op: est.OpSimpleEnroll, PollInterval: 10 * time.Millisecond, MaxWait: time.Hour,
			MakeCSR: func([]byte) ([]byte, error) {
				return csr.Create(csr.Template{RawSubject: mustDN(t, "CN=patient")}, key3)
			}})
		if err == nil && res.Certificate.Subject.CommonName != "patient" {
			t.Errorf("collected %s", res.Certificate.Subject)
		}
		done <- err
	}()
	for {
		reqs, _, _ := f.adm.Requests(ctx, store.RequestFilter{Status: pki.RequestPending})
		if len(reqs) == 2 {
			if _, err := f.svc.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client did not collect its certificate")
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	key := newKey(t)
	good := newCSR(t, key, "good", csr.Template{})
	tampered := bytes.Clone(good)
	der, _ := est.DecodeBase64(tampered)
	der[len(der)-5] ^= 0xff // the signature
	tampered = est.EncodeBase64(der)
	utf8 := func(s string) []byte { v, _ := asn1.MarshalWithParams(s, "utf8"); return v }
	integer := []byte{0x02, 0x01, 0x05}
	withAttr := func(oid asn1.ObjectIdentifier, values ...[]byte) []byte {
		return newCSR(t, key, "attrs", csr.Template{Attributes: []csr.Attribute{{Type: oid, Values: values}}})
	}
	for name, tc := range map[string]struct {
		method, path string
		body         []byte
		status       int
		reason       string
		// authorization, when set, replaces alice's Basic credentials:
		// one value per Authorization header.
		authorization []string
		allow         string // a 405's Allow: the methods really served
	}{
		"not base64":        {method: "POST", path: "simpleenroll", body: []byte("this is not base64!"), status: 400, reason: "base64"},
		"binary DER":        {method: "POST", path: "simpleenroll", body: []byte{0x30, 0x82, 0x01, 0x0a, 0x02, 0xff}, status: 400, reason: "the body is binary, a DER request as it seems"},
		"0, not base64":     {method: "POST", path: "simpleenroll", body: []byte("0 is not base64!"), status: 400, reason: "the body is not base64"},
		"not a CSR":         {method: "POST", path: "simpleenroll", body: est.EncodeBase64([]byte("hello")), status: 400, reason: "PKCS#10"},
		"empty":             {method: "POST", path: "simpleenroll", body: nil, status: 400, reason: "the body is empty"},
		"white space only":  {method: "POST", path: "simpleenroll", body: []byte(" \r\n"), status: 400, reason: "the body is empty"},
		"PEM":               {method: "POST", path: "simpleenroll", body: append(append([]byte("-----BEGIN CERTIFICATE REQUEST-----\n"), good...), "\n-----END CERTIFICATE REQUEST-----\n"...), status: 400, reason: "the body is PEM"},
		"bad signature":     {method: "POST", path: "simpleenroll", body: tampered, status: 400, reason: "signature"},
		"too big":           {method: "POST", path: "simpleenroll", body: bytes.Repeat([]byte("A"), est.MaxBodyBytes+1), status: 413, reason: "larger"},
		"GET simpleenroll":  {method: "GET", path: "simpleenroll", body: nil, status: 405, reason: "POST", allow: "POST"},
		"POST cacerts":      {method: "POST", path: "cacerts", body: good, status: 405, reason: "GET", allow: "GET, HEAD"},
		"PUT csrattrs":      {method: "PUT", path: "csrattrs", body: nil, status: 405, reason: "GET", allow: "GET, HEAD"},
		"unknown label":     {method: "GET", path: "nosuchprofile/cacerts", body: nil, status: 404, reason: "unknown EST label"},
		"unknown operation": {method: "GET", path: "frobnicate", body: nil, status: 404, reason: "unknown EST operation"},
		// One level too deep is no EST path either: a reasoned 404, as
		// above, not the mux's bare one.
		"too deep":                {method: "POST", path: "a/b/simpleenroll", body: good, status: 404, reason: "unknown EST path"},
		"too deep, a known label": {method: "GET", path: "default/x/cacerts", body: nil, status: 404, reason: "unknown EST path"},
		"no operation":            {method: "GET", path: "", body: nil, status: 404, reason: "unknown EST path"},
		"fullcmc":                 {method: "POST", path: "fullcmc", body: good, status: 501, reason: "fullcmc"},
		// A malformed attribute is a malformed body: 400, not a policy
		// refusal's 403.
		"challengePassword with two values": {method: "POST", path: "simpleenroll", status: 400, reason: "malformed challengePassword",
			body: withAttr(est.OIDChallengePassword, utf8("a"), utf8("b"))},
		"challengePassword an INTEGER": {method: "POST", path: "simpleenroll", status: 400, reason: "malformed challengePassword",
			body: withAttr(est.OIDChallengePassword, integer)},
		// One over PKCS #9's bound is told the bound, not "malformed".
		"challengePassword of 10 KB": {method: "POST", path: "simpleenroll", status: 400,
			reason: "the challengePassword attribute is 10240 characters long; PKCS #9 (RFC 2985) allows at most 255",
			body:   withAttr(est.OIDChallengePassword, utf8(strings.Repeat("x", 10240)))},
		"AsymmetricDecryptKeyIdentifier with two values": {method: "POST", path: "serverkeygen", status: 400, reason: "one value",
			body: withAttr(est.OIDAsymmetricDecryptKeyIdentifier, []byte{0x04, 0x01, 0x01}, []byte{0x04, 0x01, 0x02})},
		"AsymmetricDecryptKeyIdentifier an INTEGER": {method: "POST", path: "serverkeygen", status: 400, reason: "not an OCTET STRING",
			body: withAttr(est.OIDAsymmetricDecryptKeyIdentifier, integer)},
		// A proxy that checks one of two Authorization headers must not
		// be fooled by the other: whichever comes first, no answer but 400.
		"two Authorization headers, good first": {method: "POST", path: "simpleenroll", body: good, status: 400, reason: "more than one Authorization header",
			authorization: []string{basicAuth("alice", userPassword), basicAuth("alice", "wrong-password")}},
		"two Authorization headers, bad first": {method: "POST", path: "simpleenroll", body: good, status: 400, reason: "more than one Authorization header",
			authorization: []string{basicAuth("alice", "wrong-password"), basicAuth("alice", userPassword)}},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.url+est.PathPrefix+tc.path, bytes.NewReader(tc.body))
			req.SetBasicAuth("alice", userPassword)
			if tc.authorization != nil {
				req.Header["Authorization"] = tc.authorization
			}
			r := f.do(c, req)
			wantStatus(t, r, tc.status, tc.reason)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
	if n := certCount(t, f); n != 1 {
		t.Errorf("%d certificates recorded, want only the server's own", n)
	}
}

// A request without credentials is told to authenticate (401 with the
// Basic challenge) whatever its body: a client that probes with an empty
// body first (curl --digest, --anyauth) must get the challenge, not a
// complaint about the body, and nothing unauthenticated is parsed.
func TestCredentialsBeforeBody(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	for name, tc := range map[string]struct {
		path   string
		body   []byte
		status int
		reason string
	}{
		"empty body":                  {path: "simpleenroll", body: nil, status: 401, reason: "authentication required"},
		"not base64":                  {path: "simpleenroll", body: []byte("this is not base64!"), status: 401, reason: "authentication required"},
		"PEM":                         {path: "serverkeygen", body: []byte("-----BEGIN CERTIFICATE REQUEST-----\n"), status: 401, reason: "authentication required"},
		"too big":                     {path: "simpleenroll", body: bytes.Repeat([]byte("A"), est.MaxBodyBytes+1), status: 401, reason: "authentication required"},
		"reenroll without a TLS cert": {path: "simplereenroll", body: nil, status: 403, reason: "TLS client certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			r := f.post(c, tc.path, "", "", tc.body, nil)
			wantStatus(t, r, tc.status, tc.reason)
			if got := r.header.Get("WWW-Authenticate"); (tc.status == 401) != (got != "") {
				t.Errorf("WWW-Authenticate %q with HTTP %d", got, tc.status)
			}
		})
	}
}

// EST is refused over plain HTTP: the handler insists on TLS.
func TestPlainHTTPRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	h := estserver.New(f.svc, nil, estserver.Options{})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+est.PathPrefix+"cacerts", nil)
	req.SetPathValue("op", "cacerts")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "HTTPS") {
		t.Errorf("plain HTTP: %d %s", rec.Code, rec.Body.String())
	}
}

// basicAuth is the value of an Authorization header carrying HTTP Basic
// credentials.
func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func certCount(t *testing.T, f *fixture) int {
	t.Helper()
	certs, _, err := f.st.ListCertificates(context.Background(), store.CertFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}

func mustDN(t *testing.T, s string) []byte {
	t.Helper()
	dn, err := csr.ParseDN(s)
	if err != nil {
		t.Fatal(err)
	}
	return dn
}

func asHTTPError(err error, target **client.HTTPError) bool {
	for e := err; e != nil; {
		if he, ok := e.(*client.HTTPError); ok {
			*target = he
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// A well-formed request crypto/x509 cannot read (a URI SAN such as
// Intune's IntuneDeviceId://{guid}) is refused saying why, not only that
// the body is no PKCS#10 request.
func TestUnreadableRequestSaysWhy(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte("IntuneDeviceId://{6f9619ff-8b86-d011-b42d-00c04fc964ff}")}})
	if err != nil {
		t.Fatal(err)
	}
	body := newCSR(t, newKey(t), "intune", csr.Template{ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}})
	r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, body, nil)
	wantStatus(t, r, http.StatusBadRequest, "cannot be parsed as a URI")
}

// A subjectAltName extension crypto/x509 leaves unread but that is not
// valid DER (deeply nested) is malformed input: 400, as a body that does
// not parse, not the 403 of a policy refusal.
func TestMalformedSANIsBadRequest(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	deep := []byte{}
	for i := 0; i < 200; i++ {
		deep = append([]byte{0x30, byte(len(deep))}, deep...)
		if len(deep) > 120 {
			break
		}
	}
	san := append([]byte{0x30, byte(len(deep) + 2), 0xa0, byte(len(deep))}, deep...)
	body := newCSR(t, newKey(t), "deep-san", csr.Template{ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}})
	r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, body, nil)
	wantStatus(t, r, http.StatusBadRequest, "subjectAltName extension is malformed")
}

// Names that are not DER inside an otherName, a directoryName or the
// subject (an RDN with no attribute) get 400 like any malformed request;
// they got 403 as names this CA does not issue. A well-formed directoryName
// keeps its policy refusal.
func TestMalformedNameContentsAreBadRequest(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	san := func(name ...byte) []pkix.Extension {
		return []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: append([]byte{0x30, byte(len(name))}, name...)}}
	}
	upn := []byte{0xa0, 0x13, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03, // otherName, Microsoft UPN
		0xa0, 0x05, 0x0c, 0x09, 'a', 'b', 'c'} // [0] { UTF8String of 9 bytes, 3 present }
	cn := []byte{0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 'd', 'i', 'r'} // CN=dir
	for _, tc := range []struct {
		name   string
		tmpl   csr.Template
		status int
		reason string
	}{
		{"directoryName truncated", csr.Template{ExtraExtensions: san(0xa4, 0x04, 0x30, 0x03, 0x31, 0x05)}, http.StatusBadRequest, "subjectAltName extension is malformed"},
		{"UPN value truncated", csr.Template{ExtraExtensions: san(upn...)}, http.StatusBadRequest, "subjectAltName extension is malformed"},
		{"subject with an empty RDN", csr.Template{RawSubject: []byte{0x30, 0x02, 0x31, 0x00}, DNSNames: []string{"dev.example"}}, http.StatusBadRequest, "subject is not a valid name"},
		{"directoryName well-formed", csr.Template{ExtraExtensions: san(append([]byte{0xa4, byte(len(cn))}, cn...)...)}, http.StatusForbidden, "does not issue as asked: directoryName CN=dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := newCSR(t, newKey(t), "names", tc.tmpl)
			r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, body, nil)
			wantStatus(t, r, tc.status, tc.reason)
		})
	}
}

// r109 D2: a request that is DER but whose subject holds a value its
// string type does not allow is refused naming the attribute and what is
// wrong, at each operation that takes a request, not as a body that is not
// DER at all.
func TestSubjectStringTheTypeForbidsIsNamed(t *testing.T) {
	renew := profile("renew", func(p *pki.Profile) { p.RenewalWindow = 1 })
	keygen := profile("keygen", func(p *pki.Profile) { p.ServerKeyGen = true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{renew, keygen}})
	key := newKey(t)
	old := f.issued(f.post(f.httpClient(nil, 0), "renew/simpleenroll", "alice", userPassword, newCSR(t, key, "renew-me", csr.Template{}), nil))
	renewer := f.httpClient(tlsPair(old, key, f.auth.Issuer.Cert), 0)
	cn := func(tag int, value ...byte) []byte {
		atv, err := asn1.Marshal([]any{asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.RawValue{Tag: tag, Bytes: value}})
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{0x30, byte(len(atv) + 2), 0x31, byte(len(atv))}, atv...)
	}
	for _, tc := range []struct {
		name, path string
		subject    []byte
		want       string
	}{
		{"UTF8String not UTF-8, simpleenroll", "simpleenroll", cn(asn1.TagUTF8String, 'a', 0xff, 0xfe, 'b'),
			"its subject's CN is a UTF8String that is not valid UTF-8 (byte 0xFF at offset 1)"},
		{"PrintableString with Latin-1, simpleenroll", "simpleenroll", cn(asn1.TagPrintableString, 'a', 0xe9, 'b'),
			"its subject's CN is a PrintableString holding byte 0xE9 at offset 1, outside PrintableString's set"},
		{"IA5String with Latin-1, simpleenroll", "simpleenroll", cn(asn1.TagIA5String, 'a', 0xe9),
			"its subject's CN is an IA5String holding byte 0xE9 at offset 1, which is not ASCII"},
		{"UTF8String not UTF-8, simplereenroll", "renew/simplereenroll", cn(asn1.TagUTF8String, 0xc3),
			"its subject's CN is a UTF8String that is not valid UTF-8 (byte 0xC3 at offset 0)"},
		{"PrintableString with Latin-1, serverkeygen", "keygen/serverkeygen", cn(asn1.TagPrintableString, 0xe9),
			"its subject's CN is a PrintableString holding byte 0xE9 at offset 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, user, pass := f.httpClient(nil, 0), "alice", userPassword
			if tc.path == "renew/simplereenroll" {
				c, user, pass = renewer, "", ""
			}
			r := f.post(c, tc.path, user, pass, newCSR(t, key, "", csr.Template{RawSubject: tc.subject}), nil)
			wantStatus(t, r, http.StatusBadRequest, "this server can read: "+tc.want)
		})
	}
}

// A request whose EC key is a compressed point, which crypto/x509 cannot
// read, is told so, not that its key is invalid.
func TestCompressedPointRequestSaysSo(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	der := pkitest.CSRWithEditedECKey(t, "compressed", func(key *ecdsa.PrivateKey, _ *asn1.RawValue, point *asn1.BitString) {
		p := elliptic.MarshalCompressed(elliptic.P256(), key.X, key.Y)
		*point = asn1.BitString{Bytes: p, BitLength: 8 * len(p)}
	})
	r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, est.EncodeBase64(der), nil)
	wantStatus(t, r, http.StatusBadRequest, "compressed point")
}

// A body that is no DER request at all is refused in our words, not
// encoding/asn1's ("sequence truncated", "indefinite length found") or its
// dump of internal structures (SECURITY.md: no Go error text in answers).
func TestMalformedRequestReasonIsShort(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for _, body := range []string{"3103020100", "3000", "30820000", "300a020100", "3003020101", "3080"} {
		der, _ := hex.DecodeString(body)
		r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, est.EncodeBase64(der), nil)
		wantStatus(t, r, http.StatusBadRequest, "this server can read: it is not a DER-encoded PKCS#10 request")
		if strings.ContainsAny(string(r.body), "{}") || strings.Contains(string(r.body), "asn1") || strings.Contains(string(r.body), "x509:") {
			t.Errorf("body %s: reason %q shows the parser's own words", body, r.body)
		}
	}
}

// Wrong credentials are told so (401 with the Basic challenge) whatever
// the body, before it is read: a malformed body with a wrong password got
// 400, which told an unauthenticated caller how bodies are parsed and
// made the server parse them for it. Right credentials with the same body
// get the 400 and its reason as before, for each way of authenticating.
func TestWrongCredentialsBeforeBody(t *testing.T) {
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{
		profile("iot", nil),
		profile("idevid", func(p *pki.Profile) { p.ManufacturerAuth = true }),
	}})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	otp, _, err := f.adm.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	ours := f.issued(f.post(c, "simpleenroll", "alice", userPassword, newCSR(t, key, "renew-me", csr.Template{}), nil))
	oursClient := f.httpClient(tlsPair(ours, key, f.auth.Issuer.Cert), 0)
	revokedKey := newKey(t)
	revoked := f.issued(f.post(c, "simpleenroll", "alice", userPassword, newCSR(t, revokedKey, "revoked", csr.Template{}), nil))
	rec := f.record(revoked)
	if _, _, err := f.st.RevokeCertificate(ctx, rec.IssuerID, rec.SerialHex, 1, f.clock.Now(), pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	revokedClient := f.httpClient(tlsPair(revoked, revokedKey, f.auth.Issuer.Cert), 0)
	devKey := newKey(t)
	idevid := f.httpClient(tlsPair(f.manufacturer.issue(t, "device-1", devKey, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(time.Hour)), devKey), 0)
	strangerCA := newTestCA(t, "Someone Else", f.clock.Now())
	stranger := f.httpClient(tlsPair(strangerCA.issue(t, "stranger", devKey, f.clock.Now().Add(-time.Hour), f.clock.Now().Add(time.Hour)), devKey), 0)

	pem := []byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n")
	tests := []struct {
		name       string
		client     *http.Client
		path       string
		user, pass string
		status     int
		reason     string
	}{
		{"wrong password", c, "simpleenroll", "alice", "wrong-password-1", 401, "not valid"},
		{"unknown user", c, "simpleenroll", "mallory", userPassword, 401, "not valid"},
		{"no password", c, "simpleenroll", "alice", "", 401, "password is required"},
		{"wrong password, serverkeygen", c, "serverkeygen", "alice", "wrong-password-2", 401, "not valid"},
		{"static challenge at another profile", c, "iot/simpleenroll", "anyone", "static-secret", 401, "not valid"},
		{"foreign client certificate, reenroll", stranger, "simplereenroll", "", "", 401, "not issued by this CA"},
		{"revoked client certificate, reenroll", revokedClient, "simplereenroll", "", "", 401, "revoked"},
		{"manufacturer certificate where none is accepted", idevid, "simpleenroll", "", "", 401, "accepts no client certificate"},
		{"foreign client certificate, enroll", stranger, "idevid/simpleenroll", "", "", 401, "manufacturer"},

		{"right password", c, "simpleenroll", "alice", userPassword, 400, "the body is PEM"},
		{"right password, serverkeygen", c, "serverkeygen", "alice", userPassword, 400, "the body is PEM"},
		{"one-time challenge", c, "simpleenroll", "anyone", otp, 400, "the body is PEM"},
		{"static challenge", c, "simpleenroll", "anyone", "static-secret", 400, "the body is PEM"},
		{"our certificate, reenroll", oursClient, "simplereenroll", "", "", 400, "the body is PEM"},
		{"manufacturer certificate", idevid, "idevid/simpleenroll", "", "", 400, "the body is PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.post(tt.client, tt.path, tt.user, tt.pass, pem, nil)
			wantStatus(t, r, tt.status, tt.reason)
			if got := r.header.Get("WWW-Authenticate"); (tt.status == 401) != (got != "") {
				t.Errorf("WWW-Authenticate %q with HTTP %d", got, tt.status)
			}
		})
	}
}

// Wrong passwords sent with malformed bodies count against the address as
// any other: after the limit even the right password waits (429).
func TestWrongCredentialsWithMalformedBodiesAreThrottled(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	for i := range 10 { // the default limit
		wantStatus(t, f.post(c, "simpleenroll", "alice", fmt.Sprintf("wrong-password-%d", i), []byte("not base64!"), nil), http.StatusUnauthorized, "not valid")
	}
	wantStatus(t, f.post(c, "simpleenroll", "alice", userPassword, newCSR(t, newKey(t), "right", csr.Template{}), nil), http.StatusTooManyRequests, "too many failed attempts")
}

// A one-time challenge used up still authenticates its requester asking
// again for the same request: held for approval (202 again), or issued
// with an answer that was lost (the same certificate). Checking the
// credentials before the body must not refuse them.
func TestUsedUpChallengeAskedAgain(t *testing.T) {
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{
		profile("approval", func(p *pki.Profile) { p.RequireApproval = true }),
	}})
	ctx := context.Background()
	c := f.httpClient(nil, 0)
	held, _, err := f.adm.NewChallenge(ctx, time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	body := newCSR(t, newKey(t), "held", csr.Template{})
	wantStatus(t, f.post(c, "approval/simpleenroll", "anyone", held, body, nil), http.StatusAccepted, "")
	wantStatus(t, f.post(c, "approval/simpleenroll", "anyone", held, body, nil), http.StatusAccepted, "")

	issued, _, err := f.adm.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	body = newCSR(t, newKey(t), "lost-answer", csr.Template{})
	first := f.issued(f.post(c, "simpleenroll", "anyone", issued, body, nil))
	again := f.issued(f.post(c, "simpleenroll", "anyone", issued, body, nil))
	if first.SerialNumber.Cmp(again.SerialNumber) != 0 {
		t.Errorf("asked again, got serial %x, want the one issued, %x", again.SerialNumber, first.SerialNumber)
	}
}

// A path one level too deep is refused like an unknown label or
// operation: with its reason, and recorded in the audit trail.
func TestUnknownPathIsAudited(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	for _, path := range []string{"nosuchprofile/cacerts", "a/b/simpleenroll"} {
		before, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, f.get(c, path), 404, "unknown EST")
		after, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before)+1 || !strings.Contains(after[0].Reason, "unknown EST") {
			t.Errorf("%s: %d refusal events after, %d before, want one more naming the path", path, len(after), len(before))
		}
	}
}

// A path under the prefix that ServeMux would clean ("//", ".", "..") is
// refused with its reason and recorded, as any unknown path is, rather
// than redirected to its cleaned form unseen by the handler.
func TestUncleanPathIsRefusedAndAudited(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	body := newCSR(t, newKey(t), "unclean", csr.Template{})
	certs := func() int {
		all, _, err := f.st.ListCertificates(context.Background(), store.CertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(all)
	}
	issued := certs()
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/simpleenroll"},
		{http.MethodPost, "x//simpleenroll"},
		{http.MethodGet, "x/../../est/cacerts"},
		{http.MethodGet, "./cacerts"},
		{http.MethodGet, "../scep"},
		{http.MethodGet, "cacerts/."},
		// r92 D7: a trailing slash is an empty segment too, and the
		// prefix alone names none but that; an escaped dot or slash is
		// quoted as sent, not decoded.
		{http.MethodGet, "cacerts/"},
		{http.MethodGet, "short/"},
		{http.MethodGet, ""},
		{http.MethodGet, "%2F/cacerts"},
		{http.MethodGet, "%2e%2e/cacerts"},
		{http.MethodGet, "default/%2E/cacerts"},
		{http.MethodPost, "a%2fb/simpleenroll"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			before, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(tc.method, f.url+est.PathPrefix+tc.path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth("alice", userPassword)
			r := f.do(c, req)
			// The path as sent, not what follows the prefix ("/simpleenroll"
			// of "/.well-known/est//simpleenroll").
			sent := est.PathPrefix + tc.path
			wantStatus(t, r, http.StatusNotFound, fmt.Sprintf("unknown EST path %q", sent))
			if !strings.Contains(string(r.body), "segment is not served") {
				t.Errorf("reason %q does not say why", r.body)
			}
			after, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before)+1 || !strings.Contains(after[0].Reason, fmt.Sprintf("unknown EST path %q", sent)) || after[0].Detail != sent {
				t.Errorf("%d refusal events after, %d before, want one more naming the path %q", len(after), len(before), sent)
			}
		})
	}
	if n := certs() - issued; n != 0 {
		t.Errorf("%d certificates issued through unclean paths", n)
	}
}

// r109 D1: the prefix without its slash names no operation: a 404 saying
// so and where the operations are, recorded as the other unknown paths
// are, for any method, never the mux's bare 307 to the prefix (itself a
// 404) that a client repeats its POST and its credentials to.
func TestPrefixWithoutSlashIsRefusedAndAudited(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	root := strings.TrimSuffix(est.PathPrefix, "/")
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			before, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(method, f.url+root, bytes.NewReader(newCSR(t, newKey(t), "root", csr.Template{})))
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth("alice", userPassword)
			r := f.do(c, req)
			if r.status != http.StatusNotFound || r.header.Get("Location") != "" {
				t.Fatalf("HTTP %d, Location %q, %q; want 404 with its reason", r.status, r.header.Get("Location"), r.body)
			}
			if method != http.MethodHead {
				for _, want := range []string{fmt.Sprintf("unknown EST path %q", root), "names no operation", est.PathPrefix + "OPERATION"} {
					if !strings.Contains(string(r.body), want) {
						t.Errorf("reason %q lacks %q", r.body, want)
					}
				}
			}
			after, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before)+1 || !strings.Contains(after[0].Reason, "names no operation") || after[0].Detail != root {
				t.Errorf("%d refusal events after, %d before, want one more naming the path %q", len(after), len(before), root)
			}
		})
	}
}

// userReadCountingStore counts the reads of EST users.
type userReadCountingStore struct {
	store.Store
	reads atomic.Int32
}

func (c *userReadCountingStore) ESTUser(ctx context.Context, name string) (*pki.ESTUser, error) {
	c.reads.Add(1)
	return c.Store.ESTUser(ctx, name)
}

// An enrollment with HTTP Basic reads its EST user once: the service
// decides with the CSR on what it read before the body.
func TestBasicEnrollmentReadsTheUserOnce(t *testing.T) {
	var counting *userReadCountingStore
	f := newFixture(t, fixtureOptions{wrapStore: func(st store.Store) store.Store {
		counting = &userReadCountingStore{Store: st}
		return counting
	}})
	key := newKey(t)
	r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, newCSR(t, key, "read-once", csr.Template{}), nil)
	if r.status != http.StatusOK {
		t.Fatalf("simpleenroll: HTTP %d %s", r.status, r.body)
	}
	if n := counting.reads.Load(); n != 1 {
		t.Errorf("the EST user was read %d times, want once", n)
	}
}

// A --max-wait shorter than the server's Retry-After (7 s here) does not
// ask early (RFC 7030 §4.2.3: the client MUST wait at least that long; r144
// D2): the request comes back pending at once, saying when the server
// asked to be asked again, and the same request sent then, approved
// meanwhile, collects its certificate. Before, the client waited out its
// --max-wait and asked again at its deadline.
func TestMaxWaitShorterThanRetryAfter(t *testing.T) {
	ctx := context.Background()
	approval := profile("approval", func(p *pki.Profile) { p.RequireApproval = true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
	cl := f.client("approval")
	cl.User, cl.Password = "alice", userPassword
	key := newKey(t)
	enroll := func() (*client.ESTResult, error) {
		return cl.Enroll(ctx, client.ESTRequest{Op: est.OpSimpleEnroll, PollInterval: 10 * time.Millisecond, MaxWait: 400 * time.Millisecond,
			MakeCSR: func([]byte) ([]byte, error) {
				return csr.Create(csr.Template{RawSubject: mustDN(t, "CN=held-past-max-wait")}, key)
			}})
	}
	_, err := enroll()
	var pe *client.PendingError
	if !errors.As(err, &pe) || pe.RetryAfter != 7*time.Second || pe.AskAgainAt.IsZero() || pe.Waited != 0 {
		t.Fatalf("a request held with Retry-After beyond --max-wait: %v (%+v), want pending at once, naming when to ask again", err, pe)
	}
	reqs, _, err := f.adm.Requests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if err != nil || len(reqs) != 1 || reqs[0].Subject != "CN=held-past-max-wait" {
		t.Fatalf("pending requests %+v, %v; want the one held", reqs, err)
	}
	if _, err := f.svc.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	res, err := enroll()
	if err != nil || res.Certificate.Subject.CommonName != "held-past-max-wait" {
		t.Fatalf("the same request sent again once approved: %v", err)
	}
}
