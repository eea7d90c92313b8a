package enroll_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	_ "crypto/md5" // MD5-signed requests for the tests
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // SHA-1-signed requests for the tests
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

var (
	legacyKeysOnce sync.Once
	legacyRSA      *rsa.PrivateKey
	legacyEC       *ecdsa.PrivateKey
)

func legacyKeys(t *testing.T) (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	legacyKeysOnce.Do(func() {
		legacyRSA, _ = rsa.GenerateKey(rand.Reader, 2048)
		legacyEC, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	if legacyRSA == nil || legacyEC == nil {
		t.Fatal("key generation failed")
	}
	return legacyRSA, legacyEC
}

// A signature algorithm as an old client writes it.
type sigAlg struct {
	name string
	oid  asn1.ObjectIdentifier
	null bool // RSA algorithms carry NULL parameters
	hash crypto.Hash
	rsa  bool
}

var (
	sha1RSA   = sigAlg{"SHA1-RSA", asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, true, crypto.SHA1, true}
	md5RSA    = sigAlg{"MD5-RSA", asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}, true, crypto.MD5, true}
	sha1ECDSA = sigAlg{"ECDSA-SHA1", asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}, false, crypto.SHA1, false}
	sha256RSA = sigAlg{"SHA256-RSA", asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, true, crypto.SHA256, true}
)

// legacyRequest builds a request whose CSR is signed with alg: crypto/x509
// encodes the request info, which is then signed again the old way.
func legacyRequest(t *testing.T, alg sigAlg, txid string) enroll.Request {
	t.Helper()
	rk, ek := legacyKeys(t)
	var key crypto.Signer = ek
	if alg.rsa {
		key = rk
	}
	base, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "old-device"}, DNSNames: []string{"old.example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificateRequest(base)
	if err != nil {
		t.Fatal(err)
	}
	h := alg.hash.New()
	h.Write(parsed.RawTBSCertificateRequest)
	sig, err := key.Sign(rand.Reader, h.Sum(nil), alg.hash)
	if err != nil {
		t.Fatal(err)
	}
	ai := pkix.AlgorithmIdentifier{Algorithm: alg.oid}
	if alg.null {
		ai.Parameters = asn1.NullRawValue
	}
	der, err := asn1.Marshal(struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: parsed.RawTBSCertificateRequest}, ai, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if csr.SignatureAlgorithm.String() != alg.name {
		t.Fatalf("built a %v request, want %s", csr.SignatureAlgorithm, alg.name)
	}
	return enroll.Request{CSR: csr, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolSCEP, TransactionID: txid, RemoteAddr: "127.0.0.1:1234"}
}

// By default a request signed with SHA-1 or MD5 is refused with badAlg and a
// reason; the same key with SHA-256 is fine.
func TestLegacySignaturesRefusedByDefault(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	for _, tt := range []struct {
		alg  sigAlg
		want string
	}{
		{sha1RSA, "signed with SHA-1 (SHA1-RSA), which this profile refuses"},
		{sha1ECDSA, "signed with SHA-1 (ECDSA-SHA1), which this profile refuses"},
		{md5RSA, "signed with MD5-RSA, which is broken"},
	} {
		_, err := f.svc.Enroll(ctx, legacyRequest(t, tt.alg, "tx-"+tt.alg.name))
		if pki.ErrorCode(err) != pki.EBadAlg || !strings.Contains(pki.ErrorMessage(err), tt.want) {
			t.Errorf("%s: %v, want bad_alg %q", tt.alg.name, err, tt.want)
		}
	}
	if res, err := f.svc.Enroll(ctx, legacyRequest(t, sha256RSA, "tx-sha256")); err != nil || res.Certificate == nil {
		t.Fatalf("SHA-256 request: %v", err)
	}
	certs, _, err := f.st.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 {
		t.Errorf("%d certificates issued, want only the SHA-256 one", len(certs))
	}
}

// A profile with AllowLegacySignatures serves SHA-1 clients; MD5 stays
// refused, since it cannot be verified.
func TestLegacySignaturesAllowedByProfile(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.AllowLegacySignatures = "legacy", true
	f := newFixture(t, map[string]pki.Profile{"legacy": p}, "legacy")
	ctx := context.Background()
	for _, alg := range []sigAlg{sha1RSA, sha1ECDSA} {
		res, err := f.svc.Enroll(ctx, legacyRequest(t, alg, "tx-"+alg.name))
		if err != nil || res.Certificate == nil {
			t.Errorf("%s at a legacy profile: %v", alg.name, err)
		}
	}
	if _, err := f.svc.Enroll(ctx, legacyRequest(t, md5RSA, "tx-md5")); pki.ErrorCode(err) != pki.EBadAlg {
		t.Errorf("MD5 at a legacy profile: %v", err)
	}
}

// A held request goes through the same check when an operator approves it:
// a profile that refuses SHA-1 never holds one, a legacy one holds and
// issues it.
func TestLegacySignaturesWithApproval(t *testing.T) {
	ctx := context.Background()
	strict := pki.DefaultProfile()
	strict.Name, strict.RequireApproval = "approval", true
	f := newFixture(t, map[string]pki.Profile{"approval": strict}, "approval")
	if _, err := f.svc.Enroll(ctx, legacyRequest(t, sha1RSA, "tx-strict")); pki.ErrorCode(err) != pki.EBadAlg {
		t.Errorf("SHA-1 at a strict approval profile: %v", err)
	}
	if reqs, _, _ := f.st.ListRequests(ctx, store.RequestFilter{}); len(reqs) != 0 {
		t.Errorf("%d requests held, want none", len(reqs))
	}

	legacy := strict
	legacy.AllowLegacySignatures = true
	f = newFixture(t, map[string]pki.Profile{"approval": legacy}, "approval")
	res, err := f.svc.Enroll(ctx, legacyRequest(t, sha1RSA, "tx-legacy"))
	if err != nil || res.Pending == nil {
		t.Fatalf("SHA-1 at a legacy approval profile: %v %+v", err, res)
	}
	done, err := f.svc.Approve(ctx, res.Pending.ID, "cli:test")
	if err != nil || done.Certificate == nil {
		t.Fatalf("approving it: %v", err)
	}
}
