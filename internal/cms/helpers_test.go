package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// decodeQueryMessage extracts message= from a raw SCEP GET query and
// decodes it the tolerant way servers must: URL-unescape, undo '+' -> ' ',
// drop whitespace and padding, then base64.
func decodeQueryMessage(t testing.TB, rawQuery string) []byte {
	t.Helper()
	for _, kv := range strings.Split(strings.TrimSpace(rawQuery), "&") {
		v, ok := strings.CutPrefix(kv, "message=")
		if !ok {
			continue
		}
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		v = strings.ReplaceAll(v, " ", "+")
		v = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == '\t' {
				return -1
			}
			return r
		}, v)
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil {
			t.Fatalf("decoding message: %v", err)
		}
		return b
	}
	t.Fatalf("no message= in query")
	return nil
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func loadCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(readFile(t, path))
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func loadKey(t testing.TB, path string) crypto.Signer {
	t.Helper()
	block, _ := pem.Decode(readFile(t, path))
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	var k any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k.(crypto.Signer)
}

// opaqueDecrypter hides the concrete key type, as an HSM would.
type opaqueDecrypter struct{ k *rsa.PrivateKey }

func (o opaqueDecrypter) Public() crypto.PublicKey { return o.k.Public() }
func (o opaqueDecrypter) Decrypt(r io.Reader, c []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return o.k.Decrypt(r, c, opts)
}

// strictHSM ignores SessionKeyLen and reports padding errors, as some
// PKCS #11 modules do.
type strictHSM struct{ k *rsa.PrivateKey }

func (h strictHSM) Public() crypto.PublicKey { return h.k.Public() }
func (h strictHSM) Decrypt(r io.Reader, c []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if _, ok := opts.(*rsa.PKCS1v15DecryptOptions); ok {
		return rsa.DecryptPKCS1v15(nil, h.k, c)
	}
	return h.k.Decrypt(r, c, opts)
}

// opaqueSigner hides the concrete key type.
type opaqueSigner struct{ crypto.Signer }

func asDecrypter(t testing.TB, s crypto.Signer) crypto.Decrypter {
	t.Helper()
	k, ok := s.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("key %T is not RSA", s)
	}
	return opaqueDecrypter{k}
}

type testIdentity struct {
	key  crypto.Signer
	cert *x509.Certificate
}

var (
	identOnce sync.Once
	idents    map[string]testIdentity
)

// testIdentities returns self-signed test certificates, generated once.
func testIdentities(t testing.TB) map[string]testIdentity {
	t.Helper()
	identOnce.Do(func() {
		idents = map[string]testIdentity{}
		mk := func(name string, key crypto.Signer) {
			pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
			if err != nil {
				panic(err)
			}
			ski := sha1.Sum(pubDER)
			tmpl := &x509.Certificate{
				SerialNumber:          big.NewInt(time.Now().UnixNano()),
				Subject:               pkix.Name{CommonName: "cms test " + name, Organization: []string{"scepter"}},
				NotBefore:             time.Now().Add(-time.Hour),
				NotAfter:              time.Now().Add(24 * time.Hour),
				KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
				SubjectKeyId:          ski[:],
				BasicConstraintsValid: true,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				panic(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				panic(err)
			}
			idents[name] = testIdentity{key, cert}
		}
		for _, name := range []string{"rsa", "rsa2"} {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			mk(name, k)
		}
		for name, curve := range map[string]elliptic.Curve{"p256": elliptic.P256(), "p384": elliptic.P384()} {
			k, err := ecdsa.GenerateKey(curve, rand.Reader)
			if err != nil {
				panic(err)
			}
			mk(name, k)
		}
	})
	return idents
}

// openssl runs /usr/bin/openssl (skipping the test if it is missing).
func openssl(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command(path, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, err
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeIdentity writes cert.pem and key.pem (PKCS #8) for openssl.
func writeIdentity(t testing.TB, dir string, id testIdentity) (certPath, keyPath string) {
	t.Helper()
	k8, err := x509.MarshalPKCS8PrivateKey(id.key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, "cert.pem", "CERTIFICATE", id.cert.Raw), writePEM(t, dir, "key.pem", "PRIVATE KEY", k8)
}

// toBER re-encodes DER with indefinite lengths on every constructed element
// and splits every OCTET STRING longer than 3 bytes into constructed
// segments, as streaming encoders do. normalize must undo it exactly.
func toBER(t testing.TB, der []byte) []byte {
	t.Helper()
	out, rest := berify(t, der, false)
	if len(rest) != 0 {
		t.Fatalf("toBER: trailing data")
	}
	return out
}

// berify converts one element; with implicit0 a primitive [0] (an
// encryptedContent) is segmented too.
func berify(t testing.TB, b []byte, implicit0 bool) ([]byte, []byte) {
	h, err := readHeader(b)
	if err != nil || h.indefinite {
		t.Fatalf("berify: %v", err)
	}
	content, rest := b[h.hdrLen:h.hdrLen+h.length], b[h.hdrLen+h.length:]
	switch {
	case (h.tag == tagOctetString || implicit0 && h.tag == 0x80) && len(content) > 3:
		out := []byte{h.tag | 0x20, 0x80}
		for len(content) > 0 {
			n := min(len(content), 3)
			out = appendHeader(out, tagOctetString, n)
			out = append(out, content[:n]...)
			content = content[n:]
		}
		return append(out, 0, 0), rest
	case h.constructed():
		out := []byte{h.tag, 0x80}
		for len(content) > 0 {
			var child []byte
			child, content = berify(t, content, implicit0)
			out = append(out, child...)
		}
		return append(out, 0, 0), rest
	}
	return b[:h.hdrLen+h.length], rest
}
