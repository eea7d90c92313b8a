package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// SCEP RA renewal layout, inside dir/ca:
//
//	ra.crt, ra.key (or ra.pkcs11)          the RA in service: GetCACert
//	                                       serves it, CertReps are signed
//	                                       with it
//	retired-ra/<serial>/ra.crt, ra.key     an RA that RenewRA replaced; its
//	                                       key still decrypts envelopes
//	                                       addressed to it (a client that
//	                                       cached GetCACert) until its
//	                                       certificate expires
//	.ra-new-<id>/                          a renewal under way
//
// A renewal changes no issuing CA: the new RA certificate is issued by the
// current issuing CA, like the first one.
const RetiredRADir = "retired-ra"

// raNewPrefix names the directory in which RenewRA builds the new RA.
const raNewPrefix = ".ra-new-"

// Errors of RenewRA.
var (
	// ErrRAIsCA: the issuing CA is the RA (RA mode ca); there is no RA
	// certificate of its own to renew.
	ErrRAIsCA = errors.New("ca: the SCEP RA is the issuing CA itself (RA mode ca): there is no separate RA certificate to renew")
	// ErrRANotRenewable: a new RA certificate would end no later than
	// the one in service, cut at the issuing CA's end; only a rollover
	// helps.
	ErrRANotRenewable = errors.New("ca: a new RA certificate would not outlive the current one")
)

// RenewRAOptions choose the new RA.
type RenewRAOptions struct {
	// Validity of the new RA certificate, cut at the issuing CA's end;
	// default 2 years (InitOptions.RAValidity's).
	Validity time.Duration
	// Token holds the CA's keys when they are in a PKCS#11 token: the new
	// RA key is made there, labelled PREFIX-ra-<id>. A CA whose keys are
	// in a token is refused without it (keys.ErrNoToken).
	Token keys.Token
	// ReserveRA, when set, reserves the new RA certificate's serial before
	// the issuing CA's key signs it, as every issuance does
	// (store.ReserveSerial): a reservation that fails leaves it unsigned
	// and the RA in service untouched. nil reserves nothing.
	ReserveRA ReserveFunc
	// GenerateKey makes the new RA's key file (nil: keys.Generate), as
	// InitOptions.GenerateKey those of a new CA.
	GenerateKey func(keyType string) (crypto.Signer, error)
	// Check, when set, is asked with the CA as loaded (read-only) and the
	// renewal's time before the new key is made: an error refuses the
	// renewal, nothing made. A store shared by several nodes uses it to
	// refuse a renewal on a node that lacks the RA another node renewed.
	Check func(a *Authority, now time.Time) error
}

// RenewRA gives the current issuing CA of the CA in dir/ca a new SCEP RA:
// a new RSA-2048 key (in opts.Token when given) and a certificate issued
// by the current issuing CA, valid for opts.Validity but not past the
// issuing CA's end. The RA in service is kept in
// dir/ca/retired-ra/<serial>/, so that a server (which loads it for
// decryption only, until its certificate expires) still opens the
// requests of clients that fetched it with GetCACert. It returns the
// retired RA and the new one.
//
// It runs beside a server, as Rollover does: the server's periodic reload
// (Reload) takes the new RA into service. The new pair is built in a
// temporary directory and copied into place key first; a renewal that
// stopped between the two is finished by the next load or RenewRA.
//
// A renewal that fails after making its key (one that lost a race with
// another renewal, say) destroys that key, in a token by its public key,
// and its error says so (destroyNewTokenKeys): nothing else would ever
// name it. Only a key already installed in dir/ca is kept.
//
// opts.Check, when set, may refuse the renewal before anything is made.
//
// ErrNoCA when dir holds no CA, ErrRAIsCA in RA mode ca,
// ErrRANotRenewable when the issuing CA ends too soon for a new RA to
// help, and an error wrapping keys.ErrNoToken when the CA's keys are in a
// token that opts does not give.
func RenewRA(dir string, opts RenewRAOptions, clock pki.Clock) (retired, renewed *pki.RA, err error) {
	if clock == nil {
		clock = pki.SystemClock{}
	}
	if opts.Validity < 0 {
		return nil, nil, errors.New("ca: the RA validity must be positive")
	}
	if opts.Validity == 0 {
		opts.Validity = InitOptions{}.withDefaults().RAValidity
	}
	now := clock.Now().UTC().Truncate(time.Second)
	caDir := filepath.Join(dir, "ca")
	present, err := inspect(caDir)
	if err != nil {
		return nil, nil, err
	}
	if len(present) == 0 {
		return nil, nil, fmt.Errorf("%w (%s)", ErrNoCA, caDir)
	}
	if err := finishRARenewal(caDir); err != nil {
		return nil, nil, err
	}
	o := InitOptions{Token: opts.Token, GenerateKey: opts.GenerateKey}.withDefaults()
	a, err := load(caDir, o, now, loadMode{detectRA: true, readOnly: true, unopened: true})
	if err != nil {
		return nil, nil, err
	}
	if opts.Token == nil && a.KeysInToken() {
		return nil, nil, fmt.Errorf("ca: the CA's keys are in a PKCS#11 token, which signs the new RA certificate and holds its key: %w; give it (--pkcs11-module, --pkcs11-token, --pkcs11-pin-file, or --pkcs11-uri)", keys.ErrNoToken)
	}
	s := a.state.Load()
	if active, _ := a.Active(now); active != s.current {
		return nil, nil, fmt.Errorf("ca: the next issuing CA in %s is due; start the server to make it current (it has an RA of its own)", filepath.Join(caDir, NextDir))
	}
	iss, old := s.current, s.currentRA
	if old.IsCA {
		return nil, nil, ErrRAIsCA
	}
	if end := minTime(now.Add(opts.Validity), iss.Cert.NotAfter); !end.After(old.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("%w: it would end on %s (the issuing CA ends on %s), the current one ends on %s; when the issuing CA is what ends first, roll it over (scepter ca rollover), which makes a new RA with it",
			ErrRANotRenewable, end.Format(time.RFC3339), iss.Cert.NotAfter.UTC().Format(time.RFC3339), old.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if opts.Check != nil {
		if err := opts.Check(a, now); err != nil {
			return nil, nil, err
		}
	}

	id, err := randomID()
	if err != nil {
		return nil, nil, err
	}
	tmp := filepath.Join(caDir, raNewPrefix+id)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	// A new key in a token gets a label of its own (PREFIX-ra-<id>).
	kd := o.keysIn(tmp, "-"+id, loadMode{})
	installed := false
	defer func() {
		if err != nil && !installed {
			err = destroyNewTokenKeys(kd, []string{raKeyName}, err)
		}
		if !installed || err == nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := createRA(kd, iss, nil, opts.Validity, now, opts.ReserveRA); err != nil {
		return nil, nil, err
	}
	if err := retireRA(caDir, old.Cert); err != nil {
		return nil, nil, err
	}
	// Another renewal (the server's own, say) may have installed its RA
	// meanwhile: replacing that one would leave it unretired.
	inService, err := loadCert(caDir, RACertFile)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: reading the RA in service again before replacing it: %w; nothing was replaced", err)
	}
	if !inService.Equal(old.Cert) {
		return nil, nil, errors.New("ca: the RA in service changed during the renewal (another renewal at the same time?); nothing was replaced, run it again if it is still needed")
	}
	if err := installRA(tmp, caDir); err != nil {
		// A key installed without its certificate is the one in
		// service now: it stays, and so does tmp, from which the next
		// load or renewal finishes the job (finishRARenewal).
		installed = sameRAKey(tmp, caDir)
		return nil, nil, err
	}
	installed = true
	cert, key, err := loadPair(caDir, RACertFile, o.keysIn(caDir, "", loadMode{}), raKeyName)
	if err != nil {
		return nil, nil, err
	}
	return old, &pki.RA{Cert: cert, Key: key, Chain: []*x509.Certificate{cert, iss.Cert, a.Root}}, nil
}

// sameRAKey reports whether the RA key of dir b is the one of dir a (the
// same public key), without opening either.
func sameRAKey(a, b string) bool {
	ka, err := (&keys.Dir{Path: a, Unopened: true}).Open(raKeyName)
	if err != nil {
		return false
	}
	kb, err := (&keys.Dir{Path: b, Unopened: true}).Open(raKeyName)
	return err == nil && pki.SamePublicKey(ka.Public(), kb.Public())
}

// retireRA copies the RA in service (its key or reference file, and
// cert) to caDir/retired-ra/<serial>/, built aside and renamed in; nothing
// to do when it is there already.
func retireRA(caDir string, cert *x509.Certificate) error {
	root := filepath.Join(caDir, RetiredRADir)
	dst := filepath.Join(root, cert.SerialNumber.Text(16))
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".tmp-*")
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := keys.CopyKey(&keys.Dir{Path: caDir}, &keys.Dir{Path: tmp}, raKeyName); err != nil {
		return fmt.Errorf("ca: keeping the RA key for decryption: %w", err)
	}
	if err := keys.WriteCertFile(filepath.Join(tmp, RACertFile), cert); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("ca: keeping the RA for decryption: %w", err)
	}
	syncDir(root)
	return nil
}

// installRA copies the RA built in from into caDir: the key first, then
// ra.crt, each atomically.
func installRA(from, caDir string) error {
	if err := keys.CopyKey(&keys.Dir{Path: from}, &keys.Dir{Path: caDir}, raKeyName); err != nil {
		return fmt.Errorf("ca: installing the new RA key: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(from, RACertFile))
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := keys.WriteFileAtomic(filepath.Join(caDir, RACertFile), data, 0o644); err != nil {
		return fmt.Errorf("ca: installing the new RA certificate: %w", err)
	}
	syncDir(caDir)
	return nil
}

// finishRARenewal completes a renewal that stopped after the new key was
// installed but before its certificate (ra.crt still the old one, ra.key
// the new one), and removes the build directories of renewals that
// stopped long ago. One under way (another process) is left alone: its
// key is not installed yet, or it writes the same ra.crt.
func finishRARenewal(caDir string) error {
	left, _ := filepath.Glob(filepath.Join(caDir, raNewPrefix+"*"))
	for _, d := range left {
		cert, cerr := loadCert(d, RACertFile)
		key, kerr := (&keys.Dir{Path: caDir, Unopened: true}).Open(raKeyName)
		inService, ierr := loadCert(caDir, RACertFile)
		if cerr == nil && kerr == nil && ierr == nil && !inService.Equal(cert) &&
			pki.SamePublicKey(key.Public(), cert.PublicKey) && !pki.SamePublicKey(key.Public(), inService.PublicKey) {
			if err := keys.WriteCertFile(filepath.Join(caDir, RACertFile), cert); err != nil {
				return fmt.Errorf("ca: finishing an interrupted RA renewal: %w", err)
			}
			continue
		}
		if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(d)
		}
	}
	return nil
}

// loadRetiredRAs loads caDir/retired-ra/<serial>/ for every RA that a
// renewal replaced and whose certificate has not expired at now: for
// decryption only. An expired one is dropped (and, unless m.readOnly, its
// key destroyed and its directory removed). One that is also loaded as
// inService (a renewal under way) is skipped. Each must be issued by one
// of issuers.
func loadRetiredRAs(caDir string, root *x509.Certificate, issuers []*Issuer, inService []*pki.RA, o InitOptions, now time.Time, m loadMode) ([]*pki.RA, error) {
	entries, err := os.ReadDir(filepath.Join(caDir, RetiredRADir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	var out []*pki.RA
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		d := filepath.Join(caDir, RetiredRADir, e.Name())
		cert, err := loadCert(d, RACertFile)
		if err != nil {
			return nil, fmt.Errorf("%w (a retired SCEP RA; remove %s once its certificate has expired)", err, d)
		}
		if !now.Before(cert.NotAfter) {
			if !m.readOnly {
				dropRetiredRA(d, o)
			}
			continue
		}
		if slicesContainsCert(inService, cert) {
			continue
		}
		var iss *Issuer
		for _, i := range issuers {
			if bytes.Equal(cert.RawIssuer, i.Cert.RawSubject) && cert.CheckSignatureFrom(i.Cert) == nil {
				iss = i
				break
			}
		}
		if iss == nil {
			return nil, fmt.Errorf("ca: %s was not issued by one of this CA's issuing CAs; remove %s", filepath.Join(d, RACertFile), d)
		}
		kd := o.keysIn(d, "", m)
		_, key, err := loadPair(d, RACertFile, kd, raKeyName)
		if errors.Is(err, keys.ErrKeyNotFound) {
			// Gone from a token that nodes share: another node destroyed
			// it, its certificate revoked (DropRetiredRA).
			if !m.readOnly {
				dropRetiredRA(d, o)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		key = o.wrapKey(key)
		if err := checkRAKey(kd.Where(raKeyName), key); err != nil {
			return nil, err
		}
		out = append(out, &pki.RA{Cert: cert, Key: key, Chain: []*x509.Certificate{cert, iss.Cert, root}})
	}
	return out, nil
}

// dropRetiredRA destroys an expired retired RA's key (in its token too)
// and removes its directory. Best effort: what stays is not loaded, and
// the next load tries again.
func dropRetiredRA(d string, o InitOptions) {
	_ = destroyRetiredRA(d, o.Token)
}

// destroyRetiredRA destroys the key of the retired RA in d (a file, or
// the token key its reference file records, by public key) and then
// removes d: the key first, so that what is left never holds it.
func destroyRetiredRA(d string, token keys.Token) error {
	if err := (&keys.Dir{Path: d, Token: token}).Destroy(raKeyName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ca: destroying the key of the retired RA in %s: %w", d, err)
	}
	if err := os.RemoveAll(d); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	syncDir(filepath.Dir(d))
	return nil
}

// DropRetiredRA destroys the key of the retired RA whose certificate is
// cert and removes its directory, caDir/retired-ra/<serial>/, then
// reloads the CA at now. For a retired RA whose certificate was revoked:
// it stops decrypting as soon as the revocation is known, and its key must
// not wait for the certificate's end in the data directory, in a token or
// in a key export. It reports whether there was such an RA (dropped; a
// directory holding another certificate under that serial is left
// alone), and where its key was (a file, or a reference file and the
// token key's URI) when there was one to destroy, for the audit trail:
// key is "" when the key was gone already (destroyed by another node
// sharing the token). A key that could not be destroyed is an error with
// dropped false and key set; dropped with an error is a reload that
// failed after the key was destroyed.
func (a *Authority) DropRetiredRA(cert *x509.Certificate, now time.Time) (dropped bool, key string, err error) {
	if a.caDir == "" || a.mode.readOnly {
		return false, "", errors.New("ca: this authority cannot change its CA directory")
	}
	d := filepath.Join(a.caDir, RetiredRADir, cert.SerialNumber.Text(16))
	onDisk, err := loadCert(d, RACertFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	if !onDisk.Equal(cert) {
		return false, "", nil
	}
	key = raKeyPlace(&keys.Dir{Path: d, Token: a.opts.Token})
	if err := destroyRetiredRA(d, a.opts.Token); err != nil {
		return false, key, err
	}
	if err := a.Reload(now); err != nil {
		return true, key, fmt.Errorf("ca: reloading without the retired RA: %w", err)
	}
	return true, key, nil
}

// ReplaceRA takes the SCEP RA whose certificate is cert out of service for
// good (its certificate was revoked): it destroys its key, in the CA
// directory that holds cert as its ra.crt (the current generation's or the
// next one's), removes that ra.crt, and reloads the CA at now, which issues
// a new RA key and certificate there as at the first start, its serial
// reserved in the store first (SetRAReserve). The key goes
// before the certificate: a load that found the key without its
// certificate would certify the revoked key again.
//
// All of it holds the reload lock. A Reload in the gap (the server's
// periodic one) would find ra.crt without its key, refuse to load, and log
// an instruction to remove ra.crt that is wrong at that moment.
//
// It reports, as DropRetiredRA does, where the key was (for the audit
// trail; "" when it was gone already, destroyed by another node sharing the
// token, or when no directory holds cert any more) and whether it was
// destroyed: destroyed false with key set and an error is a key that could
// not be destroyed (nothing else was changed), destroyed with an error a
// reload that failed after it.
func (a *Authority) ReplaceRA(cert *x509.Certificate, now time.Time) (destroyed bool, key string, err error) {
	if a.caDir == "" || a.mode.readOnly {
		return false, "", errors.New("ca: this authority cannot change its CA directory")
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	dir, err := RADirOf(a.caDir, cert)
	if err != nil {
		return false, "", err
	}
	if dir != "" {
		kd := &keys.Dir{Path: dir, Token: a.opts.Token}
		key = raKeyPlace(kd)
		err := kd.Destroy(raKeyName)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, key, fmt.Errorf("ca: destroying the revoked RA key in %s: %w", dir, err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			key = "" // gone meanwhile: destroyed by another node
		}
		destroyed = key != ""
		if err := os.Remove(filepath.Join(dir, RACertFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return destroyed, key, fmt.Errorf("ca: removing the revoked RA certificate: %w", err)
		}
		syncDir(dir)
		// Loaded in full: the disk now looks as it did before the load
		// that issued this RA, which is the state that load recorded.
		a.disk = ""
	}
	if err := a.reload(now); err != nil {
		return destroyed, key, fmt.Errorf("ca: issuing a new RA: %w", err)
	}
	return destroyed, key, nil
}

// raKeyPlace is where kd's RA key is (a file, or a reference file and the
// token key's URI), for the audit record of its destruction: "" when it is
// gone (destroyed by another node sharing the token).
func raKeyPlace(kd *keys.Dir) string {
	if _, err := kd.Open(raKeyName); errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return kd.Where(raKeyName)
}

// RADirOf is the CA directory whose ra.crt is cert: caDir or its next
// generation's; "" when neither holds it (replaced meanwhile).
func RADirOf(caDir string, cert *x509.Certificate) (string, error) {
	for _, dir := range []string{caDir, filepath.Join(caDir, NextDir)} {
		onDisk, err := loadCert(dir, RACertFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if onDisk.Equal(cert) {
			return dir, nil
		}
	}
	return "", nil
}

func slicesContainsCert(ras []*pki.RA, c *x509.Certificate) bool {
	for _, r := range ras {
		if r != nil && r.Cert.Equal(c) {
			return true
		}
	}
	return false
}

// anyExpired: one of ras has expired at now.
func anyExpired(ras []*pki.RA, now time.Time) bool {
	for _, r := range ras {
		if !now.Before(r.Cert.NotAfter) {
			return true
		}
	}
	return false
}
