package ocsp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
)

// responderFixture is a CA, its inventory, delegated responders and the
// responder, all real.
type responderFixture struct {
	*fixture.PKI
	delegates *ocsp.Delegates
	r         *ocsp.Responder
}

func newResponder(t testing.TB, keyType string) *responderFixture {
	t.Helper()
	return newWrappedResponder(t, keyType, nil)
}

// newWrappedResponder: the delegates' keys go through wrap (nil: none), as
// serve's go through ca.Authority.WrapKey.
func newWrappedResponder(t testing.TB, keyType string, wrap func(crypto.Signer) crypto.Signer) *responderFixture {
	t.Helper()
	p := fixture.New(t, fixture.Options{KeyType: keyType})
	d := ocsp.NewDelegates(t.TempDir(), p.Authority, p.Service, p.Clock, p.Log, 0).WithWrapKey(wrap)
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := ocsp.New(p.Store, p.Authority, d.Signer, p.Clock, p.Log, ocsp.Config{})
	return &responderFixture{PKI: p, delegates: d, r: r}
}

// refreshState hands the responder the store's revocation counters, as the
// CRL publisher does every second.
func (f *responderFixture) refreshState(t testing.TB) {
	t.Helper()
	st, err := f.Store.RevocationState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.r.SetRevocationState(st)
}

// request is an OCSPRequest built by x/crypto/ocsp: an independent encoder.
func request(t testing.TB, cert, issuer *x509.Certificate, h crypto.Hash) []byte {
	t.Helper()
	der, err := xocsp.CreateRequest(cert, issuer, &xocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// parse reads a response with x/crypto/ocsp, which verifies its signature
// with the responder certificate it carries and that certificate against
// the issuer.
func parse(t testing.TB, der []byte, cert, issuer *x509.Certificate) *xocsp.Response {
	t.Helper()
	resp, err := xocsp.ParseResponseForCert(der, cert, issuer)
	if err != nil {
		t.Fatalf("x/crypto/ocsp cannot read the response: %v", err)
	}
	return resp
}

func TestResponderStatuses(t *testing.T) {
	for _, keyType := range []string{"p256", "rsa2048"} {
		t.Run(keyType, func(t *testing.T) {
			f := newResponder(t, keyType)
			issuer := f.Issuer().Cert
			good, _ := f.Issue(t, "good")
			revoked, _ := f.Issue(t, "revoked")
			held, _ := f.Issue(t, "held")
			f.Revoke(t, revoked, 1)
			f.Revoke(t, held, 6)
			never := *good
			never.SerialNumber = big.NewInt(0x1234)
			for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				for _, tc := range []struct {
					cert       *x509.Certificate
					status     int
					reason     int
					revokedSet bool
				}{
					{good, xocsp.Good, 0, false},
					{revoked, xocsp.Revoked, 1, true},
					{held, xocsp.Revoked, 6, true},
					{&never, xocsp.Unknown, 0, false},
				} {
					a := f.r.Respond(context.Background(), request(t, tc.cert, issuer, h))
					if a.Err != nil {
						t.Fatalf("%s %s: %v", h, tc.cert.Subject, a.Err)
					}
					resp := parse(t, a.DER, tc.cert, issuer)
					if resp.Status != tc.status || resp.RevocationReason != tc.reason {
						t.Errorf("%s %s: status %d reason %d, want %d reason %d", h, tc.cert.Subject, resp.Status, resp.RevocationReason, tc.status, tc.reason)
					}
					if tc.revokedSet && !resp.RevokedAt.Equal(f.Clock.Now().Truncate(time.Second)) {
						t.Errorf("%s: revoked at %v, want %v", tc.cert.Subject, resp.RevokedAt, f.Clock.Now())
					}
					if resp.SerialNumber.Cmp(tc.cert.SerialNumber) != 0 || resp.IssuerHash != h {
						t.Errorf("%s: answers about %x under %s", tc.cert.Subject, resp.SerialNumber, resp.IssuerHash)
					}
					// thisUpdate and producedAt a minute back, for relying
					// parties whose clock is a little behind, but not before
					// a revocation they report (made at this very time);
					// nextUpdate a validity after the signature.
					signedAt := f.Clock.Now().Truncate(time.Second)
					wantThis := signedAt.Add(-time.Minute)
					if tc.revokedSet {
						wantThis = signedAt
					}
					if !resp.ThisUpdate.Equal(wantThis) || !resp.ProducedAt.Equal(resp.ThisUpdate) ||
						!resp.NextUpdate.Equal(signedAt.Add(ocsp.DefaultValidity)) {
						t.Errorf("thisUpdate %v producedAt %v nextUpdate %v, want %v, %[2]v and %v", resp.ThisUpdate, resp.ProducedAt, resp.NextUpdate,
							wantThis, signedAt.Add(ocsp.DefaultValidity))
					}
					// A delegated responder: OCSP signing, nocheck, issued
					// by the CA, and named by key.
					if resp.Certificate == nil || resp.Certificate.CheckSignatureFrom(issuer) != nil ||
						len(resp.Certificate.ExtKeyUsage) != 1 || resp.Certificate.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
						t.Fatalf("the response is not signed by a delegated responder of the CA")
					}
					if !hasExtension(resp.Certificate, "1.3.6.1.5.5.7.48.1.5") {
						t.Error("the responder certificate lacks id-pkix-ocsp-nocheck")
					}
					keyHash := sha1.Sum(publicKeyBits(t, resp.Certificate))
					if !bytes.Equal(resp.ResponderKeyHash, keyHash[:]) {
						t.Error("responderID is not byKey of the responder certificate")
					}
				}
			}
		})
	}
}

func TestResponderRefusals(t *testing.T) {
	f := newResponder(t, "")
	other := newResponder(t, "")
	cert, _ := f.Issue(t, "dev")
	foreign, _ := other.Issue(t, "foreign")
	cases := []struct {
		name string
		der  []byte
		want []byte
	}{
		{"garbage", []byte("garbage"), ocsp.MalformedRequestResponse},
		{"empty", nil, ocsp.MalformedRequestResponse},
		{"trailing data", append(request(t, cert, f.Issuer().Cert, crypto.SHA1), 0), ocsp.MalformedRequestResponse},
		{"another CA's certificate", request(t, foreign, other.Issuer().Cert, crypto.SHA256), ocsp.UnauthorizedResponse},
		{"our serial named under another CA", request(t, cert, other.Issuer().Cert, crypto.SHA256), ocsp.UnauthorizedResponse},
		// A hash the responder does not compute is a request it cannot
		// process (RFC 6960 §2.3), not a CA it does not serve, even when
		// the hashes are right: unauthorized would send the client away.
		{"unknown hash algorithm", buildRequest(t, reqSpec{ids: []certID{{oid: asn1.ObjectIdentifier{1, 2, 3}, name: make([]byte, 20), key: make([]byte, 20), serial: cert.SerialNumber}}}), ocsp.MalformedRequestResponse},
		{"our CA named under SHA-224", buildRequest(t, reqSpec{ids: []certID{{oid: oidSHA224,
			name: sum224(f.Issuer().Cert.RawSubject), key: sum224(publicKeyBits(t, f.Issuer().Cert)), serial: cert.SerialNumber}}}), ocsp.MalformedRequestResponse},
		{"SHA-224 after a good CertID", buildRequest(t, reqSpec{ids: []certID{
			{oid: oidSHA1, name: sum1(f.Issuer().Cert.RawSubject), key: sum1(publicKeyBits(t, f.Issuer().Cert)), serial: cert.SerialNumber},
			{oid: oidSHA224, name: sum224(f.Issuer().Cert.RawSubject), key: sum224(publicKeyBits(t, f.Issuer().Cert)), serial: cert.SerialNumber}}}), ocsp.MalformedRequestResponse},
	}
	for _, c := range cases {
		a := f.r.Respond(context.Background(), c.der)
		if !bytes.Equal(a.DER, c.want) || a.Err == nil || a.Cacheable {
			t.Errorf("%s: answer %x (err %v, cacheable %v), want %x", c.name, a.DER, a.Err, a.Cacheable, c.want)
		}
	}
}

// The parser against requests no library here builds: nonces, several
// certificates, a signature, version and requestor name, and the ways they
// go wrong.
func TestParseRequest(t *testing.T) {
	id := certID{oid: oidSHA1, name: make([]byte, 20), key: bytes.Repeat([]byte{1}, 20), serial: big.NewInt(77)}
	nonce := octet(bytes.Repeat([]byte{9}, 16))
	ok := []struct {
		name      string
		spec      reqSpec
		certs     int
		wantNonce []byte
	}{
		{"plain", reqSpec{ids: []certID{id}}, 1, nil},
		{"nonce", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: nonce}}}, 1, nonce},
		{"nonce of 32 bytes", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: octet(make([]byte, 32))}}}, 1, octet(make([]byte, 32))},
		{"raw nonce, no inner OCTET STRING", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: []byte{1, 2, 3}}}}, 1, []byte{1, 2, 3}},
		{"critical nonce", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, critical: true, value: nonce}}}, 1, nonce},
		{"raw nonce of 32 bytes", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: bytes.Repeat([]byte{7}, 32)}}}, 1, bytes.Repeat([]byte{7}, 32)},
		{"unknown non-critical extension", reqSpec{ids: []certID{id}, exts: []ext{{oid: asn1.ObjectIdentifier{1, 2, 3}, value: []byte{5, 0}}}}, 1, nil},
		{"three certificates", reqSpec{ids: []certID{id, id, id}}, 3, nil},
		{"version 0, requestor name, signature", reqSpec{ids: []certID{id}, version: true, requestor: true, signature: true}, 1, nil},
		{"single request extension", reqSpec{ids: []certID{id}, singleExt: true}, 1, nil},
		{"NULL-less algorithm", reqSpec{ids: []certID{{oid: oidSHA1, noNull: true, name: make([]byte, 20), key: make([]byte, 20), serial: big.NewInt(1)}}}, 1, nil},
	}
	for _, c := range ok {
		req, err := ocsp.ParseRequest(buildRequest(t, c.spec))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(req.CertIDs) != c.certs || !bytes.Equal(req.Nonce, c.wantNonce) {
			t.Errorf("%s: %d certificates, nonce %x; want %d, %x", c.name, len(req.CertIDs), req.Nonce, c.certs, c.wantNonce)
		}
		if req.CertIDs[0].Serial.Cmp(c.spec.ids[0].serial) != 0 {
			t.Errorf("%s: serial %v", c.name, req.CertIDs[0].Serial)
		}
	}
	bad := []struct {
		name string
		spec reqSpec
	}{
		{"no certificate", reqSpec{}},
		{"nine certificates", reqSpec{ids: []certID{id, id, id, id, id, id, id, id, id}}},
		{"nonce of 33 bytes", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: octet(make([]byte, 33))}}}},
		{"raw nonce of 33 bytes", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: bytes.Repeat([]byte{7}, 33)}}}},
		{"raw nonce of 34 bytes", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: bytes.Repeat([]byte{7}, 34)}}}},
		{"empty nonce", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: octet(nil)}}}},
		{"empty nonce", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: []byte{}}}}},
		{"two nonces", reqSpec{ids: []certID{id}, exts: []ext{{oid: oidNonce, value: nonce}, {oid: oidNonce, value: nonce}}}},
		{"unknown critical extension", reqSpec{ids: []certID{id}, exts: []ext{{oid: asn1.ObjectIdentifier{1, 2, 3}, critical: true, value: []byte{5, 0}}}}},
		{"version 2", reqSpec{ids: []certID{id}, version: true, versionValue: 1}},
		{"SHA-1 hashes of the wrong size", reqSpec{ids: []certID{{oid: oidSHA1, name: make([]byte, 32), key: make([]byte, 32), serial: big.NewInt(1)}}}},
	}
	for _, c := range bad {
		if _, err := ocsp.ParseRequest(buildRequest(t, c.spec)); !errors.Is(err, ocsp.ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", c.name, err)
		}
	}
	if _, err := ocsp.ParseRequest(make([]byte, ocsp.MaxRequestBytes+1)); !errors.Is(err, ocsp.ErrMalformed) {
		t.Errorf("oversized request: %v", err)
	}
}

// A nonce is echoed in responseExtensions (RFC 8954), and such an answer is
// signed afresh each time and never cached.
func TestNonceEchoed(t *testing.T) {
	f := newResponder(t, "")
	cert, _ := f.Issue(t, "dev")
	issuer := f.Issuer().Cert
	plain := request(t, cert, issuer, crypto.SHA256)
	nonce := octet(bytes.Repeat([]byte{0xab}, 16))
	withNonce := addNonce(t, plain, nonce)
	for i := range 2 {
		a := f.r.Respond(context.Background(), withNonce)
		if a.Cacheable {
			t.Error("an answer to a nonce is cacheable")
		}
		parse(t, a.DER, cert, issuer)
		if got := responseNonce(t, a.DER); !bytes.Equal(got, nonce) {
			t.Errorf("round %d: nonce %x echoed, want %x", i, got, nonce)
		}
	}
	if signed, _ := f.r.Stats(); signed != 2 {
		t.Errorf("%d signatures for two nonce requests, want 2", signed)
	}
	a := f.r.Respond(context.Background(), plain)
	if got := responseNonce(t, a.DER); got != nil {
		t.Errorf("a request without nonce got nonce %x", got)
	}
}

// countingSigner signs with its key and counts the signatures.
type countingSigner struct {
	crypto.Signer
	signed *atomic.Int64
}

func (c countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.signed.Add(1)
	return c.Signer.Sign(r, digest, opts)
}

// The delegates sign with the key WithWrapKey's function returns (serve:
// RSA key files through OpenSSL), and keep their own key when the function
// returns one that is not the same key.
func TestDelegatesWrapKey(t *testing.T) {
	for _, keyType := range []string{"p256", "rsa2048"} {
		t.Run(keyType, func(t *testing.T) {
			var signed, wrapped atomic.Int64
			f := newWrappedResponder(t, keyType, func(k crypto.Signer) crypto.Signer {
				wrapped.Add(1)
				return countingSigner{Signer: k, signed: &signed}
			})
			cert, _ := f.Issue(t, "dev")
			issuer := f.Issuer().Cert
			req := addNonce(t, request(t, cert, issuer, crypto.SHA256), octet([]byte("0123456789abcdef")))
			for range 3 {
				resp := parse(t, f.r.Respond(context.Background(), req).DER, cert, issuer)
				if resp.Certificate == nil || resp.Certificate.Equal(issuer) {
					t.Fatal("not answered by the delegate")
				}
			}
			if wrapped.Load() != 1 || signed.Load() != 3 {
				t.Errorf("wrapped %d times, %d signatures through the wrapped key; want 1 and 3", wrapped.Load(), signed.Load())
			}

			// A function that returns some other key is not followed.
			other := newWrappedResponder(t, keyType, func(crypto.Signer) crypto.Signer {
				return fixture.New(t, fixture.Options{KeyType: keyType}).Authority.Issuers()[0].Signer
			})
			cert, _ = other.Issue(t, "dev")
			issuer = other.Issuer().Cert
			resp := parse(t, other.r.Respond(context.Background(), request(t, cert, issuer, crypto.SHA256)).DER, cert, issuer)
			if resp.Status != xocsp.Good {
				t.Errorf("status %d, want good", resp.Status)
			}
		})
	}
}

// Without a nonce, an unchanged status is served from the cache, not signed
// again; a revocation (seen through the revocation counters) or half the
// validity passing makes a fresh answer.
func TestCache(t *testing.T) {
	f := newResponder(t, "")
	cert, _ := f.Issue(t, "dev")
	issuer := f.Issuer().Cert
	req := request(t, cert, issuer, crypto.SHA1)
	ctx := context.Background()
	signed := func() int64 { s, _ := f.r.Stats(); return s }

	first := f.r.Respond(ctx, req)
	for range 5 {
		if a := f.r.Respond(ctx, req); !bytes.Equal(a.DER, first.DER) {
			t.Fatal("an unchanged status was signed again")
		}
	}
	// The same certificate asked under SHA-256 is another answer.
	f.r.Respond(ctx, request(t, cert, issuer, crypto.SHA256))
	if n := signed(); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
	f.Revoke(t, cert, 4)
	if resp := parse(t, f.r.Respond(ctx, req).DER, cert, issuer); resp.Status != xocsp.Good {
		t.Fatal("the cache was dropped before the revocation state moved")
	}
	f.refreshState(t)
	if resp := parse(t, f.r.Respond(ctx, req).DER, cert, issuer); resp.Status != xocsp.Revoked || resp.RevocationReason != 4 {
		t.Errorf("after the revocation: status %d reason %d, want revoked (superseded)", resp.Status, resp.RevocationReason)
	}
	n := signed()
	cur := f.r.Respond(ctx, req)
	half := cur.ThisUpdate.Add(cur.NextUpdate.Sub(cur.ThisUpdate) / 2)
	f.Clock.Advance(half.Sub(f.Clock.Now()) - time.Second)
	f.r.Respond(ctx, req)
	if signed() != n {
		t.Error("re-signed before half the validity passed")
	}
	f.Clock.Advance(2 * time.Second)
	a := f.r.Respond(ctx, req)
	if signed() != n+1 || !a.ThisUpdate.Equal(f.Clock.Now().Truncate(time.Second).Add(-time.Minute)) {
		t.Error("not re-signed once half the validity passed")
	}
}

// After a hold is lifted, a "good" answer is not dated before the unhold
// (RFC 6960 §4.2.2.1): it would say the certificate was good while it was
// held, and be older than the "revoked" answer it replaces, which a cache
// keeping the newest thisUpdate would keep. thisUpdate and producedAt keep
// their minute of backdate only down to the unhold (rounded up to its
// second), and never go past the signature.
func TestAnswerNotBeforeUnhold(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// unhold is how long after the hold the hold is lifted; sign how
		// long after that the answer is signed.
		unhold, sign time.Duration
		// wantBehind is how far thisUpdate and producedAt are behind the
		// signature (whole seconds).
		wantBehind time.Duration
	}{
		{"lifted 22s after the hold, signed 1s on: the unhold's second", 22 * time.Second, time.Second, time.Second},
		{"lifted at .4s, signed 20.3s on: the second after the unhold", 22*time.Second + 400*time.Millisecond, 20*time.Second + 300*time.Millisecond, 19 * time.Second},
		{"lifted in the second of the signature: the signature", 22*time.Second + 400*time.Millisecond, 300 * time.Millisecond, 0},
		{"lifted two hours before: the full backdate", 22 * time.Second, 2 * time.Hour, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newResponder(t, "")
			issuer := f.Issuer().Cert
			cert, _ := f.Issue(t, "held")
			req := request(t, cert, issuer, crypto.SHA256)
			f.Clock.Set(fixture.Start.Add(time.Hour))
			f.Revoke(t, cert, 6)
			f.refreshState(t)
			held := parse(t, f.r.Respond(ctx, req).DER, cert, issuer)
			if held.Status != xocsp.Revoked {
				t.Fatalf("on hold: status %d", held.Status)
			}

			f.Clock.Advance(tc.unhold)
			unheldAt := f.Clock.Now()
			if _, _, err := f.Store.UnholdCertificate(ctx, f.Issuer().ID, cert.SerialNumber.Text(16), unheldAt,
				pki.AuditEvent{Type: pki.EventUnheld, Actor: "test", Outcome: "success"}); err != nil {
				t.Fatal(err)
			}
			f.refreshState(t)
			f.Clock.Advance(tc.sign)
			signedAt := f.Clock.Now().Truncate(time.Second)
			want := signedAt.Add(-tc.wantBehind)

			a := f.r.Respond(ctx, req)
			resp := parse(t, a.DER, cert, issuer)
			if resp.Status != xocsp.Good || !resp.ThisUpdate.Equal(want) || !resp.ProducedAt.Equal(want) || !a.ThisUpdate.Equal(want) {
				t.Errorf("status %d: thisUpdate %v, producedAt %v, Last-Modified %v; want good, all %v",
					resp.Status, resp.ThisUpdate, resp.ProducedAt, a.ThisUpdate, want)
			}
			if signedAt.After(unheldAt) && resp.ThisUpdate.Before(unheldAt) {
				t.Errorf("thisUpdate %v before the unhold at %v", resp.ThisUpdate, unheldAt)
			}
			if !resp.ThisUpdate.After(held.ThisUpdate) {
				t.Errorf("thisUpdate %v not after the held answer's %v", resp.ThisUpdate, held.ThisUpdate)
			}
		})
	}
}

// An answer never says it was produced, or true, before the revocation it
// reports (RFC 6960 §4.2.2.1): thisUpdate and producedAt keep their minute
// of backdate only down to the revocation time, and never go past the
// signature. Alone and in a request that also asks about a good
// certificate, whose thisUpdate keeps the full backdate.
func TestAnswerNotBeforeRevocation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// revoke is when the certificate is revoked, after the fixture's
		// start; sign how long after that the answer is signed.
		revoke, sign time.Duration
		// wantBehind is how far thisUpdate and producedAt are behind the
		// signature (whole seconds).
		wantBehind time.Duration
	}{
		{"revoked two hours before: the full backdate", 0, 2 * time.Hour, time.Minute},
		{"revoked a minute before: the full backdate", 0, time.Minute, time.Minute},
		{"revoked 20s before: the revocation time", 0, 20 * time.Second, 20 * time.Second},
		{"revoked 20.7s before, within a second: its second", 300 * time.Millisecond, 20*time.Second + 700*time.Millisecond, 21 * time.Second},
		{"revoked in the same second", 300 * time.Millisecond, 500 * time.Millisecond, 0},
		{"revoked at the signature", 0, 0, 0},
		{"revoked 3s ahead (a node whose clock runs ahead): the signature", 0, -3 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newResponder(t, "")
			issuer := f.Issuer().Cert
			good, _ := f.Issue(t, "good")
			revoked, _ := f.Issue(t, "revoked")
			f.Clock.Set(fixture.Start.Add(time.Hour + tc.revoke))
			f.Revoke(t, revoked, 1)
			f.Clock.Advance(tc.sign)
			signedAt := f.Clock.Now().Truncate(time.Second)
			want := signedAt.Add(-tc.wantBehind)

			resp := parse(t, f.r.Respond(ctx, request(t, revoked, issuer, crypto.SHA256)).DER, revoked, issuer)
			if resp.Status != xocsp.Revoked || !resp.ThisUpdate.Equal(want) || !resp.ProducedAt.Equal(want) {
				t.Errorf("status %d, revoked at %v: thisUpdate %v, producedAt %v; want revoked, both %v",
					resp.Status, resp.RevokedAt, resp.ThisUpdate, resp.ProducedAt, want)
			}
			if tc.sign >= 0 && resp.ThisUpdate.Before(resp.RevokedAt) {
				t.Errorf("thisUpdate %v before the revocation at %v", resp.ThisUpdate, resp.RevokedAt)
			}

			name := sha1.Sum(issuer.RawSubject)
			key := sha1.Sum(publicKeyBits(t, issuer))
			both := buildRequest(t, reqSpec{ids: []certID{
				{oid: oidSHA1, name: name[:], key: key[:], serial: good.SerialNumber},
				{oid: oidSHA1, name: name[:], key: key[:], serial: revoked.SerialNumber},
			}})
			a := f.r.Respond(ctx, both)
			if a.Err != nil {
				t.Fatal(a.Err)
			}
			g, r := parse(t, a.DER, good, issuer), parse(t, a.DER, revoked, issuer)
			if g.Status != xocsp.Good || !g.ThisUpdate.Equal(signedAt.Add(-time.Minute)) {
				t.Errorf("two certificates: the good one's thisUpdate %v, want %v", g.ThisUpdate, signedAt.Add(-time.Minute))
			}
			if r.Status != xocsp.Revoked || !r.ThisUpdate.Equal(want) || !r.ProducedAt.Equal(want) {
				t.Errorf("two certificates: the revoked one's thisUpdate %v, producedAt %v; want both %v", r.ThisUpdate, r.ProducedAt, want)
			}
		})
	}
}

// Concurrent askers of one uncached answer share one signature.
func TestConcurrentAskersShareOneSignature(t *testing.T) {
	f := newResponder(t, "rsa2048")
	cert, _ := f.Issue(t, "dev")
	req := request(t, cert, f.Issuer().Cert, crypto.SHA1)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := f.r.Respond(context.Background(), req); a.Err != nil {
				t.Error(a.Err)
			}
		}()
	}
	wg.Wait()
	if signed, served := f.r.Stats(); signed != 1 || served != 32 {
		t.Errorf("%d signatures for %d answers, want 1", signed, served)
	}
}

// A store that cannot answer gets tryLater, never a wrong status.
func TestStoreDownTryLater(t *testing.T) {
	f := newResponder(t, "")
	cert, _ := f.Issue(t, "dev")
	f.Store.Close()
	a := f.r.Respond(context.Background(), request(t, cert, f.Issuer().Cert, crypto.SHA1))
	if !bytes.Equal(a.DER, ocsp.TryLaterResponse) {
		t.Errorf("answer %x, want tryLater", a.DER)
	}
	h := mount(t, f)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ocsp", bytes.NewReader(request(t, cert, f.Issuer().Cert, crypto.SHA256))))
	if rec.Code != http.StatusServiceUnavailable || !bytes.Equal(rec.Body.Bytes(), ocsp.TryLaterResponse) {
		t.Errorf("HTTP %d %x, want 503 tryLater", rec.Code, rec.Body.Bytes())
	}
}

// failingSigner fails every signature with err while it is set.
type failingSigner struct {
	crypto.Signer
	err *atomic.Pointer[error]
}

func (s failingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := s.err.Load(); err != nil {
		return nil, *err
	}
	return s.Signer.Sign(r, digest, opts)
}

// A signing key whose token is away (the keys package marks it
// pki.ErrUnavailable) gets tryLater with 503 and Retry-After, as a store
// outage does, and good answers once the token is back; any other signing
// failure stays internalError.
func TestSigningKeyUnavailableTryLater(t *testing.T) {
	tokenLost := fmt.Errorf("%w: keys: the PKCS#11 token is lost: %w", pki.ErrUnavailable, errors.New("CKR_TOKEN_NOT_PRESENT"))
	for _, tc := range []struct {
		name       string
		err        error
		want       []byte
		wantStatus int
	}{
		{"token unavailable", tokenLost, ocsp.TryLaterResponse, http.StatusServiceUnavailable},
		{"other failure", errors.New("CKR_FUNCTION_FAILED"), ocsp.InternalErrorResponse, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failure atomic.Pointer[error]
			f := newWrappedResponder(t, "", func(k crypto.Signer) crypto.Signer {
				return failingSigner{Signer: k, err: &failure}
			})
			cert, _ := f.Issue(t, "dev")
			issuer := f.Issuer().Cert
			failure.Store(&tc.err)
			if a := f.r.Respond(context.Background(), request(t, cert, issuer, crypto.SHA1)); !bytes.Equal(a.DER, tc.want) ||
				!errors.Is(a.Err, tc.err) {
				t.Errorf("answer %x (%v), want %x", a.DER, a.Err, tc.want)
			}
			rec := httptest.NewRecorder()
			mount(t, f).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ocsp",
				bytes.NewReader(request(t, cert, issuer, crypto.SHA256))))
			if rec.Code != tc.wantStatus || !bytes.Equal(rec.Body.Bytes(), tc.want) {
				t.Errorf("HTTP %d %x, want %d %x", rec.Code, rec.Body.Bytes(), tc.wantStatus, tc.want)
			}
			if tc.wantStatus == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}

			failure.Store(nil) // the token is back
			resp := parse(t, f.r.Respond(context.Background(), request(t, cert, issuer, crypto.SHA1)).DER, cert, issuer)
			if resp.Status != xocsp.Good {
				t.Errorf("after the failure: status %d, want good", resp.Status)
			}
		})
	}
}

// A delegate whose token answers that it no longer holds the key
// (keys.ErrKeyNotFound, unlike a token that is away) is not waited for:
// the CA signs the answer, the delegate is no longer offered, and a
// Refresh is asked for to replace it.
func TestDelegateKeyGoneCASigns(t *testing.T) {
	gone := fmt.Errorf("keys: the PKCS#11 token, opened again, holds no key labelled %q: %w: %w", "scepter-ocsp-x", pki.ErrUnavailable, keys.ErrKeyNotFound)
	var failure atomic.Pointer[error]
	f := newWrappedResponder(t, "", func(k crypto.Signer) crypto.Signer {
		return failingSigner{Signer: k, err: &failure}
	})
	cert, _ := f.Issue(t, "dev")
	issuer := f.Issuer()
	failure.Store(&gone)
	a := f.r.Respond(context.Background(), request(t, cert, issuer.Cert, crypto.SHA1))
	if a.Err != nil {
		t.Fatalf("answer %x: %v, want one signed by the CA", a.DER, a.Err)
	}
	if resp := parse(t, a.DER, cert, issuer.Cert); resp.Status != xocsp.Good || resp.Certificate != nil {
		t.Errorf("status %d, signed by %v; want good, signed by the CA itself", resp.Status, resp.Certificate)
	}
	if _, ok := f.delegates.Signer(issuer.ID); ok {
		t.Error("the delegate whose key is gone is still offered")
	}
	select {
	case <-f.delegates.Kicked():
	default:
		t.Error("no Refresh was asked for")
	}
}

func mount(t testing.TB, f *responderFixture) http.Handler {
	t.Helper()
	h, err := server.PlainMux(server.Handlers{OCSP: f.r})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Over real HTTP: POST, GET with the request base64 in the path (with "/"
// and "+" in it, escaped or not), HTTP caching headers, and bad input
// answered malformedRequest with 200, never a 5xx.
func TestHTTP(t *testing.T) {
	f := newResponder(t, "")
	cert, _ := f.Issue(t, "dev")
	issuer := f.Issuer().Cert
	srv := httptest.NewServer(mount(t, f))
	defer srv.Close()
	// Find a request whose base64 has "/" and "+" (a nonce changes it).
	var req []byte
	for i := 0; ; i++ {
		req = addNonce(t, request(t, cert, issuer, crypto.SHA1), octet([]byte{byte(i), byte(i >> 8), 7, 7}))
		if b := base64.StdEncoding.EncodeToString(req); strings.Contains(b, "//") || (strings.Contains(b, "/") && strings.Contains(b, "+")) {
			break
		}
	}
	b64 := base64.StdEncoding.EncodeToString(req)
	plain := request(t, cert, issuer, crypto.SHA256)
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		cacheable          bool
	}{
		{"POST", http.MethodPost, "/ocsp", req, false},
		{"POST, trailing slash", http.MethodPost, "/ocsp/", req, false},
		{"GET, raw base64", http.MethodGet, "/ocsp/" + b64, nil, false},
		{"GET, escaped base64", http.MethodGet, "/ocsp/" + url.PathEscape(b64), nil, false},
		{"GET, all escaped", http.MethodGet, "/ocsp/" + strings.NewReplacer("/", "%2F", "+", "%2B", "=", "%3D").Replace(b64), nil, false},
		{"GET, no nonce: cacheable", http.MethodGet, "/ocsp/" + base64.StdEncoding.EncodeToString(plain), nil, true},
		{"GET, URL-safe base64 without padding", http.MethodGet, "/ocsp/" + base64.RawURLEncoding.EncodeToString(plain), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hreq, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			hreq.URL.RawPath = tc.path // keep the escaping as written
			hreq.Header.Set("Content-Type", "application/ocsp-request")
			resp, err := http.DefaultClient.Do(hreq)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/ocsp-response" {
				t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			parse(t, body, cert, issuer)
			cc := resp.Header.Get("Cache-Control")
			if tc.cacheable != strings.Contains(cc, "max-age=") || tc.cacheable == strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control %q for a cacheable=%v answer", cc, tc.cacheable)
			}
			if tc.cacheable && (resp.Header.Get("Expires") == "" || resp.Header.Get("Last-Modified") == "" || resp.Header.Get("ETag") == "") {
				t.Errorf("cacheable answer without Expires/Last-Modified/ETag: %v", resp.Header)
			}
			if tc.cacheable {
				// Expires says what max-age says, for caches that read only it.
				var age int
				fmt.Sscanf(cc[strings.Index(cc, "max-age=")+len("max-age="):], "%d", &age)
				expires, err := http.ParseTime(resp.Header.Get("Expires"))
				if want := f.Clock.Now().Add(time.Duration(age) * time.Second); err != nil || age == 0 || expires.Sub(want).Abs() > time.Second {
					t.Errorf("Expires %q with max-age=%d at %v, want the same moment", resp.Header.Get("Expires"), age, f.Clock.Now())
				}
			}
		})
	}
	// A bad percent-escape never reaches the handler: net/http answers 400.
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /ocsp/%%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad escape: %v %v, want 400", resp, err)
	}
	conn.Close()
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		status             int
		want               []byte
	}{
		{"GET without a request", http.MethodGet, "/ocsp", nil, 200, ocsp.MalformedRequestResponse},
		{"GET, not base64", http.MethodGet, "/ocsp/!!!", nil, 200, ocsp.MalformedRequestResponse},
		{"POST garbage", http.MethodPost, "/ocsp", []byte("hello"), 200, ocsp.MalformedRequestResponse},
		{"POST oversized", http.MethodPost, "/ocsp", make([]byte, ocsp.MaxRequestBytes+1), 200, ocsp.MalformedRequestResponse},
		{"PUT", http.MethodPut, "/ocsp", nil, 405, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hreq, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(hreq)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || (tc.want != nil && !bytes.Equal(body, tc.want)) {
				t.Errorf("%d %x, want %d %x", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
}

// An HTTP cache in front of the responder keeps an answer no longer than a
// CRL (5 minutes), whatever --ocsp-validity: it does not see a revocation,
// and would serve "good" for half the validity after it. Close to the
// answer's refresh time, max-age is what is left of it.
func TestHTTPCacheKeepsAnswersMinutes(t *testing.T) {
	f := newResponder(t, "")
	cert, _ := f.Issue(t, "dev")
	srv := httptest.NewServer(mount(t, f))
	defer srv.Close()
	path := srv.URL + "/ocsp/" + base64.RawURLEncoding.EncodeToString(request(t, cert, f.Issuer().Cert, crypto.SHA256))
	get := func() (maxAge time.Duration, answer *xocsp.Response) {
		t.Helper()
		resp, err := http.Get(path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var s int
		if _, err := fmt.Sscanf(resp.Header.Get("Cache-Control"), "public, max-age=%d,", &s); err != nil {
			t.Fatalf("Cache-Control %q: %v", resp.Header.Get("Cache-Control"), err)
		}
		return time.Duration(s) * time.Second, parse(t, body, cert, f.Issuer().Cert)
	}
	got, answer := get()
	if got != 5*time.Minute {
		t.Errorf("max-age %v with a %v validity, want 5m0s", got, ocsp.DefaultValidity)
	}
	// Two minutes before the cached answer is to be refreshed (halfway
	// to its nextUpdate), max-age is those two minutes.
	refresh := answer.ThisUpdate.Add(answer.NextUpdate.Sub(answer.ThisUpdate) / 2)
	f.Clock.Advance(refresh.Add(-2 * time.Minute).Sub(f.Clock.Now()))
	if got, again := get(); got != 2*time.Minute || !again.ThisUpdate.Equal(answer.ThisUpdate) {
		t.Errorf("max-age %v two minutes before the cached answer's refresh, want 2m0s (thisUpdate %v, was %v)",
			got, again.ThisUpdate, answer.ThisUpdate)
	}
}

// A delegate is kept on disk and reused by the next start, and replaced
// after two thirds of its life; a new one is signed by the CA.
func TestDelegatesLifecycle(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	dir := t.TempDir()
	ctx := context.Background()
	d := ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, p.Log, 3*24*time.Hour)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	issuer := p.Issuer()
	first, ok := d.Signer(issuer.ID)
	if !ok {
		t.Fatal("no delegate after Refresh")
	}
	if first.Cert.NotAfter.Sub(first.Cert.NotBefore) > 3*24*time.Hour+10*time.Minute {
		t.Errorf("delegate valid %v, want about 3 days", first.Cert.NotAfter.Sub(first.Cert.NotBefore))
	}
	again := ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, p.Log, 3*24*time.Hour)
	if err := again.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := again.Signer(issuer.ID); !s.Cert.Equal(first.Cert) {
		t.Error("a restart issued a new delegate instead of reusing the one on disk")
	}
	p.Clock.Advance(47 * time.Hour)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.Signer(issuer.ID); !s.Cert.Equal(first.Cert) {
		t.Error("replaced before two thirds of its life")
	}
	p.Clock.Advance(2 * time.Hour)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := d.Signer(issuer.ID)
	if second.Cert.Equal(first.Cert) || second.Cert.CheckSignatureFrom(issuer.Cert) != nil {
		t.Error("not replaced after two thirds of its life by one the CA signed")
	}
	// Every delegate is in the inventory, like any certificate.
	if _, err := p.Store.Certificate(ctx, issuer.ID, second.Cert.SerialNumber.Text(16)); err != nil {
		t.Errorf("the delegate is not in the inventory: %v", err)
	}
}

// A delegated responder certificate that an operator revokes (its key
// compromised) stops signing at once: the CA signs meanwhile, the
// delegates are kicked, and their Refresh replaces it, also from disk
// after a restart.
func TestDelegateRevoked(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	d := ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, p.Log, 0).WithInventory(p.Store)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r := ocsp.New(p.Store, p.Authority, d.Signer, p.Clock, p.Log, ocsp.Config{DelegateRevoked: func(string) { d.Kick() }})
	issuer := p.Issuer()
	cert, _ := p.Issue(t, "device")
	signer := func(cert *x509.Certificate) *x509.Certificate {
		t.Helper()
		a := r.Respond(ctx, request(t, cert, issuer.Cert, crypto.SHA256))
		if a.Err != nil {
			t.Fatal(a.Err)
		}
		return parse(t, a.DER, cert, issuer.Cert).Certificate
	}
	first, _ := d.Signer(issuer.ID)
	if got := signer(cert); got == nil || !got.Equal(first.Cert) {
		t.Fatal("the first answer is not signed by the delegate")
	}
	p.Revoke(t, first.Cert, 1)
	st, err := p.Store.RevocationState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.SetRevocationState(st)
	if got := signer(cert); got != nil {
		t.Errorf("answered by the revoked delegate %x, want the CA itself", got.SerialNumber)
	}
	select {
	case <-d.Kicked():
	default:
		t.Error("the delegates were not kicked")
	}
	// A restart finds the revoked delegate on disk and replaces it too.
	restarted := ocsp.NewDelegates(dir, p.Authority, p.Service, p.Clock, p.Log, 0).WithInventory(p.Store)
	for _, del := range []*ocsp.Delegates{d, restarted} {
		if err := del.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		next, ok := del.Signer(issuer.ID)
		if !ok || next.Cert.SerialNumber.Cmp(first.Cert.SerialNumber) == 0 {
			t.Fatal("the revoked delegate was not replaced")
		}
	}
	// (The CA's answer about cert stays cached; another certificate's is
	// signed anew.)
	other, _ := p.Issue(t, "device-2")
	if got, _ := d.Signer(issuer.ID); !got.Cert.Equal(signer(other)) {
		t.Error("answers are not signed by the new delegate")
	}
}

func hasExtension(c *x509.Certificate, oid string) bool {
	for _, e := range c.Extensions {
		if e.Id.String() == oid {
			return true
		}
	}
	return false
}

func publicKeyBits(t testing.TB, c *x509.Certificate) []byte {
	t.Helper()
	var spki struct {
		Alg asn1.RawValue
		Key asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		t.Fatal(err)
	}
	return spki.Key.Bytes
}

// --- building requests by hand ---------------------------------------------

var (
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	oidNonce  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
)

func sum1(b []byte) []byte   { h := sha1.Sum(b); return h[:] }
func sum224(b []byte) []byte { h := sha256.Sum224(b); return h[:] }

type certID struct {
	oid       asn1.ObjectIdentifier
	noNull    bool
	name, key []byte
	serial    *big.Int
}

type ext struct {
	oid      asn1.ObjectIdentifier
	critical bool
	value    []byte
}

type reqSpec struct {
	ids                             []certID
	exts                            []ext
	version                         bool
	versionValue                    int64
	requestor, signature, singleExt bool
}

func octet(b []byte) []byte {
	var bb cryptobyte.Builder
	bb.AddASN1OctetString(b)
	return bb.BytesOrPanic()
}

var (
	tag0 = cbasn1.Tag(0).Constructed().ContextSpecific()
	tag1 = cbasn1.Tag(1).Constructed().ContextSpecific()
	tag2 = cbasn1.Tag(2).Constructed().ContextSpecific()
)

func addExts(b *cryptobyte.Builder, exts []ext) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range exts {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(e.oid)
				if e.critical {
					b.AddASN1Boolean(true)
				}
				b.AddASN1OctetString(e.value)
			})
		}
	})
}

func buildRequest(t testing.TB, s reqSpec) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if s.version {
				b.AddASN1(tag0, func(b *cryptobyte.Builder) { b.AddASN1Int64(s.versionValue) })
			}
			if s.requestor {
				b.AddASN1(tag1, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("client.example")) })
				})
			}
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, id := range s.ids {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(id.oid)
								if !id.noNull {
									b.AddASN1NULL()
								}
							})
							b.AddASN1OctetString(id.name)
							b.AddASN1OctetString(id.key)
							b.AddASN1BigInt(id.serial)
						})
						if s.singleExt {
							b.AddASN1(tag0, func(b *cryptobyte.Builder) {
								addExts(b, []ext{{oid: asn1.ObjectIdentifier{1, 2, 9}, value: []byte{5, 0}}})
							})
						}
					})
				}
			})
			if s.exts != nil {
				b.AddASN1(tag2, func(b *cryptobyte.Builder) { addExts(b, s.exts) })
			}
		})
		if s.signature {
			b.AddASN1(tag0, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
					})
					b.AddASN1BitString([]byte{1, 2, 3})
				})
			})
		}
	})
	der, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// addNonce re-encodes an x/crypto request with a nonce extension.
func addNonce(t testing.TB, der, nonce []byte) []byte {
	t.Helper()
	in := cryptobyte.String(der)
	var outer, tbs, list cryptobyte.String
	if !in.ReadASN1(&outer, cbasn1.SEQUENCE) || !outer.ReadASN1(&tbs, cbasn1.SEQUENCE) || !tbs.ReadASN1Element(&list, cbasn1.SEQUENCE) {
		t.Fatal("cannot read the request")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(list)
			b.AddASN1(tag2, func(b *cryptobyte.Builder) { addExts(b, []ext{{oid: oidNonce, value: nonce}}) })
		})
	})
	return b.BytesOrPanic()
}

// responseNonce digs the nonce out of responseExtensions (x/crypto/ocsp
// reads singleExtensions only).
func responseNonce(t testing.TB, der []byte) []byte {
	t.Helper()
	var resp struct {
		Status asn1.Enumerated
		Bytes  struct {
			Type     asn1.ObjectIdentifier
			Response []byte
		} `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(der, &resp); err != nil {
		t.Fatal(err)
	}
	var basic struct {
		TBS  asn1.RawValue
		Alg  asn1.RawValue
		Sig  asn1.BitString
		Rest asn1.RawValue `asn1:"optional,explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(resp.Bytes.Response, &basic); err != nil {
		t.Fatal(err)
	}
	s := cryptobyte.String(basic.TBS.FullBytes)
	var tbs cryptobyte.String
	if !s.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		t.Fatal("bad tbsResponseData")
	}
	var skip cryptobyte.String
	tbs.ReadAnyASN1(&skip, nil) // responderID
	tbs.ReadAnyASN1(&skip, nil) // producedAt
	tbs.ReadAnyASN1(&skip, nil) // responses
	if tbs.Empty() {
		return nil
	}
	var exts, seq cryptobyte.String
	if !tbs.ReadASN1(&exts, tag1) || !exts.ReadASN1(&seq, cbasn1.SEQUENCE) {
		t.Fatal("bad responseExtensions")
	}
	for !seq.Empty() {
		var e, v cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !seq.ReadASN1(&e, cbasn1.SEQUENCE) || !e.ReadASN1ObjectIdentifier(&oid) || !e.ReadASN1(&v, cbasn1.OCTET_STRING) {
			t.Fatal("bad extension")
		}
		if oid.Equal(oidNonce) {
			return v
		}
	}
	return nil
}

// After a CA rollover the responder answers for the previous CA's
// certificates too, through that CA's own delegate.
func TestRolloverPreviousIssuerAnswered(t *testing.T) {
	f := newResponder(t, "")
	oldIssuer := f.Issuer()
	oldCert, _ := f.Issue(t, "old")
	if _, _, err := ca.Rollover(f.Dir, ca.RolloverOptions{SwitchAt: f.Clock.Now().Add(time.Hour)}, f.Clock); err != nil {
		t.Fatal(err)
	}
	f.Clock.Advance(2 * time.Hour)
	if err := f.Authority.Reload(f.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.delegates.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	newIssuer := f.Issuer()
	if newIssuer.ID == oldIssuer.ID {
		t.Fatal("no rollover")
	}
	newCert, _ := f.Issue(t, "new")
	f.Revoke(t, newCert, 5)
	for _, c := range []struct {
		cert   *x509.Certificate
		issuer *x509.Certificate
		status int
	}{{oldCert, oldIssuer.Cert, xocsp.Good}, {newCert, newIssuer.Cert, xocsp.Revoked}} {
		resp := parse(t, f.r.Respond(context.Background(), request(t, c.cert, c.issuer, crypto.SHA256)).DER, c.cert, c.issuer)
		if resp.Status != c.status || resp.Certificate.CheckSignatureFrom(c.issuer) != nil {
			t.Errorf("%s: status %d, delegate from the right CA: %v", c.cert.Subject, resp.Status, resp.Certificate.CheckSignatureFrom(c.issuer) == nil)
		}
	}
}

// An answer never outlives the delegated responder certificate that signs
// it, whatever Validity says: a relying party keeping it until nextUpdate
// must still be able to verify it, and the delegate's short life is what
// bounds the use of its key. Caching, in memory and over HTTP, follows the
// shortened answer.
func TestAnswerEndsWithItsSigner(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	const delegateLife, validity = 3 * time.Hour, 10 * 24 * time.Hour
	d := ocsp.NewDelegates(t.TempDir(), p.Authority, p.Service, p.Clock, p.Log, delegateLife)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r := ocsp.New(p.Store, p.Authority, d.Signer, p.Clock, p.Log, ocsp.Config{Validity: validity})
	cert, _ := p.Issue(t, "dev")
	issuer := p.Issuer().Cert
	req := request(t, cert, issuer, crypto.SHA256)

	a := r.Respond(ctx, req)
	resp := parse(t, a.DER, cert, issuer)
	if resp.Certificate == nil {
		t.Fatal("not signed by a delegated responder")
	}
	if resp.NextUpdate.After(resp.Certificate.NotAfter) || !a.NextUpdate.Equal(resp.NextUpdate) {
		t.Fatalf("nextUpdate %v after the responder certificate's notAfter %v", resp.NextUpdate, resp.Certificate.NotAfter)
	}
	if !resp.NextUpdate.After(resp.ThisUpdate) {
		t.Fatalf("nextUpdate %v not after thisUpdate %v", resp.NextUpdate, resp.ThisUpdate)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.Routes()["GET "+ocsp.Path].ServeHTTP(w, req)
	}))
	defer srv.Close()
	hr, err := http.Get(srv.URL + ocsp.Path + "/" + base64.StdEncoding.EncodeToString(req))
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	var maxAge int
	if _, err := fmt.Sscanf(hr.Header.Get("Cache-Control"), "public, max-age=%d", &maxAge); err != nil {
		t.Fatalf("Cache-Control %q: %v", hr.Header.Get("Cache-Control"), err)
	}
	if half := resp.NextUpdate.Sub(resp.ThisUpdate) / 2; time.Duration(maxAge)*time.Second > half {
		t.Errorf("HTTP caches may keep it %ds, beyond half its life (%v)", maxAge, half)
	}

	// The cached answer is replaced halfway to its own nextUpdate.
	p.Clock.Advance(resp.NextUpdate.Sub(resp.ThisUpdate)/2 + time.Second)
	if again := r.Respond(ctx, req); again.ThisUpdate.Equal(a.ThisUpdate) {
		t.Error("cached past half of its shortened life")
	}
}

// A clock set back (an NTP correction of a clock that ran ahead) must not
// leave the cache serving answers whose thisUpdate is still ahead of it:
// relying parties with a right clock reject them as not yet valid, and
// they would be served for as long as the clock went back.
func TestCacheAfterClockSetBack(t *testing.T) {
	ctx := context.Background()
	for _, back := range []time.Duration{30 * time.Second, 2 * time.Minute, 30 * time.Hour} {
		t.Run(back.String(), func(t *testing.T) {
			f := newResponder(t, "")
			cert, _ := f.Issue(t, "dev")
			issuer := f.Issuer().Cert
			req := request(t, cert, issuer, crypto.SHA256)
			f.Clock.Advance(back)
			ahead := f.r.Respond(ctx, req)
			f.Clock.Advance(-back)
			a := f.r.Respond(ctx, req)
			if a.ThisUpdate.After(f.Clock.Now()) {
				t.Fatalf("after the clock went back %v: thisUpdate %v is after now %v", back, a.ThisUpdate, f.Clock.Now())
			}
			// Within the backdate (a minute) the cached answer is still valid.
			if resigned := !a.ThisUpdate.Equal(ahead.ThisUpdate); resigned != (back > time.Minute) {
				t.Errorf("clock back %v: re-signed = %v", back, resigned)
			}
		})
	}
}

// An issuing CA outside its validity signs no answer, as it signs no CRL:
// an answer signed by an expired CA (its delegate, clamped to the CA's
// notAfter, expired with it) cannot be verified and would promise a
// nextUpdate beyond its signer. Cached answers and nonce requests alike.
func TestNoAnswerOutsideTheIssuersValidity(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		at   func(ca *x509.Certificate) time.Time
		want []byte
	}{
		{"a second before it expires", func(ca *x509.Certificate) time.Time { return ca.NotAfter.Add(-time.Second) }, nil},
		{"when it expires", func(ca *x509.Certificate) time.Time { return ca.NotAfter }, ocsp.UnauthorizedResponse},
		{"a day after", func(ca *x509.Certificate) time.Time { return ca.NotAfter.Add(24 * time.Hour) }, ocsp.UnauthorizedResponse},
		{"the clock set back before it", func(ca *x509.Certificate) time.Time { return ca.NotBefore.Add(-time.Hour) }, ocsp.TryLaterResponse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newResponder(t, "")
			cert, _ := f.Issue(t, "dev")
			issuer := f.Issuer().Cert
			f.r.Respond(ctx, request(t, cert, issuer, crypto.SHA256)) // cached while valid
			f.Clock.Set(c.at(issuer))
			for _, req := range [][]byte{request(t, cert, issuer, crypto.SHA256), addNonce(t, request(t, cert, issuer, crypto.SHA256), []byte("0123456789abcdef"))} {
				a := f.r.Respond(ctx, req)
				if c.want != nil {
					if !bytes.Equal(a.DER, c.want) || a.Err == nil || a.Cacheable {
						t.Errorf("answer of %d bytes (err %v), want %x", len(a.DER), a.Err, c.want)
					}
					continue
				}
				resp := parse(t, a.DER, cert, issuer)
				if resp.NextUpdate.After(issuer.NotAfter) {
					t.Errorf("nextUpdate %v after the CA's notAfter %v", resp.NextUpdate, issuer.NotAfter)
				}
			}
		})
	}
}

// A delegate made while the clock ran ahead is not used once the clock is
// set back before its notBefore: the CA signs meanwhile, and Refresh is
// asked for at once (it makes a delegate valid now).
func TestDelegateNotYetValidAfterClockSetBack(t *testing.T) {
	ctx := context.Background()
	f := newResponder(t, "")
	cert, _ := f.Issue(t, "dev")
	issuer := f.Issuer().Cert
	first, _ := f.delegates.Signer(f.Issuer().ID)
	f.Clock.Advance(3 * 24 * time.Hour) // past two thirds of the 4 days: a new delegate
	if err := f.delegates.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	ahead, _ := f.delegates.Signer(f.Issuer().ID)
	if ahead.Cert.Equal(first.Cert) {
		t.Fatal("no new delegate after three days")
	}
	f.Clock.Advance(-2 * 24 * time.Hour)
	if _, ok := f.delegates.Signer(f.Issuer().ID); ok {
		t.Error("a delegate not valid yet is offered")
	}
	select {
	case <-f.delegates.Kicked():
	default:
		t.Error("no Refresh asked for")
	}
	resp := parse(t, f.r.Respond(ctx, addNonce(t, request(t, cert, issuer, crypto.SHA256), []byte("0123456789abcdef"))).DER, cert, issuer)
	if resp.Certificate != nil && resp.Certificate.NotBefore.After(f.Clock.Now()) {
		t.Errorf("signed by a responder certificate valid only from %v, now %v", resp.Certificate.NotBefore, f.Clock.Now())
	}
	if err := f.delegates.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, ok := f.delegates.Signer(f.Issuer().ID); !ok || s.Cert.NotBefore.After(f.Clock.Now()) {
		t.Error("Refresh made no delegate valid now")
	}
}

// A POST announced larger than an OCSP request may be is answered
// malformedRequest before it is read: a client that asked "Expect:
// 100-continue" sends none of it, rather than get "100 Continue" and then
// see the connection closed under its body.
func TestOversizedPostAnsweredBeforeItIsSent(t *testing.T) {
	f := newResponder(t, "")
	srv := httptest.NewServer(mount(t, f))
	defer srv.Close()
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	body := pkitest.NewCountingReader(strings.Repeat("A", 1<<20))
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/ocsp", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Content-Type", "application/ocsp-request")
	req.Header.Set("Expect", "100-continue")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("the client saw %v, want the answer", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, ocsp.MalformedRequestResponse) {
		t.Errorf("HTTP %d %x, want malformedRequest", resp.StatusCode, got)
	}
	if n := body.Sent(); n != 0 {
		t.Errorf("%d bytes of the body sent before the answer, want none", n)
	}
}

// Through the guard, as serve mounts the responder (server.Guard.Protect
// over PlainMux, serve's timeouts): a POST announced above OCSP's 8 KiB
// with "Expect: 100-continue" is answered malformedRequest with none of it
// sent, below the guard's 64 KiB read-ahead too (r100 D3: there "100
// Continue" came, all of it was uploaded, and then the answer); a request
// within the bound is sent once "100 Continue" comes, and answered.
func TestOversizedPostAnsweredBeforeItIsSentThroughTheGuard(t *testing.T) {
	f := newResponder(t, "")
	cert, _ := f.Issue(t, "dev")
	g, err := server.NewGuard(server.Limits{MaxConns: server.DefaultMaxConns, MaxInflight: server.DefaultMaxInflight,
		MaxQueued: server.DefaultMaxQueued, QueueWait: server.DefaultQueueWait}, f.Clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mount(t, f), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	limited := g.Protect(srv, ln)
	go srv.Serve(limited)
	t.Cleanup(func() { srv.Close() })
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	good := request(t, cert, f.Issuer().Cert, crypto.SHA256)
	for _, tc := range []struct {
		name string
		body string
		want []byte // nil: a good answer for cert
	}{
		{"1 MiB", strings.Repeat("A", 1<<20), ocsp.MalformedRequestResponse},
		{"64 KiB + 1", strings.Repeat("A", 64<<10+1), ocsp.MalformedRequestResponse},
		{"64 KiB", strings.Repeat("A", 64<<10), ocsp.MalformedRequestResponse},
		{"9000 bytes", strings.Repeat("A", 9000), ocsp.MalformedRequestResponse},
		{"8 KiB + 1", strings.Repeat("A", ocsp.MaxRequestBytes+1), ocsp.MalformedRequestResponse},
		{"a request", string(good), nil},
	} {
		body := pkitest.NewCountingReader(tc.body)
		req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/ocsp", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(tc.body))
		req.Header.Set("Content-Type", "application/ocsp-request")
		req.Header.Set("Expect", "100-continue")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("%s: the client saw %v, want the answer", tc.name, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: HTTP %d %q, want 200", tc.name, resp.StatusCode, got)
			continue
		}
		sent := body.Sent()
		if tc.want != nil {
			if !bytes.Equal(got, tc.want) || sent != 0 {
				t.Errorf("%s: answer %x after %d bytes of the body sent, want malformedRequest with none sent", tc.name, got, sent)
			}
			continue
		}
		if parse(t, got, cert, f.Issuer().Cert).Status != xocsp.Good || sent != int64(len(tc.body)) {
			t.Errorf("%s: %d of %d bytes sent, want all and a good answer", tc.name, sent, len(tc.body))
		}
	}
}
