package keys

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/scepter/scepter/internal/filetrust"
)

// WriteKeyFile writes key as a PKCS#8 PEM file with mode 0600. The write is
// atomic: a temporary file in the same directory is synced and renamed over
// path, so a crash never leaves a half-written key. A missing parent
// directory is created with mode 0700 (an existing one is left as it is).
// Keys that cannot be exported (an HSM-backed signer) are refused.
func WriteKeyFile(path string, key crypto.Signer) error {
	der, err := marshalPKCS8(key)
	if err != nil {
		return fmt.Errorf("keys: encoding %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	defer clear(data)
	return writeAtomic(path, data, 0o600)
}

// WriteCertFile writes certs as concatenated PEM CERTIFICATE blocks with mode
// 0644, atomically (see WriteKeyFile).
func WriteCertFile(path string, certs ...*x509.Certificate) error {
	if len(certs) == 0 {
		return fmt.Errorf("keys: no certificate to write to %s", path)
	}
	var data []byte
	for _, c := range certs {
		if c == nil || len(c.Raw) == 0 {
			return fmt.Errorf("keys: empty certificate for %s", path)
		}
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return writeAtomic(path, data, 0o644)
}

// WriteFileAtomic writes data to path with mode perm, atomically (see
// WriteKeyFile): readers see the old content or the new, never a mix, and
// the file never has looser permissions than perm, even briefly. The CA
// uses it to copy key and certificate files byte for byte.
//
// It refuses a path that is there and is no regular file (a device such
// as /dev/null, a FIFO, a socket, a directory, or a symbolic link, even to
// a regular file): the new file is renamed into place, which would replace
// the device or the link itself rather than write to it.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm)
}

// NonRegularKind names what a file that is no regular file is ("a named
// pipe"), for messages that refuse to write over it.
func NonRegularKind(m fs.FileMode) string { return filetrust.NonRegularKind(m) }

// writeAtomic writes data to a temporary file beside path, syncs it, sets
// perm and renames it over path, then syncs the directory. It refuses a
// path that is there and is no regular file.
func writeAtomic(path string, data []byte, perm os.FileMode) (err error) {
	// Never over something that is no regular file (see WriteFileAtomic):
	// every writer of this package, certificates and keys included.
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("keys: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("keys: %s is %s, not a regular file: it is written as a new file renamed into place, which would replace it; name a regular file",
			path, NonRegularKind(fi.Mode()))
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600 already; set perm before any byte is
	// written so a key is never readable by others, even briefly.
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	syncDir(dir)
	return nil
}

// WriteNewFile creates path with mode perm and writes data to it, synced,
// refusing to replace an existing file. It is for copies made to places the
// operator names (removable media), where a temporary file and a chmod may
// not be possible: the mode is set when the file is created.
func WriteNewFile(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// RemoveFile removes path and syncs its directory, so the removal survives
// a crash.
func RemoveFile(path string) error {
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// CheckKeyFileMode refuses a private key file that its group or others may
// access (mode & 0o077 != 0), naming the chmod that fixes it: a key is only
// as safe as its file, and a key that others could read must be treated as
// copied. It follows symbolic links. On Windows, where the mode bits say
// nothing about access, it checks only that the file exists.
func CheckKeyFileMode(path string) error {
	err := checkSecretFileMode(path, "a private key")
	var m modeRefused
	if errors.As(err, &m) && m.readable {
		// A mode mended by chmod does not unread the key (r138).
		m.msg += "; and if another user may have read it, treat the key as compromised: replace it (an issuing CA's by `scepter ca rollover`) and revoke its certificate"
		return m
	}
	return err
}

// checkSecretFileMode is CheckKeyFileMode for any secret; what names it in
// the message ("a private key", "a PKCS#11 PIN").
func checkSecretFileMode(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return modeRefused{msg: fmt.Sprintf("keys: %s has mode %04o: group and others must have no access to %s; run: chmod 600 %s", path, m, what, filetrust.ShellQuote(path)),
			readable: m&0o044 != 0}
	}
	return nil
}

// ErrSecretFileMode marks a private key or PIN file refused because group
// or others may access it: a setting the operator mends with the chmod
// the message names, not a failure at run time (the CLI exits 2 for it).
var ErrSecretFileMode = errors.New("keys: group or others may access a secret file")

// modeRefused is a checkSecretFileMode refusal: its text is its own, and
// errors.Is sees ErrSecretFileMode.
type modeRefused struct {
	msg      string
	readable bool // group or others may read the file
}

func (e modeRefused) Error() string { return e.msg }
func (e modeRefused) Unwrap() error { return ErrSecretFileMode }

// syncDir makes a rename durable. Errors are ignored: some file systems do
// not support syncing a directory, and the data itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// LoadKeyFile loads a PEM private key: PKCS#8 ("PRIVATE KEY"), PKCS#1
// ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY", an "EC PARAMETERS" block
// before it is skipped). Encrypted keys are refused (ErrEncryptedKey; see
// LoadKeyFileWithPassphrase). It does not check the file's permissions
// (see CheckKeyFileMode).
func LoadKeyFile(path string) (crypto.Signer, error) {
	data, err := filetrust.ReadRegular(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer clear(data)
	key, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	return key, nil
}

// ParseKeyPEM parses the first private key in PEM data (see LoadKeyFile).
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	return parseKeyPEM(data, nil)
}

// parseKeyPEM parses the first private key in PEM data; an encrypted
// PKCS#8 key is decrypted with passphrase when it is not nil.
func parseKeyPEM(data, passphrase []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted {
			// MD5 as key derivation: not worth reading.
			return nil, errors.New("legacy encrypted PEM keys (Proc-Type) are not supported; convert with: openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000 -in KEY -out NEW")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case EncryptedKeyPEMType:
			if passphrase == nil {
				return nil, ErrEncryptedKey
			}
			der, derr := DecryptPKCS8(block.Bytes, passphrase)
			if derr != nil {
				return nil, derr
			}
			key, err = x509.ParsePKCS8PrivateKey(der)
			clear(der)
			if err != nil {
				// A wrong passphrase that happened to leave valid padding.
				return nil, ErrWrongPassphrase
			}
		default:
			return nil, fmt.Errorf("unexpected PEM block %q, want a private key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return s, nil
	}
}

// LoadCertFile loads every PEM CERTIFICATE block of path, in order; other
// block types are skipped. A file holding a single DER certificate is
// accepted too. At least one certificate is required. Its errors name the
// file, not this package: the commands give them to the user as they are,
// after the flag that named the file.
func LoadCertFile(path string) ([]*x509.Certificate, error) {
	data, err := filetrust.ReadRegular(path)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// ParseCertsPEM parses the certificates in PEM data (see LoadCertFile).
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	sawPEM := false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		sawPEM = true
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if !sawPEM && len(data) > 0 && data[0] == 0x30 {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate found")
	}
	return certs, nil
}
