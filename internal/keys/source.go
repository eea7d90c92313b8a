package keys

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/scepter/scepter/internal/pki"
)

// Source creates, finds and opens private keys by name. A key is a
// crypto.Signer; an RSA key is also a crypto.Decrypter. Names are short
// words of the CA's layout ("root", "issuing", "ra", "ocsp-…"): a
// FileSource keeps the key called name in the file DIR/name.key, a PKCS#11
// token (see OpenPKCS11) as the key pair labelled with its prefix and name.
//
// The package ca reaches every key of the CA through a Source (Dir, which
// adds the directory's reference files for token keys), so that the same
// load, create and rollover code serves key files and an HSM.
type Source interface {
	// Create generates a new key of keyType (see Generate) under name and
	// returns it. It never replaces a key: an existing name is an error
	// wrapping ErrKeyExists.
	Create(name, keyType string) (crypto.Signer, error)
	// Open returns the key under name; an error wrapping ErrKeyNotFound
	// (and fs.ErrNotExist) when there is none.
	Open(name string) (crypto.Signer, error)
	// Has reports whether a key exists under name, without reading it.
	Has(name string) (bool, error)
	// Remove deletes the key under name (a file is removed; a token key is
	// destroyed). An error wrapping ErrKeyNotFound when there is none.
	Remove(name string) error
	// Where says where the key under name is kept, for messages: a file
	// path, or the token and the key's label.
	Where(name string) string
	// Exportable reports whether the source's keys can be copied out of it
	// (key files can; keys in a token never leave it).
	Exportable() bool
}

// Errors of Sources.
var (
	// ErrKeyNotFound: no key under that name. It wraps fs.ErrNotExist.
	ErrKeyNotFound = fmt.Errorf("key not found: %w", fs.ErrNotExist)
	// ErrKeyExists: Create was asked for a name that is taken.
	ErrKeyExists = errors.New("a key of that name exists already")
	// ErrNoToken: the key is in a PKCS#11 token that was not given.
	ErrNoToken = errors.New("the key is in a PKCS#11 token, and no token was given")
	// ErrNotExportable: the key cannot leave its token.
	ErrNotExportable = errors.New("the key is in a PKCS#11 token and cannot be exported")
)

// OpenOrCreate opens the key under name, or creates one of keyType when
// there is none; created says which.
func OpenOrCreate(s Source, name, keyType string) (key crypto.Signer, created bool, err error) {
	key, err = s.Open(name)
	if err == nil || !errors.Is(err, ErrKeyNotFound) {
		return key, false, err
	}
	key, err = s.Create(name, keyType)
	return key, err == nil, err
}

// FileSource keeps keys as PKCS#8 PEM files DIR/NAME.key with mode 0600,
// written atomically. Open refuses a file that group or others may access
// (CheckKeyFileMode). With a Passphrase, new keys are written encrypted
// (WriteEncryptedKeyFile, then read back) and encrypted keys are read with
// it; without one an encrypted key is refused with ErrEncryptedKey.
type FileSource struct {
	Dir        string
	Passphrase []byte
	// Generate makes the keys Create writes (nil: Generate).
	Generate func(keyType string) (crypto.Signer, error)
	// Iterations is the PBKDF2 count of the keys Create encrypts (0:
	// PBKDF2Iterations, what scepter writes). Only tests set it, to
	// MinPBKDF2Iterations where the cost is not what they check; a count
	// below that would not read back, so Create refuses it.
	Iterations int
}

// Files is the FileSource of dir, without a passphrase.
func Files(dir string) *FileSource { return &FileSource{Dir: dir} }

// Path is the file of the key called name.
func (s *FileSource) Path(name string) string { return filepath.Join(s.Dir, name+KeyFileExt) }

// KeyFileExt is the extension of key files.
const KeyFileExt = ".key"

func (s *FileSource) Has(name string) (bool, error) {
	_, err := os.Stat(s.Path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	return true, nil
}

func (s *FileSource) Open(name string) (crypto.Signer, error) {
	path := s.Path(name)
	if err := CheckKeyFileMode(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keys: %s: %w", path, ErrKeyNotFound)
		}
		return nil, err
	}
	return LoadKeyFileWithPassphrase(path, s.Passphrase)
}

// pbkdf2Iterations is the PBKDF2 count of the keys Create encrypts.
func (s *FileSource) pbkdf2Iterations() int { return iterationsOrDefault(s.Iterations) }

func (s *FileSource) Create(name, keyType string) (crypto.Signer, error) {
	path := s.Path(name)
	if ok, err := s.Has(name); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("keys: %s: %w", path, ErrKeyExists)
	}
	generate := s.Generate
	if generate == nil {
		generate = Generate
	}
	key, err := generate(keyType)
	if err != nil {
		return nil, err
	}
	if s.Passphrase == nil {
		if err := WriteKeyFile(path, key); err != nil {
			return nil, err
		}
		return key, nil
	}
	if len(s.Passphrase) == 0 {
		return nil, errors.New("keys: an empty passphrase protects nothing")
	}
	if err := checkIterations(s.pbkdf2Iterations()); err != nil {
		return nil, err
	}
	if err := writeEncryptedKeyFile(path, key, s.Passphrase, s.pbkdf2Iterations()); err != nil {
		return nil, err
	}
	// A key that cannot be decrypted is lost: read it back.
	back, err := LoadKeyFileWithPassphrase(path, s.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("keys: reading back the encrypted key %s: %w", path, err)
	}
	if !pki.SamePublicKey(back.Public(), key.Public()) {
		return nil, fmt.Errorf("keys: the encrypted key %s does not read back as the key written", path)
	}
	return key, nil
}

func (s *FileSource) Remove(name string) error {
	path := s.Path(name)
	if err := RemoveFile(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keys: %s: %w", path, ErrKeyNotFound)
		}
		return err
	}
	return nil
}

func (s *FileSource) Where(name string) string { return s.Path(name) }

func (s *FileSource) Exportable() bool { return true }

// Token is a Source whose keys live in a PKCS#11 token and never leave it
// (see OpenPKCS11). Besides names, it answers references: an RFC 7512 URI
// naming the token and the key's label, which a directory records (see
// Dir) to find the key again whatever the names of later keys.
type Token interface {
	Source
	// Ref is the reference of the key under name.
	Ref(name string) string
	// OpenRef opens the key a Ref names: the one key pair of its label;
	// when several have it, none (nothing tells which).
	OpenRef(ref string) (crypto.Signer, error)
	// OpenRefKey opens the key pair a Ref names whose public key is pub,
	// whatever other pairs share its label (another CA's, a test key); an
	// error when none or several have pub. With pub nil it is OpenRef.
	OpenRefKey(ref string, pub crypto.PublicKey) (crypto.Signer, error)
	// RemoveRef destroys the key a Ref names: the one key pair of its
	// label; when several have it, none (nothing tells which).
	RemoveRef(ref string) error
	// RemoveRefKey destroys the key pair a Ref names whose public key is
	// pub, and no other of that label (another CA's key may share it). An
	// error wrapping ErrKeyNotFound, saying whether other keys of the
	// label were left, when none matches.
	RemoveRefKey(ref string, pub crypto.PublicKey) error
	// Describe names the token and its module, for messages and logs.
	Describe() string
	// Close ends the token's sessions; its keys stop working.
	Close() error
}

// RefFileExt is the extension of reference files (see Dir).
const RefFileExt = ".pkcs11"

// Dir is the Source of the keys of one directory of the CA: key files
// DIR/NAME.key (a FileSource), and keys kept in a PKCS#11 token that a
// reference file DIR/NAME.pkcs11 names (the key's RFC 7512 URI, then its
// public key in PEM). New keys are made in Token when it is set (never
// over a key of the same label, see Create), as files otherwise. The
// reference files move with the directory, exactly as key files do, so a
// CA built in a temporary directory and renamed into place, or promoted by
// copying its files, keeps finding its keys.
//
// Without a Token, a key that a reference file names cannot be opened:
// Open fails with ErrNoToken, unless Unopened is set, when it returns a key
// whose public half is the recorded one and whose every use fails with
// ErrNoToken (for commands that only read certificates).
type Dir struct {
	Path       string
	Token      Token
	Passphrase []byte // of encrypted key files
	// Suffix is appended to a name to make the token label of a new key
	// (after the token's prefix): "" for the CA's first keys, labelled
	// PREFIX-issuing and PREFIX-ra; "-<id>" for keys made later (a
	// rollover, a renewed RA), so that labels never collide.
	Suffix   string
	Unopened bool
	// LabelPrefix goes before the name in the token label of a new key
	// (after the token's prefix): "ocsp-" for the OCSP responders' keys.
	LabelPrefix string
	// Generate makes the keys Create writes to files (nil: Generate).
	// Tests set it to hand out keys made beforehand (keys/keytest), as
	// RSA key generation is most of their CPU; a token makes its own.
	Generate func(keyType string) (crypto.Signer, error)
}

func (d *Dir) files() *FileSource {
	return &FileSource{Dir: d.Path, Passphrase: d.Passphrase, Generate: d.Generate}
}

// RefPath is the reference file of the key called name.
func (d *Dir) RefPath(name string) string { return filepath.Join(d.Path, name+RefFileExt) }

// InToken reports whether the key called name is one a reference file
// names (and so cannot be exported).
func (d *Dir) InToken(name string) (bool, error) {
	_, err := os.Stat(d.RefPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	return true, nil
}

func (d *Dir) Has(name string) (bool, error) {
	if ok, err := d.InToken(name); ok || err != nil {
		return ok, err
	}
	return d.files().Has(name)
}

func (d *Dir) Open(name string) (crypto.Signer, error) {
	inToken, err := d.InToken(name)
	if err != nil {
		return nil, err
	}
	if !inToken {
		return d.files().Open(name)
	}
	if ok, _ := d.files().Has(name); ok {
		return nil, fmt.Errorf("keys: both %s and %s exist; remove the one that does not belong to the certificate", d.files().Path(name), d.RefPath(name))
	}
	ref, pub, err := ReadRefFile(d.RefPath(name))
	if err != nil {
		return nil, err
	}
	if d.Token == nil {
		if d.Unopened && pub != nil {
			return unopenedKey(pub, fmt.Sprintf("%s (%s)", ref, d.RefPath(name))), nil
		}
		return nil, fmt.Errorf("keys: %s names %s: %w; give the token (--pkcs11-module, --pkcs11-token, --pkcs11-pin-file, or --pkcs11-uri)", d.RefPath(name), ref, ErrNoToken)
	}
	// By the recorded public key when there is one, so that another key
	// pair given the same label later does not stop the CA.
	key, err := d.Token.OpenRefKey(ref, pub)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", d.RefPath(name), err)
	}
	if pub != nil && !pki.SamePublicKey(key.Public(), pub) {
		return nil, fmt.Errorf("keys: the key %s in %s is not the one %s recorded: was it replaced in the token?", ref, d.Token.Describe(), d.RefPath(name))
	}
	return key, nil
}

// Create makes a new key: in the token (labelled with the token's prefix,
// name and Suffix), recorded in DIR/NAME.pkcs11; or, without a token, the
// file DIR/NAME.key.
//
// A token key that already has the label is refused (ErrKeyExists), never
// used: nothing tells whose it is, and taking it would have two CAs
// certify one key (another CA's sharing the token under the same prefix),
// or this one certify a key that someone else holds a reference to.
// Existing keys are reached only through reference files (Open), which
// record the public key they must have.
func (d *Dir) Create(name, keyType string) (crypto.Signer, error) {
	if ok, err := d.Has(name); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("keys: %s: %w", d.Where(name), ErrKeyExists)
	}
	if d.Token == nil {
		return d.files().Create(name, keyType)
	}
	label := d.LabelPrefix + name + d.Suffix
	key, err := d.Token.Create(label, keyType)
	if errors.Is(err, ErrKeyExists) {
		full := label
		if l, ok := d.Token.(interface{ label(string) string }); ok {
			full = l.label(label)
		}
		return nil, fmt.Errorf("%w; it is not taken over, so that no two CAs certify one key: if another CA uses it, give this one "+
			"a label prefix of its own (--pkcs11-key-prefix NAME, or object=NAME in --pkcs11-uri); if none does (an earlier "+
			"attempt that was killed halfway), remove that key pair from the token (pkcs11-tool --login --delete-object --type privkey "+
			"--label %q, then --type pubkey)", err, full)
	}
	if err != nil {
		return nil, err
	}
	ref := d.Token.Ref(label)
	if err := WriteRefFile(d.RefPath(name), ref, key.Public()); err != nil {
		// Nothing would name the new key, and its label would refuse
		// every later Create: destroy it (that pair only, by its public
		// key).
		if rerr := d.Token.RemoveRefKey(ref, key.Public()); rerr != nil {
			return nil, fmt.Errorf("%w; the key just made in the token, %s, could not be destroyed and is left there: %v", err, ref, rerr)
		}
		return nil, fmt.Errorf("%w (the key just made in the token, %s, was destroyed)", err, ref)
	}
	return key, nil
}

// Remove removes the key file, or the reference file of a token key (the
// key itself stays in the token).
func (d *Dir) Remove(name string) error {
	if ok, err := d.InToken(name); err != nil {
		return err
	} else if ok {
		return RemoveFile(d.RefPath(name))
	}
	return d.files().Remove(name)
}

// Destroy removes the key called name for good: the key file, or the key
// in the token (the pair with the public key the reference file records,
// never another of its label) and its reference file. Unlike Remove, it is
// for keys that no other directory names (an OCSP responder's replaced
// key), never for a generation of the CA, whose reference files are copied
// to previous/.
func (d *Dir) Destroy(name string) error {
	inToken, err := d.InToken(name)
	if err != nil {
		return err
	}
	if !inToken {
		return d.files().Remove(name)
	}
	if d.Token == nil {
		return fmt.Errorf("keys: %s: %w", d.RefPath(name), ErrNoToken)
	}
	ref, pub, err := ReadRefFile(d.RefPath(name))
	if err != nil {
		return err
	}
	// Only the key the reference recorded: the label alone may name
	// another CA's key too. A reference without a public key (written by
	// hand) names the label's only key.
	if pub != nil {
		err = d.Token.RemoveRefKey(ref, pub)
	} else {
		err = d.Token.RemoveRef(ref)
	}
	// A key no longer in the token is destroyed already; other keys of
	// its label are left.
	if err != nil && !errors.Is(err, ErrKeyNotFound) {
		return err
	}
	return RemoveFile(d.RefPath(name))
}

func (d *Dir) Where(name string) string {
	if ok, _ := d.InToken(name); ok {
		if ref, _, err := ReadRefFile(d.RefPath(name)); err == nil {
			return fmt.Sprintf("%s (%s)", d.RefPath(name), ref)
		}
		return d.RefPath(name)
	}
	return d.files().Path(name)
}

// Exportable: new keys are files when there is no token.
func (d *Dir) Exportable() bool { return d.Token == nil }

// WriteRefFile writes a reference file: the key's URI on the first line,
// then its public key as a PEM "PUBLIC KEY" block. Mode 0600, atomic.
func WriteRefFile(path, ref string, pub crypto.PublicKey) error {
	der, err := marshalPublic(pub)
	if err != nil {
		return fmt.Errorf("keys: %s: %w", path, err)
	}
	var b bytes.Buffer
	b.WriteString(ref + "\n")
	b.Write(pemPublic(der))
	return writeAtomic(path, b.Bytes(), 0o600)
}

// ReadRefFile reads a reference file (see WriteRefFile); pub is nil when
// the file records no public key.
func ReadRefFile(path string) (ref string, pub crypto.PublicKey, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("keys: %w", err)
	}
	line, rest, _ := strings.Cut(string(data), "\n")
	ref = strings.TrimSpace(line)
	if !strings.HasPrefix(ref, "pkcs11:") {
		return "", nil, fmt.Errorf("keys: %s does not start with a pkcs11: URI", path)
	}
	if pub, err = parsePublicPEM([]byte(rest)); err != nil {
		return "", nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	return ref, pub, nil
}

// prefixed is a Source whose names all carry a prefix.
type prefixed struct {
	Source
	prefix string
}

// WithPrefix is s with prefix put before every name.
func WithPrefix(s Source, prefix string) Source { return prefixed{s, prefix} }

func (p prefixed) Create(name, keyType string) (crypto.Signer, error) {
	return p.Source.Create(p.prefix+name, keyType)
}
func (p prefixed) Open(name string) (crypto.Signer, error) { return p.Source.Open(p.prefix + name) }
func (p prefixed) Has(name string) (bool, error)           { return p.Source.Has(p.prefix + name) }
func (p prefixed) Remove(name string) error                { return p.Source.Remove(p.prefix + name) }
func (p prefixed) Where(name string) string                { return p.Source.Where(p.prefix + name) }

// randomID is a random CKA_ID for a new token key.
func randomID() ([]byte, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return id, nil
}
