package scepserver_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// A request approved a minute before its retention from when it was held
// ends is collected a day after that end on the normal path: a decided
// request's retention counts from its decision. The device's PKCSReq sent
// again with the static challenge gets the approved certificate, and so
// does an RSA key's CertPoll; an EC key's CertPoll is answered PENDING
// (its reply is keyed from the challenge, which only a PKCSReq carries),
// never badCertId, and its PKCSReq sent again collects the certificate.
// It is a collection within the retention (no certificate.sent_again
// event), and nothing is held anew. Once the retention from the approval
// is over, an uncollected certificate is answered as before: the CertPoll
// badCertId, the PKCSReq held anew as a new request.
func TestLateApprovalIsCollectedWithinRetentionFromApproval(t *testing.T) {
	const retention = 7 * day
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		key  crypto.Signer
		poll bool
		// wait is from the approval to the collection.
		wait time.Duration
		// held: the collection is held anew, as a new request.
		held bool
	}{
		{name: "RSA CertPoll", key: testKey(t, 1), poll: true, wait: day + time.Minute},
		{name: "EC CertPoll", key: ecKey, poll: true, wait: day + time.Minute},
		{name: "RSA PKCSReq sent again", key: testKey(t, 1), wait: day + time.Minute},
		{name: "EC PKCSReq sent again", key: ecKey, wait: day + time.Minute},
		{name: "RSA CertPoll after the retention from the approval", key: testKey(t, 1), poll: true, wait: retention + time.Second},
		{name: "EC CertPoll after the retention from the approval", key: ecKey, poll: true, wait: retention + time.Second},
		{name: "RSA PKCSReq sent again after the retention from the approval", key: testKey(t, 1), wait: retention + time.Second, held: true},
		{name: "EC PKCSReq sent again after the retention from the approval", key: ecKey, wait: retention + time.Second, held: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			approval := pki.DefaultProfile()
			approval.Name, approval.RequireApproval, approval.RequestRetention = "approval", true, retention
			ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
			ctx := context.Background()
			req := reqParams{key: c.key, txID: "tx-late"}
			if _, rep := ts.exchange(t, req); rep.PKIStatus != scep.StatusPending {
				t.Fatalf("PKCSReq: pkiStatus %s failInfo %s (%s), want PENDING", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
			}
			reqs, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
			if err != nil || len(reqs) != 1 {
				t.Fatalf("%d pending requests, %v", len(reqs), err)
			}
			ts.Clock.Advance(retention - time.Minute)
			approved, err := ts.Service.Approve(ctx, reqs[0].ID, "cli:test")
			if err != nil {
				t.Fatal(err)
			}
			ts.Clock.Advance(c.wait)

			send := req
			if c.poll {
				subject, err := csr.ParseDN("CN=device-1,O=Acme") // build's default
				if err != nil {
					t.Fatal(err)
				}
				content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, subject)
				if err != nil {
					t.Fatal(err)
				}
				send.msgType, send.content = scep.CertPoll, content
			}
			msg, rep := ts.exchange(t, send)
			_, rsaKey := c.key.(*rsa.PrivateKey)
			switch {
			case c.wait > retention && c.poll:
				wantFailure(t, rep, scep.BadCertID)
				return
			case c.held:
				if rep.PKIStatus != scep.StatusPending {
					t.Fatalf("pkiStatus %s failInfo %s (%s), want PENDING: held anew", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
				}
				if all, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{}); err != nil || len(all) != 2 {
					t.Errorf("%d requests, %v; want the approved one and one held anew", len(all), err)
				}
				return
			case c.poll && !rsaKey:
				if rep.PKIStatus != scep.StatusPending {
					t.Fatalf("EC CertPoll: pkiStatus %s failInfo %s (%s), want PENDING", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
				}
				msg, rep = ts.exchange(t, req) // the PKCSReq sent again collects it
			}
			if serial := collectedSerial(t, ts, msg, rep, c.key); serial != approved.Record.SerialHex {
				t.Errorf("collected certificate %s, want the approved %s", pki.ShownSerial(serial), pki.ShownSerial(approved.Record.SerialHex))
			}
			all, _, err := ts.Store.ListRequests(ctx, store.RequestFilter{})
			if err != nil || len(all) != 1 || all[0].Status != pki.RequestIssued {
				t.Errorf("requests %+v, %v; want the one approved, nothing held anew", all, err)
			}
			evs, err := ts.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventSentAgain, Limit: 10})
			if err != nil || len(evs) != 0 {
				t.Errorf("certificate.sent_again events %+v, %v; want none: a collection within the retention", evs, err)
			}
			if n := ts.certCount(t); n != 1 {
				t.Errorf("%d certificates recorded, want 1", n)
			}
		})
	}
}

// collectedSerial opens a SUCCESS CertRep answering msg, made with key:
// an RSA key's reply is keyed to the key, an EC key's from the static
// challenge. It returns the serial of the certificate it holds.
func collectedSerial(t *testing.T, ts *testServer, msg, rep *scep.PKIMessage, key crypto.Signer) string {
	t.Helper()
	if rsaKey, ok := key.(*rsa.PrivateKey); ok {
		cert, _ := ts.issuedCert(t, rep, msg.SignerCert, rsaKey)
		return cert.SerialNumber.Text(16)
	}
	if rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("pkiStatus %s failInfo %s (%s), want SUCCESS", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
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
	return sd.Certificates[0].SerialNumber.Text(16)
}
