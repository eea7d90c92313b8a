//go:build cgo

package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/softhsmtest"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// hsmPool holds the SoftHSM2 tokens of this test binary, made before the
// module is first initialized (see softhsmtest.Pool).
var hsmPool *softhsmtest.Pool

func TestMain(m *testing.M) { softhsmtest.Main(m, &hsmPool, 3) }

// ca rollover --discard given the token destroys the next CA's issuing CA
// and RA keys in it, and writes a key.destroyed event for each to the
// audit trail: which key (its reference and URI, the SHA-256 of its
// public key), of which CA, and who destroyed it.
func TestCARolloverDiscardTokenKeysAudited(t *testing.T) {
	ctx := context.Background()
	hsm := hsmPool.Take(t)
	tok, err := keys.OpenPKCS11(keys.PKCS11Config{Module: hsm.Env.Module, TokenLabel: hsm.Label, PINFile: hsm.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	dir, _ := caDataDir(t, ca.InitOptions{Token: tok})
	p11 := []string{"--pkcs11-module", hsm.Env.Module, "--pkcs11-token", hsm.Label, "--pkcs11-pin-file", hsm.PINFile}

	if out, errOut, err := runCA(t, nil, dir, append([]string{"rollover", "--switch-in", "48h", "--scep-ra", "separate"}, p11...)...); err != nil {
		t.Fatalf("rollover: %v\n%s%s", err, out, errOut)
	}
	a, err := ca.Load(dir, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	next, _, ok := a.Next(pki.SystemClock{}.Now())
	if !ok {
		t.Fatal("no next CA after the rollover")
	}
	nextKeys, err := ca.NextTokenKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(nextKeys) != 2 {
		t.Fatalf("the next CA has %d keys in the token, want its issuing CA's and its RA's: %+v", len(nextKeys), nextKeys)
	}

	out, errOut, err := runCA(t, nil, dir, append([]string{"rollover", "--discard"}, p11...)...)
	if err != nil {
		t.Fatalf("--discard: %v\n%s%s", err, out, errOut)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(nextKeys) {
		t.Fatalf("%d key.destroyed events, want one per key destroyed (%d): %+v", len(evs), len(nextKeys), evs)
	}
	roles := map[string]bool{}
	for _, k := range nextKeys {
		if _, err := tok.OpenRef(k.Ref); !errors.Is(err, keys.ErrKeyNotFound) {
			t.Errorf("%s after the discard: %v, want it gone from the token", k.Ref, err)
		}
		spki := spkiSHA256Hex(t, k.Public)
		found := false
		for _, ev := range evs {
			if !strings.Contains(ev.Detail, k.Ref) {
				continue
			}
			found = true
			if ev.IssuerID != next.ID || ev.Actor != cliActor() || ev.Outcome != "success" || !strings.Contains(ev.Detail, spki) {
				t.Errorf("key.destroyed event %+v, want one by %s for issuer %s naming SPKI SHA-256 %s", ev, cliActor(), next.ID, spki)
			}
			for _, r := range []string{pki.KeyRoleIssuingCA, pki.KeyRoleSCEPRA} {
				if strings.HasPrefix(ev.Detail, r+" key") {
					roles[r] = true
				}
			}
		}
		if !found {
			t.Errorf("no key.destroyed event names %s: %+v", k.Ref, evs)
		}
	}
	if !roles[pki.KeyRoleIssuingCA] || !roles[pki.KeyRoleSCEPRA] {
		t.Errorf("the events do not name an issuing CA key and an RA key: %+v", evs)
	}
}
