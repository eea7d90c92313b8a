package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/keytest"
	"github.com/scepter/scepter/internal/pki"
)

// fixedClock is a pki.Clock that says what it is told.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// countingSigner counts the signatures of the CA key.
type countingSigner struct {
	crypto.Signer
	n atomic.Int64
}

func (s *countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(r, digest, opts)
}

// testCA is one CA per key type, created once per test binary.
var testCAs sync.Map // keyType -> *Authority

func testCA(t testing.TB, keyType string) *Authority {
	t.Helper()
	if a, ok := testCAs.Load(keyType); ok {
		return a.(*Authority)
	}
	dir, err := makeTempDir()
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := LoadOrCreate(dir, InitOptions{KeyType: keyType}, fixedClock{t0})
	if err != nil {
		t.Fatal(err)
	}
	actual, _ := testCAs.LoadOrStore(keyType, a)
	return actual.(*Authority)
}

// testKeys holds the RSA keys of the CAs newCA makes, made once per test
// binary: an RSA-2048 key for every new CA's RA was, after the encrypted
// root keys, the biggest CPU cost of these tests (about a third of a
// second each under the race detector). A CA takes at most three (root,
// issuing CA and RA); eight leave room for the tests that run in parallel.
var testKeys = keytest.NewPool(8)

// pooledKeys is the key generator of one new CA: RSA keys from testKeys,
// never one it has handed out already, so that no CA gets one key twice
// (its RA key its root key, say) however parallel tests draw; other key
// types are fresh. Rollovers and RA renewals make fresh keys of their own.
func pooledKeys() func(keyType string) (crypto.Signer, error) {
	var mu sync.Mutex
	var given []crypto.Signer
	return func(keyType string) (crypto.Signer, error) {
		mu.Lock()
		defer mu.Unlock()
		// Any testKeys.Size consecutive keys of a type are distinct, so
		// the next is new to this CA unless parallel tests drew in
		// between; after len(given)+1 tries, a fresh one.
		for range len(given) + 1 {
			k, err := testKeys.Generate(keyType)
			if err != nil {
				return nil, err
			}
			if !slices.ContainsFunc(given, func(g crypto.Signer) bool { return pki.SamePublicKey(g.Public(), k.Public()) }) {
				given = append(given, k)
				return k, nil
			}
		}
		return keys.Generate(keyType)
	}
}

// countingIssuer wraps a's issuing key so signatures can be counted.
func countingIssuer(t testing.TB, a *Authority) (*Issuer, *countingSigner) {
	t.Helper()
	cs := &countingSigner{Signer: a.Issuer.Signer}
	iss, err := NewIssuer(a.Issuer.Cert, cs, a.Issuer.Chain)
	if err != nil {
		t.Fatal(err)
	}
	return iss, cs
}

func rawName(t testing.TB, n pkix.Name) []byte {
	t.Helper()
	b, err := asn1.Marshal(n.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func genKey(t testing.TB, kt string) crypto.Signer {
	t.Helper()
	k, err := keys.Generate(kt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// reserveOK accepts every serial and remembers them.
type reserver struct {
	mu      sync.Mutex
	serials []string
	tbs     [][]byte
	taken   int   // answer taken=true this many times first
	err     error // or fail
}

func (r *reserver) reserve(_ context.Context, issuerID, serialHex string, tbs []byte) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if issuerID == "" {
		return false, errors.New("no issuer id")
	}
	if len(tbs) == 0 {
		return false, errors.New("no TBS reserved with the serial")
	}
	r.serials = append(r.serials, serialHex)
	r.tbs = append(r.tbs, tbs)
	if r.err != nil {
		return false, r.err
	}
	if r.taken > 0 {
		r.taken--
		return true, nil
	}
	return false, nil
}

func okReserve(context.Context, string, string, []byte) (bool, error) { return false, nil }

func codeOf(err error) pki.Code { return pki.ErrorCode(err) }

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// atv is one attribute of rawSubject's name, with its value's ASN.1 tag.
type atv struct {
	oid asn1.ObjectIdentifier
	tag cbasn1.Tag
	v   string
}

// rawSubject builds a DER Name of one RDN per attribute, each value
// encoded as given (which pkix.Name cannot: it picks the string types).
func rawSubject(atvs ...atv) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, a := range atvs {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(a.oid)
					b.AddASN1(a.tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.v)) })
				})
			})
		}
	})
	return b.BytesOrPanic()
}

// reencoded is the name raw with every value as a UTF8String, passed
// through change.
func reencoded(t testing.TB, raw []byte, change func(string) string) []byte {
	t.Helper()
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &rdns); err != nil {
		t.Fatal(err)
	}
	var atvs []atv
	for _, rdn := range rdns {
		for _, a := range rdn {
			atvs = append(atvs, atv{a.Type, cbasn1.UTF8String, change(fmt.Sprint(a.Value))})
		}
	}
	return rawSubject(atvs...)
}

func refOf(t *testing.T, path string) string {
	t.Helper()
	ref, _, err := keys.ReadRefFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (%v)", path, err)
	}
}
