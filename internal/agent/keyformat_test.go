package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/keys"
)

// A renewal writes its key in the format of the key file it replaces:
// software that reads only PKCS#1 or SEC1 must still read it afterwards.
func TestRenewalKeepsTheKeyFormat(t *testing.T) {
	tests := []struct {
		name     string
		keyType  string
		format   keyFormat
		extra    string
		combined bool
		want     string // the PEM type of the renewed key
	}{
		{name: "PKCS#1 RSA, rekey", keyType: keys.RSA2048, format: formatTraditional, want: "RSA PRIVATE KEY"},
		{name: "PKCS#1 RSA, same key", keyType: keys.RSA2048, format: formatTraditional, extra: "rekey = false\n", want: "RSA PRIVATE KEY"},
		{name: "PKCS#1 RSA, combined file", keyType: keys.RSA2048, format: formatTraditional, combined: true, want: "RSA PRIVATE KEY"},
		{name: "SEC1 EC, rekey", keyType: keys.P256, format: formatTraditional, want: "EC PRIVATE KEY"},
		{name: "SEC1 EC, same key", keyType: keys.P256, format: formatTraditional, extra: "rekey = false\n", want: "EC PRIVATE KEY"},
		{name: "PKCS#1 RSA to key_type p256", keyType: keys.RSA2048, format: formatTraditional, extra: "key_type = \"p256\"\n", want: "EC PRIVATE KEY"},
		{name: "PKCS#8 RSA", keyType: keys.RSA2048, format: formatPKCS8, want: "PRIVATE KEY"},
		{name: "PKCS#8 EC", keyType: keys.P256, format: formatPKCS8, want: "PRIVATE KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{keyType: tt.keyType, extra: tt.extra, combined: tt.combined})
			l := newLayout(f.cert(), nil)
			p := f.pair()
			k, err := encodeKeyAs(p.key, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			data := k
			if tt.combined {
				data = append(encodeCerts(p.cert), k...)
			}
			if err := os.WriteFile(l.key, data, 0o600); err != nil {
				t.Fatal(err)
			}
			f.clock.Set(f.first.NotAfter.Add(-1))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if f.renewer.count() != 1 {
				t.Fatalf("%d renewals, want 1", f.renewer.count())
			}
			got := keyBlockType(t, filepath.Join(f.dir, filepath.Base(l.key)))
			if got != tt.want {
				t.Errorf("renewed key is %q, want %q", got, tt.want)
			}
			// And it is the key in place, read as such.
			if pk := f.pair().key; !publicKeyTypeMatches(pk, tt.want) {
				t.Errorf("renewed key is a %T", pk)
			}
		})
	}
}

func keyBlockType(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			t.Fatalf("%s holds no key", path)
		}
		if blk.Type != "CERTIFICATE" {
			// The block parses as what it says it is.
			var err error
			switch blk.Type {
			case "RSA PRIVATE KEY":
				_, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
			case "EC PRIVATE KEY":
				_, err = x509.ParseECPrivateKey(blk.Bytes)
			default:
				_, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
			}
			if err != nil {
				t.Fatalf("%s: %s: %v", path, blk.Type, err)
			}
			return blk.Type
		}
	}
}

func publicKeyTypeMatches(k crypto.Signer, blockType string) bool {
	switch blockType {
	case "RSA PRIVATE KEY":
		_, ok := k.(*rsa.PrivateKey)
		return ok
	case "EC PRIVATE KEY":
		_, ok := k.(*ecdsa.PrivateKey)
		return ok
	}
	return true
}
