package main

import (
	"crypto"
	"flag"
	"fmt"
	"log/slog"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/opensslrsa"
)

// rsaBackendFlags is --rsa-backend: who makes the private-key operations of
// the CA's, RA's and OCSP responders' RSA key files. OpenSSL 3
// (libcrypto.so.3, loaded at run time) is about three times faster than
// Go's crypto/rsa, and the RA's RSA decryption and signature are most of a
// SCEP enrollment's CPU. Keys in a PKCS#11 token are the token's to use
// either way.
type rsaBackendFlags struct {
	backend string
}

const (
	rsaBackendAuto    = "auto"
	rsaBackendOpenSSL = "openssl"
	rsaBackendGo      = "go"
)

func (r *rsaBackendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.backend, "rsa-backend", rsaBackendAuto, "RSA operations of CA, RA and OCSP responder key files: 'auto' (OpenSSL 3 when libcrypto.so.3 loads, else Go), 'openssl' (refuse to start without it) or 'go' (Go's crypto/rsa)")
}

func (r *rsaBackendFlags) check() error {
	switch r.backend {
	case rsaBackendAuto, rsaBackendOpenSSL, rsaBackendGo:
		return nil
	}
	return usageError{fmt.Sprintf("--rsa-backend %q: want auto, openssl or go", r.backend)}
}

// wrapKey returns the function ca.InitOptions.WrapKey takes, or nil for Go's
// crypto/rsa, and logs which it is.
func (r *rsaBackendFlags) wrapKey(log *slog.Logger) (func(crypto.Signer) crypto.Signer, error) {
	if r.backend == rsaBackendGo {
		log.Info("RSA key files used through Go's crypto/rsa (--rsa-backend go)")
		return nil, nil
	}
	lib, err := opensslrsa.Open()
	if err != nil {
		if r.backend == rsaBackendOpenSSL {
			return nil, fmt.Errorf("--rsa-backend openssl: %w", err)
		}
		log.Info("RSA key files used through Go's crypto/rsa: OpenSSL 3 is not available", "reason", err)
		return nil, nil
	}
	log.Info("RSA key files used through OpenSSL", "version", lib.Version())
	return lib.WrapOrKeep(func(key crypto.Signer, err error) {
		log.Warn("RSA key used through Go's crypto/rsa: OpenSSL failed its self-test with it", "key", keys.KeyTypeOf(key.Public()), "err", err)
	}), nil
}
