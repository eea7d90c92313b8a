package enroll_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// copyFirstStore runs copyFirst once, right after the service has looked
// up the one-time challenge: a copy of the request, sent at once, uses the
// challenge up before this one records its issuance.
type copyFirstStore struct {
	store.Store
	copyFirst func()
}

func (s *copyFirstStore) LookupChallenge(ctx context.Context, hash []byte, now time.Time) (*pki.Challenge, error) {
	ch, err := s.Store.LookupChallenge(ctx, hash, now)
	if s.copyFirst != nil {
		s.copyFirst()
		s.copyFirst = nil
	}
	return ch, err
}

// A first enrollment answered with the certificate its used-up one-time
// challenge was issued for leaves one audit event naming that certificate
// as sent again, and is counted as reanswered, not as a second issuance.
func TestAnsweredAgainIsAuditedNotCountedAsIssued(t *testing.T) {
	cases := []struct {
		name string
		// again asks for req a second time, after or while the first
		// request is issued, with a service on the fixture's store.
		again func(t *testing.T, f *fixture, obs *outcomes, req enroll.Request) (*enroll.Result, *enroll.Result)
	}{
		{"asked again after its answer was lost", func(t *testing.T, f *fixture, _ *outcomes, req enroll.Request) (*enroll.Result, *enroll.Result) {
			first, err := f.svc.Enroll(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			again, err := f.svc.Enroll(context.Background(), req)
			if err != nil {
				t.Fatalf("asked again: %v", err)
			}
			return first, again
		}},
		{"a copy sent at once got there first", func(t *testing.T, f *fixture, obs *outcomes, req enroll.Request) (*enroll.Result, *enroll.Result) {
			var first *enroll.Result
			racing := &copyFirstStore{Store: f.st}
			racing.copyFirst = func() {
				var err error
				if first, err = f.svc.Enroll(context.Background(), req); err != nil {
					t.Errorf("the copy: %v", err)
				}
			}
			svc, err := enroll.New(racing, f.auth, f.clock, nil, enroll.Config{StaticChallenge: static, Observer: obs})
			if err != nil {
				t.Fatal(err)
			}
			again, err := svc.Enroll(context.Background(), req)
			if err != nil {
				t.Fatalf("the request that lost the race: %v", err)
			}
			return first, again
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obs := &outcomes{}
			f := newFixtureWith(t, enroll.Config{Observer: obs})
			ctx := context.Background()
			secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
			if err != nil {
				t.Fatal(err)
			}
			first, again := c.again(t, f, obs, namedWithKey(t, newKey(t), secret, "device-9", "device-9.example"))
			if first == nil || again.Record.SerialHex != first.Record.SerialHex {
				t.Fatalf("answered with %s, want the certificate issued first", again.Record.SerialHex)
			}
			serial := first.Record.SerialHex
			var sentAgain []pki.AuditEvent
			evs, err := f.st.ListAudit(ctx, store.AuditFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if strings.Contains(e.Detail, "sent again") {
					sentAgain = append(sentAgain, e)
				}
			}
			if len(sentAgain) != 1 {
				t.Fatalf("%d events of a certificate sent again, want 1 (trail %v)", len(sentAgain), auditTypes(t, f.st))
			}
			if e := sentAgain[0]; e.SerialHex != serial || !strings.Contains(e.Detail, serial) || e.Outcome != "success" ||
				!strings.Contains(e.Detail, "this one-time challenge was used up by its issuance") ||
				e.TransactionID != "tx-device-9" || e.Actor != "scep:192.0.2.10" {
				t.Errorf("event %+v, want one naming serial %s, the request and its requester", e, serial)
			}
			var results []string
			for _, o := range obs.got {
				results = append(results, o.Result)
			}
			if want := []string{enroll.ResultIssued, enroll.ResultReanswered}; strings.Join(results, ",") != strings.Join(want, ",") {
				t.Errorf("outcomes %v, want %v", results, want)
			}
			if certs, _, _ := f.st.ListCertificates(ctx, store.CertFilter{}); len(certs) != 1 {
				t.Errorf("%d certificates recorded, want 1", len(certs))
			}
		})
	}
}

// Sent again only once its event is recorded: the trail misses no answer.
func TestAnsweredAgainNotWithoutItsAuditEvent(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	req := namedWithKey(t, newKey(t), secret, "device-9", "device-9.example")
	if _, err := f.svc.Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	svc, err := enroll.New(&auditFailingStore{Store: f.st}, f.auth, f.clock, nil, enroll.Config{StaticChallenge: static})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := svc.Enroll(ctx, req); err == nil {
		t.Fatalf("sent serial %s again without recording it", res.Record.SerialHex)
	}
}

// A renewal asked again for the same key (its answer was lost) gets the
// certificate that renewed it, with an audit event naming it as sent again,
// and is counted as reanswered, not as a second renewal.
func TestRenewalAnsweredAgainIsAudited(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow = "default", 1
	obs := &outcomes{}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default", Observer: obs})
	ctx := context.Background()
	first, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "device-9", "device-9.example"))
	if err != nil {
		t.Fatal(err)
	}
	renew := namedWithKey(t, newKey(t), "", "device-9", "device-9.example")
	renew.Renewal, renew.Evidence.SignerCert = true, first.Certificate
	renewed, err := f.svc.Enroll(ctx, renew)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.svc.Enroll(ctx, renew)
	if err != nil {
		t.Fatalf("the renewal asked again: %v", err)
	}
	if again.Record.SerialHex != renewed.Record.SerialHex || !again.SentAgain {
		t.Fatalf("answered with %s (sent again: %v), want %s sent again", again.Record.SerialHex, again.SentAgain, renewed.Record.SerialHex)
	}
	evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].SerialHex != renewed.Record.SerialHex || !strings.Contains(evs[0].Detail, first.Record.SerialHex) {
		t.Errorf("sent-again events %+v, want one naming %s and the certificate it renewed", evs, renewed.Record.SerialHex)
	}
	var results []string
	for _, o := range obs.got {
		results = append(results, o.Result)
	}
	if want := "issued,renewed,reanswered"; strings.Join(results, ",") != want {
		t.Errorf("outcomes %v, want %s", results, want)
	}
}

// A renewal asked again with the same key but other names is not the lost
// answer: it is refused, never answered with the certificate issued for
// the old names, whether or not the profile lets a renewal change names.
func TestRenewalAgainWithOtherNamesIsRefused(t *testing.T) {
	for _, allowChange := range []bool{false, true} {
		t.Run(fmt.Sprintf("names may change: %v", allowChange), func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RenewalWindow, p.AllowNameChange = "default", 1, allowChange
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"})
			ctx := context.Background()
			first, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "re-1", "re-1.example"))
			if err != nil {
				t.Fatal(err)
			}
			k2 := newKey(t)
			renew := namedWithKey(t, k2, "", "re-1", "re-1.example")
			renew.Renewal, renew.Evidence.SignerCert = true, first.Certificate
			renewed, err := f.svc.Enroll(ctx, renew)
			if err != nil {
				t.Fatal(err)
			}
			other := namedWithKey(t, k2, "", "re-other", "re-other.example")
			other.Renewal, other.Evidence.SignerCert, other.TransactionID = true, first.Certificate, "tx-other"
			res, err := f.svc.Enroll(ctx, other)
			if pki.ErrorCode(err) != pki.EBadRequest {
				serial := ""
				if res != nil && res.Record.SerialHex != "" {
					serial = res.Record.SerialHex
				}
				t.Fatalf("the same key with other names: %v (answered %s, the earlier renewal is %s), want badRequest", err, serial, renewed.Record.SerialHex)
			}
		})
	}
}

// A SCEP PKCSReq sent again with its transaction ID, key and names at a
// static-challenge profile (its answer was lost) is answered with the
// certificate issued for it, audited and counted as reanswered: not a
// second certificate. Another transaction, other names, a revoked
// certificate, an EST request or a day later get a new one.
func TestStaticChallengeResendIsAnsweredAgain(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name = "default"
	obs := &outcomes{}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default", Observer: obs})
	ctx := context.Background()
	k := newKey(t)
	req := namedWithKey(t, k, static, "device-7", "device-7.example")
	first, err := f.svc.Enroll(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.svc.Enroll(ctx, req)
	if err != nil || !again.SentAgain || again.Record.SerialHex != first.Record.SerialHex {
		t.Fatalf("the same transaction again: %+v, %v; want %s sent again", again, err, first.Record.SerialHex)
	}
	evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain})
	if err != nil || len(evs) != 1 || evs[0].SerialHex != first.Record.SerialHex || !strings.Contains(evs[0].Detail, "SCEP transaction") {
		t.Errorf("sent-again events %+v, %v", evs, err)
	}

	newOne := func(name string, r enroll.Request) {
		t.Helper()
		res, err := f.svc.Enroll(ctx, r)
		if err != nil || res.SentAgain || res.Record.SerialHex == first.Record.SerialHex {
			t.Errorf("%s: %+v, %v; want a new certificate", name, res, err)
		}
	}
	other := req
	other.TransactionID = "tx-another"
	newOne("another transaction ID", other)
	newOne("other names", namedWithKey(t, k, static, "device-7", "device-7.example", "extra.example"))
	est := req
	est.Protocol = pki.ProtocolEST
	newOne("over EST", est)

	if _, err := f.admin.Revoke(ctx, first.Record.SerialHex, "", 0, "cli:test"); err != nil {
		t.Fatal(err)
	}
	newOne("its certificate revoked", req)
	f.clock.Advance(25 * time.Hour)
	newOne("a day later", namedWithKey(t, k, static, "device-7", "device-7.example", "extra.example"))

	var results []string
	for _, o := range obs.got {
		results = append(results, o.Result)
	}
	if want := "issued,reanswered,issued,issued,issued,issued,issued"; strings.Join(results, ",") != want {
		t.Errorf("outcomes %v, want %s", results, want)
	}
}

// The key hash an issuance records is the one its certificate's DER
// yields (what a keyCompromise revocation sweeps and the resend lookup
// searches by), though the service hashes the request's key instead of
// parsing what it signed: for each key type.
func TestIssuedKeyHashIsTheCertificates(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name = "default"
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"})
	ctx := context.Background()
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := legacyKeys(t)
	for name, k := range map[string]crypto.Signer{"p256": newKey(t), "p384": ec384, "rsa": rsaKey} {
		req := namedWithKey(t, k, static, "device-"+name, "device-"+name+".example")
		res, err := f.svc.Enroll(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		hash, err := store.CertKeyHash(res.Record.DER)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.st.CertificatesOfTransaction(ctx, hash, "default", req.TransactionID, time.Time{})
		if err != nil || len(got) != 1 || got[0].SerialHex != res.Record.SerialHex {
			t.Errorf("%s: certificates of its DER's key hash: %v, %v; want %s", name, got, err, res.Record.SerialHex)
		}
	}
}
