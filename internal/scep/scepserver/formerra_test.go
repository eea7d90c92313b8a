package scepserver_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/store"
)

// lackingOne is the enrollment service itself (so FormerRA is there to
// ask) on a node that lacks the key of one RA renewed on another node.
type lackingOne struct {
	*enroll.Service
	lacked *x509.Certificate
}

func (l lackingOne) LackedRAs() []*x509.Certificate { return []*x509.Certificate{l.lacked} }

// A request that no loaded RA is the recipient of is refused
// badMessageCheck with a reason that names the recipient, public in the
// envelope, and says what to do, in the reply, the log and the audit
// trail alike: an RA certificate of ours that was revoked and replaced (a
// device that cached GetCACert before), or a certificate that is none of
// our RAs. An envelope addressed to the current RA that does not open still
// gets the one uniform answer (no padding oracle), and one addressed to an
// RA this node lacks is still answered 503.
func TestEnvelopeToFormerOrForeignRA(t *testing.T) {
	ctx := context.Background()
	otherRA := func() *pki.RA {
		a, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{GenerateKey: testKeys.Generate}, pkitest.NewClock(captureTime))
		if err != nil {
			t.Fatal(err)
		}
		_, ra := a.Active(captureTime)
		return ra
	}
	foreign, lacked, othernode := otherRA(), otherRA(), otherRA()
	var logged syncBuffer
	ts := newTestServer(t, serverOptions{
		log:     slog.New(slog.NewTextHandler(&logged, nil)),
		service: func(s scepserver.Service) scepserver.Service { return lackingOne{s.(*enroll.Service), lacked.Cert} },
	})

	// The RA is revoked and replaced, as the server's RA keeper does it.
	old := ts.RA
	oldSerial := old.Cert.SerialNumber.Text(16)
	if err := ts.Service.RecordRACertificates(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Admin.Revoke(ctx, oldSerial, "", 4, "cli:test"); err != nil { // superseded
		t.Fatal(err)
	}
	if _, _, err := ts.Authority.ReplaceRA(old.Cert, ts.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	current := ts.Service.ActiveRA()
	if current.Cert.Equal(old.Cert) {
		t.Fatal("the RA was not replaced")
	}
	if err := ts.Service.RecordRAReplacement(ctx, old, current, "system:test"); err != nil {
		t.Fatal(err)
	}

	// Another node's RA (one it made for itself when the RA was revoked)
	// is in the shared inventory; another CA's stands for it.
	on := othernode.Cert
	if err := ts.Store.RecordIssuance(ctx, store.Issuance{Now: ts.Clock.Now(), Certificate: pki.Certificate{
		SerialHex: on.SerialNumber.Text(16), IssuerID: "other-node-issuer", Issuer: csr.NameString(on.RawIssuer), Subject: csr.NameString(on.RawSubject),
		NotBefore: on.NotBefore, NotAfter: on.NotAfter, Status: pki.StatusValid, Profile: enroll.RAProfileName, Protocol: pki.ProtocolInternal,
		CreatedAt: ts.Clock.Now(), DER: on.Raw}}); err != nil {
		t.Fatal(err)
	}

	// toKeyWith replaces the envelope with one of content encrypted to
	// pub, addressed by subject key identifier ski.
	toKeyWith := func(content []byte, pub any, ski []byte) func([]byte) []byte {
		return func([]byte) []byte {
			env, err := cms.EncryptToKey(content, pub.(*rsa.PublicKey), ski, cms.EncryptOptions{Cipher: cms.AES128CBC})
			if err != nil {
				t.Fatal(err)
			}
			return env
		}
	}
	toKey := func(pub any, ski []byte) func([]byte) []byte { return toKeyWith(mustCSR(t, testKey(t, 0)), pub, ski) }
	notOurs := fmt.Sprintf("the message is encrypted to a certificate that is not this server's SCEP RA (subject key identifier %x): fetch GetCACert again",
		foreign.Cert.SubjectKeyId)
	const fetchAgain = "fetch GetCACert again"
	tests := []struct {
		name     string
		to       *pki.RA
		envelope func([]byte) []byte
		status   int    // HTTP status; 200 is a FAILURE CertRep
		want     string // the failInfoText, or text in the 503's body
	}{
		{"revoked and replaced RA, by issuer and serial", old, nil, http.StatusOK,
			fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which was revoked on 2026-11-25 and replaced; %s",
				pki.SerialText(old.Cert.SerialNumber), csr.NameString(old.Cert.RawSubject), fetchAgain)},
		{"revoked and replaced RA, by subject key identifier", current, toKey(old.Cert.PublicKey, old.Cert.SubjectKeyId), http.StatusOK,
			fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which was revoked on 2026-11-25 and replaced; %s",
				pki.SerialText(old.Cert.SerialNumber), csr.NameString(old.Cert.RawSubject), fetchAgain)},
		{"another CA's RA, by issuer and serial", foreign, nil, http.StatusOK,
			fmt.Sprintf("the message is encrypted to a certificate that is not this server's SCEP RA (issuer %+q, serial %s): %s",
				csr.NameString(foreign.Cert.RawIssuer), pki.SerialText(foreign.Cert.SerialNumber), fetchAgain)},
		{"another CA's RA, by subject key identifier", current, toKey(foreign.Cert.PublicKey, foreign.Cert.SubjectKeyId), http.StatusOK, notOurs},
		// The single recipient is tried with the current RA's key all the
		// same, and opens here: content that is no CSR must get the answer
		// an envelope that does not open gets, or which one it was would
		// show (a padding oracle).
		{"no CSR inside, to the current RA's key under another name", current,
			toKeyWith([]byte("not a CSR"), current.Cert.PublicKey, foreign.Cert.SubjectKeyId), http.StatusOK, notOurs},
		{"another node's RA", othernode, nil, http.StatusOK,
			fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which this node does not decrypt with (another node's, say, on a shared store); "+
				"fetch GetCACert again, from the node that answers PKIOperation", pki.SerialText(on.SerialNumber), csr.NameString(on.RawSubject))},
		{"corrupted envelope to the current RA", current, func(env []byte) []byte {
			env = bytes.Clone(env)
			env[len(env)-1] ^= 0xff // the last block of the encrypted content
			return env
		}, http.StatusOK, "could not decrypt the message envelope"},
		{"RA this node lacks", lacked, nil, http.StatusServiceUnavailable,
			"lacks the key of the SCEP RA certificate " + pki.SerialText(lacked.Cert.SerialNumber)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.RA = tt.to
			der, msg := ts.build(t, reqParams{key: testKey(t, i), subject: fmt.Sprintf("CN=former-ra-%d,O=Acme", i), envelope: tt.envelope})
			resp, body := ts.post(t, der)
			if resp.StatusCode != tt.status {
				t.Fatalf("HTTP %d, want %d: %.300q", resp.StatusCode, tt.status, body)
			}
			reason := tt.want
			if tt.status == http.StatusOK {
				rep, err := scep.Parse(body)
				if err != nil {
					t.Fatal(err)
				}
				wantFailure(t, rep, scep.BadMessageCheck)
				if rep.FailInfoText != tt.want {
					t.Errorf("failInfoText %q,\nwant %q", rep.FailInfoText, tt.want)
				}
				// An envelope to a key other than the current RA's is
				// opened with the current RA key all the same, and now and
				// then the wrong key yields a content key whose padding
				// passes (RFC 3218: no error tells a wrong key), so the
				// content fails later: the log's reason then says so, and
				// what the client was told stands in told= (as in
				// TestEnvelopeToOwnCACertificate).
				if l := logged.String(); !strings.Contains(l, "reason="+strconv.Quote(tt.want)) && !strings.Contains(l, "told="+strconv.Quote(tt.want)) {
					t.Errorf("no log line with reason or told %q:\n%s", tt.want, l)
				}
			} else if !strings.Contains(string(body), tt.want) {
				t.Errorf("503 body %.300q, want %q in it", body, tt.want)
			}
			evs, err := ts.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, e := range evs {
				if e.TransactionID == msg.TransactionID {
					reasons = append(reasons, e.Reason)
				}
			}
			if len(reasons) != 1 || !strings.Contains(reasons[0], reason) {
				t.Errorf("audit reasons %q, want one with %q", reasons, reason)
			}
		})
	}
}

// serialLookupAway is a store whose lookup by serial fails.
type serialLookupAway struct{ store.Store }

func (serialLookupAway) CertificatesBySerial(context.Context, string) ([]pki.Certificate, error) {
	return nil, fmt.Errorf("the serial index is away: %w", pki.ErrUnavailable)
}

// When the store cannot say whether the recipient is a former RA of ours,
// the request is still refused as encrypted to a certificate that is not
// this server's RA (true of a former one too), and the log says why the
// lookup failed.
func TestEnvelopeToUnknownRAStoreAway(t *testing.T) {
	a, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{GenerateKey: testKeys.Generate}, pkitest.NewClock(captureTime))
	if err != nil {
		t.Fatal(err)
	}
	_, foreign := a.Active(captureTime)
	var logged syncBuffer
	ts := newTestServer(t, serverOptions{log: slog.New(slog.NewTextHandler(&logged, nil)),
		store: func(st store.Store) store.Store { return serialLookupAway{st} }})
	ts.RA = foreign
	der, _ := ts.build(t, reqParams{key: testKey(t, 1), subject: "CN=store-away,O=Acme"})
	resp, body := ts.post(t, der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %.300q", resp.StatusCode, body)
	}
	rep, err := scep.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	wantFailure(t, rep, scep.BadMessageCheck)
	want := fmt.Sprintf("the message is encrypted to a certificate that is not this server's SCEP RA (issuer %+q, serial %s): fetch GetCACert again",
		csr.NameString(foreign.Cert.RawIssuer), pki.SerialText(foreign.Cert.SerialNumber))
	if rep.FailInfoText != want {
		t.Errorf("failInfoText %q,\nwant %q", rep.FailInfoText, want)
	}
	if !strings.Contains(logged.String(), "the serial index is away") {
		t.Errorf("the log does not say why the recipient was not looked up:\n%s", logged.String())
	}
}

// A request encrypted to an RA that is gone with its issuing CA is told
// why (r87 D4): the RA of a next CA discarded before its switch (a client
// fetched it with GetNextCACert) was "revoked and replaced", and the RA of
// a previous CA the root's CRL lists (its key destroyed) was "another
// node's" on a single node. Each says what happened to it, and to fetch
// GetCACert again, in a reply the current RA signs.
func TestEnvelopeToRAGoneWithItsCA(t *testing.T) {
	ctx := context.Background()
	post := func(t *testing.T, ts *testServer, to, current *pki.RA, want string) {
		t.Helper()
		ts.RA = to
		der, _ := ts.build(t, reqParams{key: testKey(t, 1), subject: "CN=cached-ra,O=Acme"})
		resp, body := ts.post(t, der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %.300q", resp.StatusCode, body)
		}
		rep, err := scep.Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.VerifyWith(current.Cert); err != nil {
			t.Fatalf("the reply is not signed by the current RA: %v", err)
		}
		wantFailure(t, rep, scep.BadMessageCheck)
		if rep.FailInfoText != want {
			t.Errorf("failInfoText %q,\nwant %q", rep.FailInfoText, want)
		}
	}

	t.Run("discarded next CA", func(t *testing.T) {
		ts := newTestServer(t, serverOptions{})
		current := ts.RA
		if _, _, err := ca.Rollover(ts.Dir, ca.RolloverOptions{SwitchAt: ts.Clock.Now().Add(time.Hour), GenerateKey: testKeys.Generate}, ts.Clock); err != nil {
			t.Fatal(err)
		}
		if err := ts.Authority.Reload(ts.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		if err := ts.Service.RecordRACertificates(ctx); err != nil {
			t.Fatal(err)
		}
		next, ok := ts.Service.NextRA()
		if !ok {
			t.Fatal("no next RA after the rollover")
		}
		d, err := cashare.Discard(ctx, ts.Store, ts.Dir, ts.Clock.Now(), "cli:test")
		if err != nil {
			t.Fatal(err)
		}
		if n, err := cashare.RevokeIssuedBy(ctx, ts.Store, d.IssuerID, ts.Clock.Now(), "cli:test"); err != nil || n == 0 {
			t.Fatalf("revoked %d certificates of the discarded CA: %v", n, err)
		}
		if err := ts.Authority.Reload(ts.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		if _, ok := ts.Service.NextRA(); ok {
			t.Fatal("the discarded next RA is still loaded")
		}
		post(t, ts, next, current, fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which was discarded on %s with the next CA that issued it, before that CA's switch; fetch GetCACert again",
			pki.SerialText(next.Cert.SerialNumber), csr.NameString(next.Cert.RawSubject), ts.Clock.Now().UTC().Format(time.DateOnly)))
	})

	t.Run("previous CA on the root CRL", func(t *testing.T) {
		ts := newTestServer(t, serverOptions{})
		oldIssuer, oldRA := ts.Authority.Issuer, ts.RA
		if err := ts.Service.RecordRACertificates(ctx); err != nil {
			t.Fatal(err)
		}
		switchAt := ts.Clock.Now().Add(time.Hour)
		if _, _, err := ca.Rollover(ts.Dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, ts.Clock); err != nil {
			t.Fatal(err)
		}
		ts.Clock.Set(switchAt.Add(time.Minute))
		if err := ts.Authority.Reload(ts.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		current := ts.Service.ActiveRA()
		root, err := ca.RootIssuer(ts.Dir, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		signed, _, _, err := crl.SignRootCRL(root, nil, []crl.RootRevocation{{Cert: oldIssuer.Cert, RevokedAt: ts.Clock.Now(), Reason: pki.ReasonCessationOfOperation}},
			ts.Clock.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.Store.PutCRL(ctx, *signed, 10); err != nil {
			t.Fatal(err)
		}
		if _, err := crl.ApplyRootCRL(ctx, ts.Store, ts.Authority); err != nil {
			t.Fatal(err)
		}
		post(t, ts, oldRA, current, fmt.Sprintf("the message is encrypted to SCEP RA certificate %s (%s), which was issued by an issuing CA that the root has revoked (listed on the root CRL); fetch GetCACert again",
			pki.SerialText(oldRA.Cert.SerialNumber), csr.NameString(oldRA.Cert.RawSubject)))
	})
}
