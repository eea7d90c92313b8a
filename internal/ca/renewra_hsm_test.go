//go:build cgo

package ca

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pkitest"
)

// Two RA renewals at once on one token: the one that finds the RA in
// service replaced by the other when it comes to install its own fails,
// and destroys the key it made, which nothing names; its error says so,
// with no stray "(<nil>)". A renewal that fails for another reason after
// making its key (retired-ra/ cannot be made) destroys it too. Before,
// each such key stayed in the token for good.
func TestHSMFailedRenewRADestroysItsKey(t *testing.T) {
	tok, _ := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{Token: tok, KeyType: keys.RSA2048}, clock)
	caDir := filepath.Join(dir, "ca")

	retired := filepath.Join(caDir, RetiredRADir)
	tests := []struct {
		name string
		// during runs while the renewal under test makes its key, after
		// it has loaded the RA in service.
		during   func(t *testing.T)
		replaced bool // during replaces the RA in service
		// installs: the renewal fails after installing its key, which is
		// then the one in service and must stay, with what finishes the
		// job on the next load.
		installs bool
		want     string
	}{
		{name: "another renewal wins", during: func(t *testing.T) {
			if _, _, err := RenewRA(dir, RenewRAOptions{Token: tok}, clock); err != nil {
				t.Errorf("the winning renewal: %v", err)
			}
		}, replaced: true, want: "the RA in service changed during the renewal"},
		{name: "retired-ra cannot be made", during: func(t *testing.T) {
			if err := os.Rename(retired, retired+".saved"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(retired, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				os.Remove(retired)
				if err := os.Rename(retired+".saved", retired); err != nil {
					t.Error(err)
				}
			})
		}, want: "not a directory"},
		// ra.crt a symbolic link (to the same certificate): the key is
		// installed, ra.crt refused.
		{name: "ra.crt cannot be written", during: func(t *testing.T) {
			crt := filepath.Join(caDir, RACertFile)
			if err := os.Rename(crt, crt+".real"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(crt+".real", crt); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := os.Rename(crt+".real", crt); err != nil {
					t.Error(err)
				}
			})
		}, installs: true, want: "is a symbolic link"},
	}
	var installed string // the label of the key a failed renewal installed
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(day) // a renewal whose RA outlives the last one
			inService, err := os.ReadFile(filepath.Join(caDir, RAKeyRef))
			if err != nil {
				t.Fatal(err)
			}
			rec := &recordingToken{Token: tok}
			once := false
			rec.beforeCreate = func() {
				if !once {
					once = true
					tt.during(t)
				}
			}
			_, _, err = RenewRA(dir, RenewRAOptions{Token: rec}, clock)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("RenewRA: %v, want %q", err, tt.want)
			}
			t.Log(err)
			if strings.Contains(err.Error(), "<nil>") {
				t.Errorf("the error says <nil>: %v", err)
			}
			made := rec.madeKeys()
			if len(made) != 1 {
				t.Fatalf("made %v, want the new RA key", made)
			}
			label := strconv.Quote(keys.DefaultKeyPrefix + "-" + made[0])
			has, herr := tok.Has(made[0])
			if herr != nil {
				t.Fatal(herr)
			}
			left, _ := filepath.Glob(filepath.Join(caDir, raNewPrefix+"*"))
			if tt.installs {
				if !has || strings.Contains(err.Error(), "destroyed") {
					t.Errorf("%s in the token: %v, after %v; want the installed key kept", label, has, err)
				}
				if len(left) != 1 {
					t.Errorf("build directories left: %v, want the one that finishes the renewal", left)
				}
				installed = keys.DefaultKeyPrefix + "-" + made[0]
				return
			}
			if has {
				t.Errorf("%s is still in the token after the failed renewal", label)
			}
			if !strings.Contains(err.Error(), "were destroyed") || !strings.Contains(err.Error(), label) {
				t.Errorf("the error does not say that %s was destroyed: %v", label, err)
			}
			if !tt.replaced {
				if now, err := os.ReadFile(filepath.Join(caDir, RAKeyRef)); err != nil || string(now) != string(inService) {
					t.Errorf("ra.pkcs11 changed by the failed renewal (%v)", err)
				}
			}
			if len(left) > 0 {
				t.Errorf("build directories left: %v", left)
			}
		})
	}
	// The RA in service (the interrupted renewal's, finished by the
	// reload) works.
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, ra := a.Active(clock.Now()); !decrypts(t, ra) || !strings.HasSuffix(refOf(t, filepath.Join(caDir, RAKeyRef)), "object="+installed) {
		t.Errorf("after the reload: want the RA %s in service, decrypting", installed)
	}
}
