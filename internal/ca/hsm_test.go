//go:build cgo

package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/softhsmtest"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

// The CA with its issuing CA and RA keys in a SoftHSM2 token: the same
// load, create, rollover and promotion code as for key files.

var (
	hsmOnce sync.Once
	hsmPool *softhsmtest.Pool
)

// caToken opens a fresh SoftHSM2 token (closed at the end of the test) and
// returns its configuration too, for opening it again.
func caToken(t *testing.T) (keys.Token, keys.PKCS11Config) {
	t.Helper()
	hsmOnce.Do(func() { hsmPool = softhsmtest.NewPool(filepath.Join(tempRoot, "softhsm"), 14) })
	st := hsmPool.Take(t)
	cfg := keys.PKCS11Config{Module: st.Env.Module, TokenLabel: st.Label, PINFile: st.PINFile}
	tok, err := keys.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok, cfg
}

// The RA key decrypts through the token, PKCS #1 v1.5 without an oracle
// and OAEP, and every signature of the CA is the token's.
func checkTokenCA(t *testing.T, a *Authority, now pki.Clock) {
	t.Helper()
	iss, ra := a.Active(now.Now())
	leaf := issueLeaf(t, iss, "device-1", now.Now(), day)
	if err := leaf.CheckSignatureFrom(iss.Cert); err != nil {
		t.Fatalf("leaf: %v", err)
	}
	der, err := iss.SignCRL(CRL{Number: 1, ThisUpdate: now.Now(), NextUpdate: now.Now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(iss.Cert) != nil {
		t.Fatalf("CRL: %v", err)
	}
	dec, ok := ra.Key.(crypto.Decrypter)
	if !ok {
		t.Fatal("the RA key is no crypto.Decrypter")
	}
	pub := ra.Cert.PublicKey.(*rsa.PublicKey)
	secret := []byte("0123456789abcdef")
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)})
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("PKCS #1 v1.5: %x, %v", got, err)
	}
	// Bad padding: a random key of the right length and no error, as for
	// a good padding under another key (no oracle).
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	got, err = dec.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)})
	if err != nil || len(got) != len(secret) || bytes.Equal(got, secret) {
		t.Fatalf("bad padding: %x, %v", got, err)
	}
	ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	// SoftHSM 2.6 does OAEP with SHA-1 only; a newer one with SHA-256 too.
	if got, err = dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err != nil {
		ct, _ = rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, pub, secret, nil)
		got, err = dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1})
	}
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("OAEP: %x, %v", got, err)
	}
}

func TestHSMCreateAndLoad(t *testing.T) {
	tok, cfg := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{Token: tok}, clock)
	caDir := filepath.Join(dir, "ca")
	for _, f := range []string{IssuingKeyFile, RAKeyFile} {
		noFile(t, filepath.Join(caDir, f))
	}
	if ref := refOf(t, filepath.Join(caDir, IssuingKeyRef)); ref != "pkcs11:token="+cfg.TokenLabel+";object=scepter-issuing" {
		t.Errorf("issuing.pkcs11 names %s", ref)
	}
	if ref := refOf(t, filepath.Join(caDir, RAKeyRef)); ref != "pkcs11:token="+cfg.TokenLabel+";object=scepter-ra" {
		t.Errorf("ra.pkcs11 names %s", ref)
	}
	// The root key stays a file, which can be taken offline.
	if _, err := os.Stat(filepath.Join(caDir, RootKeyFile)); err != nil {
		t.Errorf("root.key: %v", err)
	}
	if !a.KeysInToken() || a.Token() != tok {
		t.Error("KeysInToken or Token wrong")
	}
	checkTokenCA(t, a, clock)

	// A second start, with the token opened anew, finds the same keys.
	tok2, err := keys.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok2.Close()
	b, created, err := LoadOrCreate(dir, InitOptions{Token: tok2}, clock)
	if err != nil || created {
		t.Fatalf("reload: created=%v %v", created, err)
	}
	if !b.Issuer.Cert.Equal(a.Issuer.Cert) || !b.RA.Cert.Equal(a.RA.Cert) {
		t.Error("the reload has other certificates")
	}
	checkTokenCA(t, b, clock)

	// Without the token a server cannot start…
	if _, _, err := LoadOrCreate(dir, InitOptions{}, clock); !errors.Is(err, keys.ErrNoToken) || !strings.Contains(err.Error(), "--pkcs11") {
		t.Errorf("LoadOrCreate without the token: %v, want ErrNoToken naming the flags", err)
	}
	// …but a command that only reads certificates can.
	ro, err := Load(dir, clock)
	if err != nil {
		t.Fatalf("Load without the token: %v", err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := ro.Issuer.Signer.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, keys.ErrNoToken) {
		t.Errorf("a read-only load signed without the token: %v", err)
	}
	// LoadWithToken opens them.
	lt, err := LoadWithToken(dir, tok2, clock)
	if err != nil {
		t.Fatal(err)
	}
	checkTokenCA(t, lt, clock)

	// Keys in a token are never exported.
	if _, err := ExportKeys(dir, ExportKeysOptions{}); !errors.Is(err, keys.ErrNotExportable) {
		t.Errorf("ExportKeys of a token CA: %v, want ErrNotExportable", err)
	}
	// The OCSP responder keys go into the token too, with labels of their
	// own, and reference files in the responder directory.
	rk := a.ResponderKeys(filepath.Join(dir, "ocsp"))
	k, err := rk.Create("abc", keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	ref := refOf(t, filepath.Join(dir, "ocsp", "abc"+keys.RefFileExt))
	if !strings.Contains(ref, "object=scepter-ocsp-abc-") {
		t.Errorf("responder key reference %s", ref)
	}
	if back, err := a.ResponderKeys(filepath.Join(dir, "ocsp")).Open("abc"); err != nil || !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
		t.Errorf("responder key reopened: %v", err)
	}
	if err := rk.Destroy("abc"); err != nil {
		t.Fatal(err)
	}
}

// A new CA never takes over keys it finds in the token under the labels
// it is about to make: they may be another CA's (two data directories on
// one token with the same prefix), and two CAs would then certify one key.
// It is refused, naming the label, the token and the remedies, and
// nothing is created; another prefix makes a CA of its own keys.
func TestHSMNewCARefusesKeysInTheToken(t *testing.T) {
	tok, cfg := caToken(t)
	clock := pkitest.NewClock(t0)
	firstDir, first := newCA(t, InitOptions{Token: tok}, clock)

	// withPrefix opens the same token with another label prefix.
	withPrefix := func(t *testing.T, prefix string) keys.Token {
		c := cfg
		c.KeyPrefix = prefix
		tk, err := keys.OpenPKCS11(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tk.Close() })
		return tk
	}
	tests := []struct {
		name   string
		prefix string
		place  func(t *testing.T) // keys put in the token before the new CA
		label  string             // the one refused
	}{
		{"another CA's keys", "", func(*testing.T) {}, "scepter-issuing"},
		{"an RA key placed beforehand", "placed", func(t *testing.T) {
			if _, err := withPrefix(t, "placed").Create("ra", keys.RSA2048); err != nil {
				t.Fatal(err)
			}
		}, "placed-ra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.place(t)
			dir := t.TempDir()
			_, _, err := LoadOrCreate(dir, InitOptions{Token: withPrefix(t, tt.prefix)}, clock)
			if !errors.Is(err, keys.ErrKeyExists) {
				t.Fatalf("a new CA on a token holding %q: %v, want ErrKeyExists", tt.label, err)
			}
			for _, want := range []string{strconv.Quote(tt.label), strconv.Quote(cfg.TokenLabel), "--pkcs11-key-prefix", "--delete-object"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %s: %v", want, err)
				}
			}
			noFile(t, filepath.Join(dir, "ca"))
		})
	}

	// The first CA still has its own keys, and loads and signs with them.
	reloaded, created, err := LoadOrCreate(firstDir, InitOptions{Token: tok}, clock)
	if err != nil || created {
		t.Fatalf("the first CA after the refusals: created=%v %v", created, err)
	}
	if !reloaded.Issuer.Cert.Equal(first.Issuer.Cert) || !reloaded.RA.Cert.Equal(first.RA.Cert) {
		t.Error("the first CA changed")
	}
	checkTokenCA(t, reloaded, clock)

	// A second CA with a prefix of its own makes keys of its own.
	_, second := newCA(t, InitOptions{Token: withPrefix(t, "second")}, clock)
	if pki.SamePublicKey(second.Issuer.Cert.PublicKey, first.Issuer.Cert.PublicKey) || pki.SamePublicKey(second.RA.Cert.PublicKey, first.RA.Cert.PublicKey) {
		t.Error("the second CA certifies the first one's keys")
	}
	checkTokenCA(t, second, clock)
}

func TestHSMRolloverAndPromotion(t *testing.T) {
	tok, cfg := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{Token: tok, KeyType: keys.RSA2048}, clock)
	caDir := filepath.Join(dir, "ca")
	oldID := a.Issuer.ID
	oldLeaf := issueLeaf(t, a.Issuer, "before", clock.Now(), 30*day)

	// A rollover without the token is refused: the next keys belong there.
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day)}, clock); !errors.Is(err, keys.ErrNoToken) {
		t.Fatalf("Rollover without the token: %v", err)
	}
	next, nextRA, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day), Token: tok}, clock)
	if err != nil {
		t.Fatal(err)
	}
	nextDir := filepath.Join(caDir, NextDir)
	noFile(t, filepath.Join(nextDir, IssuingKeyFile))
	issRef := refOf(t, filepath.Join(nextDir, IssuingKeyRef))
	raRef := refOf(t, filepath.Join(nextDir, RAKeyRef))
	if !strings.HasPrefix(issRef, "pkcs11:token="+cfg.TokenLabel+";object=scepter-issuing-") || !strings.HasPrefix(raRef, "pkcs11:token="+cfg.TokenLabel+";object=scepter-ra-") {
		t.Errorf("next keys labelled %s and %s, want labels of their own", issRef, raRef)
	}
	if !pki.SamePublicKey(nextRA.Cert.PublicKey, nextRA.Key.Public()) || next.ID == oldID {
		t.Error("next RA or issuer wrong")
	}
	// A running server reloads and sees the next CA.
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := a.Next(clock.Now()); !ok {
		t.Fatal("Reload did not load the next CA")
	}

	// Past the switch a start promotes next/: the references move, the
	// keys stay in the token.
	clock.Set(t0.Add(2 * day))
	b, _, err := LoadOrCreate(dir, InitOptions{Token: tok}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if b.Issuer.ID != next.ID {
		t.Fatal("the next CA was not promoted")
	}
	if got := refOf(t, filepath.Join(caDir, IssuingKeyRef)); got != issRef {
		t.Errorf("current issuing.pkcs11 names %s, want %s", got, issRef)
	}
	prev := filepath.Join(caDir, PreviousDir, oldID)
	if got := refOf(t, filepath.Join(prev, IssuingKeyRef)); got != "pkcs11:token="+cfg.TokenLabel+";object=scepter-issuing" {
		t.Errorf("previous issuing.pkcs11 names %s", got)
	}
	noFile(t, filepath.Join(nextDir))
	checkTokenCA(t, b, clock)
	// The previous CA still signs (CRLs for what it issued) with its key
	// in the token.
	old, ok := b.IssuerByID(oldID)
	if !ok {
		t.Fatal("the previous CA is gone")
	}
	der, err := old.SignCRL(CRL{Number: 2, ThisUpdate: clock.Now(), NextUpdate: clock.Now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	if crl, err := x509.ParseRevocationList(der); err != nil || crl.CheckSignatureFrom(oldLeafIssuer(t, b, oldLeaf)) != nil {
		t.Errorf("previous CA's CRL: %v", err)
	}
}

func oldLeafIssuer(t *testing.T, a *Authority, leaf *x509.Certificate) *x509.Certificate {
	t.Helper()
	for _, i := range a.Issuers() {
		if leaf.CheckSignatureFrom(i.Cert) == nil {
			return i.Cert
		}
	}
	t.Fatal("no issuer of the old leaf")
	return nil
}

// A CA of key files rolls over into a token: the next keys are made there.
func TestHSMRolloverFromFiles(t *testing.T) {
	tok, _ := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{}, clock)
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day), Token: tok}, clock); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(2 * day))
	b, _, err := LoadOrCreate(dir, InitOptions{Token: tok}, clock)
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "ca")
	noFile(t, filepath.Join(caDir, IssuingKeyFile))
	noFile(t, filepath.Join(caDir, RAKeyFile))
	if !b.KeysInToken() {
		t.Error("the promoted CA's keys are not in the token")
	}
	checkTokenCA(t, b, clock)
}

// Discarding a rollover whose keys are in the token destroys those keys
// (NextTokenKeys, read before DiscardNext; DestroyDiscardedKeys after),
// but never a key that a reference outside next/ names too: here a
// next/ reference that names the current issuing CA key, as a next
// generation made with a label already in the token would.
func TestHSMDiscardDestroysTheNextKeys(t *testing.T) {
	tok, _ := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{Token: tok, KeyType: keys.P256}, clock)
	caDir := filepath.Join(dir, "ca")
	nextDir := filepath.Join(caDir, NextDir)
	next, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(day), Token: tok}, clock)
	if err != nil {
		t.Fatal(err)
	}
	issRef, raRef := refOf(t, filepath.Join(nextDir, IssuingKeyRef)), refOf(t, filepath.Join(nextDir, RAKeyRef))
	currentRef := refOf(t, filepath.Join(caDir, IssuingKeyRef))
	shared, err := os.ReadFile(filepath.Join(caDir, IssuingKeyRef))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nextDir, "shared"+keys.RefFileExt), shared, 0o600); err != nil {
		t.Fatal(err)
	}

	listed, err := NextTokenKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	inUse := map[string]bool{}
	for _, k := range listed {
		inUse[k.Ref] = k.InUse
	}
	want := map[string]bool{issRef: false, raRef: false, currentRef: true}
	if len(inUse) != len(want) {
		t.Fatalf("NextTokenKeys = %+v, want %v (ref: in use)", listed, want)
	}
	for ref, use := range want {
		if got, ok := inUse[ref]; !ok || got != use {
			t.Errorf("NextTokenKeys: %s listed %v, in use %v; want listed, in use %v", ref, ok, got, use)
		}
	}

	if err := DiscardNext(dir, next.ID, clock.Now()); err != nil {
		t.Fatal(err)
	}
	destroyed, gone, err := DestroyDiscardedKeys(tok, listed)
	if err != nil {
		t.Fatal(err)
	}
	if len(destroyed) != 2 || len(gone) != 0 {
		t.Errorf("destroyed %+v, gone %+v; want the next issuing CA and RA keys destroyed", destroyed, gone)
	}
	for _, ref := range []string{issRef, raRef} {
		if _, err := tok.OpenRef(ref); !errors.Is(err, keys.ErrKeyNotFound) {
			t.Errorf("%s after the discard: %v, want it gone from the token", ref, err)
		}
	}
	// The current CA still has its keys; a second destroy finds nothing
	// left to fail on.
	a, _, err := LoadOrCreate(dir, InitOptions{Token: tok}, clock)
	if err != nil {
		t.Fatal(err)
	}
	checkTokenCA(t, a, clock)
	// A second destroy (a discard on another node sharing the token)
	// finds them gone, and says so rather than that it destroyed them.
	destroyed, gone, err = DestroyDiscardedKeys(tok, listed)
	if err != nil || len(destroyed) != 0 || len(gone) != 2 {
		t.Errorf("destroying keys already gone: destroyed %+v, gone %+v, %v; want both gone", destroyed, gone, err)
	}
}

// A retired RA whose key is in a token: DropRetiredRA destroys that key
// (by its public key) and removes its directory; another node sharing the
// token, which still has the retired RA's reference file, starts without
// it instead of failing on the missing key.
func TestHSMDropRetiredRA(t *testing.T) {
	tok, _ := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{Token: tok}, clock)
	retired, _, err := RenewRA(dir, RenewRAOptions{Token: tok, Validity: 3 * 365 * day}, clock)
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	copyTree(t, dir, other)
	a, _, err := LoadOrCreate(dir, InitOptions{Token: tok}, clock)
	if err != nil {
		t.Fatal(err)
	}
	retiredDir := filepath.Join(dir, "ca", RetiredRADir, retired.Cert.SerialNumber.Text(16))
	ref := refOf(t, filepath.Join(retiredDir, RAKeyRef))

	dropped, key, err := a.DropRetiredRA(retired.Cert, clock.Now())
	if err != nil || !dropped || !strings.Contains(key, ref) {
		t.Fatalf("DropRetiredRA = %v, %q, %v; want true and the key's place, naming %s", dropped, key, err, ref)
	}
	noFile(t, retiredDir)
	if _, err := tok.OpenRef(ref); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Errorf("%s after DropRetiredRA: %v, want it gone from the token", ref, err)
	}
	if len(a.RetiredRAs()) != 0 {
		t.Error("the authority still holds the retired RA")
	}
	checkTokenCA(t, a, clock)

	b, _, err := LoadOrCreate(other, InitOptions{Token: tok}, clock)
	if err != nil {
		t.Fatalf("the other node: %v", err)
	}
	if len(b.RetiredRAs()) != 0 {
		t.Error("the other node loaded the destroyed retired RA")
	}
	noFile(t, filepath.Join(other, "ca", RetiredRADir, retired.Cert.SerialNumber.Text(16)))
	checkTokenCA(t, b, clock)
	if again, key, err := a.DropRetiredRA(retired.Cert, clock.Now()); again || key != "" || err != nil {
		t.Errorf("a second DropRetiredRA = %v, %q, %v; want false, \"\", nil", again, key, err)
	}
}

// ReplaceRA with the RA key in the token destroys that key in the token
// and makes the new one there, under a label of its own.
func TestHSMReplaceRA(t *testing.T) {
	tok, _ := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{Token: tok}, clock)
	_, old := a.Active(clock.Now())
	oldRef := refOf(t, filepath.Join(dir, "ca", RAKeyRef))

	destroyed, key, err := a.ReplaceRA(old.Cert, clock.Now())
	if err != nil || !destroyed || !strings.Contains(key, oldRef) {
		t.Fatalf("ReplaceRA = %v, %q, %v; want true and the key's place, naming %s", destroyed, key, err, oldRef)
	}
	if _, err := tok.OpenRef(oldRef); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Errorf("%s after ReplaceRA: %v, want it gone from the token", oldRef, err)
	}
	_, cur := a.Active(clock.Now())
	if newRef := refOf(t, filepath.Join(dir, "ca", RAKeyRef)); newRef == oldRef || cur.Cert.Equal(old.Cert) ||
		pki.SamePublicKey(cur.Cert.PublicKey, old.Cert.PublicKey) {
		t.Fatalf("after ReplaceRA the RA is %s (key %s), want a new one in place of %s (key %s)",
			cur.Cert.SerialNumber.Text(16), newRef, old.Cert.SerialNumber.Text(16), oldRef)
	}
	checkTokenCA(t, a, clock)
}

// A previous issuing CA's RA whose key is in a token: DropPreviousRA
// destroys that key and leaves ra-revoked.crt; another node sharing the
// token, which still has the reference file, starts without that RA
// (rather than failing on the missing key, or taking an RSA issuing key
// as the RA) and finishes the drop in its own directory.
func TestHSMDropPreviousRA(t *testing.T) {
	tok, _ := caToken(t)
	clock := pkitest.NewClock(t0)
	init := InitOptions{Token: tok, KeyType: "rsa2048"}
	dir, old := newCA(t, init, clock)
	switchAt := t0.Add(30 * day)
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: switchAt, Token: tok}, clock); err != nil {
		t.Fatal(err)
	}
	clock.Set(switchAt.Add(day))
	a, _, err := LoadOrCreate(dir, init, clock)
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	copyTree(t, dir, other)
	prevDir := filepath.Join(dir, "ca", PreviousDir, old.Issuer.ID)
	ref := refOf(t, filepath.Join(prevDir, RAKeyRef))

	dropped, key, err := a.DropPreviousRA(old.RA.Cert, clock.Now())
	if err != nil || !dropped || !strings.Contains(key, ref) {
		t.Fatalf("DropPreviousRA = %v, %q, %v; want true and the key's place, naming %s", dropped, key, err, ref)
	}
	if _, err := tok.OpenRef(ref); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Errorf("%s after DropPreviousRA: %v, want it gone from the token", ref, err)
	}
	if len(a.PreviousRAs()) != 0 {
		t.Error("the authority still holds the previous CA's RA")
	}
	checkTokenCA(t, a, clock)

	b, _, err := LoadOrCreate(other, init, clock)
	if err != nil {
		t.Fatalf("the other node: %v", err)
	}
	if len(b.PreviousRAs()) != 0 {
		t.Errorf("the other node loaded previous RAs %v", b.PreviousRAs())
	}
	otherPrev := filepath.Join(other, "ca", PreviousDir, old.Issuer.ID)
	noFile(t, filepath.Join(otherPrev, RAKeyRef))
	noFile(t, filepath.Join(otherPrev, RACertFile))
	if _, err := os.Stat(filepath.Join(otherPrev, RevokedRAFile)); err != nil {
		t.Errorf("the other node has no %s: %v", RevokedRAFile, err)
	}
	checkTokenCA(t, b, clock)
}
