//go:build !cgo || !linux

package opensslrsa

import (
	"crypto"
	"fmt"
)

// Library is libcrypto, loaded; a build without cgo cannot load it.
type Library struct{ version uint64 }

// Open fails in a build without cgo (CGO_ENABLED=0): crypto/rsa does the
// work instead.
func Open() (*Library, error) {
	return nil, fmt.Errorf("%w: this build of scepter has no cgo", ErrUnavailable)
}

type pkey struct{}

func (l *Library) importKey([]byte) (*pkey, error) { return nil, ErrUnavailable }

func (*pkey) sign(crypto.Hash, []byte, []byte) (int, error) { return 0, ErrUnavailable }

func (*pkey) decryptRaw([]byte, []byte) (int, error) { return 0, ErrUnavailable }
