package agent

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/scepter/scepter/internal/filetrust"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// How the files of one certificate are kept on disk (docs/agent.md):
//
//	DIR(key_path)/.scepter-agent/.lock-BASE(key_path)
//	                          held (flock) while an agent works on key_path,
//	                          whatever NAME its configuration gives it
//	DIR(key_path)/.scepter-agent/NAME/
//	    lock                  held (flock) while an agent works on NAME
//	    gen-000007/key.pem    one complete generation: key, certificate, chain
//	    gen-000007/cert.pem
//	    gen-000007/chain.pem
//	    current -> gen-000007 the generation in use, switched by one rename
//	    post-renew-pending    a renewal is in place, its post_renew not yet run
//	    post-renew-running    the post_renew command running (postrun.go)
//	    pending-key.pem       the new key of a renewal not installed yet (held, or no certificate came)
//	    pending-key.sent      its request may have left: where to, and whether it was held
//	    parked.pem            a renewal waiting for its start (see parked.go)
//	    paths                 the key_path and cert_path it serves (binding.go)
//	key_path   -> .scepter-agent/NAME/current/key.pem
//	cert_path  -> .scepter-agent/NAME/current/cert.pem
//	chain_path -> .scepter-agent/NAME/current/chain.pem
//
// A new generation is written completely (each file synced) in a
// directory nothing points to, then `current` is switched by renaming a
// new symbolic link over it. key_path and cert_path resolve through
// `current`, so at every instant they show the old pair or the new one.
// Regular files from `scepter enroll` (or any other tool) are migrated to
// this layout first, with a generation holding exactly their content, so
// the migration never changes what the paths show. When key_path equals
// cert_path, the one file (certificate, chain, key) is replaced by one
// rename and needs no generations.

const (
	stateDirName  = ".scepter-agent"
	currentName   = "current"
	genPrefix     = "gen-"
	markerName    = "post-renew-pending"
	pendingKeyPEM = "pending-key.pem"
	// pendingSentName records that the request with the kept key may have
	// left, and where to: its protocol and URL; and whether the server
	// held it for approval.
	pendingSentName = "pending-key.sent"
	lockName        = "lock"
	// filesLockPrefix names, in DIR(key_path)/.scepter-agent, the lock of
	// the key file (".lock-key.pem"); a certificate name cannot start
	// with a dot, so it never collides with a state directory.
	filesLockPrefix = ".lock-"
	// tmpInfix marks the temporary files and links the agent makes; what an
	// interrupted run left is removed by the next one.
	tmpInfix = ".scepter-agent-tmp-"
)

// ErrMismatch: the key and the certificate on disk do not belong together.
var ErrMismatch = errors.New("the key does not match the certificate")

// errStop is returned by a test hook to stop an install where it is, as a
// crash would.
var errStop = errors.New("stopped by test hook")

// layout is where one certificate's files are.
type layout struct {
	name             string
	key, cert, chain string // absolute; chain "" when none, == cert for a full chain
	state            string
	// warn, when set, is told of a file of the agent's own state that is
	// damaged and therefore set aside (never in silence: it may be the
	// only copy of a key).
	warn func(msg string, args ...any)
	// pendingKeyWarned: the damaged pending key is named once per check;
	// pendingSentWarned: its damaged record, likewise.
	pendingKeyWarned, pendingSentWarned bool
	// hook, when set, is called after each step that changes the disk; an
	// error stops the install right there, with nothing cleaned up.
	hook func(step string) error
}

func newLayout(c *Certificate, hook func(string) error) *layout {
	return &layout{name: c.Name, key: c.KeyPath, cert: c.CertPath, chain: c.ChainPath,
		state: filepath.Join(filepath.Dir(c.KeyPath), stateDirName, c.Name), hook: hook}
}

func (l *layout) combined() bool { return l.key == l.cert }

// separateChain: the chain has a file of its own.
func (l *layout) separateChain() bool { return l.chain != "" && l.chain != l.cert && l.chain != l.key }

func (l *layout) step(name string) error {
	if l.hook == nil {
		return nil
	}
	return l.hook(name)
}

// pair is a key and certificate as read from disk.
type pair struct {
	cert  *x509.Certificate
	extra []*x509.Certificate // further certificates in the certificate file
	key   crypto.Signer
	// keyData and certData are the files as they are.
	keyData, certData []byte
}

// readPair reads the key and certificate through whatever links lead to
// them and checks that they belong together.
func readPair(l *layout) (*pair, error) {
	p := &pair{}
	var err error
	if p.certData, err = os.ReadFile(l.cert); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("certificate file %s is missing", l.cert)
		}
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	certs, err := keys.ParseCertsPEM(p.certData)
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", l.cert, err)
	}
	p.cert, p.extra = certs[0], certs[1:]
	p.keyData = p.certData
	if !l.combined() {
		if p.keyData, err = os.ReadFile(l.key); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("key file %s is missing", l.key)
			}
			return nil, fmt.Errorf("key file: %w", err)
		}
	}
	if p.key, err = parseKey(p.keyData); err != nil {
		return nil, fmt.Errorf("key file %s: %w", l.key, err)
	}
	if !pki.SamePublicKey(p.key.Public(), p.cert.PublicKey) {
		if l.combined() {
			return nil, fmt.Errorf("%s: %w in it", l.key, ErrMismatch)
		}
		return nil, fmt.Errorf("%w: key %s, certificate %s", ErrMismatch, l.key, l.cert)
	}
	return p, nil
}

// parseKey reads the private key of a PEM file that may hold certificates
// too (a combined file).
func parseKey(data []byte) (crypto.Signer, error) {
	var keyPEM []byte
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			keyPEM = append(keyPEM, pem.EncodeToMemory(b)...)
		}
	}
	defer clear(keyPEM)
	if keyPEM == nil {
		return nil, errors.New("no PEM private key found")
	}
	return keys.ParseKeyPEM(keyPEM)
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// keyFormat is how a key file spells its key.
type keyFormat int

const (
	// formatPKCS8 is "PRIVATE KEY", what the agent writes by default.
	formatPKCS8 keyFormat = iota
	// formatTraditional is OpenSSL's older per-algorithm encoding: PKCS#1
	// ("RSA PRIVATE KEY") for RSA, SEC1 ("EC PRIVATE KEY") for EC.
	formatTraditional
)

// keyFormatOf is the format of the key in the PEM data (a key file or a
// combined one); PKCS#8 when there is none.
func keyFormatOf(data []byte) keyFormat {
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return formatPKCS8
		}
		switch b.Type {
		case "RSA PRIVATE KEY", "EC PRIVATE KEY":
			return formatTraditional
		case "PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return formatPKCS8
		}
	}
}

// keyFormatOfFile is keyFormatOf the file at path, PKCS#8 when it cannot
// be read.
func keyFormatOfFile(path string) keyFormat {
	b, err := os.ReadFile(path)
	if err != nil {
		return formatPKCS8
	}
	defer clear(b)
	return keyFormatOf(b)
}

// encodeKey writes key as PKCS#8.
func encodeKey(key crypto.Signer) ([]byte, error) {
	return encodeKeyAs(key, formatPKCS8)
}

// encodeKeyAs writes key in format: a renewal keeps the format of the
// file it replaces, since some consumers read only one (PKCS#1 for older
// OpenSSL-based software, SEC1 for some embedded TLS stacks). An Ed25519
// key has no traditional form and is always PKCS#8; a traditional file
// whose new key is of another type (key_type) gets that type's
// traditional form.
func encodeKeyAs(key crypto.Signer, format keyFormat) ([]byte, error) {
	var (
		der       []byte
		blockType = "PRIVATE KEY"
		err       error
	)
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if format == formatTraditional {
			der, blockType = x509.MarshalPKCS1PrivateKey(k), "RSA PRIVATE KEY"
		}
	case *ecdsa.PrivateKey:
		if format == formatTraditional {
			der, err = x509.MarshalECPrivateKey(k)
			blockType = "EC PRIVATE KEY"
		}
	}
	if der == nil && err == nil {
		blockType = "PRIVATE KEY"
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding the key: %w", err)
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), nil
}

// stateDir makes the state directory: private like the directory that
// holds the key, and never writable by group or others.
func (l *layout) stateDir() error {
	parent := filepath.Dir(l.key)
	fi, err := os.Stat(parent)
	if err != nil {
		return fmt.Errorf("the key's directory: %w", err)
	}
	mode := fi.Mode().Perm() &^ 0o022
	for _, d := range []string{filepath.Join(parent, stateDirName), l.state} {
		err := os.Mkdir(d, mode)
		switch {
		case err == nil:
			_ = os.Chmod(d, mode) // past the umask
			copyOwner(d, parent)
			syncDir(filepath.Dir(d))
		case !errors.Is(err, fs.ErrExist):
			return err
		default:
			if err := unsafeStateDir(d, parent); err != nil {
				return err
			}
		}
	}
	return nil
}

// errUnsafeState: a state directory that is there is not what the agent
// makes (writable by group or others, a link, another user's). Whoever
// may change it may switch `current`, and with it the key and
// certificate the paths show.
type errUnsafeState struct{ err error }

func (e *errUnsafeState) Error() string { return e.err.Error() }
func (e *errUnsafeState) Unwrap() error { return e.err }

// unsafeStateDir checks a state directory that is there already: it must
// be what Mkdir would have made, for keys go into it and through it
// key_path resolves.
func unsafeStateDir(d, parent string) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &errUnsafeState{fmt.Errorf("%s is not a directory (a link?): the agent keeps keys there, and will not follow it; remove it", d)}
	}
	if !fi.IsDir() {
		// In the way, but no one's way to the keys: a run that is not
		// due still looks at the files.
		return fmt.Errorf("%s is not a directory (a link?): the agent keeps keys there, and will not follow it; remove it", d)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0 {
		return &errUnsafeState{fmt.Errorf("%s is writable by group or others (%v): the agent keeps keys there, and whoever may write it may swap the key and certificate; chmod go-w it", d, fi.Mode().Perm())}
	}
	if foreignOwner(d, parent) {
		return &errUnsafeState{fmt.Errorf("%s belongs to another user than the agent or the key's directory: that user could swap the keys in it; remove it or chown it", d)}
	}
	return nil
}

// checkStateDir checks the state directories that are there, changing
// nothing (for status, and a run that cannot make them).
func (l *layout) checkStateDir() error {
	parent := filepath.Dir(l.key)
	for _, d := range []string{filepath.Join(parent, stateDirName), l.state} {
		if _, err := os.Lstat(d); err != nil {
			continue
		}
		if err := unsafeStateDir(d, parent); errors.As(err, new(*errUnsafeState)) {
			return err
		}
	}
	return nil
}

// writeFile writes data to path atomically: a temporary file in the same
// directory gets the mode and owner, the data, an fsync, and is renamed
// over path; then the directory is synced. Unlike keys.WriteFileAtomic it
// sets the owner before the rename and stops at the test hook.
func (l *layout) writeFile(path string, data []byte, perm os.FileMode, ownerOf string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tmpInfix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil && ownerOf != "" {
		chownLike(f, ownerOf)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := l.step("write " + path + ": synced"); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(dir)
	return l.step("write " + path + ": renamed")
}

// symlink points path at target, atomically: a new link renamed over it.
func (l *layout) symlink(path, target string) error {
	if cur, err := os.Readlink(path); err == nil && cur == target {
		return nil
	}
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, "."+filepath.Base(path)+tmpInfix+strconv.FormatUint(rand.Uint64(), 36))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := l.step("link " + path + ": created"); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(dir)
	return l.step("link " + path + ": renamed")
}

// linkTarget is what path (key_path, cert_path, chain_path) links to: a
// relative target when path is in the key's directory, however either is
// spelled, an absolute one elsewhere. An absolute target runs through
// the spelling of key_path: one made for a file in the key's directory
// through a symbolic link the other setting does not use would dangle
// once that link is removed.
func (l *layout) linkTarget(path, file string) string {
	if sameDirSpelled(filepath.Dir(path), filepath.Dir(filepath.Dir(l.state))) {
		return filepath.Join(stateDirName, l.name, currentName, file)
	}
	return filepath.Join(l.state, currentName, file)
}

// isOurLink: path is a link to file in this certificate's `current`, as
// linkTarget makes it now or as a run that spelled the key's directory
// (or path's) another way made it.
func (l *layout) isOurLink(path, file string) bool {
	t, err := os.Readlink(path)
	if err != nil {
		return false
	}
	if t == l.linkTarget(path, file) {
		return true
	}
	if !filepath.IsAbs(t) {
		t = filepath.Join(filepath.Dir(path), t)
	}
	t = filepath.Clean(t)
	cur := filepath.Dir(t)
	if filepath.Base(t) != file || filepath.Base(cur) != currentName {
		return false
	}
	name, state := otherAgentState(t)
	return name == l.name && state == filepath.Dir(cur) && sameDirSpelled(filepath.Dir(state), filepath.Dir(l.state))
}

// checkLinks refuses a key_path, cert_path or chain_path that is a
// symbolic link the agent did not make (one that leads anywhere but into
// its own state directory): an install renames its own link over the
// path, so the operator's link would silently point elsewhere and the
// file it led to keep the old certificate, revoked as superseded.
func (l *layout) checkLinks() error {
	paths := []struct{ setting, path string }{{"key_path", l.key}, {"cert_path", l.cert}}
	if l.separateChain() {
		paths = append(paths, struct{ setting, path string }{"chain_path", l.chain})
	}
	for _, p := range paths {
		if p.setting == "cert_path" && l.combined() {
			continue
		}
		target, err := os.Readlink(p.path)
		if err != nil {
			continue // a regular file, or missing: readPair says which
		}
		resolved := target
		if !filepath.IsAbs(resolved) {
			resolved = filepath.Join(filepath.Dir(p.path), resolved)
		}
		resolved = filepath.Clean(resolved)
		if strings.HasPrefix(resolved, l.state+string(filepath.Separator)) {
			continue
		}
		// Whether the link leads anywhere comes first: a dangling link
		// into a state directory (spelled through a symbolic link since
		// removed) is missing its file, whoever's it was.
		if _, err := os.Stat(p.path); errors.Is(err, fs.ErrNotExist) {
			// Nothing keeps an old certificate, and nothing can be copied.
			what := map[string]string{"key_path": "key", "cert_path": "certificate", "chain_path": "chain"}[p.setting]
			return fmt.Errorf("%s %s is a symbolic link to %s, which leads nowhere (%s does not exist): the %s is missing; remove the link (rm %s) and enroll again to these paths (scepter enroll or scepter est enroll), or set %s to the file the service reads",
				p.setting, p.path, target, resolved, what, filetrust.ShellQuote(p.path), p.setting)
		}
		if other, otherState := otherAgentState(resolved); other != "" {
			if sameDir(otherState, l.state) {
				// Our own state directory, spelled another way: the key's
				// directory through a link, or the link's target through
				// one.
				continue
			}
			msg := fmt.Sprintf("%s %s is a link into %s, the state directory of the agent's certificate %q: another [[certificate]] (in this configuration or another) manages these files, and two names on the same files would take them from each other; "+
				"keep one [[certificate]] for them (to rename one, see docs/agent.md)", p.setting, p.path, otherState, other)
			// Never advise removing a directory a configured path
			// reaches: it may hold the only key in service.
			if gens, err := l.generations(); err == nil && len(gens) > 0 && len(l.reachedGenerations()) == 0 {
				msg += fmt.Sprintf("; %s holds older files of %q, a private key of a superseded certificate among them: remove it once no configuration names %q", l.state, l.name, l.name)
			}
			return errors.New(msg)
		}
		return fmt.Errorf("%s %s is a symbolic link to %s, which the agent did not make: a renewal would replace the link, and %s would keep the old certificate; "+
			"set %s to %s itself, or replace the link by a copy of the file (cp -p --remove-destination %s %s)",
			p.setting, p.path, target, resolved, p.setting, resolved, resolved, p.path)
	}
	return nil
}

// checkDirs refuses a key_path, cert_path or chain_path whose directory,
// or one above it (as spelled, and from where its symbolic links lead),
// group or others may write without the sticky bit, or
// another user than the agent's and root owns (filetrust.UnsafeDir):
// whoever may write it may rename a key and certificate of their own over
// the agent's links (or the directory that holds them), and the service
// would load them. On Windows the mode bits say nothing about access, and
// nothing is checked.
func (l *layout) checkDirs() error {
	settings := []struct{ setting, path string }{{"key_path", l.key}, {"cert_path", l.cert}, {"chain_path", l.chain}}
	for _, s := range settings {
		if s.path == "" {
			continue
		}
		dir := filepath.Dir(s.path)
		if _, err := os.Stat(dir); err != nil {
			continue // readPair, or the install, says what is wrong
		}
		p := filetrust.UnsafeDir(dir)
		if p == nil {
			continue
		}
		// UnsafeDir walks the directories where dir's links lead too;
		// a directory off the spelled way is named with where it leads.
		whose := fmt.Sprintf("the directory of %s %s, or one above it", s.setting, s.path)
		if !isUnder(dir, p.Dir) {
			real, _ := filepath.EvalSymlinks(dir)
			whose = fmt.Sprintf("the directory of %s %s leads through a symbolic link to %s; that directory, or one above it", s.setting, s.path, real)
		}
		if p.Foreign {
			return fmt.Errorf("%s, %s, belongs to user %s (uid %d), not to %s: that user may replace the key and certificate with their own, which the service would load; move the files to a directory %s owns",
				whose, p.Dir, filetrust.UserName(p.Owner), p.Owner, filetrust.TrustedUsers(), filetrust.TrustedUsers())
		}
		return fmt.Errorf("%s, %s, has mode %04o: group or others may replace the key and certificate in it with their own, which the service would load; the agent keeps nothing there: run chmod go-w %s, or move the files",
			whose, p.Dir, p.Mode.Perm(), filetrust.ShellQuote(p.Dir))
	}
	return nil
}

// sameDir: a and b are one directory once their links are followed (both
// must exist).
func sameDir(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// sameDirSpelled: a and b are one directory, spelled alike or once their
// links are followed (a missing one is only the same spelled alike).
func sameDirSpelled(a, b string) bool {
	return filepath.Clean(a) == filepath.Clean(b) || sameDir(a, b)
}

// isUnder: dir is top or lies under it, by their spelling.
func isUnder(dir, top string) bool {
	rel, err := filepath.Rel(top, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// otherAgentState is the certificate name and state directory of an
// agent's state that path lies in (DIR/.scepter-agent/NAME/...), or "".
func otherAgentState(path string) (name, state string) {
	sep := string(filepath.Separator)
	i := strings.LastIndex(path, sep+stateDirName+sep)
	if i < 0 {
		return "", ""
	}
	rest := path[i+len(sep+stateDirName+sep):]
	name, _, _ = strings.Cut(rest, sep)
	if name == "" {
		return "", ""
	}
	return name, path[:i+len(sep+stateDirName+sep)] + name
}

// lock takes the locks of one certificate: one on its key file, which
// every agent on these files takes whatever name its configuration gives
// them, and one on its name, whose state directory it works in. It
// returns errLocked when another agent holds either.
func (l *layout) lock() (unlock func(), err error) {
	unlockFiles, err := lockFile(filepath.Join(filepath.Dir(l.key), stateDirName, filesLockPrefix+filepath.Base(l.key)))
	if err != nil {
		return nil, err
	}
	unlockName, err := lockFile(filepath.Join(l.state, lockName))
	if err != nil {
		unlockFiles()
		return nil, err
	}
	return func() { unlockName(); unlockFiles() }, nil
}

// currentGen is the generation `current` names.
func (l *layout) currentGen() (string, error) {
	t, err := os.Readlink(filepath.Join(l.state, currentName))
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(t, genPrefix) || strings.Contains(t, "/") {
		return "", fmt.Errorf("%s points to %q, not to a generation", filepath.Join(l.state, currentName), t)
	}
	return t, nil
}

// completeGeneration checks that gen holds a key and a certificate, as
// every generation `current` is switched to does.
func (l *layout) completeGeneration(gen string) error {
	cur := filepath.Join(l.state, currentName)
	const fix = "(changed by hand, or damaged): no generation is removed; point it at the generation that holds the key and certificate"
	switch fi, err := os.Stat(filepath.Join(l.state, gen)); {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s points to %s, which does not exist %s", cur, gen, fix)
	case err != nil:
		return fmt.Errorf("%s points to %s, which cannot be read %s: %w", cur, gen, fix, err)
	case !fi.IsDir():
		return fmt.Errorf("%s points to %s, which is not a directory %s", cur, gen, fix)
	}
	for _, f := range []string{"key.pem", "cert.pem"} {
		switch _, err := os.Stat(filepath.Join(l.state, gen, f)); {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s points to %s, which has no %s %s", cur, gen, f, fix)
		case err != nil:
			return fmt.Errorf("%s points to %s, whose %s cannot be read %s: %w", cur, gen, f, fix, err)
		}
	}
	return nil
}

func (l *layout) generations() ([]string, error) {
	entries, err := os.ReadDir(l.state)
	if err != nil {
		return nil, err
	}
	var gens []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), genPrefix) && e.IsDir() {
			gens = append(gens, e.Name())
		}
	}
	sort.Strings(gens)
	return gens, nil
}

// newGeneration makes an empty generation directory, numbered after every
// one there is.
func (l *layout) newGeneration() (string, error) {
	gens, err := l.generations()
	if err != nil {
		return "", err
	}
	n := 0
	for _, g := range gens {
		if v, err := strconv.Atoi(strings.TrimPrefix(g, genPrefix)); err == nil && v > n {
			n = v
		}
	}
	fi, err := os.Stat(l.state)
	if err != nil {
		return "", err
	}
	gen := fmt.Sprintf("%s%06d", genPrefix, n+1)
	if err := os.Mkdir(filepath.Join(l.state, gen), fi.Mode().Perm()); err != nil {
		return "", err
	}
	// Past the umask (UMask=0077 in the example units): a service that
	// reads the key as another user, or through its group, reads it
	// through this directory too.
	_ = os.Chmod(filepath.Join(l.state, gen), fi.Mode().Perm())
	copyOwner(filepath.Join(l.state, gen), l.state)
	syncDir(l.state)
	return gen, l.step("generation " + gen + ": created")
}

// removeGenerations removes every generation but keep ("" removes all)
// and those a configured or recorded path still reaches (a link made by
// hand to a generation, say): removing one would take the files from
// under that path.
func (l *layout) removeGenerations(keep string) error {
	gens, err := l.generations()
	if err != nil {
		return err
	}
	reached := l.reachedGenerations()
	removed := false
	for _, g := range gens {
		if g == keep || reached[g] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(l.state, g)); err != nil {
			return err
		}
		removed = true
		if err := l.step("generation " + g + ": removed"); err != nil {
			return err
		}
	}
	if removed {
		syncDir(l.state)
	}
	return nil
}

// keyPerm is the mode of a key that replaces the one at like: 0600, or 0640
// when that one was readable by its group, so that a service reading its
// key through the group still can after a renewal. Never more.
func keyPerm(like string) os.FileMode {
	if fi, err := os.Stat(like); err == nil && fi.Mode().Perm()&0o040 != 0 {
		return 0o640
	}
	return 0o600
}

// files is the content of one generation.
type files struct {
	key, cert, chain []byte // chain nil when none
	keyOwner         string // the file whose owner the key takes
	certOwner        string
	chainOwner       string // "" is certOwner's
}

// writeGeneration writes a complete generation and switches `current` to
// it; then key_path, cert_path and chain_path are made links through it.
func (l *layout) writeGeneration(f files) error {
	gen, err := l.newGeneration()
	if err != nil {
		return err
	}
	dir := filepath.Join(l.state, gen)
	if err := l.writeFile(filepath.Join(dir, "key.pem"), f.key, keyPerm(f.keyOwner), f.keyOwner); err != nil {
		return err
	}
	if err := l.writeFile(filepath.Join(dir, "cert.pem"), f.cert, 0o644, f.certOwner); err != nil {
		return err
	}
	if f.chain != nil {
		owner := f.chainOwner
		if owner == "" {
			owner = f.certOwner
		}
		if err := l.writeFile(filepath.Join(dir, "chain.pem"), f.chain, 0o644, owner); err != nil {
			return err
		}
	}
	if f.chain != nil {
		// A chain_path that is not there yet is linked before the switch:
		// until then the link leads nowhere, as the path did, and a
		// chain_path that cannot be made stops the install while the
		// old pair is still in place.
		if _, err := os.Lstat(l.chain); errors.Is(err, fs.ErrNotExist) {
			if err := l.symlink(l.chain, l.linkTarget(l.chain, "chain.pem")); err != nil {
				return fmt.Errorf("chain_path %s: %w", l.chain, err)
			}
		}
	}
	// The switch: one rename. Before it the paths show the old pair, after
	// it the new one.
	if err := l.symlink(filepath.Join(l.state, currentName), gen); err != nil {
		return err
	}
	// From here on the new generation is in place: a failure is reported,
	// and the renewal is not asked for again.
	if err := l.symlink(l.key, l.linkTarget(l.key, "key.pem")); err != nil {
		return &errIncomplete{fmt.Errorf("key_path %s: %w", l.key, err)}
	}
	if err := l.symlink(l.cert, l.linkTarget(l.cert, "cert.pem")); err != nil {
		return &errIncomplete{fmt.Errorf("cert_path %s: %w", l.cert, err)}
	}
	if f.chain != nil {
		if err := l.symlink(l.chain, l.linkTarget(l.chain, "chain.pem")); err != nil {
			return &errIncomplete{fmt.Errorf("chain_path %s: %w", l.chain, err)}
		}
	}
	if err := l.removeGenerations(gen); err != nil {
		return &errIncomplete{fmt.Errorf("removing the old generations: %w", err)}
	}
	return nil
}

// migrate brings key_path and cert_path (and chain_path) into the layout
// when they are not links through `current` yet (regular files from
// `scepter enroll`, or an interrupted migration): a generation with exactly
// their content is made current, and only then is each path replaced by a
// link, so that every path shows the same content throughout.
func (l *layout) migrate() error {
	if l.combined() {
		return nil
	}
	_, curErr := l.currentGen()
	chainOK := !l.separateChain() || l.isOurLink(l.chain, "chain.pem")
	if !chainOK {
		if _, err := os.Lstat(l.chain); errors.Is(err, fs.ErrNotExist) {
			chainOK = true
		}
	}
	if curErr == nil && l.isOurLink(l.key, "key.pem") && l.isOurLink(l.cert, "cert.pem") && chainOK {
		return nil
	}
	p, err := readPair(l)
	if err != nil {
		return fmt.Errorf("refusing to touch the files: %w", err)
	}
	f := files{key: p.keyData, cert: p.certData, keyOwner: l.key, certOwner: l.cert}
	if l.separateChain() {
		if b, err := os.ReadFile(l.chain); err == nil {
			f.chain, f.chainOwner = b, l.chain
		}
	}
	return l.writeGeneration(f)
}

// install puts a new key and certificate (and chain) in place. Before the
// switch it records marker (the new certificate's fingerprint) so that a
// post_renew command that a crash kept from running is run by the next
// run.
func (l *layout) install(key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate, marker bool) error {
	keyPEM, err := encodeKeyAs(key, keyFormatOfFile(l.key))
	if err != nil {
		return err
	}
	defer clear(keyPEM)
	certPEM := encodeCerts(cert)
	if l.chain == l.cert && len(chain) > 0 {
		certPEM = append(certPEM, encodeCerts(chain...)...)
	}
	if err := l.checkLinks(); err != nil {
		return err
	}
	if err := l.checkDirs(); err != nil {
		return err
	}
	if err := l.stateDir(); err != nil {
		return err
	}
	if err := l.probeOutputDirs(); err != nil {
		return err
	}
	if msg := l.certsBehindKeyDir(); msg != "" {
		l.warnf(msg)
	}
	if err := l.migrate(); err != nil {
		// The migration shows what was in place throughout: nothing
		// renewed is in place yet, whatever step failed.
		var inc *errIncomplete
		if errors.As(err, &inc) {
			err = inc.err
		}
		return err
	}
	if marker {
		if err := l.writeFile(filepath.Join(l.state, markerName), []byte(client.Fingerprint(cert)+"\n"), 0o600, ""); err != nil {
			return err
		}
	}
	if l.combined() {
		// One file: certificate, chain, key (HAProxy's order); one rename.
		// The chain file first: one that cannot be written stops the
		// install before the renewal is in place.
		data := append(append([]byte{}, certPEM...), keyPEM...)
		defer clear(data)
		if l.separateChain() && len(chain) > 0 {
			if err := l.writeFile(l.chain, encodeCerts(chain...), 0o644, l.chain); err != nil {
				return fmt.Errorf("chain_path %s: %w", l.chain, err)
			}
		}
		return l.writeFile(l.key, data, keyPerm(l.key), l.key)
	}
	f := files{key: keyPEM, cert: certPEM, keyOwner: l.key, certOwner: l.cert}
	if l.separateChain() && len(chain) > 0 {
		f.chain = encodeCerts(chain...)
		// The chain it replaces, or, when there is none, the certificate.
		if _, err := os.Stat(l.chain); err == nil {
			f.chainOwner = l.chain
		}
	}
	return l.writeGeneration(f)
}

// recover removes what an interrupted run left (temporary files and links,
// generations that never became current) and reports whether a renewal is
// in place whose post_renew command has not run.
func (l *layout) recover() (postRenewDue bool, err error) {
	var patterns []string
	patterns = append(patterns, filepath.Join(globQuote(l.state), "*"+tmpInfix+"*"))
	for _, p := range uniq(l.key, l.cert, l.chain) {
		patterns = append(patterns, filepath.Join(globQuote(filepath.Dir(p)), globQuote("."+filepath.Base(p)+tmpInfix)+"*"))
	}
	for _, pat := range patterns {
		m, _ := filepath.Glob(pat)
		for _, f := range m {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, err
			}
		}
	}
	if !l.combined() {
		cur, err := l.currentGen()
		switch {
		case err == nil:
			// Our switch only ever points `current` at a complete
			// generation. One that names a missing or incomplete one was
			// changed by hand or damaged: the other generations may hold
			// the only copy of the key, so none is removed.
			if err := l.completeGeneration(cur); err != nil {
				return false, err
			}
			if err := l.removeGenerations(cur); err != nil {
				return false, err
			}
		case errors.Is(err, fs.ErrNotExist) && !l.isOurLink(l.key, "key.pem") && !l.isOurLink(l.cert, "cert.pem"):
			// A migration stopped before its switch; nothing uses these.
			if err := l.removeGenerations(""); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, err
			}
		}
	}
	marker, err := os.ReadFile(filepath.Join(l.state, markerName))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	want := strings.TrimSpace(string(marker))
	if certs, err := loadCerts(l.cert); err == nil && client.Fingerprint(certs[0]) == want {
		return true, nil
	}
	if !isFingerprint(want) {
		// Not what installCert writes: damaged or edited. Whether a
		// renewal is in place cannot be told, and the operator may have
		// to run post_renew by hand.
		l.warnf("the post_renew marker holds no certificate fingerprint; removing it without running post_renew (run it by hand if a renewal was installed)",
			"file", filepath.Join(l.state, markerName))
	}
	// The renewal stopped before its switch: the old pair is still there.
	return false, l.clearMarker()
}

// markerFingerprint is the fingerprint the post_renew marker names, ""
// when none.
func (l *layout) markerFingerprint() string {
	b, err := os.ReadFile(filepath.Join(l.state, markerName))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// isFingerprint: s is "sha256:" and 64 lower-case hex digits, as
// client.Fingerprint writes it.
func isFingerprint(s string) bool {
	h, ok := client.NormalizeFingerprint(s)
	return ok && "sha256:"+h == s
}

func (l *layout) warnf(msg string, args ...any) {
	if l.warn != nil {
		l.warn(msg, args...)
	}
}

func (l *layout) clearMarker() error {
	err := os.Remove(filepath.Join(l.state, markerName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	syncDir(l.state)
	return nil
}

// pendingKey is the new key of a renewal not installed yet (held for
// approval, or without a certificate: its answer lost, or the server said
// to try again later), kept so that the next attempt asks with
// the same key: SCEP knows a request by its key, and the server answers a
// renewal it already issued for that key with the same certificate.
// A file that is there and cannot be read is named in a warning: the
// renewal goes on with a new key and replaces it, and a certificate the
// server issued for the key it held can no longer be collected.
func (l *layout) pendingKey() crypto.Signer {
	path := filepath.Join(l.state, pendingKeyPEM)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		defer clear(b)
		var k crypto.Signer
		if k, err = keys.ParseKeyPEM(b); err == nil {
			return k
		}
	}
	if !l.pendingKeyWarned {
		l.pendingKeyWarned = true
		l.warnf("the kept key of an earlier renewal (held for approval, or that got no certificate) cannot be read; a renewal makes a new key and replaces the file",
			"file", path, "err", err)
	}
	return nil
}

// savePendingKey keeps a new key before anything is asked with it. The
// record of an earlier key's request goes first: it would otherwise be
// taken for this key's.
func (l *layout) savePendingKey(key crypto.Signer) error {
	b, err := encodeKey(key)
	if err != nil {
		return err
	}
	defer clear(b)
	if err := l.stateDir(); err != nil {
		return err
	}
	if err := l.clearPendingSent(); err != nil {
		return err
	}
	return l.writeFile(filepath.Join(l.state, pendingKeyPEM), b, 0o600, "")
}

// clearPendingKey forgets the kept key and the record of its request (the
// record first: a record without its key would be taken for the next
// key's).
func (l *layout) clearPendingKey() {
	if l.clearPendingSent() != nil {
		return
	}
	if err := os.Remove(filepath.Join(l.state, pendingKeyPEM)); err == nil {
		syncDir(l.state)
	}
}

// sentRequest is where the request with the kept key went: the protocol
// and URL of the certificate's configuration when it left (both empty when
// the record of it is damaged), and whether the server held it for
// approval.
type sentRequest struct {
	protocol, url string
	held          sentHold
}

// sentHold is what the record of a kept key's request says of a hold.
type sentHold int

const (
	// holdNotSaid: a record of an older build, or a damaged one.
	holdNotSaid sentHold = iota
	// notHeld: sent, and no answer held it (it was lost, or the server
	// said to try again later, or it gave nothing that could be
	// installed).
	notHeld
	// heldForApproval: the server held it (SCEP PENDING, EST 202); it
	// stays so whatever later answers say.
	heldForApproval
)

// pendingHeldLine is the record's line that says whether the request was
// held: "yes" or "no"; older builds wrote none.
const pendingHeldLine = "held"

// pendingSent says whether the request with the kept key may have left
// (and where to): the key is kept before the server is asked, and an
// attempt that failed before the request went (the server not reached,
// the CA certificates fetch cut short by renew_timeout) sent nothing with
// it. A record that cannot be read is named in a warning and counts as
// sent, to the configured server: the key may be a held request's.
func (l *layout) pendingSent() (sentRequest, bool) {
	path := filepath.Join(l.state, pendingSentName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return sentRequest{}, false
	}
	var s sentRequest
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, " ")
			switch k {
			case "protocol":
				s.protocol = v
			case "url":
				s.url = v
			case pendingHeldLine:
				s.held = map[string]sentHold{"yes": heldForApproval, "no": notHeld}[v]
			}
		}
		if s.protocol != "" && s.url != "" {
			return s, true
		}
		err = errors.New("it names no protocol and URL")
	}
	if !l.pendingSentWarned {
		l.pendingSentWarned = true
		l.warnf("the record of where the kept key's request went cannot be read; taking it for a request to the configured server",
			"file", path, "err", err)
	}
	return sentRequest{}, true
}

// savePendingSent records, before the request with the kept key leaves,
// that it may have, and to which protocol and URL: a crash after it left
// finds the key again, and a key whose request went to another server is
// not asked about here. held says whether the server has held it for
// approval (notHeld before it leaves): the next attempt's words about
// the key say which.
func (l *layout) savePendingSent(protocol, url string, held sentHold) error {
	answer := "no"
	if held == heldForApproval {
		answer = "yes"
	}
	return l.writeFile(filepath.Join(l.state, pendingSentName), []byte("protocol "+protocol+"\nurl "+url+"\n"+pendingHeldLine+" "+answer+"\n"), 0o600, "")
}

func (l *layout) clearPendingSent() error {
	err := os.Remove(filepath.Join(l.state, pendingSentName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	syncDir(l.state)
	return nil
}

func loadCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return keys.ParseCertsPEM(b)
}

// syncDir makes renames in dir durable; a file system that cannot sync a
// directory is not an error (the data itself is synced).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// globQuote makes a configured path match itself only in a filepath.Glob
// pattern: key_path = /srv/[ab]/key.pem must not reach /srv/a.
func globQuote(p string) string {
	if runtime.GOOS == "windows" { // \ separates there; Match escapes nothing
		return p
	}
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
