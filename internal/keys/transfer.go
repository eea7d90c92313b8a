package keys

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/scepter/scepter/internal/pki"
)

// This file moves keys between directories without looking inside them:
// CopyKey for a CA's promotion of a generation, ExportPEM and ImportPEM
// for `scepter ca export-keys` and `import-keys`. A key in a token never
// moves: CopyKey copies its reference file, and ExportPEM refuses it.

// CopyKey copies the key called name from one directory to another: the
// key file (mode 0600, atomically, byte for byte: an encrypted key stays
// encrypted), or, for a key in a token, its reference file (the key stays
// where it is). A key of that name already in to, in the other form, is
// removed, so that a directory never holds both. ErrKeyNotFound when from
// has none.
func CopyKey(from, to *Dir, name string) error {
	inToken, err := from.InToken(name)
	if err != nil {
		return err
	}
	src, dst, other := from.files().Path(name), to.files().Path(name), to.RefPath(name)
	if inToken {
		src, dst, other = from.RefPath(name), to.RefPath(name), to.files().Path(name)
	}
	data, err := os.ReadFile(src)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keys: %s: %w", src, ErrKeyNotFound)
	}
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer clear(data)
	if err := writeAtomic(dst, data, 0o600); err != nil {
		return err
	}
	if err := os.Remove(other); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}

// ExportPEM returns the key file of the key called name as it is (PEM,
// encrypted or not), after checking that it is a private key file that
// group and others cannot read. A key in a token cannot be exported: the
// error wraps ErrNotExportable. ErrKeyNotFound when there is no key.
func (d *Dir) ExportPEM(name string) ([]byte, error) {
	inToken, err := d.InToken(name)
	if err != nil {
		return nil, err
	}
	if inToken {
		ref, _, _ := ReadRefFile(d.RefPath(name))
		return nil, fmt.Errorf("keys: %s names %s: %w; other nodes use the same token (the same --pkcs11-… flags)", d.RefPath(name), ref, ErrNotExportable)
	}
	path := d.files().Path(name)
	if err := CheckKeyFileMode(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keys: %s: %w", path, ErrKeyNotFound)
		}
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if _, err := IsEncryptedKeyPEM(data); err != nil {
		clear(data)
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	return data, nil
}

// ImportPEM writes data, a PEM key file that ExportPEM returned, as the key
// called name (mode 0600, atomically), unless CheckImportPEM finds it there
// already (written is false) or refuses it.
func (d *Dir) ImportPEM(name string, data []byte) (written bool, err error) {
	exists, err := d.CheckImportPEM(name, data)
	if err != nil || exists {
		return false, err
	}
	if err := writeAtomic(d.files().Path(name), data, 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// CheckImportPEM checks that data can be imported as the key called name:
// exists is true when the same key is there already (the same file, or the
// same public key). Another key is refused with an error wrapping
// ErrKeyExists, as is a token key of that name. An unencrypted key is
// parsed, so that a damaged one is never written; an encrypted one (a root
// key) is checked for its framing only, as its passphrase is not known here.
func (d *Dir) CheckImportPEM(name string, data []byte) (exists bool, err error) {
	encrypted, err := IsEncryptedKeyPEM(data)
	if err != nil {
		return false, fmt.Errorf("keys: importing %s: %w", name, err)
	}
	var key crypto.Signer
	if !encrypted {
		if key, err = ParseKeyPEM(data); err != nil {
			return false, fmt.Errorf("keys: importing %s: %w", name, err)
		}
	}
	if inToken, err := d.InToken(name); err != nil {
		return false, err
	} else if inToken {
		return false, fmt.Errorf("keys: %s names a key in a token: %w", d.RefPath(name), ErrKeyExists)
	}
	path := d.files().Path(name)
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	defer clear(old)
	if bytes.Equal(old, data) {
		return true, nil
	}
	if key != nil {
		if have, perr := ParseKeyPEM(old); perr == nil && pki.SamePublicKey(have.Public(), key.Public()) {
			return true, nil
		}
	}
	return false, fmt.Errorf("keys: %s holds another key: %w", path, ErrKeyExists)
}
