// Package keytest hands tests keys made once per test binary instead of
// once per CA data directory: RSA key generation was nearly half of the
// CPU of the tests that make data directories. Only tests import it.
package keytest

import (
	"crypto"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/keys"
)

// Pool is a key generator (for keys.Dir.Generate, ca.InitOptions.GenerateKey)
// that keeps the RSA keys it makes and hands them out again in turn: its
// first Size RSA keys of a type are fresh (keys.Generate), and later ones
// are those again, oldest first. So any Size consecutive calls for a type
// return distinct keys: a test that compares the keys of the data
// directories it makes (an RA renewed, a CA rolled over, a server's own
// key refused) sees distinct keys, as long as it makes fewer than Size
// and its tests do not run in parallel with others drawing from the pool.
// Other key types (ECDSA, cheap to make) are always fresh.
type Pool struct {
	Size int

	mu   sync.Mutex
	made map[string][]crypto.Signer
	next map[string]int
	// given is what For handed each test, by its top-level name.
	given map[string][]crypto.Signer
}

// NewPool returns a pool of size keys of each RSA type.
func NewPool(size int) *Pool { return &Pool{Size: size} }

// Generate is keys.Generate, with RSA keys from the pool.
func (p *Pool) Generate(keyType string) (crypto.Signer, error) {
	if !strings.HasPrefix(keyType, "rsa") || !keys.ValidKeyType(keyType) {
		return keys.Generate(keyType)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.draw(keyType)
}

// draw is Generate with p.mu held.
func (p *Pool) draw(keyType string) (crypto.Signer, error) {
	if p.made == nil {
		p.made, p.next = map[string][]crypto.Signer{}, map[string]int{}
	}
	if len(p.made[keyType]) < p.Size {
		// Made under the lock: tests draw one after another, and two
		// callers must never be handed one key.
		key, err := keys.Generate(keyType)
		if err != nil {
			return nil, err
		}
		p.made[keyType] = append(p.made[keyType], key)
		return key, nil
	}
	i := p.next[keyType]
	p.next[keyType] = (i + 1) % p.Size
	return p.made[keyType][i], nil
}

// For is Generate for the data directories of one test: it never hands a
// test (its subtests included) an RSA key it handed it before, so the CAs
// one test makes (a second CA whose certificates must not verify under
// the first) have distinct keys even while tests running in parallel draw
// from the pool. When every pooled key of the type was the test's
// already, it gets a fresh one, which the pool does not keep.
func (p *Pool) For(t testing.TB) func(keyType string) (crypto.Signer, error) {
	test, _, _ := strings.Cut(t.Name(), "/")
	return func(keyType string) (crypto.Signer, error) {
		if !strings.HasPrefix(keyType, "rsa") || !keys.ValidKeyType(keyType) {
			return keys.Generate(keyType)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.given == nil {
			p.given = map[string][]crypto.Signer{}
		}
		for range p.Size {
			key, err := p.draw(keyType)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(p.given[test], key) {
				p.given[test] = append(p.given[test], key)
				return key, nil
			}
		}
		key, err := keys.Generate(keyType)
		if err != nil {
			return nil, err
		}
		p.given[test] = append(p.given[test], key)
		return key, nil
	}
}
