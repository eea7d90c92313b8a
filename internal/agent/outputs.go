package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/scepter/scepter/internal/filetrust"
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

// checkWritable refuses, changing nothing, a directory an install writes
// in that this process's user may not write (or enter): the directory of
// each file, and the state directories that are there. A renewal would
// fail there (probeOutputDirs, at the renewal point); `agent status`,
// which writes nothing, says so before it. On Windows nothing is checked.
func (l *layout) checkWritable() error {
	dirs := []output{}
	for _, o := range l.outputs() {
		dirs = append(dirs, output{o.setting + " " + o.path + ": its directory", filepath.Dir(o.path)})
	}
	for _, d := range []string{filepath.Join(filepath.Dir(l.key), stateDirName), l.state} {
		if _, err := os.Lstat(d); err == nil {
			dirs = append(dirs, output{"the state directory", d})
		}
	}
	for _, d := range dirs {
		if err := writableDir(d.path); err != nil {
			return fmt.Errorf("%s %s cannot be written by this user (%s): %w; a renewal would fail there: give the agent's user write access to %s (and, under systemd, list it in ReadWritePaths), or run status as the agent's user",
				d.setting, d.path, filetrust.UserName(os.Geteuid()), err, d.path)
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
	if _, err := os.Stat(filepath.Join(l.state, currentName, "chain.pem")); err != nil {
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
	if err := l.symlink(l.chain, l.linkTarget(l.chain, "chain.pem")); err != nil {
		return false, fmt.Errorf("chain_path %s is missing, and the chain of the certificate in place (%s) cannot be linked there: %w; create its directory, or give the agent's user write access to it",
			l.chain, filepath.Join(l.state, currentName, "chain.pem"), err)
	}
	return true, nil
}

// certsBehindKeyDir says, when it is so, that cert_path or chain_path lies
// in a directory others may enter and the key's directory is one they
// may not (Debian's /etc/ssl/certs 0755 and /etc/ssl/private 0710): the
// layout keeps every generation, certificate and chain too, in the state
// directory beside the key, and links cert_path and chain_path into it, so
// after the first renewal others can no longer read them through those
// paths. Keeping the certificates' generations apart from the key's would
// take a second switch, and with it the guarantee that key and
// certificate match at every instant; so the agent says so instead (at
// each renewal, and in status). "" when nothing is lost, or on Windows,
// where the mode bits say nothing.
func (l *layout) certsBehindKeyDir() string {
	if runtime.GOOS == "windows" || l.combined() {
		return ""
	}
	keyDir := filepath.Dir(l.key)
	kfi, err := os.Stat(keyDir)
	if err != nil || kfi.Mode().Perm()&0o001 != 0 {
		return ""
	}
	var lost []string
	for _, o := range []output{{"cert_path", l.cert}, {"chain_path", l.chain}} {
		if o.path == "" || (o.setting == "chain_path" && !l.separateChain()) || filepath.Dir(o.path) == keyDir {
			continue
		}
		if fi, err := os.Stat(filepath.Dir(o.path)); err == nil && fi.Mode().Perm()&0o001 != 0 {
			lost = append(lost, o.setting+" "+o.path)
		}
	}
	if len(lost) == 0 {
		return ""
	}
	verb, them := "is", "it"
	if len(lost) > 1 {
		verb, them = "are", "them"
	}
	return fmt.Sprintf("%s %s linked into %s, inside the key's directory %s (mode %04o), which others may not enter: once renewed, only its owner and group can read %s through that path, though others could before; "+
		"to keep it readable by all, set cert_path (and chain_path) in the key's directory and have post_renew copy the certificate where others read it (cp -L), or let others enter the key's directory (chmod o+x; the key itself stays 0600 or 0640)",
		strings.Join(lost, " and "), verb, l.state, keyDir, kfi.Mode().Perm(), them)
}
