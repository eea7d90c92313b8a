package keys

import (
	"crypto/rand"
	"testing"
)

// FuzzOpenPEM: `ca import-keys` reads a file that came from elsewhere.
// Opening never panics, and nothing opens without the passphrase it was
// sealed with (the AEAD covers the headers too).
func FuzzOpenPEM(f *testing.F) {
	pass := []byte("fuzz passphrase 0123")
	// Small Argon2id parameters, so that each input costs little.
	sealed, err := sealPEM(rand.Reader, "SCEPTER FUZZ", []byte("secret"), pass, map[string]string{"Root": "sha256:00"}, 1, 1024, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte("-----BEGIN SCEPTER FUZZ-----\nKDF: argon2id\n\nAAAA\n-----END SCEPTER FUZZ-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if pt, _, err := OpenPEM(data, "SCEPTER FUZZ", pass); err == nil && string(pt) != "secret" {
			t.Fatalf("opened to %q", pt)
		}
		if _, _, err := OpenPEM(data, "SCEPTER FUZZ", []byte("another passphrase 99")); err == nil {
			t.Fatal("opened with another passphrase")
		}
	})
}
