package credential_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/credential"
)

// keyStore is a LoginNameKey that keeps the first candidate it is given,
// counts its reads, and fails while failing is set.
type keyStore struct {
	mu      sync.Mutex
	key     []byte
	reads   int
	failing bool
}

func (s *keyStore) LoginNameKey(_ context.Context, candidate []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.failing {
		return nil, errors.New("store away")
	}
	if s.key == nil {
		s.key = bytes.Clone(candidate)
	}
	return s.key, nil
}

// The key is read from the store once, by one caller of many at once, and
// read again after a failure rather than remembered as missing.
func TestNameKeyIsReadOnce(t *testing.T) {
	ctx := context.Background()
	st := &keyStore{failing: true}
	var k credential.NameKey
	if _, err := k.Get(ctx, st); err == nil {
		t.Fatal("no error from a store that fails")
	}
	st.failing = false
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Go(func() {
			var err error
			if keys[i], err = k.Get(ctx, st); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, key := range keys {
		if len(key) != 32 || !bytes.Equal(key, st.key) {
			t.Errorf("caller %d got %x, want the store's %x", i, key, st.key)
		}
	}
	if st.reads != 2 {
		t.Errorf("%d store reads, want 2 (the failed one, then one for all)", st.reads)
	}
}
