//go:build cgo

package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A key pair that someone else makes under the label of one of the CA's
// keys must not stop the CA from starting: its reference file records the
// public key, which tells its pair apart. Only what records no public key
// (a reference written by hand, a label) stays refused.
func TestOpenRefKeyAmongPairsOfOneLabel(t *testing.T) {
	tok, _ := openToken(t)
	digest := sha256.Sum256([]byte("signed at start"))

	tests := []struct {
		name string
		// others is how many pairs are added under the key's label.
		others int
		// mode: "recorded" opens through the reference file as written;
		// "no public key" through one holding only the URI; "label" by
		// name; "replaced" with our pair removed first.
		mode string
		// wantErr is part of the refusal; "" means the key opens.
		wantErr string
	}{
		{name: "one other pair", others: 1, mode: "recorded"},
		{name: "two other pairs", others: 2, mode: "recorded"},
		{name: "alone", others: 0, mode: "recorded"},
		{name: "no public key recorded", others: 1, mode: "no public key", wantErr: "2 keys are labelled"},
		{name: "by label", others: 1, mode: "label", wantErr: "2 keys are labelled"},
		{name: "recorded key gone", others: 2, mode: "replaced", wantErr: "none of the 2 key pair(s) of that label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			suffix := "-" + strings.ReplaceAll(tt.name, " ", "-")
			d := &Dir{Path: t.TempDir(), Token: tok, Suffix: suffix}
			ours, err := d.Create("issuing", P256)
			if err != nil {
				t.Fatal(err)
			}
			name := "issuing" + suffix
			if tt.mode == "replaced" {
				if err := tok.Remove(name); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < tt.others; i++ {
				addPair(t, tok, "scepter-"+name)
			}
			if tt.mode == "no public key" {
				if err := os.WriteFile(d.RefPath("issuing"), []byte(tok.Ref(name)+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}

			var key crypto.Signer
			if tt.mode == "label" {
				key, err = tok.Open(name)
			} else {
				key, err = d.Open("issuing")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("open: %v, want a refusal saying %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrKeyNotFound) {
					t.Errorf("open: %v wraps ErrKeyNotFound, though keys of the label are there", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			if !pki.SamePublicKey(key.Public(), ours.Public()) {
				t.Fatal("opened another pair of the label")
			}
			sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if !ecdsa.VerifyASN1(ours.Public().(*ecdsa.PublicKey), digest[:], sig) {
				t.Error("the signature does not verify under the recorded public key")
			}
		})
	}
}
