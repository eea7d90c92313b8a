package scepserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

const day = 24 * time.Hour

// exchange posts a message built from p and returns the verified CertRep.
func (ts *testServer) exchange(t *testing.T, p reqParams) (*scep.PKIMessage, *scep.PKIMessage) {
	t.Helper()
	der, msg := ts.build(t, p)
	path := p.path
	if path == "" {
		path = "/scep"
	}
	resp, body := ts.postTo(t, path, der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	return msg, ts.parseReply(t, body, msg)
}

func wantFailure(t *testing.T, rep *scep.PKIMessage, fi scep.FailInfo) {
	t.Helper()
	if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != fi {
		t.Fatalf("pkiStatus %s failInfo %s (%s), want FAILURE %s", rep.PKIStatus, rep.FailInfo, rep.FailInfoText, fi)
	}
}

// enrollCert enrolls key with the static challenge and returns the certificate.
func (ts *testServer) enrollCert(t *testing.T, key crypto.Signer, subject string) *x509.Certificate {
	t.Helper()
	msg, rep := ts.exchange(t, reqParams{key: key, subject: subject})
	cert, _ := ts.issuedCert(t, rep, msg.SignerCert, key.(crypto.Decrypter))
	return cert
}

func TestRenewal(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	ctx := context.Background()
	oldKey, newKey := testKey(t, 0), testKey(t, 1)
	renew := func(old *x509.Certificate, oldKey crypto.Signer, p reqParams) (*scep.PKIMessage, *scep.PKIMessage) {
		p.signerCert, p.signerKey, p.challenge = old, oldKey, "-"
		if p.key == nil {
			p.key = newKey
		}
		if p.msgType == "" {
			p.msgType = scep.RenewalReq
		}
		if p.subject == "" {
			p.subject = "CN=device-1,O=Acme"
		}
		return ts.exchange(t, p)
	}

	t.Run("RenewalReq with a new key inside the window", func(t *testing.T) {
		old := ts.enrollCert(t, oldKey, "CN=device-1,O=Acme")
		ts.Clock.Advance(300 * day)
		msg, rep := renew(old, oldKey, reqParams{})
		cert, _ := ts.issuedCert(t, rep, msg.SignerCert, oldKey)
		rec, err := ts.Store.Certificate(ctx, ts.Authority.Issuer.ID, cert.SerialNumber.Text(16))
		if err != nil {
			t.Fatal(err)
		}
		if rec.RenewedFrom != ts.Authority.Issuer.ID+":"+old.SerialNumber.Text(16) {
			t.Errorf("renewed_from %q", rec.RenewedFrom)
		}
		evs, _ := ts.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventRenewed})
		if len(evs) != 1 {
			t.Errorf("%d renewal audit events", len(evs))
		}
	})
	t.Run("PKCSReq signed by the old certificate, same key, no challenge", func(t *testing.T) {
		ts.Clock.Set(captureTime)
		old := ts.enrollCert(t, oldKey, "CN=device-1,O=Acme")
		ts.Clock.Advance(250 * day)
		msg, rep := renew(old, oldKey, reqParams{msgType: scep.PKCSReq, key: oldKey})
		ts.issuedCert(t, rep, msg.SignerCert, oldKey)
	})

	t.Run("PKCSReq signed by the old certificate with its used-up one-time challenge (certmonger)", func(t *testing.T) {
		otp := func() string {
			c, _, err := ts.Admin.NewChallenge(ctx, time.Hour, "default", "test")
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		ts.Clock.Set(captureTime)
		used := otp()
		msg, rep := ts.exchange(t, reqParams{key: oldKey, challenge: used})
		old, _ := ts.issuedCert(t, rep, msg.SignerCert, oldKey)
		certmonger := reqParams{msgType: scep.PKCSReq, key: newKey, signerCert: old, signerKey: oldKey, challenge: used}

		// Before the window opens, the renewal's reason, not "challenge
		// password is not valid", and one refusal in the audit trail.
		ts.Clock.Advance(10 * day)
		failedBefore := countEvents(t, ts, pki.EventEnrollFailed)
		_, rep = ts.exchange(t, certmonger)
		wantFailure(t, rep, scep.BadTime)
		if n := countEvents(t, ts, pki.EventEnrollFailed) - failedBefore; n != 1 {
			t.Errorf("%d refusals audited for one request, want 1", n)
		}
		// Keeping its key (getcert resubmit), it is not handed its own
		// certificate back as if renewed: the used-up challenge was issued
		// for that key, but the device holds that certificate.
		sameKey := certmonger
		sameKey.key = oldKey
		_, rep = ts.exchange(t, sameKey)
		wantFailure(t, rep, scep.BadTime)
		// A device given a new challenge enrolls with it meanwhile.
		fresh := certmonger
		fresh.challenge = otp()
		msg, rep = ts.exchange(t, fresh)
		ts.issuedCert(t, rep, msg.SignerCert, oldKey)

		ts.Clock.Advance(290 * day)
		msg, rep = ts.exchange(t, certmonger)
		cert, _ := ts.issuedCert(t, rep, msg.SignerCert, oldKey)
		rec, err := ts.Store.Certificate(ctx, ts.Authority.Issuer.ID, cert.SerialNumber.Text(16))
		if err != nil {
			t.Fatal(err)
		}
		if rec.RenewedFrom != ts.Authority.Issuer.ID+":"+old.SerialNumber.Text(16) {
			t.Errorf("renewed_from %q, want the signer's serial", rec.RenewedFrom)
		}
	})

	ts.Clock.Set(captureTime)
	fresh := ts.enrollCert(t, oldKey, "CN=device-1,O=Acme")
	revoked := ts.enrollCert(t, oldKey, "CN=device-1,O=Acme")
	// Unspecified: keyCompromise would revoke fresh, of the same key, too.
	if _, _, err := ts.Store.RevokeCertificate(ctx, ts.Authority.Issuer.ID, revoked.SerialNumber.Text(16), 0, ts.Clock.Now(), pki.AuditEvent{Time: ts.Clock.Now(), Type: pki.EventRevoked, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	selfSigned := ts.selfSignedFor(t, oldKey)
	before := ts.certCount(t)
	refusals := []struct {
		name    string
		advance time.Duration
		signer  *x509.Certificate
		p       reqParams
		want    scep.FailInfo
	}{
		{"self-signed signer", 300 * day, selfSigned, reqParams{}, scep.BadCertID},
		{"revoked signer", 300 * day, revoked, reqParams{}, scep.BadCertID},
		{"outside the window", 10 * day, fresh, reqParams{}, scep.BadTime},
		{"changed subject", 300 * day, fresh, reqParams{subject: "CN=someone-else,O=Acme"}, scep.BadRequest},
		{"expired signer", 400 * day, fresh, reqParams{}, scep.BadTime},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			ts.Clock.Set(captureTime.Add(tt.advance))
			_, rep := renew(tt.signer, oldKey, tt.p)
			wantFailure(t, rep, tt.want)
		})
	}
	if ts.certCount(t) != before {
		t.Error("a refused renewal recorded a certificate")
	}
	evs, _ := ts.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed})
	if len(evs) < len(refusals) {
		t.Errorf("%d failure audit events for %d refusals", len(evs), len(refusals))
	}
}

func TestRenewalRevokesSupersededWhenAsked(t *testing.T) {
	p := pki.DefaultProfile()
	p.RevokeSuperseded = true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"}})
	key := testKey(t, 0)
	old := ts.enrollCert(t, key, "CN=device-1,O=Acme")
	ts.Clock.Advance(300 * day)
	msg, rep := ts.exchange(t, reqParams{key: testKey(t, 1), signerCert: old, signerKey: key, challenge: "-", msgType: scep.RenewalReq})
	renewed, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
	rec, err := ts.Store.Certificate(context.Background(), ts.Authority.Issuer.ID, old.SerialNumber.Text(16))
	if err != nil || rec.Status != pki.StatusRevoked || rec.RevokeReason != 4 {
		t.Fatalf("old certificate: %+v, %v", rec, err)
	}

	// The device lost the answer and asks again with the same new key,
	// signed by the certificate that renewal revoked: it gets the same
	// certificate, and no second one is issued.
	before := ts.certCount(t)
	msg, rep = ts.exchange(t, reqParams{key: testKey(t, 1), signerCert: old, signerKey: key, challenge: "-", msgType: scep.RenewalReq})
	again, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
	if !again.Equal(renewed) || ts.certCount(t) != before {
		t.Errorf("asked again: serial %s (first %s), %d certificates recorded (before %d)", again.SerialNumber.Text(16), renewed.SerialNumber.Text(16), ts.certCount(t), before)
	}
	// With another key it is a new renewal of a revoked certificate.
	_, rep = ts.exchange(t, reqParams{key: testKey(t, 2), signerCert: old, signerKey: key, challenge: "-", msgType: scep.RenewalReq})
	wantFailure(t, rep, scep.BadCertID)
}

func TestPendingApprovalAndCertPoll(t *testing.T) {
	def, approval := pki.DefaultProfile(), pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": def, "approval": approval}, DefaultProfile: "default"}})
	ctx := context.Background()
	key := testKey(t, 2)
	signer := ts.selfSignedFor(t, key)
	base := reqParams{key: key, signerCert: signer, signerKey: key, path: "/scep/approval", txID: "tx-pending-1"}
	poll := func(p reqParams) (*scep.PKIMessage, *scep.PKIMessage) {
		content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, signer.RawSubject)
		if err != nil {
			t.Fatal(err)
		}
		p.msgType, p.content = scep.CertPoll, content
		return ts.exchange(t, p)
	}

	_, rep := ts.exchange(t, base)
	if rep.PKIStatus != scep.StatusPending {
		t.Fatalf("pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
	}
	// The same transaction again (micromdm's scepclient resends PKCSReq): PENDING, no second request.
	_, rep = ts.exchange(t, base)
	if rep.PKIStatus != scep.StatusPending {
		t.Fatalf("repeat: pkiStatus %s", rep.PKIStatus)
	}
	_, rep = poll(base)
	if rep.PKIStatus != scep.StatusPending {
		t.Fatalf("poll: pkiStatus %s", rep.PKIStatus)
	}
	reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("%d pending requests, %v", len(reqs), err)
	}
	// IssuerAndSubject must name the request's subject.
	other, _ := csr.ParseDN("CN=someone-else")
	wrongSubject, _ := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, other)
	wrong := base
	wrong.msgType, wrong.content = scep.CertPoll, wrongSubject
	_, rep = ts.exchange(t, wrong)
	wantFailure(t, rep, scep.BadCertID)
	// Someone else's key cannot collect it (it is told of no such
	// request), nor take over or block its transaction ID: its request
	// under the same ID is another transaction, held on its own.
	_, rep = poll(reqParams{key: testKey(t, 3), path: base.path, txID: base.txID})
	wantFailure(t, rep, scep.BadCertID)
	_, rep = ts.exchange(t, reqParams{key: testKey(t, 3), path: base.path, txID: base.txID})
	if rep.PKIStatus != scep.StatusPending {
		t.Fatalf("another key's request under the same ID: pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
	}
	held, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if err != nil || len(held) != 2 || held[0].ID == reqs[0].ID {
		t.Fatalf("pending requests %+v, %v; want the other key's beside the first", held, err)
	}
	if err := ts.Admin.Reject(ctx, held[0].ID, "squatter", "cli:test"); err != nil {
		t.Fatal(err)
	}

	if _, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test"); pki.ErrorCode(err) != pki.EConflict {
		t.Errorf("second approval: %v", err)
	}
	msg, rep := poll(base)
	cert, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
	if ts.certCount(t) != 1 {
		t.Errorf("%d certificates recorded", ts.certCount(t))
	}
	if !strings.Contains(cert.Subject.String(), "device-1") {
		t.Errorf("subject %s", cert.Subject)
	}

	// Rejection: the poll answers FAILURE with the operator's reason.
	rej := reqParams{key: key, signerCert: signer, signerKey: key, path: "/scep/approval", txID: "tx-pending-2"}
	ts.exchange(t, rej)
	reqs, _, _ = ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if len(reqs) != 1 {
		t.Fatalf("%d pending requests", len(reqs))
	}
	if err := ts.Admin.Reject(ctx, reqs[0].ID, "unknown device", "cli:test"); err != nil {
		t.Fatal(err)
	}
	_, rep = poll(rej)
	wantFailure(t, rep, scep.BadRequest)
	if !strings.Contains(rep.FailInfoText, "unknown device") {
		t.Errorf("failInfoText %q", rep.FailInfoText)
	}
	// A poll for a transaction nobody knows.
	_, rep = poll(reqParams{key: key, signerCert: signer, signerKey: key, path: "/scep/approval", txID: "tx-unknown"})
	wantFailure(t, rep, scep.BadCertID)
}

// A CertPoll signed by a key that made no request learns nothing of the
// request whose transaction ID it names: pending, rejected (with the
// operator's reason) or issued, it is answered as a transaction ID nobody
// knows, word for word. Sent again byte for byte it is a replay, as for an
// unknown transaction ID.
func TestCertPollByAStrangerLearnsNothing(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	ctx := context.Background()
	stranger := testKey(t, 0)
	poll := func(key crypto.Signer, txID string) *scep.PKIMessage {
		t.Helper()
		content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, ts.selfSignedFor(t, key).RawSubject)
		if err != nil {
			t.Fatal(err)
		}
		_, rep := ts.exchange(t, reqParams{key: key, path: "/scep/approval", txID: txID, msgType: scep.CertPoll, content: content})
		return rep
	}
	unknown := poll(stranger, "tx-nobody")
	wantFailure(t, unknown, scep.BadCertID)

	hold := func(keyIndex int, txID string) string {
		t.Helper()
		if _, rep := ts.exchange(t, reqParams{key: testKey(t, keyIndex), path: "/scep/approval", txID: txID}); rep.PKIStatus != scep.StatusPending {
			t.Fatalf("pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
		}
		r, err := ts.Store.RequestByTransaction(ctx, "approval", txID, store.RequestKeys{})
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	hold(1, "tx-pending")
	if err := ts.Admin.Reject(ctx, hold(2, "tx-rejected"), "internal note SEC-4411", "cli:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Service.Approve(ctx, hold(3, "tx-issued"), "cli:test"); err != nil {
		t.Fatal(err)
	}
	for _, txID := range []string{"tx-pending", "tx-rejected", "tx-issued"} {
		rep := poll(stranger, txID)
		if rep.PKIStatus != unknown.PKIStatus || rep.FailInfo != unknown.FailInfo || rep.FailInfoText != unknown.FailInfoText {
			t.Errorf("%s polled by a stranger: %s %s %q, want as for an unknown ID: %s %s %q", txID,
				rep.PKIStatus, rep.FailInfo, rep.FailInfoText, unknown.PKIStatus, unknown.FailInfo, unknown.FailInfoText)
		}
	}
	// The requester is still told.
	if rep := poll(testKey(t, 2), "tx-rejected"); !strings.Contains(rep.FailInfoText, "SEC-4411") {
		t.Errorf("the requester's poll of its rejected request: %s %q", rep.PKIStatus, rep.FailInfoText)
	}

	// A stranger's poll sent twice gets the same answer for a held
	// transaction ID as for an unknown one.
	for _, txID := range []string{"tx-nobody-2", "tx-pending"} {
		content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, ts.selfSignedFor(t, stranger).RawSubject)
		if err != nil {
			t.Fatal(err)
		}
		der, msg := ts.build(t, reqParams{key: stranger, path: "/scep/approval", txID: txID, msgType: scep.CertPoll, content: content})
		ts.postTo(t, "/scep/approval", der)
		_, body := ts.postTo(t, "/scep/approval", der)
		if rep := ts.parseReply(t, body, msg); !strings.Contains(rep.FailInfoText, "replayed") {
			t.Errorf("%s: a stranger's poll sent again: %s %s %q, want a replay", txID, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
	}
}

// micromdm's scepclient answers PENDING by sending the same PKCSReq again,
// byte for byte (same senderNonce and signingTime). That resend asks about
// the held request and is answered from it (PENDING, then the certificate);
// a byte-identical replay of a request that nothing holds is answered as its
// resend is (the certificate issued for it), or refused as a replay.
func TestByteIdenticalResendOfHeldRequest(t *testing.T) {
	def, approval := pki.DefaultProfile(), pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": def, "approval": approval}, DefaultProfile: "default"}})
	ctx := context.Background()
	key := testKey(t, 2)
	send := func(path string, der []byte, msg *scep.PKIMessage) *scep.PKIMessage {
		t.Helper()
		resp, body := ts.postTo(t, path, der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		return ts.parseReply(t, body, msg)
	}

	der, msg := ts.build(t, reqParams{key: key, path: "/scep/approval", txID: "tx-resent-1"})
	for i := range 2 {
		if rep := send("/scep/approval", der, msg); rep.PKIStatus != scep.StatusPending {
			t.Fatalf("send %d: pkiStatus %s failInfo %s (%s), want PENDING", i+1, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
	}
	reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("%d pending requests, %v", len(reqs), err)
	}
	if _, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	first, _ := ts.issuedCert(t, send("/scep/approval", der, msg), msg.SignerCert, key)
	again, _ := ts.issuedCert(t, send("/scep/approval", der, msg), msg.SignerCert, key)
	if !first.Equal(again) || ts.certCount(t) != 1 {
		t.Errorf("resends got serials %x and %x; %d certificates recorded, want 1", first.SerialNumber, again.SerialNumber, ts.certCount(t))
	}

	// Nothing is held for a request issued at once: its replay is answered
	// with its certificate, as its resend is; one refused is refused as a
	// replay at once (its run marked its pair refused), and after that.
	der, msg = ts.build(t, reqParams{key: testKey(t, 3)})
	issued, _ := ts.issuedCert(t, send("/scep", der, msg), msg.SignerCert, testKey(t, 3))
	wantSentAgain(t, ts, "a replay of an issued request", send("/scep", der, msg), msg.SignerCert, testKey(t, 3), issued)
	der, msg = ts.build(t, reqParams{key: testKey(t, 4), challenge: "wrong"})
	wantFailure(t, send("/scep", der, msg), scep.BadRequest)
	wantReplay(t, "a replay of a refused request at once", send("/scep", der, msg))
	ts.Clock.Advance(5 * time.Minute)
	wantReplay(t, "a replay of a refused request", send("/scep", der, msg))
	if n := ts.certCount(t); n != 2 {
		t.Errorf("%d certificates recorded, want 2", n)
	}
}

func TestGetCert(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key := testKey(t, 0)
	mine := ts.enrollCert(t, key, "CN=getcert-1,O=Acme")
	other := ts.enrollCert(t, testKey(t, 1), "CN=getcert-2,O=Acme")
	getCert := func(signer *x509.Certificate, signerKey crypto.Signer, serialOf *x509.Certificate) *scep.PKIMessage {
		content, err := scep.MarshalIssuerAndSerial(serialOf.RawIssuer, serialOf.SerialNumber)
		if err != nil {
			t.Fatal(err)
		}
		msg, rep := ts.exchange(t, reqParams{key: signerKey, signerCert: signer, signerKey: signerKey, msgType: scep.GetCert, content: content})
		if rep.PKIStatus == scep.StatusSuccess {
			got, _ := ts.issuedCert(t, rep, msg.SignerCert, signerKey.(crypto.Decrypter))
			if !got.Equal(serialOf) {
				t.Errorf("GetCert returned %s", got.Subject)
			}
		}
		return rep
	}
	if rep := getCert(mine, key, other); rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("GetCert: %s %s (%s)", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	// The issuer's name in UTF8String rather than as the CA wrote it: the
	// same name, as GetCRL takes it.
	reencoded := *other
	reencoded.RawIssuer = utf8Name(t, other.RawIssuer)
	if bytes.Equal(reencoded.RawIssuer, other.RawIssuer) {
		t.Fatal("the CA's name is in UTF8String already: the case tests nothing")
	}
	if rep := getCert(mine, key, &reencoded); rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("GetCert with the issuer's name re-encoded: %s %s (%s)", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	unknown := *other
	unknown.SerialNumber = new(big.Int).Add(other.SerialNumber, big.NewInt(1))
	wantFailure(t, getCert(mine, key, &unknown), scep.BadCertID)
	wantFailure(t, getCert(ts.selfSignedFor(t, key), key, other), scep.BadRequest)

	// An EC certificate's holder receives replies keyed from its request's
	// challenge; GetCert and GetCRL carry no request, so they are told to
	// sign with an RSA certificate, not to add a challengePassword.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, rep := ts.exchange(t, reqParams{key: ecKey, subject: "CN=getcert-ec,O=Acme"})
	ecCert, _ := ts.issuedByPassword(t, rep, testChallenge)
	for _, op := range []scep.MessageType{scep.GetCert, scep.GetCRL} {
		content, err := scep.MarshalIssuerAndSerial(other.RawIssuer, other.SerialNumber)
		if err != nil {
			t.Fatal(err)
		}
		_, rep := ts.exchange(t, reqParams{key: ecKey, signerCert: ecCert, signerKey: ecKey, msgType: op, content: content})
		wantFailure(t, rep, scep.BadAlg)
		if !strings.Contains(rep.FailInfoText, "a "+op.String()+" carries none: sign it with a certificate whose key is RSA") {
			t.Errorf("%s signed by an EC certificate: %q", op, rep.FailInfoText)
		}
	}
}

// GetCRL returns the current CRL of the CA IssuerAndSerialNumber names, in
// a certs-only SignedData enveloped to the requester, whoever signs: the
// CRL is public, and a device whose certificate was revoked needs it most.
func TestGetCRL(t *testing.T) {
	ctx := context.Background()
	ts := newTestServer(t, serverOptions{})
	key := testKey(t, 0)
	mine := ts.enrollCert(t, key, "CN=getcrl-1,O=Acme")
	revoked := ts.enrollCert(t, testKey(t, 1), "CN=getcrl-2,O=Acme")
	getCRL := func(signer *x509.Certificate, signerKey crypto.Signer, rawIssuer []byte, serial *big.Int) (*scep.PKIMessage, *scep.PKIMessage) {
		content, err := scep.MarshalIssuerAndSerial(rawIssuer, serial)
		if err != nil {
			t.Fatal(err)
		}
		return ts.exchange(t, reqParams{key: signerKey, signerCert: signer, signerKey: signerKey, msgType: scep.GetCRL, content: content})
	}
	// Before any CRL is published: a clear failure, not a crash.
	_, rep := getCRL(mine, key, mine.RawIssuer, mine.SerialNumber)
	wantFailure(t, rep, scep.BadCertID)

	if _, _, err := ts.Store.RevokeCertificate(ctx, ts.Authority.Issuer.ID, revoked.SerialNumber.Text(16), 1, ts.Clock.Now(),
		pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	if err := ts.CRL.Update(ctx); err != nil {
		t.Fatal(err)
	}
	for _, signer := range []struct {
		cert *x509.Certificate
		key  *rsa.PrivateKey
	}{{mine, key}, {ts.selfSignedFor(t, key), key}, {revoked, testKey(t, 1)}} {
		msg, rep := getCRL(signer.cert, signer.key, mine.RawIssuer, mine.SerialNumber)
		if rep.PKIStatus != scep.StatusSuccess {
			t.Fatalf("GetCRL signed by %s: %s %s (%s)", signer.cert.Subject, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
		env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
		if err != nil {
			t.Fatal(err)
		}
		inner, err := env.DecryptKeyTransport(msg.SignerCert, signer.key)
		if err != nil {
			t.Fatal(err)
		}
		sd, err := cms.ParseSignedData(inner)
		if err != nil {
			t.Fatal(err)
		}
		// The CRL's issuer comes along: a client that cached the CA
		// certificates before a switch checks a previous CA's CRL with it.
		if len(sd.RawCRLs) != 1 || len(sd.Certificates) != 1 || !sd.Certificates[0].Equal(ts.Authority.Issuer.Cert) {
			t.Fatalf("GetCRL reply has %d CRLs and %d certificates, want 1 and its issuer", len(sd.RawCRLs), len(sd.Certificates))
		}
		want, _ := ts.CRL.Current(ts.Authority.Issuer.ID)
		if !bytes.Equal(sd.RawCRLs[0], want.DER) {
			t.Error("GetCRL returned another CRL than the published one")
		}
		list, err := x509.ParseRevocationList(sd.RawCRLs[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := list.CheckSignatureFrom(ts.Authority.Issuer.Cert); err != nil {
			t.Errorf("CRL signature: %v", err)
		}
		if len(list.RevokedCertificateEntries) != 1 || list.RevokedCertificateEntries[0].SerialNumber.Cmp(revoked.SerialNumber) != 0 {
			t.Errorf("CRL entries %+v, want the revoked certificate", list.RevokedCertificateEntries)
		}
	}
	// A name that is none of our CAs'.
	_, rep = getCRL(mine, key, mine.RawSubject, mine.SerialNumber)
	wantFailure(t, rep, scep.BadCertID)
}

// An EC device receives its certificate in a password-based envelope keyed
// from its challenge (RFC 8894 §3.2.2), which openssl can open too.
func TestECClientPasswordRecipient(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	ecKey, rep, inner := ecEnroll(t, ts, "CN=ec-device,O=Acme")
	// A second EC device with the same challenge: its reply is wrapped
	// under the KEK derived for the first (the server keeps it for an
	// hour), and opens with the challenge just the same.
	ecEnroll(t, ts, "CN=ec-device-b,O=Acme")
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "env.der")
	os.WriteFile(in, rep.SignedData.Content, 0o600)
	out, err := exec.Command("openssl", "cms", "-decrypt", "-inform", "DER", "-in", in, "-pwri_password", testChallenge, "-binary").Output()
	if err != nil {
		t.Fatalf("openssl cms -decrypt -pwri_password: %v", err)
	}
	if string(out) != string(inner) {
		t.Error("openssl decrypted something else")
	}
	// The other direction: openssl opens the EC client's request, verifies
	// its ECDSA signature and decrypts its envelope with the RA key.
	der, _ := ts.build(t, reqParams{key: ecKey, subject: "CN=ec-device-2,O=Acme"})
	reqFile := filepath.Join(dir, "req.der")
	os.WriteFile(reqFile, der, 0o600)
	envFile := filepath.Join(dir, "req-env.der")
	if out, err := exec.Command("openssl", "cms", "-verify", "-noverify", "-inform", "DER", "-in", reqFile, "-out", envFile, "-binary").CombinedOutput(); err != nil {
		t.Fatalf("openssl cms -verify of the EC request: %v\n%s", err, out)
	}
	raKey := filepath.Join(ts.Dir, "ca", "ra.key")
	raCert := filepath.Join(ts.Dir, "ca", "ra.crt")
	csrDER, err := exec.Command("openssl", "cms", "-decrypt", "-inform", "DER", "-in", envFile, "-recip", raCert, "-inkey", raKey, "-binary").Output()
	if err != nil {
		t.Fatalf("openssl cms -decrypt of the EC request: %v", err)
	}
	if req, err := x509.ParseCertificateRequest(csrDER); err != nil || req.Subject.CommonName != "ec-device-2" {
		t.Fatalf("decrypted request: %v", err)
	}
	// And without a challenge an EC requester cannot be answered.
	_, rep = ts.exchange(t, reqParams{key: ecKey, challenge: "-"})
	wantFailure(t, rep, scep.BadAlg)
}

// IncludeCACert puts the issuing CA chain beside the certificate (Cisco
// wants it); without it the CertRep holds the certificate alone.
func TestIncludeCACert(t *testing.T) {
	def, cisco := pki.DefaultProfile(), pki.DefaultProfile()
	cisco.Name, cisco.IncludeCACert = "cisco", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": def, "cisco": cisco}, DefaultProfile: "default"}})
	for _, tt := range []struct {
		path string
		want int
	}{{"/scep", 1}, {"/scep/cisco", 3}} {
		key := testKey(t, 0)
		msg, rep := ts.exchange(t, reqParams{key: key, path: tt.path})
		env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
		if err != nil {
			t.Fatal(err)
		}
		inner, err := env.DecryptKeyTransport(msg.SignerCert, key)
		if err != nil {
			t.Fatal(err)
		}
		sd, err := cms.ParseSignedData(inner)
		if err != nil {
			t.Fatal(err)
		}
		if len(sd.Certificates) != tt.want {
			t.Errorf("%s: %d certificates in the CertRep, want %d", tt.path, len(sd.Certificates), tt.want)
		}
	}
	if resp, _ := get(t, ts.URL+"/scep/nonexistent?operation=GetCACaps"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown profile: HTTP %d", resp.StatusCode)
	}
}

// A certificate renews only under the profile that issued it.
func TestRenewalStaysInItsProfile(t *testing.T) {
	def, vpn := pki.DefaultProfile(), pki.DefaultProfile()
	vpn.Name, vpn.ChallengeMode = "vpn", enroll.ChallengeOneTime
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": def, "vpn": vpn}, DefaultProfile: "default"}})
	key := testKey(t, 0)
	old := ts.enrollCert(t, key, "CN=device-1,O=Acme")
	ts.Clock.Advance(300 * day)
	_, rep := ts.exchange(t, reqParams{key: testKey(t, 1), signerCert: old, signerKey: key, challenge: "-", msgType: scep.RenewalReq, path: "/scep/vpn"})
	wantFailure(t, rep, scep.BadRequest)
	msg, rep := ts.exchange(t, reqParams{key: testKey(t, 1), signerCert: old, signerKey: key, challenge: "-", msgType: scep.RenewalReq})
	ts.issuedCert(t, rep, msg.SignerCert, key)
}

// A rekeying renewal held for approval is collected by a CertPoll signed
// with the old certificate, as clients that renew do.
func TestHeldRenewalPolledWithOldCertificate(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval, approval.RenewalWindow = "approval", true, 1
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	ctx := context.Background()
	approveAll := func() {
		reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
		if err != nil || len(reqs) != 1 {
			t.Fatalf("%d pending requests, %v", len(reqs), err)
		}
		if _, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
			t.Fatal(err)
		}
	}
	oldKey, newKey := testKey(t, 0), testKey(t, 1)
	first := reqParams{key: oldKey, txID: "tx-first"}
	if _, rep := ts.exchange(t, first); rep.PKIStatus != scep.StatusPending {
		t.Fatalf("first: %s", rep.PKIStatus)
	}
	approveAll()
	msg, rep := ts.exchange(t, first)
	old, _ := ts.issuedCert(t, rep, msg.SignerCert, oldKey)

	renewal := reqParams{key: newKey, signerCert: old, signerKey: oldKey, challenge: "-", msgType: scep.RenewalReq, txID: "tx-renewal"}
	if _, rep := ts.exchange(t, renewal); rep.PKIStatus != scep.StatusPending {
		t.Fatalf("renewal: %s %s (%s)", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	approveAll()
	content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, old.RawSubject)
	if err != nil {
		t.Fatal(err)
	}
	poll := renewal
	poll.msgType, poll.content = scep.CertPoll, content
	msg, rep = ts.exchange(t, poll)
	renewed, _ := ts.issuedCert(t, rep, msg.SignerCert, oldKey)
	if !renewed.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(newKey.Public()) {
		t.Error("the renewed certificate is not for the new key")
	}
}

// A renewal held for approval whose old certificate is revoked meanwhile is
// not approved, and a poll signed by the revoked certificate gets nothing.
func TestHeldRenewalOfARevokedCertificate(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval, approval.RenewalWindow = "approval", true, 1
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	ctx := context.Background()
	pending := func() *pki.EnrollmentRequest {
		reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
		if err != nil || len(reqs) != 1 {
			t.Fatalf("%d pending requests, %v", len(reqs), err)
		}
		return &reqs[0]
	}
	oldKey, newKey := testKey(t, 0), testKey(t, 1)
	first := reqParams{key: oldKey, txID: "tx-first"}
	ts.exchange(t, first)
	if _, err := ts.Service.Approve(ctx, pending().ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	msg, rep := ts.exchange(t, first)
	old, _ := ts.issuedCert(t, rep, msg.SignerCert, oldKey)
	renewal := reqParams{key: newKey, signerCert: old, signerKey: oldKey, challenge: "-", msgType: scep.RenewalReq, txID: "tx-renewal"}
	if _, rep := ts.exchange(t, renewal); rep.PKIStatus != scep.StatusPending {
		t.Fatalf("renewal: %s", rep.PKIStatus)
	}
	held := pending()
	if _, err := ts.Admin.Revoke(ctx, old.SerialNumber.Text(16), "", 1, "cli:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Service.Approve(ctx, held.ID, "cli:test"); pki.ErrorCode(err) != pki.EConflict {
		t.Errorf("approving the renewal of a revoked certificate: %v, want a conflict", err)
	}
	content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, old.RawSubject)
	if err != nil {
		t.Fatal(err)
	}
	poll := renewal
	poll.msgType, poll.content = scep.CertPoll, content
	_, rep = ts.exchange(t, poll)
	wantFailure(t, rep, scep.BadCertID)
}

// ecEnroll enrolls a new P-256 key and opens its reply with the challenge:
// the key, the CertRep and the certs-only SignedData it held.
func ecEnroll(t *testing.T, ts *testServer, subject string) (*ecdsa.PrivateKey, *scep.PKIMessage, []byte) {
	t.Helper()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, rep := ts.exchange(t, reqParams{key: ecKey, subject: subject})
	if rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("%s: pkiStatus %s failInfo %s (%s)", subject, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := env.DecryptPassword([]byte(testChallenge))
	if err != nil {
		t.Fatalf("%s: pwri: %v", subject, err)
	}
	sd, err := cms.ParseSignedData(inner)
	if err != nil || len(sd.Certificates) != 1 {
		t.Fatalf("%s: inner: %v", subject, err)
	}
	if !sd.Certificates[0].PublicKey.(*ecdsa.PublicKey).Equal(ecKey.Public()) {
		t.Errorf("%s: the certificate is not for our key", subject)
	}
	return ecKey, rep, inner
}

// utf8Name is the DER name raw with every value a UTF8String.
func utf8Name(t *testing.T, raw []byte) []byte {
	t.Helper()
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &rdns); err != nil {
		t.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, rdn := range rdns {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, a := range rdn {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(a.Type)
						b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(fmt.Sprint(a.Value))) })
					})
				}
			})
		}
	})
	return b.BytesOrPanic()
}

// An EC requester's CertPoll after approval cannot be answered with the
// certificate: the reply is keyed from the challenge, which only the
// PKCSReq carries. It is answered PENDING, never a FAILURE a client takes
// as final, and the PKCSReq sent again collects the certificate.
func TestECCertPollAfterApprovalStaysPending(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	ctx := context.Background()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	req := reqParams{key: ecKey, txID: "tx-ec-pending"}
	if _, rep := ts.exchange(t, req); rep.PKIStatus != scep.StatusPending {
		t.Fatalf("request: pkiStatus %s failInfo %s (%s), want PENDING", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	subject, err := csr.ParseDN("CN=device-1,O=Acme")
	if err != nil {
		t.Fatal(err)
	}
	content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, subject)
	if err != nil {
		t.Fatal(err)
	}
	poll := req
	poll.msgType, poll.content = scep.CertPoll, content
	for _, approved := range []bool{false, true} {
		if approved {
			reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
			if err != nil || len(reqs) != 1 {
				t.Fatalf("%d pending requests, %v", len(reqs), err)
			}
			if _, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test"); err != nil {
				t.Fatal(err)
			}
		}
		if _, rep := ts.exchange(t, poll); rep.PKIStatus != scep.StatusPending {
			t.Fatalf("poll (approved %v): pkiStatus %s failInfo %s (%s), want PENDING", approved, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
	}
	_, rep := ts.exchange(t, req)
	if rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("request again: pkiStatus %s failInfo %s (%s), want SUCCESS", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := env.DecryptPassword([]byte(testChallenge))
	if err != nil {
		t.Fatalf("pwri: %v", err)
	}
	sd, err := cms.ParseSignedData(inner)
	if err != nil || len(sd.Certificates) != 1 {
		t.Fatalf("inner: %v", err)
	}
	if !sd.Certificates[0].PublicKey.(*ecdsa.PublicKey).Equal(ecKey.Public()) {
		t.Error("the certificate is not for the requester's key")
	}
	if n := ts.certCount(t); n != 1 {
		t.Errorf("%d certificates recorded, want 1", n)
	}
}

// An OAEP request gets an OAEP reply under the same two hashes: RFC 4055
// lets MGF1's differ from OAEP's, and a client decrypts with the pair it
// chose, whatever the reply's parameters say.
func TestOAEPReplyAnswersInKind(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for i, tt := range []struct {
		name               string
		oaepHash, mgfHash  crypto.Hash // asked for (zero MGF1: the OAEP hash)
		wantOAEP, wantMGF1 crypto.Hash
	}{
		{"SHA-256", crypto.SHA256, 0, crypto.SHA256, crypto.SHA256},
		{"SHA-512 with MGF1-SHA-1", crypto.SHA512, crypto.SHA1, crypto.SHA512, crypto.SHA1},
		{"SHA-1 with MGF1-SHA-256", crypto.SHA1, crypto.SHA256, crypto.SHA1, crypto.SHA256},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey(t, i)
			msg, rep := ts.exchange(t, reqParams{key: key, subject: fmt.Sprintf("CN=oaep-%d,O=Acme", i), oaepHash: tt.oaepHash, oaepMGFHash: tt.mgfHash})
			if rep.PKIStatus != scep.StatusSuccess {
				t.Fatalf("pkiStatus %s failInfo %s (%s)", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
			}
			env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
			if err != nil {
				t.Fatal(err)
			}
			r := &env.Recipients[0]
			if r.KeyTransport != cms.RSAOAEP || r.OAEPHash != tt.wantOAEP || r.OAEPMGFHash != tt.wantMGF1 {
				t.Errorf("reply %v with OAEP %v and MGF1-%v, want RSA-OAEP with %v and MGF1-%v", r.KeyTransport, r.OAEPHash, r.OAEPMGFHash, tt.wantOAEP, tt.wantMGF1)
			}
			// The client's own pair, not the parameters'.
			r.OAEPHash, r.OAEPMGFHash = tt.wantOAEP, tt.wantMGF1
			if _, err := env.DecryptKeyTransport(msg.SignerCert, key); err != nil {
				t.Errorf("the reply does not open with the request's hashes: %v", err)
			}
		})
	}
}

// countEvents counts the audit events of one type.
func countEvents(t *testing.T, ts *testServer, typ string) int {
	t.Helper()
	evs, err := ts.Store.ListAudit(context.Background(), store.AuditFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}
