package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca/lint"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// RA modes.
const (
	// RAModeSeparate: an RSA-2048 RA certificate issued by the issuing CA
	// (keyUsage digitalSignature|keyEncipherment, no EKU). The default; it
	// works with any CA key type.
	RAModeSeparate = "separate"
	// RAModeCA: the issuing CA itself acts as RA; needs an RSA CA key.
	RAModeCA = "ca"
)

// Files of the CA directory (dir/ca).
const (
	RootCertFile    = "root.crt"
	RootKeyFile     = "root.key"
	IssuingCertFile = "issuing.crt"
	IssuingKeyFile  = "issuing.key"
	RACertFile      = "ra.crt"
	RAKeyFile       = "ra.key"
	ChainFile       = "chain.pem" // issuing CA then root, for clients
	// RAModeFile records a generation's RA mode (RAModeSeparate or
	// RAModeCA), written when the generation is made: the mode is the
	// generation's, not that of the flags of whichever server loads it.
	RAModeFile = "ra-mode"
	// With the keys in a PKCS#11 token (InitOptions.Token), a reference
	// file takes the place of each key file: the key's RFC 7512 URI and
	// its public key (see keys.Dir). The root key is always a file.
	IssuingKeyRef = "issuing" + keys.RefFileExt
	RAKeyRef      = "ra" + keys.RefFileExt
)

// Names of the CA's keys in a keys.Source: a keys.Dir keeps the key called
// name in NAME.key, or in a token that NAME.pkcs11 names.
const (
	rootKeyName    = "root"
	issuingKeyName = "issuing"
	raKeyName      = "ra"
)

// caBackdate: CA and RA certificates start an hour early so that devices
// whose clocks lag can use them right after the CA is created.
const caBackdate = time.Hour

// InitOptions choose how a new CA is made. When a CA already exists, only
// Token, WrapKey, DiscardedNext and ReserveRA are honored (see LoadOrCreate); IgnoredOptions lists the
// rest.
type InitOptions struct {
	// KeyType of the root and issuing CA: "p256" (default), "p384",
	// "rsa2048", "rsa3072", "rsa4096".
	KeyType string
	// RAMode is RAModeSeparate (default) or RAModeCA, for a new CA. An
	// existing generation keeps the mode recorded in its ra-mode file
	// (RAModeFile); only a rollover chooses another.
	RAMode string
	// Organization is the O= of the CA and RA names (default "scepter").
	Organization string
	// Validities; defaults 20 years, 10 years and 2 years.
	RootValidity, IssuingValidity, RAValidity time.Duration
	// RootKeyPassphrase, when set, is called once when a new CA is
	// created, and root.key is written encrypted with the passphrase it
	// returns (see keys.WriteEncryptedKeyFile). It is never called for an
	// existing CA, so a passphrase file may be gone by then.
	RootKeyPassphrase func() ([]byte, error)
	// Token, when set, is the PKCS#11 token that holds the issuing CA and
	// RA keys: new ones are generated in it (never leaving it) and
	// recorded by reference files, and existing ones are opened in it. The
	// root key stays a file, which can be taken offline. Keys that are
	// files stay usable, so a CA of key files rolls over into a token.
	Token keys.Token
	// WrapKey, when set, is given every issuing CA and RA key as it is
	// loaded, and the authority signs and decrypts with the key it returns.
	// serve passes one that makes RSA operations through OpenSSL (see
	// keys/opensslrsa); it must return a key of the same public key.
	WrapKey func(crypto.Signer) crypto.Signer
	// DiscardedNext are the issuer IDs of next issuing CAs discarded
	// before their switch (the shared store's list): one of them in
	// DATA/ca/next is neither loaded nor promoted, even past its switch
	// time, at this load and every reload (see Authority.SetDiscardedNext).
	DiscardedNext []string
	// ReserveRA, when set, reserves the serial of every SCEP RA
	// certificate LoadOrCreate issues (a new CA's, and one issued again
	// for an ra.crt removed by hand) before the CA key signs it, as every
	// issuance does (store.ReserveSerial): a reservation that fails leaves
	// it unsigned and LoadOrCreate fails. serve passes its store's; nil
	// (a CA with no store) reserves nothing.
	ReserveRA ReserveFunc
	// GenerateKey makes the key files of a new CA and RA (nil:
	// keys.Generate); tests hand out keys made beforehand with it.
	GenerateKey func(keyType string) (crypto.Signer, error)
	// rootKeyIterations is the PBKDF2 count of an encrypted root.key (0:
	// keys.PBKDF2Iterations). Only this package's tests lower it, where
	// the cost is not what they check: 600,000 iterations take seconds
	// under the race detector.
	rootKeyIterations int
}

// wrapKey applies WrapKey, and keeps key when the wrapped one does not
// have its public key.
func (o InitOptions) wrapKey(key crypto.Signer) crypto.Signer {
	return keys.Wrapped(key, o.WrapKey)
}

// keysIn is the keys.Dir of a CA directory; suffix goes into the token
// labels of new keys (see keys.Dir.Suffix).
func (o InitOptions) keysIn(dir, suffix string, m loadMode) *keys.Dir {
	return &keys.Dir{Path: dir, Token: o.Token, Suffix: suffix, Unopened: m.unopened && o.Token == nil, Generate: o.GenerateKey}
}

const year = 365 * 24 * time.Hour

func (o InitOptions) withDefaults() InitOptions {
	if o.KeyType == "" {
		o.KeyType = keys.P256
	}
	if o.RAMode == "" {
		o.RAMode = RAModeSeparate
	}
	if o.Organization == "" {
		o.Organization = "scepter"
	}
	if o.RootValidity == 0 {
		o.RootValidity = 20 * year
	}
	if o.IssuingValidity == 0 {
		o.IssuingValidity = 10 * year
	}
	if o.RAValidity == 0 {
		o.RAValidity = 2 * year
	}
	return o
}

func (o InitOptions) validate() error {
	if !keys.ValidKeyType(o.KeyType) {
		return fmt.Errorf("ca: unknown CA key type %q (want one of %s)", o.KeyType, strings.Join(keys.KeyTypes, ", "))
	}
	if o.RAMode != RAModeSeparate && o.RAMode != RAModeCA {
		return fmt.Errorf("ca: unknown RA mode %q (want %q or %q)", o.RAMode, RAModeSeparate, RAModeCA)
	}
	if o.RootValidity < 0 || o.IssuingValidity < 0 || o.RAValidity < 0 {
		return errors.New("ca: validity periods must be positive")
	}
	return nil
}

// LoadOrCreate loads the CA kept in dir/ca, or creates it when dir/ca does
// not exist or is empty, reporting created=true.
//
// Layout: root.crt, root.key, issuing.crt, issuing.key, ra.crt, ra.key (in
// RA mode "separate") and chain.pem (issuing CA then root). Keys are PKCS#8
// PEM with mode 0600 (root.key encrypted when InitOptions.RootKeyPassphrase
// is set), dir/ca has mode 0700. A new CA is built in a temporary
// directory and renamed into place, so a crash never leaves half a CA.
//
// With InitOptions.Token the issuing CA and RA keys of a new CA are made in
// the token, labelled PREFIX-issuing and PREFIX-ra, and issuing.pkcs11 and
// ra.pkcs11 take the place of issuing.key and ra.key. A key that already
// has one of these labels is refused, never used (see keys.Dir.Create): it
// may be another CA's, sharing the token under the same prefix. A creation
// that fails destroys the token keys it made (see discardNewTokenKeys), so
// that they do not refuse the next start. Nodes of
// an existing CA find its keys through the reference files of its CA
// directory, which record their public keys. All keys go through
// keys.Dir; none of this package's code reads or writes a key file itself.
//
// Loading never reads root.key: only Rollover needs the root key, and it
// may be kept off the server (scepter ca root export --remove). A key file
// that group or others may access (root.key included, when present) is
// refused, naming the chmod that fixes it.
//
// An existing CA is reused as it is and checked: each key matches its
// certificate, the root is a self-signed CA, the issuing CA chains to it, the
// RA chains to the issuing CA and has an RSA key, and none is expired or not
// yet valid. Options that differ from what exists are ignored (see
// IgnoredOptions), RAMode included: each generation keeps the RA mode
// recorded in its ra-mode file when it was made (see generationRAMode), and
// in mode separate an RA certificate that is missing (removed to renew it)
// is issued again.
//
// A rollover's next CA in dir/ca/next is loaded and checked the same way
// (in the RA mode the rollover recorded), and promoted to current first
// when its switch time has come; previous issuing CAs in dir/ca/previous/<issuerID>/ are
// loaded without expiry checks (see Rollover for the layout).
func LoadOrCreate(dir string, opts InitOptions, clock pki.Clock) (a *Authority, created bool, err error) {
	if clock == nil {
		clock = pki.SystemClock{}
	}
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, false, err
	}
	caDir := filepath.Join(dir, "ca")
	present, err := inspect(caDir)
	if err != nil {
		return nil, false, err
	}
	if len(present) == 0 {
		err := create(dir, caDir, o, clock.Now())
		if err == nil {
			a, err := load(caDir, o, clock.Now(), loadMode{reserveRA: o.ReserveRA})
			return a, err == nil, err
		}
		// Another process may have created the CA at the same moment.
		if p, ierr := inspect(caDir); ierr != nil || !p[RootCertFile] {
			return nil, false, err
		}
	}
	m := loadMode{reserveRA: o.ReserveRA}
	if len(o.DiscardedNext) > 0 {
		m.discarded = func(id string) bool { return slices.Contains(o.DiscardedNext, id) }
	}
	if a, err = load(caDir, o, clock.Now(), m); err != nil {
		return nil, false, err
	}
	if len(o.DiscardedNext) > 0 {
		a.SetDiscardedNext(o.DiscardedNext)
	}
	return a, false, nil
}

// DiscardCreated undoes the CA that LoadOrCreate has just created in dir
// (created true) when its creation cannot be recorded: a change whose
// audit event cannot be written does not happen (r78: a first start that
// found the disk full after making the CA left it for the next start to
// take up, and the trail never said it was made). Nothing was issued with
// it but its RA certificate. dir/ca is moved aside and removed, and the
// keys made in a token are destroyed as a failed create's are, so that the
// next start makes a new CA and records it. The error returned is cause,
// saying what was done, or what is left to remove by hand.
func DiscardCreated(dir string, opts InitOptions, cause error) error {
	o := opts.withDefaults()
	caDir := filepath.Join(dir, "ca")
	rnd, err := randomID()
	if err != nil {
		return fmt.Errorf("%w; the CA this start made is left in %s: remove it before the next start (%v)", cause, caDir, err)
	}
	gone := filepath.Join(dir, ".ca-unrecorded-"+rnd)
	if err := os.Rename(caDir, gone); err != nil {
		return fmt.Errorf("%w; the CA this start made is left in %s: remove it before the next start (%v)", cause, caDir, err)
	}
	syncDir(dir)
	cause = discardNewTokenKeys(o.keysIn(gone, "", loadMode{}), cause)
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("%w; the CA this start made was set aside in %s, which could not be removed (%v): remove it", cause, gone, err)
	}
	return fmt.Errorf("%w; the CA this start made was removed, unrecorded: the next start makes a new one", cause)
}

// inspect lists which CA files exist in caDir. A missing caDir is empty; a
// caDir holding other files but none of ours is refused.
func inspect(caDir string) (map[string]bool, error) {
	entries, err := os.ReadDir(caDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	present := map[string]bool{}
	for _, e := range entries {
		switch e.Name() {
		case RootCertFile, RootKeyFile, IssuingCertFile, IssuingKeyFile, RACertFile, RAKeyFile, ChainFile, IssuingKeyRef, RAKeyRef:
			present[e.Name()] = true
		}
	}
	if len(present) == 0 && len(entries) > 0 {
		return nil, fmt.Errorf("ca: %s is not empty but holds no CA; refusing to create a CA there", caDir)
	}
	return present, nil
}

// create makes a new CA in a temporary directory beside caDir and renames
// it into place.
func create(dir, caDir string, o InitOptions, now time.Time) (err error) {
	if o.RAMode == RAModeCA && !strings.HasPrefix(o.KeyType, "rsa") {
		return fmt.Errorf("ca: RA mode %q needs an RSA CA key, but the key type is %q: SCEP clients encrypt to the RA with RSA; use RA mode %q or an RSA key type", RAModeCA, o.KeyType, RAModeSeparate)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".ca-new-*") // mode 0700
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after a successful rename

	linter, err := lint.New()
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	id, err := randomID()
	if err != nil {
		return err
	}
	now = now.UTC().Truncate(time.Second)

	var passphrase []byte
	if o.RootKeyPassphrase != nil {
		if passphrase, err = o.RootKeyPassphrase(); err != nil {
			return fmt.Errorf("ca: the root key passphrase: %w", err)
		}
		if len(passphrase) == 0 {
			return errors.New("ca: the root key passphrase is empty")
		}
		defer clear(passphrase)
	}
	// The root key is always a file (encrypted with the passphrase), so
	// that it can be taken offline; written here into the temporary
	// directory, read back when encrypted.
	rootKey, err := (&keys.FileSource{Dir: tmp, Passphrase: passphrase, Generate: o.GenerateKey, Iterations: o.rootKeyIterations}).Create(rootKeyName, o.KeyType)
	if err != nil {
		return fmt.Errorf("ca: generating the root key: %w", err)
	}
	rootTmpl, err := caTemplate(pkix.Name{CommonName: "scepter Root CA " + id, Organization: []string{o.Organization}},
		rootKey.Public(), now.Add(-caBackdate), now.Add(o.RootValidity))
	if err != nil {
		return err
	}
	rootTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	rootTmpl.MaxPathLen = 1
	root, err := signCert(rootTmpl, rootTmpl, rootKey.Public(), rootKey, linter)
	if err != nil {
		return fmt.Errorf("ca: creating the root certificate: %w", err)
	}

	kd := o.keysIn(tmp, "", loadMode{})
	// Runs before tmp is removed, whose reference files name the token
	// keys made so far.
	defer func() {
		if err != nil {
			err = discardNewTokenKeys(kd, err)
		}
	}()
	issKey, err := kd.Create(issuingKeyName, o.KeyType)
	if err != nil {
		return fmt.Errorf("ca: generating the issuing CA key: %w", err)
	}
	issCert, err := issuingCert(pkix.Name{CommonName: "scepter Issuing CA " + id, Organization: []string{o.Organization}},
		issKey.Public(), root.NotBefore, minTime(now.Add(o.IssuingValidity), root.NotAfter), root, rootKey, linter)
	if err != nil {
		return err
	}
	if o.RAMode == RAModeCA && !isRSA(issKey.Public()) {
		// A guard: the key is made of o.KeyType, checked above.
		return fmt.Errorf("ca: RA mode %q needs an RSA CA key, but %s is %s; use RA mode %q", RAModeCA, kd.Where(issuingKeyName), keys.KeyTypeOf(issKey.Public()), RAModeSeparate)
	}

	for _, f := range []struct {
		name string
		cert *x509.Certificate
	}{{RootCertFile, root}, {IssuingCertFile, issCert}} {
		if err := keys.WriteCertFile(filepath.Join(tmp, f.name), f.cert); err != nil {
			return fmt.Errorf("ca: %w", err)
		}
	}
	if err := keys.WriteCertFile(filepath.Join(tmp, ChainFile), issCert, root); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := writeRAMode(tmp, o.RAMode); err != nil {
		return err
	}
	if o.RAMode == RAModeSeparate {
		iss, err := NewIssuer(issCert, issKey, []*x509.Certificate{issCert, root})
		if err != nil {
			return err
		}
		if err := createRA(kd, iss, nil, o.RAValidity, now, o.ReserveRA); err != nil {
			return err
		}
	}
	// dir/ca may exist as an empty directory; Remove fails if it is not.
	if err := os.Remove(caDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ca: %w", err)
	}
	if err := os.Rename(tmp, caDir); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	syncDir(dir)
	return nil
}

// discardNewTokenKeys destroys the token keys that a failed create made,
// which the reference files of its temporary directory kd name: nothing
// else refers to them, and their labels would refuse every later start
// (keys.ErrKeyExists). Each is destroyed by the public key recorded when
// it was made, so that another pair under its label is left. The error
// returned is cause, saying what was destroyed and what could not be.
func discardNewTokenKeys(kd *keys.Dir, cause error) error {
	if kd.Token == nil {
		return cause // key files go with the temporary directory
	}
	var destroyed, left []string
	for _, name := range []string{issuingKeyName, raKeyName} {
		label := kd.Token.Where(kd.LabelPrefix + name + kd.Suffix)
		in, err := kd.InToken(name)
		if err == nil && !in {
			continue
		}
		var ref string
		var pub crypto.PublicKey
		if err == nil {
			ref, pub, err = keys.ReadRefFile(kd.RefPath(name))
		}
		if err == nil {
			err = kd.Token.RemoveRefKey(ref, pub)
		}
		if err != nil {
			left = append(left, fmt.Sprintf("%s (%v)", label, err))
			continue
		}
		destroyed = append(destroyed, label)
	}
	return withTokenCleanup(cause, destroyed, left, "will refuse the next start")
}

// issuingCert has the root sign an issuing CA certificate (path length 0,
// keyCertSign, cRLSign and digitalSignature), linted before it is returned.
func issuingCert(name pkix.Name, pub crypto.PublicKey, notBefore, notAfter time.Time, root *x509.Certificate, rootKey crypto.Signer, linter *lint.Linter) (*x509.Certificate, error) {
	tmpl, err := caTemplate(name, pub, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.MaxPathLen = 0
	tmpl.MaxPathLenZero = true
	c, err := signCert(tmpl, root, pub, rootKey, linter)
	if err != nil {
		return nil, fmt.Errorf("ca: creating the issuing CA certificate: %w", err)
	}
	return c, nil
}

// createRA issues a separate RA certificate with the issuing CA and makes
// the RA key in kd (ra.key, or a token key and ra.pkcs11; unless key is an
// existing RA key), then writes ra.crt beside it. The RA certificate goes
// through the same lint-before-sign pipeline as any other, its serial
// reserved with reserve before the CA key signs (nil: not reserved).
func createRA(kd *keys.Dir, iss *Issuer, key crypto.Signer, validity time.Duration, now time.Time, reserve ReserveFunc) error {
	caDir := kd.Path
	if key == nil {
		var err error
		if key, err = kd.Create(raKeyName, keys.RSA2048); err != nil {
			return fmt.Errorf("ca: generating the RA key: %w", err)
		}
		// A token key of that label may have been there already.
		if err := checkRAKey(kd.Where(raKeyName), key); err != nil {
			return err
		}
	}
	id, err := randomID()
	if err != nil {
		return err
	}
	name := pkix.Name{CommonName: "scepter SCEP RA " + id, Organization: iss.Cert.Subject.Organization}
	raw, err := asn1MarshalName(name)
	if err != nil {
		return err
	}
	bits := key.Public().(*rsa.PublicKey).N.BitLen()
	prof := pki.Profile{
		Name:     "scep-ra",
		Validity: validity,
		Backdate: caBackdate,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		Keys:     pki.KeyPolicy{RSAMinBits: 2048, RSAMaxBits: max(bits, 2048)},
	}
	if reserve == nil {
		reserve = func(context.Context, string, string, []byte) (bool, error) { return false, nil }
	}
	cert, err := iss.Issue(context.Background(), Request{RawSubject: raw, PublicKey: key.Public(), Profile: prof}, now, reserve)
	if err != nil {
		return fmt.Errorf("ca: issuing the RA certificate: %w", err)
	}
	if err := keys.WriteCertFile(filepath.Join(caDir, RACertFile), cert); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

// loadMode says how load treats the disk.
type loadMode struct {
	// detectRA takes each generation's RA mode from its files (RA files
	// present or a non-RSA CA key: separate; otherwise ca) instead of
	// InitOptions.RAMode: for commands that do not know the server's flags.
	detectRA bool
	// readOnly changes nothing on disk: a due next CA is not promoted
	// (Active still switches to it), no RA certificate is issued and
	// chain.pem is not rewritten.
	readOnly bool
	// unopened stands in for keys in a token when no token was given
	// (keys.Dir.Unopened): their certificates load, their use fails.
	unopened bool
	// discarded says whether a next issuing CA was discarded on another
	// node (Authority.SetDiscardedNext): load then leaves it aside, as if
	// DATA/ca/next were absent. Nil: none is.
	discarded func(id string) bool
	// reserveRA reserves the serial of an RA certificate load issues
	// before the CA key signs it (Authority.SetRAReserve); nil: none is.
	reserveRA ReserveFunc
}

// load reads and checks an existing CA: root, current generation, the next
// one (promoted first when its switch time has come) and previous ones.
func load(caDir string, o InitOptions, now time.Time, m loadMode) (*Authority, error) {
	present, err := inspect(caDir)
	if err != nil {
		return nil, err
	}
	// Taken before load writes anything: what load itself changes costs
	// one more Reload, never a missed one.
	disk, _ := diskState(caDir) // a file it cannot read, the next Reload names
	var missing []string
	// Not root.key: it may be offline, and loading never needs it.
	for _, f := range []string{RootCertFile, IssuingCertFile, IssuingKeyFile} {
		if !present[f] && !(f == IssuingKeyFile && present[IssuingKeyRef]) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("ca: incomplete CA in %s: %s missing; restore from a backup (an existing CA is never overwritten)", caDir, strings.Join(missing, ", "))
	}
	if present[RootKeyFile] {
		// Its mode only: the key itself is not read here.
		if err := keys.CheckKeyFileMode(filepath.Join(caDir, RootKeyFile)); err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
	}
	root, err := loadCert(caDir, RootCertFile)
	if err != nil {
		return nil, err
	}
	if !root.BasicConstraintsValid || !root.IsCA || !bytes.Equal(root.RawIssuer, root.RawSubject) || root.CheckSignatureFrom(root) != nil {
		return nil, fmt.Errorf("ca: %s is not a self-signed CA certificate", filepath.Join(caDir, RootCertFile))
	}
	if err := checkTime(caDir, RootCertFile, root, now); err != nil {
		return nil, err
	}

	nextDir := filepath.Join(caDir, NextDir)
	switchAt, hasNext, err := readSwitchAt(nextDir)
	if err != nil {
		return nil, err
	}
	if hasNext && m.discarded != nil {
		if c, err := loadCert(nextDir, IssuingCertFile); err == nil && m.discarded(issuerID(c)) {
			hasNext = false
		}
	}
	if hasNext && !now.Before(switchAt) && !m.readOnly {
		if err := promoteWith(caDir, root, o, m); err != nil {
			return nil, err
		}
		hasNext = false
	}
	if !m.readOnly {
		cleanup(caDir)
		if err := finishRARenewal(caDir); err != nil {
			return nil, err
		}
	}

	iss, ra, err := loadGeneration(caDir, root, o, now, m)
	if err != nil {
		return nil, err
	}
	since, err := readCurrentSince(caDir)
	if err != nil {
		return nil, err
	}
	var next *Issuer
	var nextRA *pki.RA
	if hasNext {
		if next, nextRA, err = loadGeneration(nextDir, root, o, now, m); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				// Removing it would not undo the rollover the store
				// recorded: the files are there, only not ours.
				return nil, fmt.Errorf("%w (the next CA of a rollover; a command run as root likely left it: give it to the user scepter runs as, as root: chown -R USER %s)", err, nextDir)
			}
			return nil, fmt.Errorf("%w (the next CA of a rollover; remove %s to discard it)", err, nextDir)
		}
		if next.ID == iss.ID {
			return nil, fmt.Errorf("ca: %s holds the current issuing CA; remove %s", nextDir, nextDir)
		}
	}
	previous, previousRAs, err := loadPrevious(caDir, root, iss.ID, o, m)
	if err != nil {
		return nil, err
	}
	a, err := NewAuthority(root, iss, ra)
	if err != nil {
		return nil, err
	}
	s := newIssuerSet(root, iss, ra, next, nextRA, switchAt, previous, previousRAs)
	s.currentSince = since
	if s.retiredRAs, err = loadRetiredRAs(caDir, root, s.all, []*pki.RA{ra, nextRA}, o, now, m); err != nil {
		return nil, err
	}
	a.state.Store(s)
	a.caDir, a.opts, a.mode, a.disk = caDir, o, m, disk
	return a, nil
}

// readCurrentSince reads caDir/switch-at, the switch time at which the
// current generation became current; zero when there is none (the first
// generation, or one promoted before the time was kept).
func readCurrentSince(caDir string) (time.Time, error) {
	path := filepath.Join(caDir, SwitchAtFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("ca: %w", err)
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}, fmt.Errorf("ca: %s (when the current issuing CA became current): %w", path, err)
	}
	return t.UTC(), nil
}

// loadGeneration loads and checks the issuing CA in dir (dir/ca or
// dir/ca/next) and its RA, issuing the RA certificate when the RA mode asks
// for one that is missing.
func loadGeneration(dir string, root *x509.Certificate, o InitOptions, now time.Time, m loadMode) (*Issuer, *pki.RA, error) {
	kd := o.keysIn(dir, "", m)
	issCert, issKey, err := loadPair(dir, IssuingCertFile, kd, issuingKeyName)
	if err != nil {
		return nil, nil, err
	}
	issKey = o.wrapKey(issKey)
	if err := checkTime(dir, IssuingCertFile, issCert, now); err != nil {
		return nil, nil, err
	}
	if err := verifyChain(issCert, root, nil, now); err != nil {
		return nil, nil, fmt.Errorf("ca: %s does not chain to %s: %w", filepath.Join(dir, IssuingCertFile), RootCertFile, err)
	}
	if !issCert.IsCA {
		return nil, nil, fmt.Errorf("ca: %s is not a CA certificate", filepath.Join(dir, IssuingCertFile))
	}
	iss, err := NewIssuer(issCert, issKey, []*x509.Certificate{issCert, root})
	if err != nil {
		return nil, nil, err
	}
	present := map[string]bool{}
	if _, err := os.Stat(filepath.Join(dir, RACertFile)); err == nil {
		present[RACertFile] = true
	}
	// The RA key: ra.key, or ra.pkcs11 for a key in a token.
	if ok, err := kd.Has(raKeyName); err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	} else if ok {
		present[RAKeyFile] = true
	}
	raMode, err := generationRAMode(dir, present, issKey, o, m)
	if err != nil {
		return nil, nil, err
	}

	var ra *pki.RA
	switch raMode {
	case RAModeCA:
		if _, ok := issKey.(crypto.Decrypter); !ok || !isRSA(issKey.Public()) {
			return nil, nil, fmt.Errorf("ca: RA mode %q needs an RSA CA key, but the existing CA key is %s (in %s); use RA mode %q", RAModeCA, keys.KeyTypeOf(issKey.Public()), dir, RAModeSeparate)
		}
		ra = &pki.RA{Cert: issCert, Key: issKey, Chain: iss.Chain, IsCA: true}
	default:
		switch {
		case present[RACertFile] && !present[RAKeyFile]:
			return nil, nil, fmt.Errorf("ca: %s exists without %s; remove %s to have a new RA certificate issued", RACertFile, RAKeyFile, filepath.Join(dir, RACertFile))
		case !present[RACertFile] && m.readOnly:
			return nil, nil, fmt.Errorf("ca: %s has no RA certificate (%s); start the server to have one issued", dir, RACertFile)
		case !present[RACertFile]:
			var key crypto.Signer
			if present[RAKeyFile] {
				// An RA creation that stopped between the key and the
				// certificate, or a certificate removed to renew it.
				if key, err = kd.Open(raKeyName); err != nil {
					return nil, nil, fmt.Errorf("ca: %w", err)
				}
				if err := checkRAKey(kd.Where(raKeyName), key); err != nil {
					return nil, nil, err
				}
			}
			id, err := randomID()
			if err != nil {
				return nil, nil, err
			}
			// A new RA key in a token gets a label of its own.
			if err := createRA(o.keysIn(dir, "-"+id, m), iss, key, o.RAValidity, now, m.reserveRA); err != nil {
				return nil, nil, err
			}
		}
		raCert, raKey, err := loadPair(dir, RACertFile, kd, raKeyName)
		if err != nil {
			return nil, nil, err
		}
		raKey = o.wrapKey(raKey)
		if err := checkRAKey(kd.Where(raKeyName), raKey); err != nil {
			return nil, nil, err
		}
		if err := checkTime(dir, RACertFile, raCert, now); err != nil {
			if raCert.NotAfter.Before(now) {
				return nil, nil, fmt.Errorf("%w; remove %s and %s to have a new RA certificate issued", err, RACertFile, RAKeyFile)
			}
			return nil, nil, err
		}
		if err := verifyChain(raCert, root, issCert, now); err != nil || !bytes.Equal(raCert.RawIssuer, issCert.RawSubject) {
			return nil, nil, fmt.Errorf("ca: %s was not issued by %s (%v); remove %s and %s to have a new RA certificate issued", filepath.Join(dir, RACertFile), IssuingCertFile, err, RACertFile, RAKeyFile)
		}
		if raCert.IsCA {
			return nil, nil, fmt.Errorf("ca: %s must not be a CA certificate", filepath.Join(dir, RACertFile))
		}
		if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; raCert.KeyUsage&want != want {
			return nil, nil, fmt.Errorf("ca: %s lacks keyUsage digitalSignature and keyEncipherment, which SCEP clients check", filepath.Join(dir, RACertFile))
		}
		ra = &pki.RA{Cert: raCert, Key: raKey, Chain: []*x509.Certificate{raCert, issCert, root}}
	}

	// chain.pem is derived: rewrite it when missing or stale.
	if !m.readOnly {
		if err := writeChain(dir, issCert, root); err != nil {
			return nil, nil, err
		}
	}
	return iss, ra, nil
}

// generationRAMode is the RA mode of the generation in dir: the one its
// ra-mode file records. A generation made before the file existed gets
// the mode its files show (detectRAMode); when they cannot tell (an RSA CA
// key and no RA file: mode ca, or an RA removed to renew it), a next CA is
// in mode ca (a rollover in mode separate always leaves its RA files) and
// the current one in o.RAMode, as before the file existed. A server's load
// (neither m.readOnly nor m.detectRA) then records that mode, so that no
// later start with other flags changes it.
func generationRAMode(dir string, present map[string]bool, issKey crypto.Signer, o InitOptions, m loadMode) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, RAModeFile))
	switch {
	case err == nil:
		mode := strings.TrimSpace(string(b))
		if mode != RAModeSeparate && mode != RAModeCA {
			return "", fmt.Errorf("ca: %s holds %q, want %q or %q", filepath.Join(dir, RAModeFile), mode, RAModeSeparate, RAModeCA)
		}
		return mode, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("ca: %w", err)
	}
	mode := detectRAMode(present, issKey)
	if mode == RAModeCA && !m.detectRA && filepath.Base(dir) != NextDir {
		mode = o.RAMode
	}
	if !m.readOnly && !m.detectRA {
		if err := writeRAMode(dir, mode); err != nil {
			return "", err
		}
	}
	return mode, nil
}

// writeRAMode records mode in dir/ra-mode.
func writeRAMode(dir, mode string) error {
	if err := keys.WriteFileAtomic(filepath.Join(dir, RAModeFile), []byte(mode+"\n"), 0o644); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

// detectRAMode is the RA mode the files of a generation show: separate
// when an RA file exists or the CA key cannot act as RA, otherwise ca.
func detectRAMode(present map[string]bool, issKey crypto.Signer) string {
	if present[RACertFile] || present[RAKeyFile] || !isRSA(issKey.Public()) {
		return RAModeSeparate
	}
	return RAModeCA
}

// writeChain writes dir/chain.pem (the issuing CA then the root) unless it
// already holds exactly that.
func writeChain(dir string, issCert, root *x509.Certificate) error {
	want := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issCert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})...)
	if got, err := os.ReadFile(filepath.Join(dir, ChainFile)); err != nil || !bytes.Equal(got, want) {
		if err := keys.WriteCertFile(filepath.Join(dir, ChainFile), issCert, root); err != nil {
			return fmt.Errorf("ca: %w", err)
		}
	}
	return nil
}

// checkRAKey checks the RA key found at where (a file, or a token key).
func checkRAKey(where string, key crypto.Signer) error {
	if _, ok := key.(crypto.Decrypter); !ok || !isRSA(key.Public()) {
		return fmt.Errorf("ca: %s must be an RSA key (SCEP clients encrypt to the RA with RSA), found %s", where, keys.KeyTypeOf(key.Public()))
	}
	if n := key.Public().(*rsa.PublicKey).N.BitLen(); n < 2048 {
		return fmt.Errorf("ca: %s is an RSA key of %d bits, at least 2048 are needed", where, n)
	}
	return nil
}

// pairRereads bounds how often loadPair reads a pair again that did not
// match, and pairRereadWait how long it waits before the first of them
// (doubled each time: 0.75 s in all).
const (
	pairRereads    = 4
	pairRereadWait = 50 * time.Millisecond
)

// loadPair loads a certificate file holding exactly one certificate and
// the key, from src, that must match it. A server promoting its next CA
// writes the key, then the certificate (installGeneration), each file
// atomically but not the two at once: a command reading the directory
// meanwhile (`requests approve` at the switch) can find the new key
// beside the old certificate, or the other way round. So a pair that does
// not match is read again a few times, briefly, before it is refused.
func loadPair(caDir, certName string, src keys.Source, keyName string) (*x509.Certificate, crypto.Signer, error) {
	wait := pairRereadWait
	for reread := 0; ; reread++ {
		cert, err := loadCert(caDir, certName)
		if err != nil {
			return nil, nil, err
		}
		key, err := src.Open(keyName)
		if err != nil {
			return nil, nil, fmt.Errorf("ca: %w", err)
		}
		if pki.SamePublicKey(key.Public(), cert.PublicKey) {
			return cert, key, nil
		}
		if reread == pairRereads {
			return nil, nil, fmt.Errorf("ca: %s does not match %s: the key belongs to another certificate", src.Where(keyName), certName)
		}
		time.Sleep(wait)
		wait *= 2
	}
}

// loadCert loads a certificate file holding exactly one certificate.
func loadCert(caDir, certName string) (*x509.Certificate, error) {
	certs, err := keys.LoadCertFile(filepath.Join(caDir, certName))
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("ca: %s holds %d certificates, want exactly one", filepath.Join(caDir, certName), len(certs))
	}
	return certs[0], nil
}

func checkTime(caDir, name string, c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("ca: %s is not valid before %s (is the system clock right?)", filepath.Join(caDir, name), c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("ca: %s expired on %s", filepath.Join(caDir, name), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyChain checks c against root (through intermediate when set) at now.
func verifyChain(c, root, intermediate *x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	if intermediate != nil {
		inter.AddCert(intermediate)
	}
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// caTemplate is the common part of the root and issuing CA templates.
func caTemplate(name pkix.Name, pub crypto.PublicKey, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}, nil
}

// signCert signs a CA certificate with the default algorithm of the
// signer's key and lints the result before anything is written.
func signCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer, l *lint.Linter) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	if err := l.Check(der); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// IgnoredOptions describes the options that differ from the loaded CA and
// therefore had no effect (zero options mean "default" and never differ).
func (a *Authority) IgnoredOptions(opts InitOptions) []string {
	var out []string
	if opts.RAMode != "" {
		have := RAModeSeparate
		if a.RA.IsCA {
			have = RAModeCA
		}
		if have != opts.RAMode {
			out = append(out, fmt.Sprintf("RA mode %q ignored: the current issuing CA's RA mode is %q; a rollover changes it (scepter ca rollover --scep-ra %s)", opts.RAMode, have, opts.RAMode))
		}
	}
	if opts.KeyType != "" {
		if have := keys.KeyTypeOf(a.Issuer.Cert.PublicKey); have != opts.KeyType {
			out = append(out, fmt.Sprintf("key type %q ignored: the existing CA key is %s", opts.KeyType, have))
		}
	}
	if opts.Organization != "" {
		if have := a.Root.Subject.Organization; len(have) != 1 || have[0] != opts.Organization {
			out = append(out, fmt.Sprintf("organization %q ignored: the existing CA has %q", opts.Organization, strings.Join(have, ", ")))
		}
	}
	check := func(what string, want time.Duration, c *x509.Certificate) {
		if want == 0 {
			return
		}
		have := c.NotAfter.Sub(c.NotBefore) - caBackdate
		if math.Abs(float64(have-want)) > float64(24*time.Hour) {
			out = append(out, fmt.Sprintf("%s validity %s ignored: the existing certificate is valid until %s", what, want, c.NotAfter.UTC().Format(time.DateOnly)))
		}
	}
	check("root", opts.RootValidity, a.Root)
	check("issuing CA", opts.IssuingValidity, a.Issuer.Cert)
	if !a.RA.IsCA {
		check("RA", opts.RAValidity, a.RA.Cert)
	}
	return out
}

func isRSA(pub crypto.PublicKey) bool {
	_, ok := pub.(*rsa.PublicKey)
	return ok
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// randomID is the short random part of CA names, so that two installations
// never issue under the same name.
func randomID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("ca: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func asn1MarshalName(n pkix.Name) ([]byte, error) {
	return asn1.Marshal(n.ToRDNSequence())
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
