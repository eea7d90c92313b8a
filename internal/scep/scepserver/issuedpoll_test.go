package scepserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// A device whose PKCSReq was issued at once but whose answer it never got
// (a timeout) may poll for it (RFC 8894 §3.3.3): the CertPoll, signed with
// the key the certificate was issued for, is answered with that
// certificate, as its PKCSReq sent again would be (RFC 8894 §3.2.1.1: the
// server keeps answering a transaction ID with its outcome), and nothing
// is issued. Anyone else, another subject, a revoked certificate, or a
// poll a day later are answered as for a transaction ID nobody knows.
func TestCertPollOfATransactionIssuedAtOnce(t *testing.T) {
	counter := &outcomeCounter{}
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Observer: counter}})
	ctx := context.Background()
	key := testKey(t, 1)
	signer := ts.selfSignedFor(t, key)
	const txID = "tx-issued-at-once"
	base := reqParams{key: key, signerCert: signer, signerKey: key, txID: txID}
	msg, rep := ts.exchange(t, base)
	issued, _ := ts.issuedCert(t, rep, msg.SignerCert, key)

	poll := func(key *reqParams, subject []byte) (*scep.PKIMessage, *scep.PKIMessage) {
		t.Helper()
		content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, subject)
		if err != nil {
			t.Fatal(err)
		}
		p := *key
		p.msgType, p.content = scep.CertPoll, content
		return ts.exchange(t, p)
	}
	counter.take()
	unknownMsg := base
	unknownMsg.txID = "tx-nobody"
	_, unknown := poll(&unknownMsg, signer.RawSubject)
	wantFailure(t, unknown, scep.BadCertID)

	for _, tc := range []struct {
		name    string
		subject []byte
	}{
		{"naming the signer's subject", signer.RawSubject},
		{"naming the certificate's subject", issued.RawSubject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, rep := poll(&base, tc.subject)
			got, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
			if got.SerialNumber.Cmp(issued.SerialNumber) != 0 {
				t.Errorf("CertPoll answered with serial %x, want the one issued, %x", got.SerialNumber, issued.SerialNumber)
			}
		})
	}
	if n := ts.certCount(t); n != 1 {
		t.Errorf("%d certificates recorded, want 1: a poll issues nothing", n)
	}
	if got, want := counter.take(), map[string]int{enroll.ResultRefused: 1, enroll.ResultReanswered: 2}; !maps.Equal(got, want) {
		t.Errorf("outcomes counted %v, want %v: a certificate sent again, not issued", got, want)
	}
	// Each is in the audit trail as a certificate sent again, by whom.
	evs, err := ts.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d certificate.sent_again events, want one per poll answered: %+v", len(evs), evs)
	}
	for _, ev := range evs {
		if ev.SerialHex != issued.SerialNumber.Text(16) || ev.Actor != "scep:127.0.0.1" || ev.TransactionID != txID || !strings.Contains(ev.Detail, "CertPoll") {
			t.Errorf("sent_again event %+v, want serial %x by scep:127.0.0.1 for %s, saying a CertPoll asked", ev, issued.SerialNumber, txID)
		}
	}

	// A copy of a poll, byte for byte (a client that sent it again after a
	// timeout, a balancer that retried), is answered as the poll is.
	content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, signer.RawSubject)
	if err != nil {
		t.Fatal(err)
	}
	again := base
	again.msgType, again.content = scep.CertPoll, content
	der, againMsg := ts.build(t, again)
	counter.take()
	for i := range 2 {
		resp, body := ts.post(t, der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("copy %d of a poll: HTTP %d: %s", i, resp.StatusCode, body)
		}
		got, _ := ts.issuedCert(t, ts.parseReply(t, body, againMsg), againMsg.SignerCert, key)
		if got.SerialNumber.Cmp(issued.SerialNumber) != 0 {
			t.Errorf("copy %d of a poll answered with serial %x, want %x", i, got.SerialNumber, issued.SerialNumber)
		}
	}
	if got, want := counter.take(), map[string]int{enroll.ResultReanswered: 2}; !maps.Equal(got, want) {
		t.Errorf("a poll and its copy counted %v, want %v", got, want)
	}

	sameAsUnknown := func(what string, rep *scep.PKIMessage) {
		t.Helper()
		if rep.PKIStatus != unknown.PKIStatus || rep.FailInfo != unknown.FailInfo || rep.FailInfoText != unknown.FailInfoText {
			t.Errorf("%s: %s %s %q, want as for an unknown transaction ID: %s %s %q", what,
				rep.PKIStatus, rep.FailInfo, rep.FailInfoText, unknown.PKIStatus, unknown.FailInfo, unknown.FailInfoText)
		}
	}
	stranger := reqParams{key: testKey(t, 2), txID: txID}
	_, rep = poll(&stranger, ts.selfSignedFor(t, testKey(t, 2)).RawSubject)
	sameAsUnknown("polled by another key", rep)

	other, err := csr.ParseDN("CN=someone-else")
	if err != nil {
		t.Fatal(err)
	}
	counter.take()
	_, rep = poll(&base, other)
	wantFailure(t, rep, scep.BadCertID)
	// Refused by the handler's check of what the service found: counted
	// once, as refused, not as a certificate sent again.
	if got, want := counter.take(), map[string]int{enroll.ResultRefused: 1}; !maps.Equal(got, want) {
		t.Errorf("a poll naming another subject counted %v, want %v", got, want)
	}

	// Its certificate revoked, the transaction has no outcome to send.
	revokedKey := testKey(t, 3)
	revoked := reqParams{key: revokedKey, signerCert: ts.selfSignedFor(t, revokedKey), signerKey: revokedKey, txID: "tx-revoked"}
	msg, rep = ts.exchange(t, revoked)
	cert, _ := ts.issuedCert(t, rep, msg.SignerCert, revokedKey)
	if _, err := ts.Admin.Revoke(ctx, cert.SerialNumber.Text(16), "", 4, "cli:test"); err != nil {
		t.Fatal(err)
	}
	_, rep = poll(&revoked, revoked.signerCert.RawSubject)
	sameAsUnknown("polled after its certificate was revoked", rep)

	// An EC requester's reply is keyed from the challenge, which a
	// CertPoll does not carry: it collects its certificate by sending its
	// PKCSReq again, and its poll finds nothing to send.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec := reqParams{key: ecKey, txID: "tx-ec-issued-at-once"}
	if _, rep := ts.exchange(t, ec); rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("EC PKCSReq: pkiStatus %s (%s)", rep.PKIStatus, rep.FailInfoText)
	}
	_, rep = poll(&ec, ts.selfSignedFor(t, ecKey).RawSubject)
	sameAsUnknown("an EC requester's poll", rep)

	// A day later the transaction is over: its ID may be a new one's.
	ts.Clock.Advance(25 * time.Hour)
	_, rep = poll(&base, signer.RawSubject)
	sameAsUnknown("polled after a day", rep)
}
