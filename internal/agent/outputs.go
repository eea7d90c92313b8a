package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// output is one file a renewal writes, by the setting that names it.
type output struct{ setting, path string }

// outputs are the files an install writes: key and certificate (one file
// when they are the same), and a chain file of its own.
func (l *layout) outputs() []output {
	out := []output{{"key_path", l.key}, {"cert_path", l.cert}}
	if l.combined() {
		out = []output{{"key_path and cert_path", l.key}}
	}
	if l.separateChain() {
		out = append(out, output{"chain_path", l.chain})
	}
	return out
}

// checkOutputDirs refuses a file the agent writes whose directory does not
// exist (a typo, or one not created yet) or is not a directory, or a path
// that is a directory itself: an install could not complete, and a
// renewal asked for would be issued for nothing.
func (l *layout) checkOutputDirs() error {
	for _, o := range l.outputs() {
		dir := filepath.Dir(o.path)
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s %s: its directory %s does not exist; create it, or correct %s", o.setting, o.path, dir, o.setting)
		case err != nil:
			return fmt.Errorf("%s %s: its directory: %w", o.setting, o.path, err)
		case !fi.IsDir():
			return fmt.Errorf("%s %s: %s is not a directory; correct %s", o.setting, o.path, dir, o.setting)
		}
		if fi, err := os.Stat(o.path); err == nil && fi.IsDir() {
			return fmt.Errorf("%s %s is a directory; name the file in it, as %s", o.setting, o.path, filepath.Join(o.path, "FILE.pem"))
		}
	}
	return nil
}

// CheckOutputDirs checks, for each certificate, that the directories the
// agent writes its files into exist: a configuration naming one that does
// not is refused at start, as the other configuration errors are.
func CheckOutputDirs(cfg *Config) error {
	var errs []error
	for i := range cfg.Certificates {
		c := &cfg.Certificates[i]
		if err := newLayout(c, nil).checkOutputDirs(); err != nil {
			errs = append(errs, fmt.Errorf("certificate %d (%q): %w", i+1, c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// probeOutputDirs makes and removes a temporary file beside each file an
// install writes, before the server is asked for anything: a directory
// that cannot be written (its permissions, a read-only mount, a systemd
// unit's ReadWritePaths) would let the renewal be issued and then leave it
// half installed. What a crash leaves of the probe, recover removes.
func (l *layout) probeOutputDirs() error {
	if err := l.checkOutputDirs(); err != nil {
		return err
	}
	for _, o := range l.outputs() {
		f, err := os.CreateTemp(filepath.Dir(o.path), "."+filepath.Base(o.path)+tmpInfix+"*")
		if err != nil {
			return fmt.Errorf("%s %s cannot be written: %w; give the agent's user write access to %s (and, under systemd, list it in ReadWritePaths)",
				o.setting, o.path, err, filepath.Dir(o.path))
		}
		f.Close()
		os.Remove(f.Name())
	}
	return nil
}

// errIncomplete marks an install that switched the new key and certificate
// in and then failed: the renewal is in place, and must not be asked for
// again, but the run is not a success.
type errIncomplete struct{ err error }

func (e *errIncomplete) Error() string {
	return "the renewed key and certificate are in place, but the install did not complete: " + e.err.Error()
}

func (e *errIncomplete) Unwrap() error { return e.err }

// chainMissing: chain_path, a file of its own, is missing while the
// generation in place holds a chain (an install that stopped before it
// linked chain_path).
func (l *layout) chainMissing() bool {
	if l.combined() || !l.separateChain() || !l.ownLinks() {
		return false
	}
	if _, err := os.Stat(filepath.Join(l.inPlaceDir(), currentName, "chain.pem")); err != nil {
		return false
	}
	_, err := os.Lstat(l.chain)
	return errors.Is(err, fs.ErrNotExist)
}

// completeLinks links a missing chain_path to the chain in place: what an
// install that stopped after its switch left undone.
func (l *layout) completeLinks() (done bool, err error) {
	if !l.chainMissing() {
		return false, nil
	}
	target := l.linkTarget(l.chain, "chain.pem")
	if l.inPlaceDir() != l.switchState() {
		// The layout of an earlier version, not migrated yet.
		target = l.oldLinkTarget(l.chain, "chain.pem")
	}
	if err := l.symlink(l.chain, target); err != nil {
		return false, fmt.Errorf("chain_path %s is missing, and the chain of the certificate in place (%s) cannot be linked there: %w; create its directory, or give the agent's user write access to it",
			l.chain, filepath.Join(l.inPlaceDir(), currentName, "chain.pem"), err)
	}
	return true, nil
}

// chainBehindCertDir says, when it is so, that chain_path lies in a
// directory others may enter and the certificate's directory is one they
// may not: the generations, and the switch that makes key, certificate
// and chain change together, are beside the certificate (and its key),
// so after the first renewal others can no longer read the chain through
// chain_path. "" when nothing is lost, or on Windows, where the mode bits
// say nothing.
func (l *layout) chainBehindCertDir() string {
	if runtime.GOOS == "windows" || !l.separateChain() {
		return ""
	}
	certDir := filepath.Dir(l.cert)
	if filepath.Dir(l.chain) == certDir {
		return ""
	}
	cfi, err := os.Stat(certDir)
	if err != nil || cfi.Mode().Perm()&0o001 != 0 {
		return ""
	}
	if fi, err := os.Stat(filepath.Dir(l.chain)); err != nil || fi.Mode().Perm()&0o001 == 0 {
		return ""
	}
	return fmt.Sprintf("chain_path %s is linked into %s, inside the certificate's directory %s (mode %04o), which others may not enter: once renewed, only its owner and group can read it through that path, though others could before; "+
		"to keep it readable by all, set chain_path in the certificate's directory (or cert_path in one others may enter), or have post_renew copy the chain where others read it (cp -L)",
		l.chain, l.switchState(), certDir, cfi.Mode().Perm())
}
