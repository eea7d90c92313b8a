package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
)

// RootIssuer is the root CA as an issuer, for signing the root's own CRL:
// dir/ca/root.crt with the root key from keyFile (default dir/ca/root.key,
// as ca rollover reads it) and passphrase. ErrNoCA without a CA; the root
// key errors of Rollover (ErrRootKeyMissing, ErrRootKeyEncrypted,
// ErrRootKeyMismatch) otherwise.
func RootIssuer(dir, keyFile string, passphrase []byte) (*Issuer, error) {
	caDir := filepath.Join(dir, "ca")
	root, err := loadCert(caDir, RootCertFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", ErrNoCA, caDir)
	}
	if err != nil {
		return nil, err
	}
	var key crypto.Signer
	if key, err = loadRootKey(caDir, root, keyFile, passphrase); err != nil {
		return nil, err
	}
	return NewIssuer(root, key, []*x509.Certificate{root})
}
