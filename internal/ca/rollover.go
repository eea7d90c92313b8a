package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca/lint"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// CA rollover layout, inside dir/ca:
//
//	next/issuing.crt, next/issuing.key    the next issuing CA (same root)
//	next/ra.crt, next/ra.key              its RA (RA mode separate)
//	next/chain.pem                        next issuing CA then root
//	next/ra-mode                          its RA mode (separate or ca)
//	next/switch-at                        when it becomes current (RFC 3339)
//	switch-at                             when the current generation became
//	                                      current (absent for the first)
//	previous/<issuerID>/...               a former current generation (same
//	                                      files as dir/ca minus the root)
//
// A start (LoadOrCreate) at or after the switch time promotes next/ to
// current: the current generation is first copied to previous/<issuerID>/
// (built in a temporary directory and renamed), then the files of next/ are
// copied over the current ones one by one, each atomically, issuing.crt
// last, and next/ is renamed away and removed. Every step can be repeated,
// so a start interrupted half-way finishes the promotion the next time.
// The switch time goes along: a store that never learned of the rollover
// (no server ran before the switch) is told the generation's schedule from
// it (Authority.ActiveSince).
//
// Keys in a PKCS#11 token are never moved or relabelled: their reference
// files (issuing.pkcs11, ra.pkcs11) are copied like key files, so a key
// follows its generation from next/ to dir/ca to previous/<issuerID>/.
const (
	NextDir      = "next"
	PreviousDir  = "previous"
	SwitchAtFile = "switch-at"
)

// ErrNoCA is returned by Load and Rollover when the data directory holds
// no CA.
var ErrNoCA = errors.New("ca: no CA in the data directory")

// RolloverOptionError is a rollover refused for one of its options (a
// switch time not ahead, an RA mode the key type cannot have): the
// command line names its flag and calls it a usage error.
type RolloverOptionError struct {
	Option string // "SwitchAt", "RAMode"
	Err    error
}

func (e *RolloverOptionError) Error() string { return e.Err.Error() }
func (e *RolloverOptionError) Unwrap() error { return e.Err }

// generationFiles are the files of one issuing generation and their modes;
// key names the key (in a keys.Dir) that a key or reference file holds.
var generationFiles = []struct {
	name string
	perm os.FileMode
	key  string
}{
	// The order is the promotion's: keys first, issuing.crt last, so that
	// a current issuing.crt equal to next's means every other file is in
	// place.
	{IssuingKeyFile, 0o600, issuingKeyName}, {IssuingKeyRef, 0o600, issuingKeyName}, {RAKeyFile, 0o600, raKeyName}, {RAKeyRef, 0o600, raKeyName},
	{RACertFile, 0o644, ""}, {ChainFile, 0o644, ""}, {SwitchAtFile, 0o644, ""}, {RAModeFile, 0o644, ""}, {IssuingCertFile, 0o644, ""},
}

// generationKeys are the keys of one generation, in the promotion's order.
var generationKeys = []string{issuingKeyName, raKeyName}

// RolloverOptions choose the next issuing CA.
type RolloverOptions struct {
	// KeyType of the next issuing CA key; default: that of the current one.
	KeyType string
	// SwitchAt is when the next issuing CA becomes current. Required; it
	// must be in the future and before the current issuing CA expires.
	// It is kept to the second.
	SwitchAt time.Time
	// RAMode of the next generation (RAModeSeparate or RAModeCA); default:
	// that of the current one as it is on disk.
	RAMode string
	// Validities; defaults 10 years (counted from SwitchAt, bounded by the
	// root) and 2 years (from now).
	IssuingValidity, RAValidity time.Duration
	// RootKeyFile holds the root key when it is kept off the CA directory
	// (scepter ca root export --remove); default dir/ca/root.key.
	RootKeyFile string
	// RootKeyPassphrase decrypts an encrypted root key file; nil when none
	// was given (an encrypted key is then ErrRootKeyEncrypted).
	RootKeyPassphrase []byte
	// Token, when set, is the PKCS#11 token in which the next issuing CA
	// and RA keys are made (labelled PREFIX-issuing-<id> and
	// PREFIX-ra-<id>). Without it they are files; a CA whose current keys
	// are in a token refuses to roll over without it.
	Token keys.Token
	// ReserveRA, when set, reserves the next RA certificate's serial (RA
	// mode separate) before the next issuing CA's key signs it, as every
	// issuance does (store.ReserveSerial): a reservation that fails
	// leaves it unsigned and the rollover fails, having made nothing.
	// nil reserves nothing.
	ReserveRA ReserveFunc
	// GenerateKey makes the key files of the next issuing CA and RA (nil:
	// keys.Generate), as InitOptions.GenerateKey those of a new CA.
	GenerateKey func(keyType string) (crypto.Signer, error)
}

// Errors about the root key, which only a rollover (and an export) reads.
var (
	// ErrRootKeyMissing: dir/ca/root.key does not exist and no other file
	// was named.
	ErrRootKeyMissing = errors.New("ca: the root key is not on this server")
	// ErrRootKeyEncrypted: the root key file is encrypted and no
	// passphrase was given.
	ErrRootKeyEncrypted = errors.New("ca: the root key is encrypted and no passphrase was given")
	// ErrRootKeyMismatch: the key is not the key of root.crt.
	ErrRootKeyMismatch = errors.New("ca: the key is not the root key of this CA")
)

// Rollover creates the next issuing CA of the CA in dir/ca: a new key,
// certified by the same root, valid from now (so at or before SwitchAt),
// and a new RA: an RSA-2048 RA certificate issued by the new issuing CA
// (RA mode separate) or the new issuing CA itself (mode ca, RSA keys
// only). It is built in a temporary directory and renamed to dir/ca/next,
// with the switch time in dir/ca/next/switch-at.
//
// The CA is loaded as a start would load it (a next CA whose switch time
// has passed is promoted first); a next CA that is still pending is never
// replaced: Rollover refuses, naming the command that discards it.
// It returns the next issuer and RA.
//
// The root key is read here and nowhere else: from opts.RootKeyFile, or
// dir/ca/root.key, decrypted with opts.RootKeyPassphrase when encrypted,
// and it must match root.crt (ErrRootKeyMissing, ErrRootKeyEncrypted,
// keys.ErrWrongPassphrase, ErrRootKeyMismatch otherwise). It is read after
// the options are checked, before anything is made.
//
// With a token, a rollover that fails after making keys there destroys
// them (destroyNewTokenKeys): nothing else would ever name them, and the
// error says which were destroyed and which could not be. The RA key is
// made before the root signs anything, so that a token too full for it
// fails before a certificate exists.
func Rollover(dir string, opts RolloverOptions, clock pki.Clock) (next *Issuer, nextRA *pki.RA, err error) {
	if clock == nil {
		clock = pki.SystemClock{}
	}
	now := clock.Now()
	caDir := filepath.Join(dir, "ca")
	present, err := inspect(caDir)
	if err != nil {
		return nil, nil, err
	}
	if !present[RootCertFile] {
		return nil, nil, fmt.Errorf("%w (%s)", ErrNoCA, caDir)
	}
	base := InitOptions{Token: opts.Token, GenerateKey: opts.GenerateKey}.withDefaults()
	a, err := load(caDir, base, now, loadMode{detectRA: true, unopened: true})
	if err != nil {
		return nil, nil, err
	}
	if opts.Token == nil {
		if in, err := (&keys.Dir{Path: caDir}).InToken(issuingKeyName); err != nil {
			return nil, nil, fmt.Errorf("ca: %w", err)
		} else if in {
			return nil, nil, fmt.Errorf("ca: %w: the current issuing CA key is in a PKCS#11 token (%s); give the token (--pkcs11-…) so that the next CA's keys are made there too", keys.ErrNoToken, filepath.Join(caDir, IssuingKeyRef))
		}
	}
	nextDir := filepath.Join(caDir, NextDir)
	if at, ok := a.SwitchAt(); ok {
		return nil, nil, errNextExists(nextDir, at)
	}
	cur, curRA := a.Active(now)

	keyType := opts.KeyType
	if keyType == "" {
		keyType = keys.KeyTypeOf(cur.Cert.PublicKey)
	}
	if !keys.ValidKeyType(keyType) {
		return nil, nil, fmt.Errorf("ca: cannot make a next CA key of type %q (want one of %s)", keyType, strings.Join(keys.KeyTypes, ", "))
	}
	raMode := opts.RAMode
	if raMode == "" {
		raMode = RAModeSeparate
		if curRA.IsCA {
			raMode = RAModeCA
		}
	}
	if raMode != RAModeSeparate && raMode != RAModeCA {
		return nil, nil, fmt.Errorf("ca: unknown RA mode %q (want %q or %q)", raMode, RAModeSeparate, RAModeCA)
	}
	if raMode == RAModeCA && !strings.HasPrefix(keyType, "rsa") {
		return nil, nil, &RolloverOptionError{"RAMode", fmt.Errorf("ca: RA mode %q needs an RSA CA key, but the next CA key type is %q; use RA mode %q or an RSA key type", RAModeCA, keyType, RAModeSeparate)}
	}
	issValidity, raValidity := opts.IssuingValidity, opts.RAValidity
	if issValidity == 0 {
		issValidity = base.IssuingValidity
	}
	if raValidity == 0 {
		raValidity = base.RAValidity
	}
	if issValidity < 0 || raValidity < 0 {
		return nil, nil, errors.New("ca: validity periods must be positive")
	}
	switchAt := opts.SwitchAt.UTC().Truncate(time.Second)
	switch {
	case opts.SwitchAt.IsZero():
		return nil, nil, errors.New("ca: a rollover needs a switch time")
	case !switchAt.After(now):
		return nil, nil, &RolloverOptionError{"SwitchAt", fmt.Errorf("ca: the switch time %s is not in the future", switchAt.Format(time.RFC3339))}
	case !switchAt.Before(cur.Cert.NotAfter):
		return nil, nil, &RolloverOptionError{"SwitchAt", fmt.Errorf("ca: the switch time %s is after the current issuing CA expires (%s); choose an earlier switch time",
			switchAt.Format(time.RFC3339), cur.Cert.NotAfter.UTC().Format(time.RFC3339))}
	}

	rootKey, err := loadRootKey(caDir, a.Root, opts.RootKeyFile, opts.RootKeyPassphrase)
	if err != nil {
		return nil, nil, err
	}

	// Build everything in a temporary directory beside next/.
	tmp, err := os.MkdirTemp(caDir, ".next-new-*") // mode 0700
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after a successful rename

	linter, err := lint.New()
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	id, err := randomID()
	if err != nil {
		return nil, nil, err
	}
	// In a token, the next generation's keys get labels of their own.
	kd := base.keysIn(tmp, "-"+id, loadMode{})
	defer func() {
		if err != nil {
			err = destroyNewTokenKeys(kd, generationKeys, err)
		}
	}()
	issKey, err := kd.Create(issuingKeyName, keyType)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generating the next issuing CA key: %w", err)
	}
	var raKey crypto.Signer
	if raMode == RAModeSeparate {
		if raKey, err = kd.Create(raKeyName, keys.RSA2048); err != nil {
			return nil, nil, fmt.Errorf("ca: generating the RA key: %w", err)
		}
		if err := checkRAKey(kd.Where(raKeyName), raKey); err != nil {
			return nil, nil, err
		}
	}
	org := cur.Cert.Subject.Organization
	if len(org) == 0 {
		org = a.Root.Subject.Organization
	}
	start := now.UTC().Truncate(time.Second).Add(-caBackdate)
	if start.Before(a.Root.NotBefore) {
		start = a.Root.NotBefore
	}
	issCert, err := issuingCert(pkix.Name{CommonName: "scepter Issuing CA " + id, Organization: slices.Clone(org)},
		issKey.Public(), start, minTime(switchAt.Add(issValidity), a.Root.NotAfter), a.Root, rootKey, linter)
	if err != nil {
		return nil, nil, err
	}
	if issCert.NotBefore.After(switchAt) || !issCert.NotAfter.After(switchAt) {
		return nil, nil, fmt.Errorf("ca: the next issuing CA would not be valid at the switch time %s", switchAt.Format(time.RFC3339))
	}
	if err := keys.WriteCertFile(filepath.Join(tmp, IssuingCertFile), issCert); err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	if err := keys.WriteCertFile(filepath.Join(tmp, ChainFile), issCert, a.Root); err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	if err := writeRAMode(tmp, raMode); err != nil {
		return nil, nil, err
	}
	if raMode == RAModeSeparate {
		iss, err := NewIssuer(issCert, issKey, []*x509.Certificate{issCert, a.Root})
		if err != nil {
			return nil, nil, err
		}
		if err := createRA(kd, iss, raKey, raValidity, now, opts.ReserveRA); err != nil {
			return nil, nil, err
		}
	}
	if err := keys.WriteFileAtomic(filepath.Join(tmp, SwitchAtFile), []byte(switchAt.Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	// A rename onto an existing non-empty directory fails: of two
	// rollovers at once, one wins.
	if _, err := os.Stat(nextDir); err == nil {
		at, _, _ := readSwitchAt(nextDir)
		return nil, nil, errNextExists(nextDir, at)
	}
	if err := os.Rename(tmp, nextDir); err != nil {
		if _, serr := os.Stat(nextDir); serr == nil {
			at, _, _ := readSwitchAt(nextDir)
			return nil, nil, errNextExists(nextDir, at)
		}
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	syncDir(caDir)
	return loadGeneration(nextDir, a.Root, InitOptions{RAMode: raMode, Token: opts.Token}.withDefaults(), now, loadMode{unopened: true})
}

// destroyNewTokenKeys destroys the token keys called names that a failed
// rollover or RA renewal made in its build directory kd, which goes after
// it: nothing else names them, and nothing would ever destroy them (their
// labels carry a random id, so no later run trips over them either). Each
// is destroyed by the public key its reference file records, so that
// another pair of its label is left; key files go with the directory. It
// returns cause, saying which keys were destroyed and which could not be,
// and how to remove those.
func destroyNewTokenKeys(kd *keys.Dir, names []string, cause error) error {
	if kd.Token == nil {
		return cause
	}
	var destroyed, left []string
	for _, name := range names {
		if in, err := kd.InToken(name); err == nil && !in {
			continue
		}
		label := kd.Token.Where(kd.LabelPrefix + name + kd.Suffix)
		if err := kd.Destroy(name); err != nil {
			left = append(left, fmt.Sprintf("%s (%v)", label, err))
			continue
		}
		destroyed = append(destroyed, label)
	}
	return withTokenCleanup(cause, destroyed, left, "are left there, named by nothing")
}

// withTokenCleanup is cause, saying which new token keys a failed command
// destroyed, and which it could not (they leftWhat) with how to remove
// them by hand.
func withTokenCleanup(cause error, destroyed, left []string, leftWhat string) error {
	if len(destroyed) > 0 {
		cause = fmt.Errorf("%w; the new keys made in the token were destroyed: %s", cause, strings.Join(destroyed, "; "))
	}
	if len(left) > 0 {
		cause = fmt.Errorf("%w; new keys made in the token could not be destroyed and %s: %s; "+
			"remove them from the token (pkcs11-tool --login --delete-object --type privkey --label LABEL, then --type pubkey)",
			cause, leftWhat, strings.Join(left, "; "))
	}
	return cause
}

func errNextExists(nextDir string, at time.Time) error {
	when := ""
	if !at.IsZero() {
		when = ", switching at " + at.UTC().Format(time.RFC3339)
	}
	return fmt.Errorf("ca: a next issuing CA already exists in %s%s; to discard it before its switch (and before clients fetch it with GetNextCACert), run 'scepter ca rollover --discard', then roll over again", nextDir, when)
}

// ErrSwitched: the next issuing CA's switch time has come; it can no
// longer be discarded.
var ErrSwitched = errors.New("ca: the next issuing CA is current already")

// NextOnDisk reads the next issuing CA in dir/ca/next: its issuer ID and
// switch time, without its keys (so that a next CA whose keys are broken
// can still be discarded). ok is false when there is none.
func NextOnDisk(dir string) (id string, switchAt time.Time, ok bool, err error) {
	nextDir := filepath.Join(dir, "ca", NextDir)
	switchAt, ok, err = readSwitchAt(nextDir)
	if err != nil || !ok {
		return "", time.Time{}, ok, err
	}
	cert, err := loadCert(nextDir, IssuingCertFile)
	if err != nil {
		return "", time.Time{}, false, err
	}
	return issuerID(cert), switchAt, true, nil
}

// DiscardNext removes dir/ca/next, the next issuing CA id, while its switch
// time is still to come (ErrSwitched otherwise): it is renamed away first,
// so a server loading meanwhile sees it whole or not at all. Keys of a
// PKCS#11 token stay in the token; only their references go (see
// NextTokenKeys and DestroyDiscardedKeys for the keys).
func DiscardNext(dir, id string, now time.Time) error {
	return discardNext(dir, id, now, false)
}

// DiscardDiscardedNext is DiscardNext for a next issuing CA that the
// store records as discarded (on another node), whatever its switch time:
// no node switches to such a CA (SetDiscardedNext), so the time having
// passed does not make it current, and its copy here is left to remove.
func DiscardDiscardedNext(dir, id string) error {
	return discardNext(dir, id, time.Time{}, true)
}

func discardNext(dir, id string, now time.Time, discarded bool) error {
	caDir := filepath.Join(dir, "ca")
	got, at, ok, err := NextOnDisk(dir)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("ca: no next issuing CA in %s", filepath.Join(caDir, NextDir))
	case got != id:
		return fmt.Errorf("ca: %s holds issuing CA %s, not %s", filepath.Join(caDir, NextDir), got, id)
	case !discarded && !now.Before(at):
		return fmt.Errorf("%w (since %s)", ErrSwitched, at.UTC().Format(time.RFC3339))
	}
	rnd, err := randomID()
	if err != nil {
		return err
	}
	gone := filepath.Join(caDir, ".next-discarded-"+rnd)
	if err := os.Rename(filepath.Join(caDir, NextDir), gone); err != nil {
		return fmt.Errorf("ca: discarding the next CA: %w", err)
	}
	syncDir(caDir)
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("ca: discarding the next CA: %w", err)
	}
	return nil
}

// NextTokenKey is a key of the next issuing CA (its issuing CA or RA key)
// that sits in a PKCS#11 token: what a file of dir/ca/next records of it.
type NextTokenKey struct {
	// Ref is the key's RFC 7512 URI: its token and label.
	Ref string
	// RefFile is the reference file in dir/ca/next that names it.
	RefFile string
	// Public is the public key the reference file records (nil when it
	// records none).
	Public crypto.PublicKey
	// InUse: a reference file outside dir/ca/next (the current or a
	// previous generation, an OCSP responder) names this key too, by its
	// URI or its public key, so that discarding must leave it in the token.
	InUse bool
}

// NextTokenKeys lists the keys in a PKCS#11 token that dir/ca/next names,
// read before DiscardNext removes their reference files: DiscardNext
// leaves the keys themselves in the token, and DestroyDiscardedKeys
// removes them afterwards. A key is marked InUse when any other reference
// file in dir names it; such a key is never destroyed. No next CA, or one
// whose keys are files, lists none.
func NextTokenKeys(dir string) ([]NextTokenKey, error) {
	nextDir := filepath.Join(dir, "ca", NextDir)
	refFiles, err := filepath.Glob(filepath.Join(nextDir, "*"+keys.RefFileExt))
	if err != nil || len(refFiles) == 0 {
		return nil, err
	}
	var next []NextTokenKey
	for _, f := range refFiles {
		ref, pub, err := keys.ReadRefFile(f)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		next = append(next, NextTokenKey{Ref: ref, RefFile: f, Public: pub})
	}
	// Every other reference in the data directory: the current and
	// previous generations, OCSP responders, and anything left beside them.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == nextDir {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, keys.RefFileExt) {
			return nil
		}
		ref, pub, err := keys.ReadRefFile(path)
		if err != nil {
			return err
		}
		for i := range next {
			if next[i].Ref == ref || (pub != nil && next[i].Public != nil && pki.SamePublicKey(next[i].Public, pub)) {
				next[i].InUse = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ca: looking for other references to the next CA's keys: %w", err)
	}
	return next, nil
}

// NextFileKey is a key of the next issuing CA (its issuing CA or RA key)
// that is a file in dir/ca/next, which DiscardNext destroys with it.
type NextFileKey struct {
	// Path is the key file in dir/ca/next.
	Path string
	// RA: the SCEP RA's key (ra.key); otherwise the issuing CA's.
	RA bool
	// Public is the key's public half, read from the key file (or, when
	// that cannot be read, from the certificate beside it); nil when
	// neither could be read.
	Public crypto.PublicKey
	// Left, set by DiscardedFileKeys, is where the key file is still
	// after a discard whose removal failed.
	Left string
}

// NextFileKeys lists the key files of dir/ca/next with their public keys,
// read before DiscardNext removes them, so that their destruction can be
// recorded. No next CA, or one whose keys are in a token, lists none.
func NextFileKeys(dir string) ([]NextFileKey, error) {
	nextDir := filepath.Join(dir, "ca", NextDir)
	var out []NextFileKey
	for _, f := range []struct {
		key, cert string
		ra        bool
	}{{IssuingKeyFile, IssuingCertFile, false}, {RAKeyFile, RACertFile, true}} {
		path := filepath.Join(nextDir, f.key)
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		k := NextFileKey{Path: path, RA: f.ra}
		if key, err := keys.LoadKeyFile(path); err == nil {
			k.Public = key.Public()
		} else if certs, err := keys.LoadCertFile(filepath.Join(nextDir, f.cert)); err == nil && len(certs) > 0 {
			k.Public = certs[0].PublicKey
		}
		out = append(out, k)
	}
	return out, nil
}

// DiscardedFileKeys says which of the key files NextFileKeys listed a
// discard took away, to be called after it: each that is no longer at
// its path. Left is set on one still in a half-removed copy of
// dir/ca/next (dir/ca/.next-discarded-*: a removal that failed, which
// the next load of the CA finishes). Those still at their path were not
// discarded.
func DiscardedFileKeys(dir string, listed []NextFileKey) []NextFileKey {
	var out []NextFileKey
	for _, k := range listed {
		if _, err := os.Lstat(k.Path); err == nil {
			continue
		}
		// A copy left by an earlier discard holds another key.
		left, _ := filepath.Glob(filepath.Join(dir, "ca", ".next-discarded-*", filepath.Base(k.Path)))
		for _, l := range left {
			if key, err := keys.LoadKeyFile(l); k.Public == nil || err == nil && pki.SamePublicKey(key.Public(), k.Public) {
				k.Left = l
			}
		}
		out = append(out, k)
	}
	return out
}

// DestroyDiscardedKeys destroys in tok the keys NextTokenKeys listed, once
// DiscardNext has removed the next CA, except those InUse. It returns the
// keys it destroyed, and apart from them those already gone from the token
// (destroyed by a discard on another node sharing it); on an error, the
// others are left in the token.
func DestroyDiscardedKeys(tok keys.Token, discarded []NextTokenKey) (destroyed, gone []NextTokenKey, err error) {
	var errs []error
	for _, k := range discarded {
		if k.InUse {
			continue
		}
		// By its public key where the reference file records one: only
		// that pair goes, never another key under the same label.
		remove := func() error { return tok.RemoveRef(k.Ref) }
		if k.Public != nil {
			remove = func() error { return tok.RemoveRefKey(k.Ref, k.Public) }
		}
		switch err := remove(); {
		case errors.Is(err, keys.ErrKeyNotFound):
			gone = append(gone, k)
		case err != nil:
			errs = append(errs, fmt.Errorf("ca: destroying the discarded key %s: %w", k.Ref, err))
		default:
			destroyed = append(destroyed, k)
		}
	}
	return destroyed, gone, errors.Join(errs...)
}

// readSwitchAt reads nextDir/switch-at; ok is false when nextDir does not
// exist.
func readSwitchAt(nextDir string) (t time.Time, ok bool, err error) {
	if _, err := os.Stat(nextDir); errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, fmt.Errorf("ca: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(nextDir, SwitchAtFile))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("ca: the next CA in %s has no readable %s (%w); write its switch time (RFC 3339) there, or remove %s to discard it", nextDir, SwitchAtFile, err, nextDir)
	}
	t, err = time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("ca: %s: %w", filepath.Join(nextDir, SwitchAtFile), err)
	}
	return t.UTC(), true, nil
}

// promote makes the next generation current (see the layout above), for a
// CA of key files.
func promote(caDir string, root *x509.Certificate) error {
	return promoteWith(caDir, root, InitOptions{}, loadMode{})
}

// promoteWith is promote opening next's issuing key as o and m say, to
// check that it is the key of its certificate.
func promoteWith(caDir string, root *x509.Certificate, o InitOptions, m loadMode) error {
	nextDir := filepath.Join(caDir, NextDir)
	nextCert, _, err := loadPair(nextDir, IssuingCertFile, o.keysIn(nextDir, "", m), issuingKeyName)
	if err != nil {
		return fmt.Errorf("%w (the next CA is due but cannot be promoted; remove %s to discard it)", err, nextDir)
	}
	if !bytes.Equal(nextCert.RawIssuer, root.RawSubject) || nextCert.CheckSignatureFrom(root) != nil {
		return fmt.Errorf("ca: %s was not issued by %s; remove %s to discard it", filepath.Join(nextDir, IssuingCertFile), RootCertFile, nextDir)
	}
	curCerts, err := keys.LoadCertFile(filepath.Join(caDir, IssuingCertFile))
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if len(curCerts) != 1 {
		return fmt.Errorf("ca: %s holds %d certificates, want exactly one", filepath.Join(caDir, IssuingCertFile), len(curCerts))
	}
	if curID := issuerID(curCerts[0]); curID != issuerID(nextCert) {
		if err := keepPrevious(caDir, curID); err != nil {
			return err
		}
	}
	if err := installGeneration(nextDir, caDir); err != nil {
		return fmt.Errorf("ca: promoting the next CA: %w", err)
	}
	id, err := randomID()
	if err != nil {
		return err
	}
	done := filepath.Join(caDir, ".next-done-"+id)
	if err := os.Rename(nextDir, done); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ca: promoting the next CA: %w", err)
	}
	syncDir(caDir)
	os.RemoveAll(done)
	return nil
}

// installGeneration copies the generation in src (next/, or an imported
// one) over the current generation in caDir, file by file, each
// atomically: keys first, issuing.crt last, so that a current issuing.crt
// equal to src's means every other file is in place. A file that src lacks
// (ra.crt and ra.key in RA mode ca, switch-at, ra-mode) is removed from
// caDir. Repeating it after an interruption finishes the job.
func installGeneration(src, caDir string) error {
	// The keys through keys.Dir: a key file is copied, a token key's
	// reference file too (the key stays in its token).
	from, to := &keys.Dir{Path: src}, &keys.Dir{Path: caDir}
	for _, k := range generationKeys {
		err := keys.CopyKey(from, to, k)
		if errors.Is(err, fs.ErrNotExist) && k == raKeyName {
			// RA mode ca: the old RA key (kept in previous/) must not
			// stay beside the new issuing CA.
			if err = to.Remove(k); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
		if err != nil {
			return err
		}
	}
	for _, f := range generationFiles {
		if f.key != "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, f.name))
		switch {
		case err == nil:
			err = keys.WriteFileAtomic(filepath.Join(caDir, f.name), data, f.perm)
			if err != nil {
				return err
			}
		case errors.Is(err, fs.ErrNotExist) && (f.name == RACertFile || f.name == SwitchAtFile || f.name == RAModeFile):
			// RA mode ca: the old RA (kept in previous/) must not stay
			// beside the new issuing CA; nor the old switch time, nor the
			// old RA mode (a next CA made before ra-mode existed).
			if err := os.Remove(filepath.Join(caDir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		case errors.Is(err, fs.ErrNotExist):
			// chain.pem is derived; load rewrites it.
		default:
			return err
		}
	}
	return nil
}

// keepPrevious copies the current generation's files to
// caDir/previous/<id>, unless that directory already exists.
func keepPrevious(caDir, id string) error {
	prevRoot := filepath.Join(caDir, PreviousDir)
	dst := filepath.Join(prevRoot, id)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(prevRoot, 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	tmp, err := os.MkdirTemp(prevRoot, ".tmp-*")
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, k := range generationKeys {
		if err := keys.CopyKey(&keys.Dir{Path: caDir}, &keys.Dir{Path: tmp}, k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ca: keeping the previous CA: %w", err)
		}
	}
	for _, f := range generationFiles {
		if f.key != "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(caDir, f.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ca: keeping the previous CA: %w", err)
		}
		if err := keys.WriteFileAtomic(filepath.Join(tmp, f.name), data, f.perm); err != nil {
			return fmt.Errorf("ca: keeping the previous CA: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return nil // another process kept it first
		}
		return fmt.Errorf("ca: keeping the previous CA: %w", err)
	}
	syncDir(prevRoot)
	return nil
}

// cleanup removes what an interrupted promotion or discard leaves behind.
func cleanup(caDir string) {
	done, _ := filepath.Glob(filepath.Join(caDir, ".next-done-*"))
	discarded, _ := filepath.Glob(filepath.Join(caDir, ".next-discarded-*"))
	for _, d := range append(done, discarded...) {
		os.RemoveAll(d)
	}
}

// loadPrevious loads caDir/previous/<issuerID>/ for every former issuing
// CA, newest first. They are not checked for expiry: an expired issuer
// still identifies (and revokes) what it issued. Each must be signed by the
// root, its key must match, and its directory must bear its issuer ID.
func loadPrevious(caDir string, root *x509.Certificate, currentID string, o InitOptions, m loadMode) ([]*Issuer, []*pki.RA, error) {
	prevRoot := filepath.Join(caDir, PreviousDir)
	entries, err := os.ReadDir(prevRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	var issuers []*Issuer
	ras := map[string]*pki.RA{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == currentID {
			continue
		}
		d := filepath.Join(prevRoot, e.Name())
		kd := o.keysIn(d, "", m)
		cert, key, err := loadPair(d, IssuingCertFile, kd, issuingKeyName)
		if err != nil {
			return nil, nil, err
		}
		if id := issuerID(cert); id != e.Name() {
			return nil, nil, fmt.Errorf("ca: %s holds the issuing CA %s; a previous CA's directory must be named after its issuer ID", d, id)
		}
		if !cert.IsCA || !bytes.Equal(cert.RawIssuer, root.RawSubject) || cert.CheckSignatureFrom(root) != nil {
			return nil, nil, fmt.Errorf("ca: %s was not issued by %s", filepath.Join(d, IssuingCertFile), RootCertFile)
		}
		iss, err := NewIssuer(cert, key, []*x509.Certificate{cert, root})
		if err != nil {
			return nil, nil, err
		}
		issuers = append(issuers, iss)
		// Its RA, for envelopes still addressed to it, unless it was
		// revoked (DropPreviousRA): then none, and not its issuing key
		// either for want of ra.crt. A drop cut short is finished here.
		_, crtErr := os.Stat(filepath.Join(d, RACertFile))
		hasKey, keyErr := kd.Has(raKeyName)
		if exists(filepath.Join(d, RevokedRAFile)) {
			if !m.readOnly && (crtErr == nil || hasKey) {
				_ = dropPreviousRAFiles(d, kd)
			}
			continue
		}
		switch {
		case crtErr == nil && keyErr == nil && hasKey:
			raCert, raKey, err := loadPair(d, RACertFile, kd, raKeyName)
			if errors.Is(err, keys.ErrKeyNotFound) {
				// Gone from a token that nodes share: another node
				// destroyed it, its certificate revoked.
				if !m.readOnly {
					_ = dropPreviousRAFiles(d, kd)
				}
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			if raCert.CheckSignatureFrom(cert) == nil && checkRAKey(kd.Where(raKeyName), raKey) == nil {
				ras[iss.ID] = &pki.RA{Cert: raCert, Key: raKey, Chain: []*x509.Certificate{raCert, cert, root}}
			}
		case isRSA(key.Public()):
			ras[iss.ID] = &pki.RA{Cert: cert, Key: key, Chain: iss.Chain, IsCA: true}
		}
	}
	// Newest first: a later rollover's CA starts, or else ends, later.
	slices.SortFunc(issuers, func(x, y *Issuer) int {
		if c := y.Cert.NotBefore.Compare(x.Cert.NotBefore); c != 0 {
			return c
		}
		return y.Cert.NotAfter.Compare(x.Cert.NotAfter)
	})
	var raList []*pki.RA
	for _, i := range issuers {
		if r := ras[i.ID]; r != nil {
			raList = append(raList, r)
		}
	}
	return issuers, raList, nil
}

// RevokedRAFile, in a previous issuing CA's directory, is the certificate
// of its SCEP RA once that was revoked and its key destroyed
// (DropPreviousRA). Its presence says the generation has no RA any more:
// without it, a generation lacking ra.crt and ra.key is one in RA mode ca,
// whose RSA issuing key decrypts.
const RevokedRAFile = "ra-revoked.crt"

// DropPreviousRA destroys the key of the SCEP RA of a previous issuing CA
// whose certificate is cert (revoked: it no longer decrypts, and a
// compromised key must not stay on disk, in a token or in a key export
// until the certificate's end), leaving RevokedRAFile in its place, then
// reloads the CA at now. It reports what DropRetiredRA reports: whether
// there was such an RA (a previous/<id>/ra.crt equal to cert), and where
// its key was ("" when another node sharing the token destroyed it
// already).
func (a *Authority) DropPreviousRA(cert *x509.Certificate, now time.Time) (dropped bool, key string, err error) {
	if a.caDir == "" || a.mode.readOnly {
		return false, "", errors.New("ca: this authority cannot change its CA directory")
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	// Never a key another loaded RA uses.
	s := a.state.Load()
	for _, r := range append([]*pki.RA{s.currentRA, s.nextRA}, s.retiredRAs...) {
		if r != nil && pki.SamePublicKey(r.Cert.PublicKey, cert.PublicKey) {
			return false, "", fmt.Errorf("ca: the revoked RA certificate %s has the key of the RA in service %s", pki.SerialText(cert.SerialNumber), pki.SerialText(r.Cert.SerialNumber))
		}
	}
	entries, err := os.ReadDir(filepath.Join(a.caDir, PreviousDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, "", fmt.Errorf("ca: %w", err)
	}
	for _, e := range entries {
		d := filepath.Join(a.caDir, PreviousDir, e.Name())
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		onDisk, err := loadCert(d, RACertFile)
		if err != nil || !onDisk.Equal(cert) {
			continue
		}
		kd := &keys.Dir{Path: d, Token: a.opts.Token}
		key = raKeyPlace(kd)
		if err := dropPreviousRAFiles(d, kd); err != nil {
			return false, key, err
		}
		a.disk = ""
		if err := a.reload(now); err != nil {
			return true, key, fmt.Errorf("ca: reloading without the previous CA's RA: %w", err)
		}
		return true, key, nil
	}
	return false, "", nil
}

// dropPreviousRAFiles puts RevokedRAFile in place of d's ra.crt and
// destroys d's RA key, in that order: a load between two steps finds the
// generation without an RA (never its issuing key taken as one), and
// finishes the job. Repeating it is harmless.
func dropPreviousRAFiles(d string, kd *keys.Dir) error {
	data, err := os.ReadFile(filepath.Join(d, RACertFile))
	switch {
	case err == nil:
		if err := keys.WriteFileAtomic(filepath.Join(d, RevokedRAFile), data, 0o644); err != nil {
			return fmt.Errorf("ca: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("ca: %w", err)
	}
	if err := kd.Destroy(raKeyName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ca: destroying the key of the revoked RA in %s: %w", d, err)
	}
	if err := os.Remove(filepath.Join(d, RACertFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ca: %w", err)
	}
	syncDir(d)
	return nil
}

// Load loads the existing CA in dir/ca without changing anything on disk:
// a next CA whose switch time has passed is not promoted (Active switches
// to it all the same), no RA certificate is issued, chain.pem is left as it
// is, and each generation's RA mode is what its files show. It is for
// commands that inspect the CA while a server may be running. ErrNoCA when
// there is none.
func Load(dir string, clock pki.Clock) (*Authority, error) {
	return LoadWithToken(dir, nil, clock)
}

// LoadWithToken is Load for a CA whose keys are in token, which opens them
// (with a nil token, keys in a token are stood in for: their certificates
// load, their use fails).
func LoadWithToken(dir string, token keys.Token, clock pki.Clock) (*Authority, error) {
	if clock == nil {
		clock = pki.SystemClock{}
	}
	caDir := filepath.Join(dir, "ca")
	present, err := inspect(caDir)
	if err != nil {
		return nil, err
	}
	if len(present) == 0 {
		return nil, fmt.Errorf("%w (%s)", ErrNoCA, caDir)
	}
	// unopened only matters without a token (see InitOptions.keysIn).
	opts, mode := InitOptions{Token: token}.withDefaults(), loadMode{detectRA: true, readOnly: true, unopened: true}
	wait := loadRetryWait
	for retry := 0; ; retry++ {
		before, _ := diskState(caDir)
		a, err := load(caDir, opts, clock.Now(), mode)
		if err == nil || retry == loadRetries {
			return a, err
		}
		// A server promoting its next CA moves files one at a time (the
		// next generation's into place, then next/ away): a command
		// reading the directory meanwhile (`requests approve` at the
		// switch) finds next/ half gone, or the current CA still in it.
		// Read again while the directory changes; a failure on a
		// directory that stays as it is stands.
		time.Sleep(wait)
		if after, _ := diskState(caDir); after == before {
			return nil, err
		}
		wait *= 2
	}
}

// loadRetries is how many times a read-only load that failed while the
// CA directory changed under it is done again, and loadRetryWait how long
// it waits before looking whether it changed (doubled each time).
const (
	loadRetries   = 5
	loadRetryWait = 50 * time.Millisecond
)

// Reload reads the CA directory again the way it was first loaded (a start
// promotes a due next CA; a read-only Load does not) and replaces the set
// of issuers, so a running server learns of a rollover made since it
// started (and of a promotion). When nothing changed on disk and no switch
// is due it does nothing, so it can run every minute. Issuers and RAs that
// did not change keep their identity. The root must be the same; the
// Issuer and RA fields keep their load-time values. An Authority built by
// NewAuthority cannot reload.
func (a *Authority) Reload(now time.Time) error {
	if a.caDir == "" {
		return errors.New("ca: this authority was not loaded from a directory")
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	return a.reload(now)
}

// reload is Reload with a.reloadMu held.
func (a *Authority) reload(now time.Time) error {
	old := a.state.Load()
	// A retired RA whose certificate has expired is dropped.
	due := old.next != nil && !now.Before(old.switchAt) && !a.mode.readOnly || anyExpired(old.retiredRAs, now)
	disk, err := diskState(a.caDir)
	if err != nil {
		return err
	}
	if !due && disk == a.disk {
		return nil
	}
	m := a.mode
	m.discarded = a.isDiscarded
	if r := a.raReserve.Load(); r != nil {
		m.reserveRA = *r
	}
	b, err := load(a.caDir, a.opts, now, m)
	if err != nil {
		return err
	}
	if !b.Root.Equal(a.Root) {
		return fmt.Errorf("ca: the root in %s changed; restart to use it", a.caDir)
	}
	s := b.state.Load()
	issuers := map[string]*Issuer{}
	for _, i := range old.all {
		issuers[i.ID] = i
	}
	ras := map[string]*pki.RA{}
	for _, r := range append(append([]*pki.RA{old.currentRA, old.nextRA}, old.previousRAs...), old.retiredRAs...) {
		if r != nil {
			ras[string(r.Cert.Raw)] = r
		}
	}
	keepI := func(i *Issuer) *Issuer {
		if i != nil && issuers[i.ID] != nil {
			return issuers[i.ID]
		}
		return i
	}
	keepR := func(r *pki.RA) *pki.RA {
		if r != nil && ras[string(r.Cert.Raw)] != nil && ras[string(r.Cert.Raw)].IsCA == r.IsCA {
			return ras[string(r.Cert.Raw)]
		}
		return r
	}
	prev := make([]*Issuer, len(s.previous))
	for k, i := range s.previous {
		prev[k] = keepI(i)
	}
	prevRAs := make([]*pki.RA, len(s.previousRAs))
	for k, r := range s.previousRAs {
		prevRAs[k] = keepR(r)
	}
	set := newIssuerSet(a.Root, keepI(s.current), keepR(s.currentRA), keepI(s.next), keepR(s.nextRA), s.switchAt, prev, prevRAs)
	set.currentSince = s.currentSince
	for _, r := range s.retiredRAs {
		set.retiredRAs = append(set.retiredRAs, keepR(r))
	}
	a.state.Store(set)
	a.disk = b.disk
	return nil
}

// diskState summarizes what Reload looks at: the current and next
// certificates, the switch time and the previous CAs' directories.
func diskState(caDir string) (string, error) {
	h := sha256.New()
	var unreadable error
	for _, f := range []string{IssuingCertFile, RACertFile, RAKeyFile, RAKeyRef,
		filepath.Join(NextDir, IssuingCertFile), filepath.Join(NextDir, RACertFile), filepath.Join(NextDir, SwitchAtFile)} {
		b, err := os.ReadFile(filepath.Join(caDir, f))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && unreadable == nil {
				// A next/ that `ca rollover`, run as root, left to root:
				// to the server's user it looked absent, and the switch
				// never came.
				unreadable = fmt.Errorf("ca: cannot read %s (%w): is it another user's than the server's? Run scepter ca commands as the server's user, or chown the data directory back", filepath.Join(caDir, f), err)
			}
			b = []byte("-")
		}
		sum := sha256.Sum256(b)
		h.Write(sum[:])
	}
	for _, sub := range []string{PreviousDir, RetiredRADir} {
		entries, _ := os.ReadDir(filepath.Join(caDir, sub))
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				h.Write([]byte(sub + "/" + e.Name() + "/"))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), unreadable
}

// issuerID is the IssuerID of an issuing CA certificate.
func issuerID(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// loadRootKey reads the root key from path (default caDir/root.key) with
// passphrase and checks that it is the key of root.
//
// dir/ca/root.key is read through a keys.FileSource (which refuses a key
// file others may read); a file the operator names is read as it is.
func loadRootKey(caDir string, root *x509.Certificate, path string, passphrase []byte) (crypto.Signer, error) {
	var key crypto.Signer
	var err error
	if path == "" {
		src := &keys.FileSource{Dir: caDir, Passphrase: passphrase}
		path = src.Path(rootKeyName)
		if ok, err := src.Has(rootKeyName); err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		} else if !ok {
			return nil, fmt.Errorf("%w: %s does not exist", ErrRootKeyMissing, path)
		}
		key, err = src.Open(rootKeyName)
	} else {
		key, err = keys.LoadKeyFileWithPassphrase(path, passphrase)
	}
	if errors.Is(err, keys.ErrEncryptedKey) {
		return nil, fmt.Errorf("%w (%s)", ErrRootKeyEncrypted, path)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: the root key: %w", err)
	}
	if !pki.SamePublicKey(key.Public(), root.PublicKey) {
		return nil, fmt.Errorf("%w: %s does not match %s (%s)", ErrRootKeyMismatch, path, RootCertFile, root.Subject)
	}
	return key, nil
}

// RootKeyInfo says where the root key of a CA is.
type RootKeyInfo struct {
	Path      string // dir/ca/root.key
	Present   bool   // Path exists
	Encrypted bool   // Path holds an encrypted key
}

// RootKeyStatus reports whether dir/ca/root.key exists and whether it is
// encrypted. It reads only the PEM framing of the file, never the key; an
// error means the file exists but is not a PEM private key.
func RootKeyStatus(dir string) (RootKeyInfo, error) {
	info := RootKeyInfo{Path: filepath.Join(dir, "ca", RootKeyFile)}
	if _, err := os.Stat(info.Path); errors.Is(err, fs.ErrNotExist) {
		return info, nil
	} else if err != nil {
		return info, fmt.Errorf("ca: %w", err)
	}
	info.Present = true
	enc, err := keys.KeyFileEncrypted(info.Path)
	if err != nil {
		return info, fmt.Errorf("ca: %w", err)
	}
	info.Encrypted = enc
	return info, nil
}

// ExportRootKeyOptions choose how ExportRootKey copies the root key.
type ExportRootKeyOptions struct {
	// Passphrase of dir/ca/root.key when it is encrypted (required then:
	// the copy is checked by decrypting it).
	Passphrase []byte
	// NewPassphrase, when set, encrypts the copy with it; otherwise the
	// file is copied byte for byte, encrypted or not as it is.
	NewPassphrase []byte
	// Remove deletes dir/ca/root.key once the copy is checked.
	Remove bool
	// iterations is the PBKDF2 count of a copy encrypted with
	// NewPassphrase (0: keys.PBKDF2Iterations); only this package's tests
	// lower it (see InitOptions.rootKeyIterations).
	iterations int
}

// ExportRootKey copies the root key of the CA in dir to out, a new file
// with mode 0600 (an existing out is refused), then reads out back and
// checks it is the key of root.crt, and only then, with opts.Remove,
// removes dir/ca/root.key (syncing dir/ca). It returns whether the copy is
// encrypted. A running server is unaffected: it never reads the root key.
func ExportRootKey(dir, out string, opts ExportRootKeyOptions) (encrypted bool, err error) {
	caDir := filepath.Join(dir, "ca")
	root, err := loadCert(caDir, RootCertFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%w (%s)", ErrNoCA, caDir)
	}
	if err != nil {
		return false, err
	}
	// The root key is always a file (never in a token), read through the
	// directory's key source.
	kd := &keys.Dir{Path: caDir, Passphrase: opts.Passphrase}
	src := kd.Where(rootKeyName)
	// Loaded even for a byte copy: what is copied must be the root key.
	key, err := loadRootKey(caDir, root, "", opts.Passphrase)
	if err != nil {
		return false, err
	}
	var data []byte
	readBack := opts.Passphrase
	if opts.NewPassphrase != nil {
		if data, err = keys.MarshalEncryptedKeyPEMIterations(rand.Reader, key, opts.NewPassphrase, opts.iterations); err != nil {
			return false, fmt.Errorf("ca: encrypting the root key: %w", err)
		}
		readBack = opts.NewPassphrase
	} else if data, err = kd.ExportPEM(rootKeyName); err != nil {
		return false, fmt.Errorf("ca: %w", err)
	}
	defer clear(data)
	if encrypted, err = keys.IsEncryptedKeyPEM(data); err != nil {
		return false, fmt.Errorf("ca: %s: %w", src, err)
	}
	if err := keys.WriteNewFile(out, data, 0o600); err != nil {
		return false, fmt.Errorf("ca: exporting the root key: %w", err)
	}
	if _, err := loadRootKey(caDir, root, out, readBack); err != nil {
		os.Remove(out) // a copy that does not read back is no copy
		return false, fmt.Errorf("ca: the copy in %s did not read back (%w); it was removed and %s left in place", out, err, src)
	}
	if opts.Remove {
		if err := kd.Remove(rootKeyName); err != nil {
			return encrypted, fmt.Errorf("ca: the root key was copied to %s but not removed: %w", out, err)
		}
	}
	return encrypted, nil
}
