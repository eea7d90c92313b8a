package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The certificate.issued (or .renewed) event says what authorised the
// request, SCEP and EST alike: the EST user, the one-time challenge's id
// (never its secret), the static challenge, the webhook, the manufacturer
// certificate, the certificate renewed.
func TestIssuedEventSaysWhoAuthorized(t *testing.T) {
	mfrRoot, mfrLeaf := manufacturerPair(t)
	cases := []struct {
		name string
		// prepare makes the request, and returns the authorized_by wanted
		prepare func(t *testing.T, f *fixture) (enroll.Request, string)
	}{
		{"EST user", func(t *testing.T, f *fixture) (enroll.Request, string) {
			addESTUser(t, f, "fleet-7", "device-pass")
			r := request(t, "")
			r.Protocol, r.Evidence = pki.ProtocolEST, enroll.Evidence{HTTPUser: "fleet-7", HTTPPassword: "device-pass"}
			return r, "est-user fleet-7"
		}},
		{"one-time challenge over SCEP", func(t *testing.T, f *fixture) (enroll.Request, string) {
			secret, ch, err := f.admin.NewChallenge(context.Background(), time.Hour, "", "test")
			if err != nil {
				t.Fatal(err)
			}
			return request(t, secret), "challenge " + ch.ID
		}},
		{"one-time challenge as an EST password", func(t *testing.T, f *fixture) (enroll.Request, string) {
			secret, ch, err := f.admin.NewChallenge(context.Background(), time.Hour, "", "test")
			if err != nil {
				t.Fatal(err)
			}
			r := request(t, "")
			r.Protocol, r.Evidence = pki.ProtocolEST, enroll.Evidence{HTTPUser: "anyone", HTTPPassword: secret}
			return r, "challenge " + ch.ID
		}},
		{"static challenge", func(t *testing.T, f *fixture) (enroll.Request, string) {
			return request(t, static), "static-challenge"
		}},
		{"webhook", func(t *testing.T, f *fixture) (enroll.Request, string) {
			r := request(t, "device-otp")
			r.Profile = "mdm"
			return r, "webhook"
		}},
		{"manufacturer certificate", func(t *testing.T, f *fixture) (enroll.Request, string) {
			r := request(t, "")
			r.Protocol, r.Profile, r.Evidence = pki.ProtocolEST, "mfr", enroll.Evidence{TLSClientCert: mfrLeaf}
			// In whole bytes, as every serial in audit text (r100).
			return r, "manufacturer-cert CN=Example Manufacturer Root 0d0e"
		}},
		{"renewal", func(t *testing.T, f *fixture) (enroll.Request, string) {
			first, err := f.svc.Enroll(context.Background(), request(t, static))
			if err != nil {
				t.Fatal(err)
			}
			r := namedWithKey(t, newKey(t), "", "dev")
			r.Renewal, r.Evidence.SignerCert = true, first.Certificate
			return r, "renewal " + pki.ShownSerial(first.Record.SerialHex)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			def, mdm, mfr := pki.DefaultProfile(), pki.DefaultProfile(), pki.DefaultProfile()
			def.RenewalWindow = 1
			mdm.Name, mdm.ChallengeMode = "mdm", enroll.ChallengeWebhook
			mfr.Name, mfr.ManufacturerAuth = "mfr", true
			roots := x509.NewCertPool()
			roots.AddCert(mfrRoot)
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{def.Name: def, "mdm": mdm, "mfr": mfr},
				DefaultProfile: def.Name, Webhook: &fakeHook{allow: true}, ManufacturerRoots: roots})
			ctx := context.Background()
			r, want := c.prepare(t, f)
			res, err := f.svc.Enroll(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := f.st.ListAudit(ctx, store.AuditFilter{SerialHex: res.Record.SerialHex, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			var detail string
			for _, e := range evs {
				if e.Type == pki.EventIssued || e.Type == pki.EventRenewed {
					detail = e.Detail
				}
			}
			if !strings.HasSuffix(detail, "authorized_by: "+want) {
				t.Errorf("issuance event detail %q, want it to end with authorized_by: %s", detail, want)
			}
		})
	}
}

// A failed login names the user name tried: as it was sent when it is an
// EST user's (without it the trail does not say whose password was
// guessed), else by a tag (TestFailedLoginHidesAnUnknownName), last in
// the detail either way.
func TestFailedLoginNamesTheUserTried(t *testing.T) {
	tagged := `attempted_user: unknown name \(tag [0-9a-f]{16}\)$`
	cases := []struct {
		name, user, password string
		heldBack             int    // refusals from the address held back before
		want                 string // the detail, a regular expression
	}{
		{"a known user, a wrong password", "fleet-7", "guess", 0, `^attempted_user: fleet-7$`},
		{"a known user, after refusals held back, the name still last", "fleet-7", "guess", 65,
			`^5 earlier refusals .*; attempted_user: fleet-7$`},
		{"an unknown user", "admin", "guess", 0, "^" + tagged},
		{"a name with markup and a newline", "<b>root</b>\n; authorized_by: x", "guess", 0, "^" + tagged},
		{"an unknown name after refusals held back", "admin; 5 earlier refusals", "guess", 65, "^5 earlier refusals .*; " + tagged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureWith(t, enroll.Config{})
			addESTUser(t, f, "fleet-7", "device-pass")
			ctx := context.Background()
			r := request(t, "")
			r.Protocol, r.Evidence = pki.ProtocolEST, enroll.Evidence{HTTPUser: c.user, HTTPPassword: c.password}
			for range c.heldBack {
				_ = f.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolEST, RemoteAddr: r.RemoteAddr, Err: pki.Errorf(pki.EBadRequest, "malformed")})
			}
			f.clock.Advance(time.Second)
			if _, err := f.svc.Enroll(ctx, r); pki.ErrorCode(err) != pki.EUnauthorized {
				t.Fatalf("%v, want unauthorized", err)
			}
			evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || !regexp.MustCompile(c.want).MatchString(evs[0].Detail) {
				t.Errorf("failed-login events %+v, want one whose detail matches %s", evs, c.want)
			}
		})
	}
}

// manufacturerPair is a manufacturer CA and a device certificate (IDevID)
// it issued.
func manufacturerPair(t *testing.T) (root, leaf *x509.Certificate) {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Valid around the fixture's pinned clock, whatever today is.
	notBefore, notAfter := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example Manufacturer Root"},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if root, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	// An odd number of hex digits: audit text shows it in whole bytes.
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(0xd0e), Subject: pkix.Name{CommonName: "device 42"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err = x509.CreateCertificate(rand.Reader, leafTmpl, root, newKey(t).Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return root, leaf
}

// A held request's request.pending event says what authenticated it, and
// the issuance on approval names the request it completes.
func TestApprovalTrailSaysWhoAuthorized(t *testing.T) {
	p := pki.DefaultProfile()
	p.RequireApproval = true
	f := newFixture(t, map[string]pki.Profile{p.Name: p}, p.Name)
	ctx := context.Background()
	addESTUser(t, f, "fleet-7", "device-pass")
	r := request(t, "")
	r.Protocol, r.Evidence = pki.ProtocolEST, enroll.Evidence{HTTPUser: "fleet-7", HTTPPassword: "device-pass"}
	held, err := f.svc.Enroll(ctx, r)
	if err != nil || held.Pending == nil {
		t.Fatalf("%+v, %v; want held", held, err)
	}
	issued, err := f.svc.Approve(ctx, held.Pending.ID, "cli:test")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		pki.EventRequestPending: "authorized_by: est-user fleet-7",
		pki.EventIssued:         "authorized_by: approval of request " + held.Pending.ID,
	}
	for typ, suffix := range want {
		evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: typ, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || !strings.HasSuffix(evs[0].Detail, suffix) {
			t.Errorf("%s events %+v, want one whose detail ends with %q", typ, evs, suffix)
		}
		if typ == pki.EventIssued && evs[0].SerialHex != issued.Record.SerialHex {
			t.Errorf("issued event for %s, want %s", evs[0].SerialHex, issued.Record.SerialHex)
		}
	}
}
