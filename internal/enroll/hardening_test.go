package enroll_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// named builds a request for a subject and DNS names, with a challenge.
func named(t *testing.T, challenge, cn string, dns ...string) enroll.Request {
	t.Helper()
	return namedWithKey(t, key(t), challenge, cn, dns...)
}

// namedWithKey is named for a key of its own.
func namedWithKey(t *testing.T, k crypto.Signer, challenge, cn string, dns ...string) enroll.Request {
	t.Helper()
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, k)
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: challenge}, Protocol: pki.ProtocolSCEP, TransactionID: "tx-" + cn, RemoteAddr: "192.0.2.10:1234"}
}

// Finding 1 (VU#971035): a one-time challenge is bound to its profile and,
// when asked, to an identity; used for anything else it is refused with
// badRequest, nothing is consumed, and after a few misuses it is locked.
func TestChallengeBoundToIdentity(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	secret, ch, err := f.admin.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Hour, Subject: "CN=device-7", DNSNames: []string{"device-7.example"}, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Profile != "default" {
		t.Errorf("a challenge minted without a profile is bound to %q, want the default profile", ch.Profile)
	}
	for _, bad := range []enroll.Request{
		named(t, secret, "device-8", "device-7.example"),
		named(t, secret, "device-7", "other.example"),
	} {
		_, err := f.svc.Enroll(ctx, bad)
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "bound to") {
			t.Fatalf("misuse: %v, want badRequest naming the binding", err)
		}
	}
	// Not consumed: the right identity still gets its certificate.
	if _, err := f.svc.Enroll(ctx, named(t, secret, "device-7", "device-7.example")); err != nil {
		t.Fatalf("the bound identity: %v", err)
	}
	// Used up: another key gets nothing for it (the same key would get the
	// certificate already issued, TestLostAnswerIsAnsweredAgain), and is
	// told why.
	if _, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), secret, "device-7", "device-7.example")); pki.ErrorCode(err) != pki.EForbidden || pki.ErrorMessage(err) != usedAlready {
		t.Fatalf("the challenge used a second time: %v", err)
	}

	// Bound to an identity, a challenge buys that identity and no other
	// name: no IP address, email or URI besides the bound names, and with a
	// subject alone no subject alternative name at all.
	subjectOnly := admin.ChallengeSpec{TTL: time.Hour, Subject: "CN=gw-77", Actor: "test"}
	dnsBound := admin.ChallengeSpec{TTL: time.Hour, DNSNames: []string{"gw-8.example"}, Actor: "test"}
	mint := func(spec admin.ChallengeSpec) string {
		t.Helper()
		secret, _, err := f.admin.NewChallengeFor(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	extra := []struct {
		name string
		spec admin.ChallengeSpec
		tmpl csr.Template
	}{
		{"subject-bound, a DNS name", subjectOnly, csr.Template{Subject: pkix.Name{CommonName: "gw-77"}, DNSNames: []string{"www.bank.example"}}},
		{"subject-bound, an IP address", subjectOnly, csr.Template{Subject: pkix.Name{CommonName: "gw-77"}, IPAddresses: []net.IP{net.ParseIP("10.1.2.3")}}},
		{"subject-bound, an email", subjectOnly, csr.Template{Subject: pkix.Name{CommonName: "gw-77"}, EmailAddresses: []string{"ceo@bank.example"}}},
		{"subject-bound, a URI", subjectOnly, csr.Template{Subject: pkix.Name{CommonName: "gw-77"},
			URIs: []*url.URL{{Scheme: "tag", Opaque: "microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500"}}}},
		{"DNS-bound, plus an IP address", dnsBound, csr.Template{Subject: pkix.Name{CommonName: "gw-8"}, DNSNames: []string{"gw-8.example"},
			IPAddresses: []net.IP{net.ParseIP("10.1.2.3")}}},
		{"DNS-bound, plus an email", dnsBound, csr.Template{Subject: pkix.Name{CommonName: "gw-8"}, DNSNames: []string{"gw-8.example"},
			EmailAddresses: []string{"ops@gw-8.example"}}},
	}
	for _, c := range extra {
		der, err := csr.Create(c.tmpl, key(t))
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		req := enroll.Request{CSR: parsed, Evidence: enroll.Evidence{Challenge: mint(c.spec)}, Protocol: pki.ProtocolSCEP,
			TransactionID: "tx-extra", RemoteAddr: "192.0.2.10:1234"}
		if _, err := f.svc.Enroll(ctx, req); pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "bound to other names") {
			t.Errorf("%s: %v, want badRequest: bound to other names", c.name, err)
		}
	}
	// Their own identities are served.
	if _, err := f.svc.Enroll(ctx, named(t, mint(subjectOnly), "gw-77")); err != nil {
		t.Errorf("a subject-bound challenge for its subject alone: %v", err)
	}
	if _, err := f.svc.Enroll(ctx, named(t, mint(dnsBound), "gw-8", "GW-8.example")); err != nil {
		t.Errorf("a DNS-bound challenge for its name (in another case): %v", err)
	}

	// Locked after ChallengeLockAfter misuses, even for its own identity.
	secret2, _, err := f.admin.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Hour, Subject: "CN=device-9", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range enroll.ChallengeLockAfter {
		_, err := f.svc.Enroll(ctx, named(t, secret2, fmt.Sprintf("intruder-%d", i)))
		if pki.ErrorCode(err) != pki.EBadRequest {
			t.Fatalf("misuse %d: %v", i, err)
		}
		if i == enroll.ChallengeLockAfter-1 && !strings.Contains(pki.ErrorMessage(err), "locked") {
			t.Errorf("the last misuse does not say the challenge is locked: %v", err)
		}
	}
	if _, err := f.svc.Enroll(ctx, named(t, secret2, "device-9")); err == nil {
		t.Fatal("a locked challenge still issued")
	}
	list, _, err := f.admin.Challenges(ctx, store.ChallengeFilter{Limit: 10})
	if err != nil || len(list) != 10 || list[0].LockedAt.IsZero() || list[0].FailedUses != enroll.ChallengeLockAfter {
		t.Fatalf("challenges %+v, %v", list, err)
	}
	misused, _ := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventChallengeMisused, Limit: 20})
	if want := 2 + len(extra) + enroll.ChallengeLockAfter; len(misused) != want {
		t.Errorf("%d challenge.misused events, want %d", len(misused), want)
	}
}

// Finding 3: failed challenge attempts from one address are throttled; a
// client elsewhere is not affected.
func TestFailedAttemptsThrottledPerAddress(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{FailedAttemptsPerAddress: 5})
	ctx := context.Background()
	attacker := func(ch string) error {
		r := request(t, ch)
		r.RemoteAddr = "198.51.100.66:4000"
		_, err := f.svc.Enroll(ctx, r)
		return err
	}
	for i := range 5 {
		if err := attacker(fmt.Sprintf("guess-%d", i)); pki.ErrorCode(err) != pki.EUnauthorized || strings.Contains(err.Error(), "too many") {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// Locked out now: even the right challenge is refused, unchecked.
	if err := attacker(static); err == nil || !strings.Contains(pki.ErrorMessage(err), "too many failed attempts") {
		t.Fatalf("after 5 failures: %v", err)
	}
	// Another address is served.
	if _, err := f.svc.Enroll(ctx, request(t, static)); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// The lockout ends, and doubles the next time.
	f.clock.Advance(61 * time.Second)
	if err := attacker(static); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// A good challenge clears the challenge failures of its address (devices
	// behind one NAT address, most of them configured well, keep working):
	// 4 failures, a success, 4 more, and the address is not locked.
	for i := range 4 {
		if err := attacker(fmt.Sprintf("again-%d", i)); pki.ErrorCode(err) != pki.EUnauthorized || strings.Contains(err.Error(), "too many") {
			t.Fatalf("guess %d after the lockout: %v", i, err)
		}
	}
	if err := attacker(static); err != nil {
		t.Fatalf("the right challenge in between: %v", err)
	}
	for i := range 4 {
		if err := attacker(fmt.Sprintf("more-%d", i)); pki.ErrorCode(err) != pki.EUnauthorized || strings.Contains(err.Error(), "too many") {
			t.Fatalf("guess %d after a success: %v", i, err)
		}
	}
}

// Finding 8: refusals are audited, but a flood cannot fill the disk: per
// address a burst, then one a second, and a note of what was held back.
func TestRefusalAuditIsRateLimited(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	for range 200 {
		f.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolSCEP, RemoteAddr: "203.0.113.9:1", Err: pki.Errorf(pki.EBadMessageCheck, "bad signature")})
	}
	f.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolSCEP, RemoteAddr: "203.0.113.10:1", Err: pki.Errorf(pki.EBadMessageCheck, "bad signature")})
	evs, _ := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused, Limit: 1000})
	if len(evs) != 61 {
		t.Fatalf("%d refusal events for 201 refusals, want 60 (the burst) + 1 (another address)", len(evs))
	}
	f.clock.Advance(time.Second)
	f.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolSCEP, RemoteAddr: "203.0.113.9:1", Err: pki.Errorf(pki.EBadMessageCheck, "bad signature")})
	evs, _ = f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused, Limit: 1})
	if !strings.Contains(evs[0].Detail, "140 earlier refusals") {
		t.Errorf("the next event does not count what was held back: %q", evs[0].Detail)
	}
}

// One refusal held back is counted in the singular (r67 N3: "1 earlier
// refusals").
func TestRefusalAuditCountsOneHeldBack(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	refuse := func() {
		f.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolSCEP, RemoteAddr: "203.0.113.9:1", Err: pki.Errorf(pki.EBadMessageCheck, "bad signature")})
	}
	for range 61 { // the burst of 60, then one held back
		refuse()
	}
	f.clock.Advance(time.Second)
	refuse()
	evs, _ := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused, Limit: 1})
	if want := "1 earlier refusal from this address was not recorded"; len(evs) != 1 || !strings.Contains(evs[0].Detail, want) {
		t.Errorf("the next event says %q, want %q", evs[0].Detail, want)
	}
}

// Refusals are bounded in size too: a label, transaction ID or subject of
// 100 KB, quoted in the reason, costs the trail about a kilobyte.
func TestRefusalAuditIsBoundedInSize(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	huge := strings.Repeat("a", 100_000)
	f.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolEST, RemoteAddr: "203.0.113.9:1", Operation: huge, Profile: huge,
		TransactionID: huge, Subject: "CN=" + huge, Err: pki.Errorf(pki.ENotFound, "unknown EST label %q", huge)})
	evs, _ := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused})
	if len(evs) != 1 {
		t.Fatalf("%d refusal events, want 1", len(evs))
	}
	ev := evs[0]
	for name, v := range map[string]string{"reason": ev.Reason, "detail": ev.Detail, "profile": ev.Profile, "transaction ID": ev.TransactionID, "subject": ev.Subject} {
		if len(v) > 1100 || !strings.Contains(v, "bytes)") {
			t.Errorf("%s: %d bytes (%.40q…), want it clipped", name, len(v), v)
		}
	}
}

// A failed audit write fails the change it records: no certificate without
// its event.
func TestNoIssuanceWithoutItsAuditEvent(t *testing.T) {
	f := newFixture(t, nil, "")
	failing := &auditFailingStore{Store: f.st}
	svc, err := enroll.New(failing, f.auth, f.clock, nil, enroll.Config{StaticChallenge: static})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Enroll(context.Background(), request(t, static)); err == nil {
		t.Fatal("issued although its audit event could not be written")
	}
	certs, _, _ := f.st.ListCertificates(context.Background(), store.CertFilter{})
	if len(certs) != 0 {
		t.Errorf("%d certificates recorded", len(certs))
	}
}

// auditFailingStore fails every write that carries audit events.
type auditFailingStore struct{ store.Store }

var errAudit = errors.New("audit trail unavailable")

func (s *auditFailingStore) RecordIssuance(ctx context.Context, in store.Issuance) error {
	return errAudit
}

func (s *auditFailingStore) AppendAudit(ctx context.Context, events ...pki.AuditEvent) error {
	return errAudit
}

// A refusal is recorded even when the client has hung up (its request's
// context is canceled).
func TestRefusalRecordedAfterHangUp(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolEST, RemoteAddr: "192.0.2.1:1", Err: pki.Errorf(pki.EUnauthorized, "no credentials")}); err != nil {
		t.Fatal(err)
	}
	if evs, _ := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused}); len(evs) != 1 {
		t.Errorf("%d refusal events, want 1", len(evs))
	}
}

// The SCEP RA certificate our issuing CA issued is in the inventory (once,
// however often it is recorded), so OCSP knows it and it can be revoked.
func TestRACertificateIsInTheInventory(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	for range 2 {
		if err := f.svc.RecordRACertificates(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ra := f.auth.RA.Cert
	rec, err := f.st.Certificate(ctx, f.auth.Issuer.ID, ra.SerialNumber.Text(16))
	if err != nil {
		t.Fatalf("the RA certificate is not in the inventory: %v", err)
	}
	if rec.Profile != enroll.RAProfileName || rec.Protocol != pki.ProtocolInternal || rec.Status != pki.StatusValid {
		t.Errorf("recorded as %+v", rec)
	}
	evs, _ := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventIssued, SerialHex: rec.SerialHex})
	if len(evs) != 1 {
		t.Errorf("%d issued events for the RA certificate, want 1", len(evs))
	}
}

// RFC 8894 §7.4: a device whose answer was lost asks again with the same
// key and its one-time challenge, used up by then. It gets the certificate
// it was issued, and nothing more: not a second certificate, not for
// another key, names or profile, not once that certificate is revoked.
func TestLostAnswerIsAnsweredAgain(t *testing.T) {
	profiles := map[string]pki.Profile{}
	for _, name := range []string{"default", "other"} {
		p := pki.DefaultProfile()
		p.Name, p.ChallengeMode = name, enroll.ChallengeOneTime
		profiles[name] = p
	}
	f := newFixture(t, profiles, "default")
	ctx := context.Background()
	k := newKey(t)
	secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "default", "test")
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.svc.Enroll(ctx, namedWithKey(t, k, secret, "device-9", "device-9.example"))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour) // the challenge has expired too
	again, err := f.svc.Enroll(ctx, namedWithKey(t, k, secret, "device-9", "device-9.example"))
	if err != nil {
		t.Fatalf("the same request again: %v", err)
	}
	if again.Record.SerialHex != first.Record.SerialHex || !bytes.Equal(again.Certificate.Raw, first.Certificate.Raw) {
		t.Errorf("answered with serial %s, want the one issued, %s", again.Record.SerialHex, first.Record.SerialHex)
	}
	other := namedWithKey(t, k, secret, "device-9", "device-9.example")
	other.Profile = "other"
	for name, req := range map[string]enroll.Request{
		"another key":     namedWithKey(t, newKey(t), secret, "device-9", "device-9.example"),
		"other names":     namedWithKey(t, k, secret, "device-9", "device-10.example"),
		"another subject": namedWithKey(t, k, secret, "device-10", "device-9.example"),
		"another profile": other,
	} {
		if _, err := f.svc.Enroll(ctx, req); pki.ErrorCode(err) != pki.EForbidden || !strings.HasPrefix(pki.ErrorMessage(err), "this one-time challenge password was used already") {
			t.Errorf("%s: %v, want forbidden: used already", name, err)
		}
	}
	if _, err := f.admin.Revoke(ctx, first.Record.SerialHex, first.Record.IssuerID, 1, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Enroll(ctx, namedWithKey(t, k, secret, "device-9", "device-9.example")); pki.ErrorCode(err) != pki.EForbidden || pki.ErrorMessage(err) != usedAlready {
		t.Errorf("after revocation: %v, want forbidden: %s", err, usedAlready)
	}
	if certs, _, _ := f.st.ListCertificates(ctx, store.CertFilter{}); len(certs) != 1 {
		t.Errorf("%d certificates recorded, want 1", len(certs))
	}
}

// Copies of one request sent at once with a one-time challenge (a client
// that retries on a timeout): one certificate is issued, and every copy is
// answered with it.
func TestCopiesOfARequestAtOnceGetOneCertificate(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	serials := make([]string, 8)
	var wg sync.WaitGroup
	for i := range serials {
		req := namedWithKey(t, k, secret, "device-11")
		wg.Go(func() {
			res, err := f.svc.Enroll(ctx, req)
			if err != nil {
				t.Errorf("copy %d: %v", i, err)
				return
			}
			serials[i] = res.Record.SerialHex
		})
	}
	wg.Wait()
	for i, s := range serials {
		if s != serials[0] {
			t.Errorf("copy %d got serial %s, copy 0 %s", i, s, serials[0])
		}
	}
	if certs, _, _ := f.st.ListCertificates(ctx, store.CertFilter{}); len(certs) != 1 {
		t.Errorf("%d certificates recorded, want 1", len(certs))
	}
}

// The refusal limiter groups addresses as the failure throttle does: the
// addresses of one IPv6 /64 share one bucket (a client holds all 2^64 of
// them), an IPv4 address and another /64 have their own.
func TestRefusalAuditLimitsAnIPv6Slash64AsOne(t *testing.T) {
	cases := []struct {
		name    string
		flood   func(i int) string
		another string
	}{
		{"one IPv6 /64", func(i int) string { return fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1) }, "[2001:db8:1:3::1]:443"},
		{"one IPv4-mapped address", func(i int) string { return fmt.Sprintf("[::ffff:203.0.113.9]:%d", 1000+i) }, "203.0.113.10:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil, "")
			ctx := context.Background()
			refuse := func(remote string) {
				f.svc.RecordRefusal(ctx, enroll.Refusal{Protocol: pki.ProtocolEST, RemoteAddr: remote, Err: pki.Errorf(pki.ENotFound, "unknown EST operation")})
			}
			for i := range 200 {
				refuse(c.flood(i))
			}
			refuse(c.another)
			evs, _ := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused, Limit: 1000})
			if len(evs) != 61 {
				t.Fatalf("%d refusal events for 200 refusals from one client and 1 from another, want 60 (the burst) + 1", len(evs))
			}
		})
	}
}
