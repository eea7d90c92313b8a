package credential

import (
	"context"
	"crypto/rand"
	"sync"
)

// NameKeyStore holds the key of names that are no account's
// (store.Store's LoginNameKey): it keeps candidate when it has none yet
// and returns the key it has.
type NameKeyStore interface {
	LoginNameKey(ctx context.Context, candidate []byte) ([]byte, error)
}

// NameKey is the store's key of names that are no account's (for NameTag,
// and the console's count of an unknown name's failures), read once: made
// by the first node that needs it, then the same for every node and every
// run. The zero value is ready; it must not be copied after first use.
type NameKey struct {
	mu  sync.Mutex
	key []byte
}

// Get returns the key, asking st on first use (again after a failure).
func (k *NameKey) Get(ctx context.Context, st NameKeyStore) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key == nil {
		candidate := make([]byte, 32)
		rand.Read(candidate)
		key, err := st.LoginNameKey(ctx, candidate)
		if err != nil {
			return nil, err
		}
		k.key = key
	}
	return k.key, nil
}
