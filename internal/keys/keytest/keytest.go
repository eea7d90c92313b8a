// Package keytest hands tests keys made once per test binary instead of
// once per CA data directory: RSA key generation was nearly half of the
// CPU of the tests that make data directories. Only tests import it.
package keytest

import (
	"crypto"
	"strings"
	"sync"

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
