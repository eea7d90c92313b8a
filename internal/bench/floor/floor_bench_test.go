package floor

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/keys/opensslrsa"
)

// keys are made once per test binary: key generation is not part of any
// enrollment.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	// rsaServe is rsaKey as serve uses it by default (--rsa-backend auto):
	// through OpenSSL when libcrypto.so.3 loads, else rsaKey itself.
	rsaServe rsaPrivate
	// rsaBackend names what rsaServe goes through, for scripts/bench.
	rsaBackend = "crypto/rsa"
	ecKey      *ecdsa.PrivateKey
	keysErr    error
	// wrapped is an AES-128 content key encrypted to rsaKey with PKCS #1
	// v1.5, as a SCEP client sends it.
	wrapped []byte
	// digest stands for the SHA-256 of a TBSCertificate or of signed
	// attributes: the signatures sign it as it is, unhashed again.
	digest = sha256.Sum256([]byte("a TBSCertificate or a SignerInfo's signed attributes"))
)

const contentKeyLen = 16 // AES-128-CBC, the envelope of the measurements

func benchKeys(b *testing.B) {
	b.Helper()
	keysOnce.Do(func() {
		if rsaKey, keysErr = rsa.GenerateKey(rand.Reader, 2048); keysErr != nil {
			return
		}
		if ecKey, keysErr = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); keysErr != nil {
			return
		}
		cek := make([]byte, contentKeyLen)
		if _, keysErr = rand.Read(cek); keysErr != nil {
			return
		}
		//lint:ignore SA1019 SCEP clients wrap the content key with PKCS #1 v1.5.
		if wrapped, keysErr = rsa.EncryptPKCS1v15(rand.Reader, &rsaKey.PublicKey, cek); keysErr != nil {
			return
		}
		rsaServe = rsaKey
		if lib, err := opensslrsa.Open(); err == nil {
			s, err := lib.Wrap(rsaKey)
			if err != nil {
				keysErr = err
				return
			}
			rsaServe, rsaBackend = s.(rsaPrivate), lib.Version()
		}
	})
	if keysErr != nil {
		b.Fatal(keysErr)
	}
}

// The operations, each through crypto.Decrypter / crypto.Signer as the
// server calls them (internal/cms, internal/ca).

// rsaPrivate is an RSA private key as the server holds it.
type rsaPrivate interface {
	crypto.Signer
	crypto.Decrypter
}

func decryptWith(k rsaPrivate) func(*testing.B) {
	return func(b *testing.B) {
		//lint:ignore SA1019 this is how the server unwraps a PKCS #1 v1.5 content key.
		cek, err := k.Decrypt(rand.Reader, wrapped, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: contentKeyLen})
		if err != nil || len(cek) != contentKeyLen {
			b.Fatalf("RSA decryption: %v (%d bytes)", err, len(cek))
		}
	}
}

func signWith(k rsaPrivate) func(*testing.B) {
	return func(b *testing.B) {
		if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// The RSA operations through serve's default backend, and through Go's
// crypto/rsa (--rsa-backend go).
func rsaDecrypt(b *testing.B)   { decryptWith(rsaServe)(b) }
func rsaSign(b *testing.B)      { signWith(rsaServe)(b) }
func goRSADecrypt(b *testing.B) { decryptWith(rsaKey)(b) }
func goRSASign(b *testing.B)    { signWith(rsaKey)(b) }

func ecSign(b *testing.B) {
	if _, err := ecKey.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		b.Fatal(err)
	}
}

// floors are the private-key operations of one enrollment per
// configuration; the names are what scripts/bench reads.
var floors = []struct {
	name string
	ops  []func(*testing.B)
}{
	{"default", []func(*testing.B){rsaDecrypt, rsaSign, ecSign}},
	{"rsa-ca", []func(*testing.B){rsaDecrypt, rsaSign, rsaSign}},
	{"est-default", []func(*testing.B){ecSign}},
	{"default-go", []func(*testing.B){goRSADecrypt, goRSASign, ecSign}},
	{"rsa-ca-go", []func(*testing.B){goRSADecrypt, goRSASign, goRSASign}},
}

// BenchmarkCryptoFloor: one iteration is one enrollment's private-key
// operations (see the package documentation).
func BenchmarkCryptoFloor(b *testing.B) {
	benchKeys(b)
	// scripts/bench's report reads this line.
	reportBackend.Do(func() { fmt.Fprintf(os.Stdout, "rsa-backend: %s\n", rsaBackend) })
	for _, f := range floors {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				for _, op := range f.ops {
					op(b)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/enroll")
		})
	}
}

// BenchmarkCryptoOps times each operation of the floors alone.
func BenchmarkCryptoOps(b *testing.B) {
	benchKeys(b)
	for _, o := range []struct {
		name string
		op   func(*testing.B)
	}{
		{"rsa2048-pkcs1v15-decrypt", rsaDecrypt},
		{"rsa2048-pkcs1v15-sha256-sign", rsaSign},
		{"rsa2048-pkcs1v15-decrypt-go", goRSADecrypt},
		{"rsa2048-pkcs1v15-sha256-sign-go", goRSASign},
		{"p256-sha256-sign", ecSign},
	} {
		b.Run(o.name, func(b *testing.B) {
			for b.Loop() {
				o.op(b)
			}
		})
	}
}

var reportBackend sync.Once
