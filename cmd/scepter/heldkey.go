package main

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// A request held for approval can only be collected with the key it was
// made with: the server knows it by that key (a SCEP transactionID is the
// key's hash, an EST request is held under it). So a key made for such a
// request is saved at once, and the next run of the same command takes it
// up again instead of making a new key, which would be a second request
// and leave the approved one for a key that no longer exists.

// heldKeySuffix marks where a held request's key goes when --key-out holds
// another key (the one being renewed, say), which stays until a
// certificate is issued.
const heldKeySuffix = ".pending"

// heldKey is the key of a request held for approval.
type heldKey struct {
	key  crypto.Signer
	path string // where it is saved
}

// findHeldKey returns the key an earlier run saved for a held request:
// keyOut+".pending", else keyOut, unless that is the key being renewed
// (current) or the key of the certificate in certOut; those are what an
// earlier run left after it was issued. It returns nil when there is none.
func findHeldKey(keyOut, certOut string, current crypto.PublicKey) (*heldKey, error) {
	if keyOut == "" {
		return nil, nil
	}
	var issued crypto.PublicKey
	if certs, err := keys.LoadCertFile(certOut); err == nil {
		issued = certs[0].PublicKey
	}
	for _, path := range []string{keyOut + heldKeySuffix, keyOut} {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		key, err := keys.LoadKeyFile(path)
		if err != nil {
			if path == keyOut {
				continue // not a held key: replaced on success, as always
			}
			return nil, fmt.Errorf("%w (it should hold the key of a request held for approval: remove it to make a new key and a new request)", err)
		}
		if pki.SamePublicKey(key.Public(), current) || pki.SamePublicKey(key.Public(), issued) {
			continue
		}
		return &heldKey{key: key, path: path}, nil
	}
	return nil, nil
}

// saveHeldKey saves the key of a request held for approval in keyOut, or,
// when keyOut holds another file, in keyOut+".pending"; it never replaces
// a file holding anything else. It returns where the key is.
func saveHeldKey(keyOut string, key crypto.Signer) (string, error) {
	for _, path := range []string{keyOut, keyOut + heldKeySuffix} {
		ok, err := writeKeyIfAbsent(path, key)
		if err != nil {
			return "", err
		}
		if ok {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s and %s hold other files", keyOut, keyOut+heldKeySuffix)
}

// writeKeyIfAbsent writes key (mode 0600, atomically) to path when no file
// is there, and reports whether path now holds key.
func writeKeyIfAbsent(path string, key crypto.Signer) (bool, error) {
	if existing, err := keys.LoadKeyFile(path); err == nil {
		return pki.SamePublicKey(existing.Public(), key.Public()), nil
	}
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("saving the key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("saving the key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return false, fmt.Errorf("saving the key: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := keys.WriteKeyFile(tmp.Name(), key); err != nil {
		return false, err
	}
	// A link is made only where no file is: a file that appeared at path
	// meanwhile is left as it is.
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("saving the key: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // the new name survives a crash
		d.Sync()
		d.Close()
	}
	return true, nil
}

// pendingHint turns the error of a request held for approval into what to
// do: a key made for it (made) is saved, and the message says where, and
// that running the same command again (again) collects the certificate;
// keyFlag, when set, is the flag that names the key explicitly. Other
// errors are returned as they are.
func pendingHint(err error, key crypto.Signer, made bool, keyOut string, held *heldKey, again, keyFlag string) error {
	var pe *client.PendingError
	if !errors.As(err, &pe) {
		return err
	}
	keyAt := ""
	switch {
	case held != nil:
		keyAt = held.path
	case made && keyOut != "":
		at, serr := saveHeldKey(keyOut, key)
		if serr != nil {
			return fmt.Errorf("%w, and its key could not be saved (%v): have the request rejected, and start again", err, serr)
		}
		keyAt = at
	}
	// Asked to wait and still held: the hint is to run again later, not
	// to add the flag given.
	waitHint := "add --max-wait to wait for it"
	if pe := (*client.PendingError)(nil); errors.As(err, &pe) && pe.Waited > 0 {
		waitHint = fmt.Sprintf("it was still held after --max-wait %s", pe.Waited)
	}
	if keyAt == "" {
		return fmt.Errorf("%w; to collect the certificate once it is approved, %s (%s)", err, again, waitHint)
	}
	explicit := ""
	if keyFlag != "" {
		explicit = fmt.Sprintf(" (or pass %s %s)", keyFlag, keyAt)
	}
	return fmt.Errorf("%w; its key is saved in %s: to collect the certificate once it is approved, %s, which takes that key up%s; %s", err, keyAt, again, explicit, waitHint)
}

// heldKeyNote says, after a failure, that the request used a held key:
// if that request was rejected, only removing the key starts anew.
func heldKeyNote(err error, held *heldKey) error {
	var pe *client.PendingError
	if err == nil || held == nil || errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%w (the request used the key in %s, saved for a request held for approval earlier; remove it to make a new key and a new request)", err, held.path)
}

// forgetHeldKey removes the ".pending" copy of a held key once its
// certificate is issued and the key written to --key-out.
func forgetHeldKey(held *heldKey, keyOut string) {
	if held != nil && held.path == keyOut+heldKeySuffix {
		os.Remove(held.path)
	}
}

// announceHeldKey tells the user the key of an earlier held request is
// taken up.
func announceHeldKey(e env, held *heldKey) {
	fmt.Fprintf(e.stderr, "using the key in %s, saved by an earlier run for a request held for approval or whose answer was lost (remove it to make a new key and a new request)\n", held.path)
}

// checkKeyOut refuses a --key-out that holds another private key than
// the one the request uses (key) or the one being renewed (renewed, nil
// for none), or anything else that is not an empty file, unless force:
// writing the new key there would lose it without a word, and with it the
// certificate it belongs to (two enrollments in one directory both
// default to key.pem).
func checkKeyOut(keyOut string, force bool, key, renewed crypto.PublicKey) error {
	if keyOut == "" || force {
		return nil
	}
	data, err := os.ReadFile(keyOut)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--key-out %s: %w", keyOut, err)
	}
	defer clear(data)
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	const advice = "name another --key-out, move it away, or pass --force to replace it"
	existing, err := keys.ParseKeyPEM(data)
	if err != nil {
		return fmt.Errorf("--key-out %s holds something that is not this request's key (%v), which writing the new key would replace; %s", keyOut, err, advice)
	}
	if pki.SamePublicKey(existing.Public(), key) || renewed != nil && pki.SamePublicKey(existing.Public(), renewed) {
		return nil
	}
	return fmt.Errorf("--key-out %s already holds another private key (an earlier enrollment's?), which writing the new key would replace, leaving its certificate without a key; %s", keyOut, advice)
}
