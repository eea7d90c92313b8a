package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// bindingName is the file, in a certificate's state directory, that names
// the key_path and cert_path the directory serves. The state directory is
// DIR(key_path)/.scepter-agent/NAME, so two configurations that give the
// same name to two certificates whose keys share a directory would share
// it: the second's renewal would switch `current`, which the first's paths
// resolve through, to its own key and certificate, and remove the first's
// key. The file binds the directory to the first; the second is refused.
const bindingName = "paths"

// binding is what a state directory serves.
type binding struct{ key, cert string }

func (b binding) String() string {
	if b.cert == "" || b.cert == b.key {
		return b.key
	}
	return b.key + ", " + b.cert
}

// readBinding reads the state directory's binding; ok false when there is
// none, or it cannot be read (then damaged says why).
func (l *layout) readBinding() (b binding, ok bool, damaged error) {
	data, err := os.ReadFile(filepath.Join(l.state, bindingName))
	if errors.Is(err, fs.ErrNotExist) {
		return binding{}, false, nil
	}
	if err != nil {
		return binding{}, false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, " ")
		s, err := strconv.Unquote(v)
		if err != nil {
			continue
		}
		switch k {
		case "key_path":
			b.key = s
		case "cert_path":
			b.cert = s
		}
	}
	if b.key == "" || b.cert == "" {
		return binding{}, false, errors.New("it names no key_path and cert_path")
	}
	return b, true, nil
}

// linkedFrom is, for a state directory without a binding (made by an
// earlier version), the paths in the key's directory that link through its
// `current`: the key_path (and cert_path) of the configuration it serves.
func (l *layout) linkedFrom() binding {
	var b binding
	dir := filepath.Dir(l.key)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return b
	}
	cur := filepath.Join(l.state, currentName)
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		t, err := os.Readlink(p)
		if err != nil {
			continue
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(dir, t)
		}
		switch filepath.Clean(t) {
		case filepath.Join(cur, "key.pem"):
			if b.key == "" || samePath(p, l.key) {
				b.key = p
			}
		case filepath.Join(cur, "cert.pem"):
			if b.cert == "" || samePath(p, l.cert) {
				b.cert = p
			}
		}
	}
	return b
}

// samePath: a and b name the same file (the same name in the same
// directory, however the directory is spelled).
func samePath(a, b string) bool {
	if a == b {
		return true
	}
	if filepath.Base(a) != filepath.Base(b) {
		return false
	}
	da, err1 := filepath.EvalSymlinks(filepath.Dir(a))
	db, err2 := filepath.EvalSymlinks(filepath.Dir(b))
	return err1 == nil && err2 == nil && da == db
}

// boundTo is the configuration the state directory serves, as far as it
// can be told: its binding, or else the paths that link through it; ok
// false when neither says (a new directory, or one whose links are gone).
func (l *layout) boundTo() (binding, bool) {
	if b, ok, err := l.readBinding(); ok {
		return b, true
	} else if err != nil {
		l.warnf("the record of the paths the state directory serves cannot be read; going by the links that lead into it", "file", filepath.Join(l.state, bindingName), "err", err)
	}
	b := l.linkedFrom()
	return b, b.key != "" || b.cert != ""
}

// checkBinding refuses a state directory that serves another
// configuration's key_path and cert_path (one that gives the same name to
// another certificate whose key lies in the same directory). It changes
// nothing.
func (l *layout) checkBinding() error {
	if _, err := os.Lstat(l.state); err != nil {
		return nil // none yet; stateDir says what else is wrong
	}
	b, ok := l.boundTo()
	if !ok {
		return nil
	}
	b = l.inKeyDir(b)
	if (b.key == "" || samePath(b.key, l.key)) && (b.cert == "" || samePath(b.cert, l.cert)) {
		return nil
	}
	return fmt.Errorf("another [[certificate]] named %q uses %s (for %s); give one of them another name (the state directory is DIR(key_path)/%s/NAME, shared by every certificate of that name whose key is in that directory)",
		l.name, l.state, b, stateDirName)
}

// inKeyDir is b with its key's directory, and its certificate's when
// spelled alike, named as the directory that holds the state directory
// now, when the spelling b records no longer leads there (a symbolic link
// it went through removed or repointed): the key the binding names was,
// by construction, in the directory that holds the state directory.
func (l *layout) inKeyDir(b binding) binding {
	keyDir := filepath.Dir(l.key)
	if b.key == "" || sameDirSpelled(filepath.Dir(b.key), keyDir) {
		return b
	}
	if b.cert != "" && filepath.Dir(b.cert) == filepath.Dir(b.key) {
		b.cert = filepath.Join(keyDir, filepath.Base(b.cert))
	}
	b.key = filepath.Join(keyDir, filepath.Base(b.key))
	return b
}

// physicalPath is p with its directory's symbolic links resolved (p when
// they cannot be): the binding records it, so that it still names the
// files once a link the configuration went through is removed.
func physicalPath(p string) string {
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return p
	}
	return filepath.Join(dir, filepath.Base(p))
}

// bind checks the binding and, when the state directory has none yet,
// records that it serves this configuration. Called under the lock, so
// that two configurations cannot both take a new state directory.
func (l *layout) bind() error {
	if err := l.checkBinding(); err != nil {
		return err
	}
	if _, ok, _ := l.readBinding(); ok {
		return nil
	}
	data := "key_path " + strconv.Quote(physicalPath(l.key)) + "\ncert_path " + strconv.Quote(physicalPath(l.cert)) + "\n"
	if err := l.writeFile(filepath.Join(l.state, bindingName), []byte(data), 0o600, ""); err != nil {
		return fmt.Errorf("recording the paths the state directory serves: %w", err)
	}
	return nil
}

// reachedGenerations are the generations that a configured path, or a
// path the binding records, reaches through its links: none of them is
// removed, whatever `current` says.
func (l *layout) reachedGenerations() map[string]bool {
	paths := []string{l.key, l.cert, l.chain}
	if b, ok, _ := l.readBinding(); ok {
		paths = append(paths, b.key, b.cert)
	}
	state, err := filepath.EvalSymlinks(l.state)
	if err != nil {
		state = l.state
	}
	reached := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(state, r)
		if err != nil || !strings.HasPrefix(rel, genPrefix) {
			continue
		}
		gen, _, _ := strings.Cut(rel, string(filepath.Separator))
		reached[gen] = true
	}
	return reached
}
