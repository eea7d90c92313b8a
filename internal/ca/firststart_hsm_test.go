//go:build cgo

package ca

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pkitest"
)

// errTokenFull stands for a token that has no room for another key.
var errTokenFull = errors.New("test: the token is full")

// failingToken is a token whose Create fails from its failAt-th call on
// (as a token filling up while a new CA makes its keys), and whose
// RemoveRefKey fails when failRemove is set.
type failingToken struct {
	keys.Token
	failAt     int
	failRemove bool
	calls      int
}

func (f *failingToken) Create(name, keyType string) (crypto.Signer, error) {
	f.calls++
	if f.calls >= f.failAt {
		return nil, errTokenFull
	}
	return f.Token.Create(name, keyType)
}

func (f *failingToken) RemoveRefKey(ref string, pub crypto.PublicKey) error {
	if f.failRemove {
		return errors.New("test: the token refuses to destroy objects")
	}
	return f.Token.RemoveRefKey(ref, pub)
}

// A first start that fails after making some of its keys in the token
// destroys them, so that the next start is not refused for their labels
// ("a key of that name exists already") with nothing in DATA/ca naming
// them; a key it cannot destroy is named in the error.
func TestHSMFailedFirstStartDestroysItsKeys(t *testing.T) {
	_, cfg := caToken(t)
	clock := pkitest.NewClock(t0)
	tests := []struct {
		name       string
		failAt     int  // the Create that fails: 1 the issuing key, 2 the RA key
		failRemove bool // the token also refuses to destroy keys
		// destroyed and left are the labels (after the prefix) the error
		// names as destroyed and as left in the token.
		destroyed, left []string
	}{
		{name: "issuing key fails", failAt: 1},
		{name: "RA key fails", failAt: 2, destroyed: []string{"issuing"}},
		{name: "RA key fails, destroy refused", failAt: 2, failRemove: true, left: []string{"issuing"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A prefix per case: the same token, labels of their own.
			c := cfg
			c.KeyPrefix = "case" + strconv.Itoa(i)
			tok, err := keys.OpenPKCS11(c)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tok.Close() })
			label := func(name string) string { return strconv.Quote(c.KeyPrefix + "-" + name) }

			dir := t.TempDir()
			_, _, err = LoadOrCreate(dir, InitOptions{Token: &failingToken{Token: tok, failAt: tt.failAt, failRemove: tt.failRemove}}, clock)
			if !errors.Is(err, errTokenFull) {
				t.Fatalf("LoadOrCreate: %v, want the token's failure", err)
			}
			t.Log(err)
			noFile(t, filepath.Join(dir, "ca"))
			for _, name := range tt.destroyed {
				if !strings.Contains(err.Error(), "were destroyed") || !strings.Contains(err.Error(), label(name)) {
					t.Errorf("the error does not say that %s was destroyed: %v", label(name), err)
				}
			}
			for _, name := range tt.left {
				if !strings.Contains(err.Error(), "could not be destroyed") || !strings.Contains(err.Error(), label(name)) {
					t.Errorf("the error does not name %s as left in the token: %v", label(name), err)
				}
			}
			if len(tt.destroyed)+len(tt.left) == 0 && strings.Contains(err.Error(), "destroyed") {
				t.Errorf("nothing was made, yet the error speaks of destroying: %v", err)
			}
			for _, name := range []string{issuingKeyName, raKeyName} {
				has, err := tok.Has(name)
				if err != nil {
					t.Fatal(err)
				}
				want := false
				for _, l := range tt.left {
					want = want || l == name
				}
				if has != want {
					t.Errorf("%s in the token after the failed start: %v, want %v", label(name), has, want)
				}
			}
			if len(tt.left) > 0 {
				return
			}

			// The next start makes the CA.
			a, created, err := LoadOrCreate(dir, InitOptions{Token: tok}, clock)
			if err != nil || !created {
				t.Fatalf("the start after the failed one: created=%v %v", created, err)
			}
			checkTokenCA(t, a, clock)
			if _, err := os.Stat(filepath.Join(dir, "ca", IssuingKeyRef)); err != nil {
				t.Error(err)
			}
		})
	}
}

// A CA made in the token whose creation the server cannot record
// (DiscardCreated, r78) leaves neither its files nor its token keys: the
// next start makes a new CA under the same labels.
func TestHSMDiscardCreatedDestroysTheTokenKeys(t *testing.T) {
	tok, _ := caToken(t)
	clock := pkitest.NewClock(t0)
	opts := InitOptions{Token: tok}
	dir, first := newCA(t, opts, clock)
	cause := errors.New("audit: the disk is full")
	err := DiscardCreated(dir, opts, cause)
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "were destroyed") || !strings.Contains(err.Error(), "removed, unrecorded") {
		t.Fatalf("DiscardCreated: %v", err)
	}
	noFile(t, filepath.Join(dir, "ca"))
	for _, name := range []string{issuingKeyName, raKeyName} {
		if has, err := tok.Has(name); err != nil || has {
			t.Errorf("%s still in the token: %v %v", name, has, err)
		}
	}
	second, created, err := LoadOrCreate(dir, opts, clock)
	if err != nil || !created {
		t.Fatalf("the next start: created=%v %v", created, err)
	}
	if second.Root.Equal(first.Root) {
		t.Error("the next start took up the discarded root")
	}
	checkTokenCA(t, second, clock)
}
