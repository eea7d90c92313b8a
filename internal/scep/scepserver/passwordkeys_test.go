package scepserver

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/pkitest"
)

// A challenge's KEK is derived once an hour per content cipher, and a cache
// full of live keys stays bounded.
func TestPasswordKeys(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	p, err := newPasswordKeys(clock)
	if err != nil {
		t.Fatal(err)
	}
	p.iterations = 10000 // the least cms takes: the test derives some 270 keys
	// Every derivation makes a key of its own, so the distinct keys handed
	// out count the derivations.
	seen := map[*cms.PasswordKey]bool{}
	get := func(challenge string, c cms.ContentCipher) *cms.PasswordKey {
		t.Helper()
		k, err := p.get(challenge, c)
		if err != nil {
			t.Fatal(err)
		}
		seen[k] = true
		return k
	}
	fleet := get("fleet-secret", cms.AES256CBC)
	steps := []struct {
		name      string
		advance   time.Duration
		challenge string
		cipher    cms.ContentCipher
		same      bool // the fleet's key of the first step
		derived   int  // derivations so far
	}{
		{"same challenge and cipher", 0, "fleet-secret", cms.AES256CBC, true, 1},
		{"59 minutes later", 59 * time.Minute, "fleet-secret", cms.AES256CBC, true, 1},
		{"another cipher", 0, "fleet-secret", cms.AES128CBC, false, 2},
		{"another challenge", 0, "other-secret", cms.AES256CBC, false, 3},
		{"an hour after the first", time.Minute, "fleet-secret", cms.AES256CBC, false, 4},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		k := get(s.challenge, s.cipher)
		if (k == fleet) != s.same {
			t.Errorf("%s: shares the first key: %v, want %v", s.name, k == fleet, s.same)
		}
		if len(seen) != s.derived {
			t.Errorf("%s: %d derivations, want %d", s.name, len(seen), s.derived)
		}
		if s.challenge == "fleet-secret" && s.cipher == cms.AES256CBC {
			fleet = k
		}
	}

	// Concurrent requesters share the cache (go test -race), and those
	// that miss at once share one derivation: all get the same key.
	for _, challenge := range []string{"fleet-secret", "new-fleet-secret"} {
		keys := make([]*cms.PasswordKey, 8)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := p.get(challenge, cms.AES256CBC)
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for _, k := range keys[1:] {
			if k != keys[0] {
				t.Errorf("%s: concurrent requesters got different keys: more than one derivation", challenge)
				break
			}
		}
	}

	for i := range maxPasswordKeys + 10 {
		get(fmt.Sprintf("dynamic-%d", i), cms.AES128CBC)
	}
	if n := p.keys.Len(); n > maxPasswordKeys {
		t.Errorf("%d keys kept, want at most %d", n, maxPasswordKeys)
	}
	// Expired keys go first when the cache is full.
	clock.Advance(2 * passwordKeyLifetime)
	get("after-expiry", cms.AES128CBC)
	if n := p.keys.Len(); n != 1 {
		t.Errorf("%d keys kept after the others expired, want 1", n)
	}
}
