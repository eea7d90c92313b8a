//go:build cgo

package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/keys/softhsmtest"
	"github.com/scepter/scepter/internal/pki"
)

// tokens are this test binary's SoftHSM2 tokens (see softhsmtest.Pool).
var tokens *softhsmtest.Pool

func TestMain(m *testing.M) { softhsmtest.Main(m, &tokens, 18) }

// openToken takes a fresh token of the pool and opens it.
func openToken(t *testing.T) (Token, *softhsmtest.Token) {
	t.Helper()
	st := tokens.Take(t)
	tok, err := OpenPKCS11(configOf(st))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok, st
}

func configOf(st *softhsmtest.Token) PKCS11Config {
	return PKCS11Config{Module: st.Env.Module, TokenLabel: st.Label, PINFile: st.PINFile}
}

func TestPKCS11CreateFindSign(t *testing.T) {
	tok, st := openToken(t)
	for _, kt := range []string{P256, P384, RSA2048} {
		t.Run(kt, func(t *testing.T) {
			name := "issuing-" + kt
			if ok, err := tok.Has(name); ok || err != nil {
				t.Fatalf("Has before Create = %v, %v", ok, err)
			}
			if _, err := tok.Open(name); !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("Open before Create: %v, want ErrKeyNotFound", err)
			}
			k, err := tok.Create(name, kt)
			if err != nil {
				t.Fatal(err)
			}
			if got := KeyTypeOf(k.Public()); got != kt {
				t.Errorf("key type %s, want %s", got, kt)
			}
			if _, err := tok.Create(name, kt); !errors.Is(err, ErrKeyExists) {
				t.Errorf("Create again: %v, want ErrKeyExists", err)
			}
			if ok, _ := tok.Has(name); !ok {
				t.Error("Has after Create = false")
			}
			if !strings.Contains(tok.Where(name), `"scepter-`+name+`"`) {
				t.Errorf("Where = %s", tok.Where(name))
			}

			// Found by its label from another session of the token: a
			// restart.
			tok2, err := OpenPKCS11(configOf(st))
			if err != nil {
				t.Fatal(err)
			}
			defer tok2.Close()
			found, err := tok2.Open(name)
			if err != nil || !pki.SamePublicKey(found.Public(), k.Public()) {
				t.Fatalf("Open by label: %v", err)
			}
			viaRef, err := tok2.OpenRef(tok.Ref(name))
			if err != nil || !pki.SamePublicKey(viaRef.Public(), k.Public()) {
				t.Fatalf("OpenRef(%s): %v", tok.Ref(name), err)
			}

			// Signatures verify with the public key, for each digest the CA uses.
			for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				msg := []byte("to be signed by the token")
				hh := h.New()
				hh.Write(msg)
				digest := hh.Sum(nil)
				sig, err := found.Sign(rand.Reader, digest, h)
				if err != nil {
					t.Fatalf("Sign %v: %v", h, err)
				}
				switch pub := found.Public().(type) {
				case *ecdsa.PublicKey:
					if !ecdsa.VerifyASN1(pub, digest, sig) {
						t.Errorf("ECDSA %v signature does not verify", h)
					}
				case *rsa.PublicKey:
					if err := rsa.VerifyPKCS1v15(pub, h, digest, sig); err != nil {
						t.Errorf("RSA %v: %v", h, err)
					}
				}
			}
			// A certificate signed by the token key verifies: what the CA does.
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "token " + kt},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
				KeyUsage: x509.KeyUsageCertSign}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, found.Public(), found)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := x509.ParseCertificate(der)
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestPKCS11KeysNeverLeave(t *testing.T) {
	tok, _ := openToken(t)
	pt := tok.(*pkcs11Token)
	for _, kt := range []string{P256, RSA2048} {
		k, err := tok.Create("nx-"+kt, kt)
		if err != nil {
			t.Fatal(err)
		}
		var inner crypto11.Signer
		switch v := k.(type) {
		case *tokenSigner:
			inner = v.k
		case *tokenDecrypter:
			inner = v.k
		default:
			t.Fatalf("token key of type %T", k)
		}
		attrs, err := pt.ctx.GetAttributes(inner, []crypto11.AttributeType{crypto11.CkaSensitive, crypto11.CkaExtractable,
			crypto11.CkaNeverExtractable, crypto11.CkaAlwaysSensitive, crypto11.CkaPrivate})
		if err != nil {
			t.Fatal(err)
		}
		for a, want := range map[crypto11.AttributeType]bool{crypto11.CkaSensitive: true, crypto11.CkaExtractable: false,
			crypto11.CkaNeverExtractable: true, crypto11.CkaAlwaysSensitive: true, crypto11.CkaPrivate: true} {
			v := attrs[a]
			if got := v != nil && len(v.Value) > 0 && v.Value[0] != 0; got != want {
				t.Errorf("%s: attribute %#x = %v, want %v", kt, a, got, want)
			}
		}
		// Nothing writes it to a file.
		path := filepath.Join(t.TempDir(), "x.key")
		if err := WriteKeyFile(path, k); err == nil {
			t.Errorf("%s: WriteKeyFile wrote a token key", kt)
		}
		if _, err := MarshalEncryptedKeyPEM(rand.Reader, k, []byte("pass")); err == nil {
			t.Errorf("%s: a token key was encrypted for export", kt)
		}
	}
	if tok.Exportable() {
		t.Error("a token says its keys are exportable")
	}

	// A key that can be read out of the token is refused when opened.
	id, _ := randomID()
	pub, _ := crypto11.NewAttributeSetWithIDAndLabel(id, []byte("scepter-leaky"))
	priv := pub.Copy()
	priv.Set(crypto11.CkaSensitive, false)
	priv.Set(crypto11.CkaExtractable, true)
	if _, err := pt.ctx.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P256()); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Open("leaky"); err == nil || !strings.Contains(err.Error(), "never leave") {
		t.Errorf("Open of an extractable key: %v", err)
	}
}

func TestPKCS11Decrypt(t *testing.T) {
	tok, _ := openToken(t)
	k, err := tok.Create("ra", RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	dec, ok := k.(crypto.Decrypter)
	if !ok {
		t.Fatalf("an RSA token key is not a crypto.Decrypter (%T)", k)
	}
	pub := k.Public().(*rsa.PublicKey)
	secret := []byte("0123456789abcdef0123456789abcdef") // an AES-256 key

	t.Run("pkcs1v15", func(t *testing.T) {
		ct, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
		pt, err := dec.Decrypt(rand.Reader, ct, nil)
		if err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("nil opts: %q, %v", pt, err)
		}
		pt, err = dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{})
		if err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("no SessionKeyLen: %q, %v", pt, err)
		}
		// With SessionKeyLen (what internal/cms asks): crypto/rsa's contract.
		pt, err = dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)})
		if err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("SessionKeyLen: %q, %v", pt, err)
		}
		// A bad padding: a random key, no error, never the same twice.
		bad := bytes.Clone(ct)
		bad[5] ^= 0x40
		a, errA := dec.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)})
		b, errB := dec.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)})
		if errA != nil || errB != nil || len(a) != len(secret) || bytes.Equal(a, b) || bytes.Equal(a, secret) {
			t.Errorf("bad padding: %x (%v), %x (%v): want two random keys of %d bytes and no error", a, errA, b, errB, len(secret))
		}
		// A plaintext of the wrong length is treated the same.
		short, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, secret[:16])
		c, err := dec.Decrypt(rand.Reader, short, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)})
		if err != nil || len(c) != len(secret) || bytes.HasPrefix(c, secret[:16]) {
			t.Errorf("wrong length: %x, %v", c, err)
		}
		// Without SessionKeyLen a bad padding is an error, as with crypto/rsa.
		if _, err := dec.Decrypt(rand.Reader, bad, nil); err == nil {
			t.Error("bad padding without SessionKeyLen decrypted")
		}
	})
	t.Run("oaep-sha1", func(t *testing.T) {
		ct, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, secret, nil)
		pt, err := dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1})
		if err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("OAEP SHA-1: %q, %v", pt, err)
		}
		pt, err = dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1})
		if err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("OAEP SHA-1, MGF1-SHA-1: %q, %v", pt, err)
		}
		bad := bytes.Clone(ct)
		bad[7] ^= 1
		if _, err := dec.Decrypt(rand.Reader, bad, &rsa.OAEPOptions{Hash: crypto.SHA1}); err == nil {
			t.Error("a damaged OAEP ciphertext decrypted")
		}
		if _, err := dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1}); err == nil || !strings.Contains(err.Error(), "MGF1") {
			t.Errorf("OAEP with another MGF hash: %v", err)
		}
	})
	t.Run("oaep-sha256", func(t *testing.T) {
		// SoftHSM 2.6 does OAEP with SHA-1 only; a token that does more
		// must decrypt correctly, one that does not must fail cleanly.
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)
		pt, err := dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256})
		if err == nil && !bytes.Equal(pt, secret) {
			t.Fatalf("OAEP SHA-256 decrypted to %x", pt)
		}
		t.Logf("OAEP SHA-256 on this token: err=%v", err)
	})
}

// TestPKCS11SCEPEnvelope: an envelope as SCEP clients send it, encrypted to
// an RA certificate whose key is in the token, is decrypted by
// internal/cms through the token; a damaged one fails with exactly
// cms.ErrDecryption (oracle-free), never with the token's error.
func TestPKCS11SCEPEnvelope(t *testing.T) {
	tok, _ := openToken(t)
	d := &Dir{Path: t.TempDir(), Token: tok}
	k, err := d.Create("ra", RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "scepter SCEP RA (token)"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), SubjectKeyId: []byte{1, 2, 3, 4},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	raCert, _ := x509.ParseCertificate(der)
	content := []byte("a PKCSReq's inner CSR, or anything")
	cases := []struct {
		name string
		opts cms.EncryptOptions
	}{
		{"pkcs1v15-aes256cbc", cms.EncryptOptions{Cipher: cms.AES256CBC, KeyTransport: cms.RSAPKCS1v15}},
		{"pkcs1v15-aes128cbc", cms.EncryptOptions{Cipher: cms.AES128CBC, KeyTransport: cms.RSAPKCS1v15}},
		{"pkcs1v15-des3", cms.EncryptOptions{Cipher: cms.DES3CBC, KeyTransport: cms.RSAPKCS1v15}},
		{"pkcs1v15-aes256gcm", cms.EncryptOptions{Cipher: cms.AES256GCM, KeyTransport: cms.RSAPKCS1v15}},
		{"oaep-sha1-aes256cbc", cms.EncryptOptions{Cipher: cms.AES256CBC, KeyTransport: cms.RSAOAEP, OAEPHash: crypto.SHA1}},
	}
	ra, err := d.Open("ra") // as the server opens it after a restart
	if err != nil {
		t.Fatal(err)
	}
	raDec := ra.(crypto.Decrypter)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, err := cms.Encrypt(content, []*x509.Certificate{raCert}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ed, err := cms.ParseEnvelopedData(env)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ed.DecryptKeyTransport(raCert, raDec)
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("DecryptKeyTransport through the token: %q, %v", got, err)
			}
			// The encrypted content key damaged (the 256-byte OCTET STRING
			// of a 2048-bit RSA key transport): exactly ErrDecryption.
			at := bytes.Index(env, []byte{0x04, 0x82, 0x01, 0x00})
			if at < 0 {
				t.Fatal("no encrypted key in the envelope")
			}
			env[at+4+100] ^= 0x01
			ed, err = cms.ParseEnvelopedData(env)
			if err != nil {
				t.Fatal(err)
			}
			// The token fails on the bad padding; what the caller sees is
			// what a wrong key gives: ErrDecryption, or, for a CBC cipher
			// whose random key happens to leave a valid padding (about one
			// time in 256), garbage. Never the token's own error.
			for n := 0; n < 3; n++ {
				got, err := ed.DecryptKeyTransport(raCert, raDec)
				if err != nil && err != cms.ErrDecryption {
					t.Fatalf("damaged content key: %v, want exactly cms.ErrDecryption", err)
				}
				if err == nil && bytes.Equal(got, content) {
					t.Fatal("a damaged content key decrypted the content")
				}
			}
		})
	}
}

func TestPKCS11WrongPINMissingTokenModule(t *testing.T) {
	st := tokens.Take(t) // never opened with the right PIN in this process
	wrong := filepath.Join(t.TempDir(), "wrong.pin")
	os.WriteFile(wrong, []byte("999999\n"), 0o600)
	cfg := configOf(st)
	cfg.PINFile = wrong
	if _, err := OpenPKCS11(cfg); !errors.Is(err, ErrWrongPIN) {
		t.Errorf("wrong PIN: %v, want ErrWrongPIN", err)
	}
	cfg = configOf(st)
	cfg.TokenLabel = "no-such-token"
	if _, err := OpenPKCS11(cfg); !errors.Is(err, ErrTokenNotFound) || !strings.Contains(err.Error(), "no-such-token") {
		t.Errorf("missing token: %v, want ErrTokenNotFound naming it", err)
	}
	cfg = configOf(st)
	cfg.Module = "/nonexistent/libpkcs11.so"
	if _, err := OpenPKCS11(cfg); err == nil || !strings.Contains(err.Error(), "/nonexistent/libpkcs11.so") {
		t.Errorf("missing module: %v", err)
	}
	cfg = configOf(st)
	cfg.PINFile = filepath.Join(t.TempDir(), "missing.pin")
	if _, err := OpenPKCS11(cfg); err == nil || !strings.Contains(err.Error(), "missing.pin") {
		t.Errorf("missing PIN file: %v", err)
	}
	// The right PIN still works afterwards.
	tok, err := OpenPKCS11(configOf(st))
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()
}

// A PIN the token refused when it was opened again is not tried again
// until the PIN file changes: a real HSM locks its user PIN after a few
// wrong ones, for every node that shares it, and a node retries a lost
// token every second.
func TestPKCS11WrongPINOnReopenIsNotRetried(t *testing.T) {
	tok, st := openToken(t)
	pt := tok.(*pkcs11Token)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pt.now = func() time.Time { return now }
	logins := 0
	pt.login = func(cfg PKCS11Config, pin string) (*crypto11.Context, error) {
		logins++
		return configureWithPIN(cfg, pin)
	}
	k, err := tok.Create("issuing", P256)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	writePIN := func(pin string) {
		t.Helper()
		if err := os.WriteFile(st.PINFile, []byte(pin+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePIN("999999")
	// The token was lost (its sessions gone, say): it is opened again
	// with the PIN of now, which is wrong.
	if err := pt.reopen(pt.gen); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("reopen with a wrong PIN: %v, want ErrWrongPIN", err)
	}
	for i := 0; i < 5; i++ {
		now = now.Add(reopenEvery)
		_, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
		if !errors.Is(err, pki.ErrUnavailable) || !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("Sign %d with the PIN refused: %v, want unavailable and ErrWrongPIN", i, err)
		}
	}
	if logins != 1 {
		t.Fatalf("%d logins with the same wrong PIN, want 1", logins)
	}
	writePIN("888888") // another wrong one is tried, once
	for i := 0; i < 3; i++ {
		now = now.Add(reopenEvery)
		if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("Sign with another wrong PIN: %v, want ErrWrongPIN", err)
		}
	}
	if logins != 2 {
		t.Fatalf("%d logins after a second wrong PIN, want 2", logins)
	}
	writePIN(softhsmtest.DefaultPIN)
	now = now.Add(reopenEvery)
	sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign with the right PIN back: %v", err)
	}
	if err := verifySignature(k.Public(), digest[:], sig); err != nil {
		t.Fatal(err)
	}
	if logins != 3 {
		t.Fatalf("%d logins, want 3", logins)
	}
}

func TestPKCS11PrefixAndRemove(t *testing.T) {
	st := tokens.Take(t)
	cfg := configOf(st)
	cfg.KeyPrefix = "ca2"
	tok, err := OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if _, err := tok.Create("issuing", P256); err != nil {
		t.Fatal(err)
	}
	def, err := OpenPKCS11(configOf(st))
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	if ok, _ := def.Has("issuing"); ok {
		t.Error("the default prefix sees another prefix's key")
	}
	if ref := tok.Ref("issuing"); ref != "pkcs11:token="+st.Label+";object=ca2-issuing" {
		t.Errorf("Ref = %s", ref)
	}
	// OpenRef finds a key by its full label whatever the prefix.
	if _, err := def.OpenRef(tok.Ref("issuing")); err != nil {
		t.Errorf("OpenRef across prefixes: %v", err)
	}
	if err := tok.Remove("issuing"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tok.Has("issuing"); ok {
		t.Error("Remove left the key")
	}
	if err := tok.Remove("issuing"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Remove of a missing key: %v", err)
	}
	// Two keys of one label are refused, not picked at random.
	if _, err := tok.Create("dup", P256); err != nil {
		t.Fatal(err)
	}
	id, _ := randomID()
	pub, _ := crypto11.NewAttributeSetWithIDAndLabel(id, []byte("ca2-dup"))
	tok.(*pkcs11Token).ctx.GenerateECDSAKeyPairWithAttributes(pub, pub.Copy(), elliptic.P256())
	// The refusal says why and what to do, and names the keys' ids to
	// delete by, whether the key is opened by name or by its reference.
	opens := map[string]func() (crypto.Signer, error){
		"Open":    func() (crypto.Signer, error) { return tok.Open("dup") },
		"OpenRef": func() (crypto.Signer, error) { return def.OpenRef(tok.Ref("dup")) },
	}
	for how, open := range opens {
		_, err := open()
		if err == nil {
			t.Fatalf("%s of a duplicated label opened a key", how)
		}
		t.Logf("%s: %v", how, err)
		for _, want := range []string{`2 keys are labelled "ca2-dup"`, "ambiguous", hex.EncodeToString(id), "delete the extra key pairs", "--id ID", "cannot choose one with id="} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s of a duplicated label: %q does not say %q", how, err, want)
			}
		}
	}
}

func TestLostToken(t *testing.T) {
	for _, tt := range []struct {
		err  error
		lost bool
	}{
		{pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED), true},
		{pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT), true},
		{pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID), true},
		{pkcs11.Error(pkcs11.CKR_SESSION_CLOSED), true},
		{pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID), true},
		{pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID), true},
		{pkcs11.Error(pkcs11.CKR_DEVICE_ERROR), true},
		{pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN), true},
		{pkcs11.Error(pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED), true},
		{fmt.Errorf("keys: signing with %q: %w", "scepter-ra", pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)), true},
		{fmt.Errorf("keys: x: %w", errTokenGone), true},
		// Refusals of this request, which opening the token again does not change.
		{pkcs11.Error(pkcs11.CKR_ENCRYPTED_DATA_INVALID), false},
		{pkcs11.Error(pkcs11.CKR_MECHANISM_INVALID), false},
		{pkcs11.Error(pkcs11.CKR_PIN_INCORRECT), false},
		{ErrKeyNotFound, false},
		{errors.New("CKR_DEVICE_REMOVED"), false},
	} {
		if got := lostToken(tt.err); got != tt.lost {
			t.Errorf("lostToken(%v) = %v, want %v", tt.err, got, tt.lost)
		}
	}
}

// closeSessionsOf closes every session of the token under crypto11's feet,
// as a token reset does: its sessions and login are gone.
func closeSessionsOf(t *testing.T, st *softhsmtest.Token) {
	t.Helper()
	p := pkcs11.New(st.Env.Module)
	defer p.Destroy() // only unloads: the module stays initialized for crypto11
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if info, err := p.GetTokenInfo(s); err == nil && info.Label == st.Label {
			if err := p.CloseAllSessions(s); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no slot holds the token %s", st.Label)
}

// After the token's sessions are closed underneath, the next use opens a
// session and logs in again, and finds the keys again by their labels.
func TestPKCS11SessionsClosedUnderneath(t *testing.T) {
	tok, st := openToken(t)
	ec, err := tok.Create("issuing", P256)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := tok.Create("ra", RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("signed after the sessions were lost"))
	for round := 0; round < 2; round++ {
		closeSessionsOf(t, st)
		for _, k := range []crypto.Signer{ec, ra} {
			sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatalf("round %d: Sign after the sessions were closed: %v", round, err)
			}
			if err := verifySignature(k.Public(), digest[:], sig); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		closeSessionsOf(t, st)
		ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, ra.Public().(*rsa.PublicKey), []byte("content key"), nil)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := ra.(crypto.Decrypter).Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1})
		if err != nil || string(pt) != "content key" {
			t.Fatalf("round %d: Decrypt after the sessions were closed: %q, %v", round, pt, err)
		}
	}
	if ok, err := tok.Has("issuing"); !ok || err != nil {
		t.Fatalf("Has = %v, %v", ok, err)
	}
}

// A token that goes away makes every use fail as unavailable (503 with
// Retry-After at the edges), and the keys work again once it is back.
func TestPKCS11TokenGoneAndBack(t *testing.T) {
	if os.Getenv(goneChildEnv) != "1" {
		// SoftHSM notices that a token's directory went away only in a
		// process that initialized the module once, as scepter serve
		// does: other tests of this binary have finalized it already.
		cmd := exec.Command(os.Args[0], "-test.run=^TestPKCS11TokenGoneAndBack$", "-test.v")
		cmd.Env = append(os.Environ(), goneChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if bytes.Contains(out, []byte("--- SKIP")) {
			t.Skipf("%s", out)
		}
		return
	}
	tok, st := openToken(t)
	pt := tok.(*pkcs11Token)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pt.now = func() time.Time { return now }
	k, err := tok.Create("issuing", P256)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	dir := tokenDirOf(t, st)
	away := filepath.Join(t.TempDir(), "away")
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second within reopenEvery: not tried again
		_, err = k.Sign(rand.Reader, digest[:], crypto.SHA256)
		if !errors.Is(err, pki.ErrUnavailable) || pki.ErrorCode(err) != pki.EUnavailable {
			t.Fatalf("Sign with the token gone: %v, want pki.ErrUnavailable", err)
		}
	}
	if _, err := tok.Has("issuing"); !errors.Is(err, pki.ErrUnavailable) {
		t.Fatalf("Has with the token gone: %v, want pki.ErrUnavailable", err)
	}
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	now = now.Add(reopenEvery)
	sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign with the token back: %v", err)
	}
	if err := verifySignature(k.Public(), digest[:], sig); err != nil {
		t.Fatal(err)
	}
}

// A key that vanished from the token (deleted by hand, or by another CA
// sharing its label) fails every use as unavailable, so that the edges
// answer 503 with Retry-After rather than 500, still saying the key is
// not found; the RA key's PKCS #1 v1.5 decryption then fails too instead
// of answering a random content key.
func TestPKCS11KeyVanishedIsUnavailable(t *testing.T) {
	tok, _ := openToken(t)
	issuing, err := tok.Create("issuing", P256)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := tok.Create("ra", RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	for _, k := range []crypto.Signer{issuing, ra} {
		if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"issuing", "ra"} {
		if err := tok.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	// The first use opens the token again (a token that lost its login
	// hides its keys), and finds the key gone then; the later ones know it
	// is.
	for round := 0; round < 3; round++ {
		unavailable := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, pki.ErrUnavailable) || pki.ErrorCode(err) != pki.EUnavailable || !errors.Is(err, ErrKeyNotFound) {
				t.Errorf("round %d: %s of a vanished key: %v (code %s), want unavailable (and not found)", round, what, err, pki.ErrorCode(err))
			}
		}
		for _, k := range []crypto.Signer{issuing, ra} {
			_, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			unavailable("Sign", err)
		}
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, ra.Public().(*rsa.PublicKey), []byte("0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ra.(crypto.Decrypter).Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
		unavailable("Decrypt", err)
	}
}

// A key missing from a token is named as the token's object, not found:
// the error says the label, the token and "no such object in the token",
// never "file does not exist", which would send an operator to look for a
// file (r129 O2). It still is ErrKeyNotFound and fs.ErrNotExist to errors.Is.
func TestPKCS11KeyNotFoundNamesTheObject(t *testing.T) {
	tok, st := openToken(t)
	k, err := tok.Create("issuing", P256)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Remove("issuing"); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	token := fmt.Sprintf("%q", st.Label)
	for _, tc := range []struct {
		what string
		use  func() error
		want []string
	}{
		{"Open", func() error { _, err := tok.Open("issuing"); return err },
			[]string{`no key labelled "scepter-issuing"`, token}},
		{"Remove", func() error { return tok.Remove("issuing") },
			[]string{`no key labelled "scepter-issuing"`, token}},
		{"Sign", func() error { _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); return err },
			[]string{`holds no key labelled "scepter-issuing"`, token, "temporarily unavailable"}},
	} {
		err := tc.use()
		if err == nil {
			t.Errorf("%s of a key not in the token: no error", tc.what)
			continue
		}
		if !errors.Is(err, ErrKeyNotFound) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want ErrKeyNotFound and fs.ErrNotExist", tc.what, err)
		}
		msg := err.Error()
		if !strings.HasSuffix(msg, ": key not found: no such object in the token") || strings.Contains(msg, "file") {
			t.Errorf("%s: %q, want it to end \": key not found: no such object in the token\" and name no file", tc.what, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q, want it to name %s", tc.what, msg, w)
			}
		}
	}
}

// A key destroyed in the token by someone else (another node discarding a
// CA generation, an operator with pkcs11-tool) while the token stays open
// is gone: its uses say so, as unavailable and not found, from the first
// one on, and do not open the token and log in again at each use (a node
// signs a CRL with it every second until its next CA reload). The token
// is opened again once, in case it had only lost its login.
func TestPKCS11KeyDestroyedElsewhereIsNotReopenedFor(t *testing.T) {
	tok, st := openToken(t)
	pt := tok.(*pkcs11Token)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pt.now = func() time.Time { return now }
	logins := 0
	pt.login = func(cfg PKCS11Config, pin string) (*crypto11.Context, error) {
		logins++
		return configureWithPIN(cfg, pin)
	}
	k, err := tok.Create("issuing-d5d055fd", P256)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("CRL"))
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	other, err := OpenPKCS11(configOf(st))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Remove("issuing-d5d055fd"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		now = now.Add(reopenEvery)
		_, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
		if !errors.Is(err, pki.ErrUnavailable) || !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("Sign %d with the key destroyed: %v, want unavailable and ErrKeyNotFound", i, err)
		}
	}
	if logins != 1 {
		t.Errorf("%d logins for 5 uses of a key destroyed in the open token, want 1", logins)
	}
	// The token itself is fine: its other keys work without a login more.
	k2, err := tok.Create("issuing-2", P256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	if logins != 1 {
		t.Errorf("%d logins, want 1", logins)
	}
}

// goneChildEnv marks the process that runs TestPKCS11TokenGoneAndBack.
const goneChildEnv = "SCEPTER_KEYS_TOKEN_GONE_CHILD"

// tokenDirOf is the directory SoftHSM keeps the token in.
func tokenDirOf(t *testing.T, st *softhsmtest.Token) string {
	t.Helper()
	objs, _ := filepath.Glob(filepath.Join(st.Env.Dir, "tokens", "*", "token.object"))
	for _, o := range objs {
		if data, err := os.ReadFile(o); err == nil && bytes.Contains(data, []byte(st.Label)) {
			return filepath.Dir(o)
		}
	}
	t.Fatalf("no token directory holds %s", st.Label)
	return ""
}

func verifySignature(pub crypto.PublicKey, digest, sig []byte) error {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errors.New("the ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
	}
	return fmt.Errorf("unexpected public key %T", pub)
}
