// Package filetrust tells whether a user other than this process's and
// root may change a file without write access to it: by owning it, or by
// replacing it in a directory they may write. The command line checks its
// config and secret files with it, and internal/keys the PKCS#11 PIN file,
// so both refuse the same files in the same words.
package filetrust

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
)

// Check refuses the regular file at path when another user than us or
// root owns it, or owns the directory that holds it or one above that, or
// when group or others may write one of those without the sticky bit
// (UnsafeDir); the same for the directories above the file a symbolic
// link path is leads to. setting names the file in the message
// ("--challenge-file"), changes says what that user could change ("the
// secret"). What is not a regular file (missing, a directory, a pipe) is
// left to whoever reads it; mode bits are the caller's. On Windows the
// owner and mode say nothing about access and nothing is checked.
func Check(setting, path, changes string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if uid, foreign := ForeignOwner(fi); foreign {
		return fmt.Errorf("%s %s belongs to user %s (uid %d), not to %s: that user may change %s; run: chown %s %s",
			setting, path, UserName(uid), uid, TrustedUsers(), changes, UserName(os.Geteuid()), ShellQuote(path))
	}
	for _, dir := range replaceableFrom(path) {
		p := UnsafeDir(dir)
		if p == nil {
			continue
		}
		where := "in"
		if abs, _ := filepath.Abs(dir); p.Dir != abs {
			where = "under"
		}
		if p.Foreign {
			return fmt.Errorf("%s %s is %s directory %s, which belongs to user %s (uid %d), not to %s: that user may replace the file, and so change %s; move the file to a directory %s owns",
				setting, path, where, p.Dir, UserName(p.Owner), p.Owner, TrustedUsers(), changes, TrustedUsers())
		}
		return fmt.Errorf("%s %s is %s directory %s, which has mode %04o: group or others may replace the file, and so change %s; move the file, or run: chmod go-w %s",
			setting, path, where, p.Dir, p.Mode.Perm(), changes, ShellQuote(p.Dir))
	}
	return nil
}

// DirProblem is a directory through which a user other than us and root
// may replace what lies under it.
type DirProblem struct {
	Dir     string
	Mode    os.FileMode
	Owner   int  // its owner's uid, when Foreign
	Foreign bool // another user owns it; otherwise group or others may write it
}

// UnsafeDir walks from dir up to the root and returns the first directory
// that group or others may write without the sticky bit, or that another
// user than us and root owns: whoever may write it may rename what it
// holds (dir itself, or a directory on the way to it) and put their own
// in its place. When dir leads through symbolic links, the directories
// from where they lead up to the root are walked too: the kernel opens
// what lies there, and whoever may rename a directory on that way
// replaces it as surely as on the spelled one. Nil when there is none,
// or where that cannot be told (a directory that cannot be read;
// Windows). dir is made absolute first.
func UnsafeDir(dir string) *DirProblem {
	if runtime.GOOS == "windows" {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	if p := unsafeUpFrom(abs); p != nil {
		return p
	}
	// EvalSymlinks takes each ".." from where the link before it leads,
	// as the kernel does.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		if real, err = filepath.Abs(real); err == nil && real != abs {
			return unsafeUpFrom(real)
		}
	}
	return nil
}

// unsafeUpFrom is UnsafeDir along the directories of abs as spelled.
func unsafeUpFrom(abs string) *DirProblem {
	for d := abs; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil {
			if OthersMayReplace(fi) {
				return &DirProblem{Dir: d, Mode: fi.Mode()}
			}
			if uid, foreign := ForeignOwner(fi); foreign {
				return &DirProblem{Dir: d, Mode: fi.Mode(), Owner: uid, Foreign: true}
			}
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// OthersMayReplace reports whether group or others may rename or remove
// what the directory fi holds: they may write it, and it has no sticky bit
// (which lets only an entry's owner do so, as in /tmp).
func OthersMayReplace(fi os.FileInfo) bool {
	return fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0
}

// ForeignOwner is the owner of fi when it is neither this process's
// effective user nor root (foreign is false where owners are unknown).
func ForeignOwner(fi os.FileInfo) (uid int, foreign bool) {
	uid, ok := Owner(fi)
	return uid, ok && uid != 0 && uid != os.Geteuid()
}

// TrustedUsers names who may own what scepter trusts: "root", or
// "NAME or root".
func TrustedUsers() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	return UserName(os.Geteuid()) + " or root"
}

// replaceableFrom is the directories whose writers may replace what path
// names: the one that holds path, and, when path leads through symbolic
// links, the one that holds the file they lead to.
func replaceableFrom(path string) []string {
	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil && filepath.Dir(real) != filepath.Dir(path) {
		dirs = append(dirs, filepath.Dir(real))
	}
	return dirs
}

// UserName is the name of a user id, or the id when it has no name.
func UserName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}
