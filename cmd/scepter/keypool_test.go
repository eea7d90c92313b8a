package main

import (
	"context"
	"crypto"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/keytest"
	"github.com/scepter/scepter/internal/pki"
)

// testKeys makes the keys of the CAs and RAs the tests create
// (env.generateKey, ca.InitOptions.GenerateKey): RSA key generation was
// nearly half of this package's test CPU. Its 16 keys of a type are
// distinct, so a test that makes fewer data directories than that (none
// makes more than 11 keys, and none runs in parallel) gives each key its
// own, as the tests that compare RA keys across them need.
var testKeys = keytest.NewPool(16)

// keyRecorder is a generator that draws keys from testKeys and remembers
// each, for the tests that check a command made its keys with the
// generator it was given.
type keyRecorder struct {
	mu   sync.Mutex
	made []crypto.Signer
}

func (r *keyRecorder) generate(keyType string) (crypto.Signer, error) {
	k, err := testKeys.Generate(keyType)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.made = append(r.made, k)
	return k, err
}

// count is how many keys it made.
func (r *keyRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.made)
}

// madeKeyFile reports whether the key file at path holds one of the keys
// it made.
func (r *keyRecorder) madeKeyFile(t *testing.T, path string) bool {
	t.Helper()
	k, err := keys.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.made {
		if pki.SamePublicKey(k.Public(), m.Public()) {
			return true
		}
	}
	return false
}

// serve makes a new CA's root, issuing and RA keys with env.generateKey,
// the generator the tests above rely on; each key file written is one it
// made.
func TestServeMakesNewCAKeysWithItsGenerator(t *testing.T) {
	var rec keyRecorder
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := serveInProcessKeys(t, rec.generate, nil, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0",
		"--challenge", "test", "--data-dir", dataDir, "--ca-key-type", keys.RSA2048)
	if srv.ended {
		t.Fatalf("serve stopped: %v\n%s", srv.err, srv.errb.String())
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(); n != 3 {
		t.Fatalf("the generator made %d keys, want 3 (root, issuing, RA)", n)
	}
	for _, name := range []string{"root.key", "issuing.key", "ra.key"} {
		if !rec.madeKeyFile(t, filepath.Join(dataDir, "ca", name)) {
			t.Errorf("ca/%s is not a key the generator made", name)
		}
	}
}

// ca rollover makes the next issuing CA's and RA's keys with
// env.generateKey too (ca.RolloverOptions.GenerateKey): the tests that roll
// over draw them from the pool, and each key file written is one it made.
func TestCARolloverMakesKeysWithItsGenerator(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{KeyType: keys.RSA2048})
	var rec keyRecorder
	e, _, errb := testEnv(nil)
	e.generateKey = rec.generate
	switchAt := pki.SystemClock{}.Now().Add(72 * time.Hour).Truncate(time.Second)
	if err := run(context.Background(), e, []string{"ca", "rollover", "--switch-at", switchAt.Format(time.RFC3339), "--data-dir", dir}); err != nil {
		t.Fatalf("ca rollover: %v\n%s", err, errb.String())
	}
	if n := rec.count(); n != 2 {
		t.Fatalf("the generator made %d keys, want 2 (the next issuing CA's and RA's)", n)
	}
	for _, name := range []string{"issuing.key", "ra.key"} {
		if !rec.madeKeyFile(t, filepath.Join(dir, "ca", ca.NextDir, name)) {
			t.Errorf("ca/%s/%s is not a key the generator made", ca.NextDir, name)
		}
	}
}

// ca renew-ra makes the new RA's key with env.generateKey
// (ca.RenewRAOptions.GenerateKey), as serve's own renewal does
// (autoRenewRA): the tests that renew an RA draw its key from the pool, and
// the key file written is the one it made.
func TestCARenewRAMakesItsKeyWithItsGenerator(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{KeyType: keys.RSA2048})
	var rec keyRecorder
	e, _, errb := testEnv(nil)
	e.generateKey = rec.generate
	if err := run(context.Background(), e, []string{"ca", "renew-ra", "--validity", "26280h", "--data-dir", dir}); err != nil {
		t.Fatalf("ca renew-ra: %v\n%s", err, errb.String())
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("the generator made %d keys, want 1 (the new RA's)", n)
	}
	if !rec.madeKeyFile(t, filepath.Join(dir, "ca", "ra.key")) {
		t.Error("ca/ra.key is not the key the generator made")
	}
}

// A client's new key (enroll, renew --rekey, est enroll) is made with
// env.generateKey too: the tests that enroll draw it from the pool, and the
// key file written is the one it made. nil in production: keys.Generate.
func TestClientsMakeTheirKeysWithTheirGenerator(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\n")
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	for _, tc := range []struct {
		name   string
		args   []string
		keyOut string
	}{
		{"enroll", []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=pooled", "--key-type", keys.RSA2048,
			"--out", path("cert.pem"), "--key-out", path("key.pem")}, "key.pem"},
		{"renew --rekey", []string{"renew", "--url", s.scepURL, "--challenge", "test", "--cert", path("cert.pem"), "--key", path("key.pem"), "--rekey",
			"--key-type", keys.RSA2048, "--out", path("new.pem"), "--key-out", path("newkey.pem")}, "newkey.pem"},
		{"est enroll", []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=pooled-est",
			"--key-type", keys.RSA2048, "--out", path("est.pem"), "--key-out", path("estkey.pem")}, "estkey.pem"},
	} {
		var rec keyRecorder
		e, out, errb := testEnv(map[string]string{"SCEPTER_EST_PASSWORD": "test"})
		e.generateKey = rec.generate
		if err := run(context.Background(), e, tc.args); err != nil {
			t.Fatalf("%s: %v\n%s%s", tc.name, err, out, errb)
		}
		if n := rec.count(); n != 1 {
			t.Fatalf("%s: the generator made %d keys, want 1", tc.name, n)
		}
		if !rec.madeKeyFile(t, path(tc.keyOut)) {
			t.Errorf("%s: %s is not the key the generator made", tc.name, tc.keyOut)
		}
	}
}
