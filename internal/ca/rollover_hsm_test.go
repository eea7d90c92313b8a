//go:build cgo

package ca

import (
	"crypto"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pkitest"
)

// recordingToken is a token that records the names of the keys it made,
// whose Create fails from its failAt-th call on (0: never), as a token
// filling up, and whose RemoveRefKey fails when failRemove is set.
// beforeCreate, when set, runs at the start of each Create.
type recordingToken struct {
	keys.Token
	failAt       int
	failRemove   bool
	beforeCreate func()

	mu    sync.Mutex
	calls int
	made  []string
}

func (r *recordingToken) Create(name, keyType string) (crypto.Signer, error) {
	if r.beforeCreate != nil {
		r.beforeCreate()
	}
	r.mu.Lock()
	r.calls++
	fail := r.failAt > 0 && r.calls >= r.failAt
	r.mu.Unlock()
	if fail {
		return nil, errTokenFull
	}
	key, err := r.Token.Create(name, keyType)
	if err == nil {
		r.mu.Lock()
		r.made = append(r.made, name)
		r.mu.Unlock()
	}
	return key, err
}

func (r *recordingToken) RemoveRefKey(ref string, pub crypto.PublicKey) error {
	if r.failRemove {
		return errors.New("test: the token refuses to destroy objects")
	}
	return r.Token.RemoveRefKey(ref, pub)
}

func (r *recordingToken) madeKeys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.made...)
}

// A rollover that fails after making keys in the token destroys them:
// nothing names them (no next/, no reference file), so nothing else ever
// would, and a retry makes keys with another id. The error says which were
// destroyed, or names the ones it could not destroy. Before, the next
// issuing CA's key stayed in the token for good when, say, the token was
// too full for the RA key.
func TestHSMFailedRolloverDestroysItsKeys(t *testing.T) {
	tok, _ := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{Token: tok, KeyType: keys.P256}, clock)
	caDir := filepath.Join(dir, "ca")
	tests := []struct {
		name       string
		failAt     int  // the Create that fails: 1 the issuing key, 2 the RA key, 0 none
		failRemove bool // the token also refuses to destroy keys
		validity   time.Duration
		want       error // what the error must wrap (nil: any)
		destroyed  int   // how many keys the error names as destroyed
		left       int   // and as left in the token
	}{
		{name: "issuing key fails", failAt: 1, want: errTokenFull},
		{name: "RA key fails", failAt: 2, want: errTokenFull, destroyed: 1},
		{name: "RA key fails, destroy refused", failAt: 2, failRemove: true, want: errTokenFull, left: 1},
		// An issuing CA that would end at its switch: refused after both
		// keys are made.
		{name: "fails after both keys", validity: time.Nanosecond, destroyed: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingToken{Token: tok, failAt: tt.failAt, failRemove: tt.failRemove}
			_, _, err := Rollover(dir, RolloverOptions{SwitchAt: clock.Now().Add(day), IssuingValidity: tt.validity, Token: rec}, clock)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Rollover: %v, want a failure (%v)", err, tt.want)
			}
			t.Log(err)
			made := rec.madeKeys()
			if len(made) != tt.destroyed+tt.left {
				t.Fatalf("made %v, want %d keys", made, tt.destroyed+tt.left)
			}
			for _, name := range made {
				label := strconv.Quote(keys.DefaultKeyPrefix + "-" + name)
				has, err2 := tok.Has(name)
				if err2 != nil {
					t.Fatal(err2)
				}
				switch {
				case tt.left > 0 && !has:
					t.Errorf("%s is gone, though the token refused to destroy it", label)
				case tt.left > 0 && (!strings.Contains(err.Error(), "could not be destroyed") || !strings.Contains(err.Error(), label)):
					t.Errorf("the error does not name %s as left in the token: %v", label, err)
				case tt.left == 0 && has:
					t.Errorf("%s is still in the token after the failed rollover", label)
				case tt.left == 0 && (!strings.Contains(err.Error(), "were destroyed") || !strings.Contains(err.Error(), label)):
					t.Errorf("the error does not say that %s was destroyed: %v", label, err)
				}
				if tt.left > 0 {
					if err := tok.Remove(name); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(made) == 0 && strings.Contains(err.Error(), "destroyed") {
				t.Errorf("nothing was made, yet the error speaks of destroying: %v", err)
			}
			noFile(t, filepath.Join(caDir, NextDir))
			if left, _ := filepath.Glob(filepath.Join(caDir, ".next-new-*")); len(left) > 0 {
				t.Errorf("build directories left: %v", left)
			}
		})
	}
	// The CA is as it was: a rollover now works.
	if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: clock.Now().Add(day), Token: tok}, clock); err != nil {
		t.Fatalf("the rollover after the failed ones: %v", err)
	}
}
