package scepserver_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// otherIssuerName is a certificate for key, made and signed by key itself,
// whose issuer name is not its subject: self-made, though not
// "self-signed" by names.
func otherIssuerName(t *testing.T, key crypto.Signer, now time.Time) *x509.Certificate {
	t.Helper()
	parent := &x509.Certificate{Subject: pkix.Name{CommonName: "not-the-subject"}}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A PKCSReq carrying someone else's CSR (a victim's key and, inside it,
// the valid challenge) signed by a certificate of another key is refused
// unless that certificate is one this CA issued: whether its issuer name
// equals its subject decides nothing. The challenge is left for the
// victim.
func TestRelayedCSRIsRefused(t *testing.T) {
	def, ot := pki.DefaultProfile(), pki.DefaultProfile()
	ot.Name, ot.ChallengeMode = "ot", enroll.ChallengeOneTime
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": def, "ot": ot}, DefaultProfile: "default"}})
	victim, attacker := testKey(t, 0), testKey(t, 1)
	const subject = "CN=victim-device"
	now := ts.Clock.Now()
	signers := []struct {
		name string
		cert *x509.Certificate
	}{
		{"issuer name differs from subject", otherIssuerName(t, attacker, now)},
		{"certificate from a foreign CA", foreignCert(t, attacker, now)},
		{"self-signed", ts.selfSignedFor(t, attacker)},
	}
	for _, path := range []string{"/scep", "/scep/ot"} {
		for _, s := range signers {
			t.Run(path+" "+s.name, func(t *testing.T) {
				challenge := testChallenge
				if path == "/scep/ot" {
					var err error
					challenge, _, err = ts.Admin.NewChallengeFor(context.Background(), admin.ChallengeSpec{TTL: time.Hour, Profile: "ot", Subject: subject,
						DNSNames: []string{"device-1.acme.example"}, Actor: "test"})
					if err != nil {
						t.Fatal(err)
					}
				}
				before := ts.certCount(t)
				_, rep := ts.exchange(t, reqParams{key: victim, subject: subject, challenge: challenge, signerCert: s.cert, signerKey: attacker, path: path})
				wantFailure(t, rep, scep.BadRequest)
				if n := ts.certCount(t); n != before {
					t.Fatalf("%d certificates issued for a relayed CSR", n-before)
				}
				// The victim's own request with the same challenge goes through.
				msg, rep := ts.exchange(t, reqParams{key: victim, subject: subject, challenge: challenge, path: path})
				ts.issuedCert(t, rep, msg.SignerCert, victim)
			})
		}
	}
}

// What real clients send still enrolls: a signer of the request's own key
// (self-signed, or a foreign CA's certificate for it), and a certificate
// of ours signing a request of its subject for another key (a re-key with
// a challenge, a renewal without one).
func TestSignerOfTheRequestOrOurs(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key, newKey := testKey(t, 0), testKey(t, 1)
	now := ts.Clock.Now()
	for _, c := range []struct {
		name   string
		signer *x509.Certificate
	}{
		{"self-signed, same key", ts.selfSignedFor(t, key)},
		{"issuer name differs from subject, same key", otherIssuerName(t, key, now)},
		{"foreign CA, same key", foreignCert(t, key, now)},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg, rep := ts.exchange(t, reqParams{key: key, subject: "CN=own-key", signerCert: c.signer, signerKey: key})
			ts.issuedCert(t, rep, msg.SignerCert, key)
		})
	}
	ours := ts.enrollCert(t, key, "CN=device-1,O=Acme")
	t.Run("ours, another key, same subject, with a challenge", func(t *testing.T) {
		msg, rep := ts.exchange(t, reqParams{key: newKey, subject: "CN=device-1,O=Acme", signerCert: ours, signerKey: key})
		ts.issuedCert(t, rep, msg.SignerCert, key)
	})
	t.Run("ours, another key, renewal without a challenge", func(t *testing.T) {
		ts.Clock.Advance(300 * day)
		msg, rep := ts.exchange(t, reqParams{key: newKey, subject: "CN=device-1,O=Acme", challenge: "-", signerCert: ours, signerKey: key})
		ts.issuedCert(t, rep, msg.SignerCert, key)
	})
}

// withoutIssuerRAs holds no RA of our issuing CA, as for a previous CA
// whose RA key is gone: its RAs name no issuing CA.
type withoutIssuerRAs struct{ scepserver.Service }

func (w withoutIssuerRAs) RAs() []*pki.RA {
	ra := *w.Service.ActiveRA()
	ra.Chain = []*x509.Certificate{ra.Cert}
	return []*pki.RA{&ra}
}

// A certificate of an issuing CA of ours whose RA the server does not hold
// is still ours: it signs a re-enrollment for another key.
func TestSignerOfOurCAWithoutItsRA(t *testing.T) {
	ts := newTestServer(t, serverOptions{service: func(s scepserver.Service) scepserver.Service { return withoutIssuerRAs{s} }})
	key, newKey := testKey(t, 0), testKey(t, 1)
	ours := ts.enrollCert(t, key, "CN=device-1,O=Acme")
	msg, rep := ts.exchange(t, reqParams{key: newKey, subject: "CN=device-1,O=Acme", signerCert: ours, signerKey: key})
	ts.issuedCert(t, rep, msg.SignerCert, key)
}

// A certificate of ours signing a PKCSReq for another key authenticates
// only itself, and only while it is usable: one revoked, on hold or
// expired, or one with another subject than the request's, is refused
// before the challenge is looked at, and the device's one-time challenge
// is left to it. A valid one re-keying its own subject enrolls.
func TestRekeySignerOfOursMustBeUsable(t *testing.T) {
	ot := pki.DefaultProfile()
	ot.Name, ot.ChallengeMode = "ot", enroll.ChallengeOneTime
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": pki.DefaultProfile(), "ot": ot}, DefaultProfile: "default"}})
	ctx := context.Background()
	const subject = "CN=victim-device"
	victim, signerKey := testKey(t, 0), testKey(t, 1)
	revoke := func(c *x509.Certificate, reason int) {
		t.Helper()
		if _, _, err := ts.Store.RevokeCertificate(ctx, ts.Authority.Issuer.ID, c.SerialNumber.Text(16), reason, ts.Clock.Now(),
			pki.AuditEvent{Time: ts.Clock.Now(), Type: pki.EventRevoked, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	challenge := func() string {
		t.Helper()
		c, _, err := ts.Admin.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Hour, Profile: "ot", Subject: subject,
			DNSNames: []string{"device-1.acme.example"}, Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		name   string
		signer func() *x509.Certificate
		want   scep.FailInfo
	}{
		{"revoked, same subject", func() *x509.Certificate {
			c := ts.enrollCert(t, signerKey, subject)
			revoke(c, pki.ReasonSuperseded)
			return c
		}, scep.BadCertID},
		{"on hold, same subject", func() *x509.Certificate {
			c := ts.enrollCert(t, signerKey, subject)
			revoke(c, pki.ReasonCertificateHold)
			return c
		}, scep.BadCertID},
		{"valid, another subject", func() *x509.Certificate { return ts.enrollCert(t, signerKey, "CN=dev2") }, scep.BadRequest},
		// Last: it moves the clock past the signer's notAfter.
		{"expired, same subject", func() *x509.Certificate {
			c := ts.enrollCert(t, signerKey, subject)
			ts.Clock.Set(c.NotAfter.Add(time.Minute))
			return c
		}, scep.BadTime},
	} {
		t.Run(c.name, func(t *testing.T) {
			signer := c.signer()
			ch := challenge()
			before := ts.certCount(t)
			_, rep := ts.exchange(t, reqParams{key: victim, subject: subject, challenge: ch, signerCert: signer, signerKey: signerKey, path: "/scep/ot"})
			wantFailure(t, rep, c.want)
			if n := ts.certCount(t); n != before {
				t.Fatalf("%d certificates issued for a request its signer cannot authenticate", n-before)
			}
			msg, rep := ts.exchange(t, reqParams{key: victim, subject: subject, challenge: ch, path: "/scep/ot"})
			ts.issuedCert(t, rep, msg.SignerCert, victim)
		})
	}
	t.Run("valid, same subject", func(t *testing.T) {
		signer := ts.enrollCert(t, signerKey, subject)
		msg, rep := ts.exchange(t, reqParams{key: victim, subject: subject, challenge: challenge(), signerCert: signer, signerKey: signerKey, path: "/scep/ot"})
		ts.issuedCert(t, rep, msg.SignerCert, signerKey)
	})
}

// A PKCSReq renewal with a new key (no challenge, signed by the certificate
// it renews) by a certificate expired within the profile's renewal grace
// is a renewal, as a RenewalReq is: it is issued; beyond the grace it is
// badTime.
func TestRekeyRenewalWithinGrace(t *testing.T) {
	p := pki.DefaultProfile()
	p.RenewalGrace = 24 * time.Hour
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"}})
	oldKey, newKey := testKey(t, 0), testKey(t, 1)
	const subject = "CN=late-device"
	old := ts.enrollCert(t, oldKey, subject)

	ts.Clock.Set(old.NotAfter.Add(time.Hour))
	msg, rep := ts.exchange(t, reqParams{key: newKey, subject: subject, challenge: "-", signerCert: old, signerKey: oldKey})
	ts.issuedCert(t, rep, msg.SignerCert, oldKey)

	ts.Clock.Set(old.NotAfter.Add(25 * time.Hour))
	_, rep = ts.exchange(t, reqParams{key: testKey(t, 2), subject: subject, challenge: "-", signerCert: old, signerKey: oldKey})
	wantFailure(t, rep, scep.BadTime)
}

// An Apple-style renewal (a PKCSReq for another key, signed by the
// certificate of the request's own subject) by a certificate another CA
// issued gets badCertId, as the same renewal sent as a RenewalReq does
// (r74): it names no certificate of ours to renew. Nothing is issued, and
// a one-time challenge inside it is left for its device.
func TestRenewalByAForeignCertificateIsBadCertID(t *testing.T) {
	def, ot := pki.DefaultProfile(), pki.DefaultProfile()
	ot.Name, ot.ChallengeMode = "ot", enroll.ChallengeOneTime
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": def, "ot": ot}, DefaultProfile: "default"}})
	oldKey, newKey := testKey(t, 1), testKey(t, 0)
	foreign := foreignCert(t, oldKey, ts.Clock.Now()) // CN=device-1
	const subject = "CN=device-1"
	for _, tc := range []struct {
		path, challenge string
		typ             scep.MessageType
	}{
		{"/scep", "-", scep.PKCSReq},
		{"/scep", "-", scep.RenewalReq},
		{"/scep", testChallenge, scep.PKCSReq},
		{"/scep/ot", "one-time", scep.PKCSReq},
	} {
		t.Run(fmt.Sprintf("%s %v challenge=%t", tc.path, tc.typ, tc.challenge != "-"), func(t *testing.T) {
			challenge := tc.challenge
			if challenge == "one-time" {
				var err error
				challenge, _, err = ts.Admin.NewChallengeFor(context.Background(), admin.ChallengeSpec{TTL: time.Hour, Profile: "ot", Actor: "test"})
				if err != nil {
					t.Fatal(err)
				}
			}
			before := ts.certCount(t)
			_, rep := ts.exchange(t, reqParams{key: newKey, subject: subject, challenge: challenge, signerCert: foreign, signerKey: oldKey, path: tc.path, msgType: tc.typ})
			wantFailure(t, rep, scep.BadCertID)
			if n := ts.certCount(t); n != before {
				t.Fatalf("%d certificates issued", n-before)
			}
			if tc.path == "/scep/ot" {
				// The challenge is still the device's own.
				msg, rep := ts.exchange(t, reqParams{key: newKey, subject: subject, challenge: challenge, path: tc.path})
				ts.issuedCert(t, rep, msg.SignerCert, newKey)
			}
		})
	}
}
