//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/scepter/scepter/internal/filetrust"
	"github.com/scepter/scepter/internal/keys"
)

// errNoLocks: the data directory's file system takes no locks; the server
// runs, but nothing keeps a second one off the directory.
var errNoLocks = errors.New("the data directory's file system takes no file locks: nothing keeps a second 'scepter serve' off it; run one only")

// lockDataDir takes the data directory for this server: two servers on one
// data directory would both rotate its TLS and OCSP files and overwrite its
// public URL. The lock is the kernel's (flock), so a server killed by any
// signal leaves none behind. CLI commands do not take it.
func lockDataDir(dataDir string) (unlock func(), err error) {
	path := filepath.Join(dataDir, serveLockFile)
	f, fi, err := openLockFile(path)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	// A file with another name too (a hard link, or a data directory
	// copied with cp -al) is locked but not written: the pid would
	// overwrite the other file, and the pid is only for the message.
	st, ok := fi.Sys().(*syscall.Stat_t)
	writePID := !ok || st.Nlink <= 1
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, command := "", ""
		if b, rerr := io.ReadAll(io.LimitReader(f, 256)); rerr == nil {
			pid, cmd, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
			if pid != "" {
				holder = " (pid " + pid + ")"
			}
			if commandOf(strings.Fields(cmd)) == cmd { // no junk in the message
				command = cmd
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &serveRunningError{holder: holder, command: command, dataDir: dataDir}
		}
		if noFileLocks(err) {
			// A file system without locks (some network mounts): the
			// server runs as before, unguarded against a second one.
			return func() {}, errNoLocks
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if !writePID {
		return func() { f.Close() }, nil
	}
	// The pid and the command ("1234 store restore"), for the message
	// of whoever finds the lock taken: serve takes it, and so does a
	// restore.
	line := strconv.Itoa(os.Getpid())
	if cmd := commandOf(os.Args[1:]); cmd != "" {
		line += " " + cmd
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(line+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// commandWord is a word of a command's name, such as "serve" or "store".
var commandWord = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// commandOf names the scepter command args run: its leading words, up to
// two ("serve", "store restore"), "" when they name none (no words, or a
// flag first, as in a test binary's arguments).
func commandOf(args []string) string {
	var words []string
	for _, a := range args {
		if len(words) == 2 || !commandWord.MatchString(a) {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// openLockFile opens (creating) a lock file of the data directory.
// O_NOFOLLOW and the mode check: serve's lock file gets its pid written,
// so a symbolic link (or a device) put in its place must not have what it
// points to truncated, as every other output refuses.
func openLockFile(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, nil, fmt.Errorf("%s is a symbolic link, not a regular file: remove it", path)
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is %s, not a regular file: remove it", path, keys.NonRegularKind(fi.Mode()))
	}
	return f, fi, nil
}

// shareStore takes DATA/store.lock shared for a command that opens the
// SQLite database, so that 'scepter store restore', which takes it alone
// (lockStore), cannot replace the file under the command: the command's
// writes would go to the replaced file and be lost. A restore under way
// refuses the command. Where the lock cannot be had for another reason (a
// read-only data directory, a file system without locks) the command runs
// unguarded, as it did before restore existed; but a lock file it may not
// open (root's, left by a command run as root) is refused (exit 2) with
// the chown that gives it back: unguarded, a restore could replace the
// database under the command.
func shareStore(dataDir string) (unlock func(), err error) {
	path := filepath.Join(dataDir, storeLockFile)
	f, _, err := openLockFile(path)
	if errors.Is(err, fs.ErrPermission) {
		// A file there that we may not open; none there is a data
		// directory we may not write, which runs unguarded (above).
		if fi, serr := os.Stat(path); serr == nil {
			if uid, ok := filetrust.Owner(fi); ok && uid == 0 && os.Geteuid() != 0 {
				return nil, usageError{rootLeftoverMessage(path, false, "read and write")}
			}
			return nil, usageError{fmt.Sprintf("store lock %s: %v: give it to the user scepter runs as (chown), or remove it", path, err)}
		}
	}
	if err != nil {
		return func() {}, nil
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("a 'scepter store restore' is replacing the database in %s: run this again once it has finished", dataDir)
		}
		return func() {}, nil
	}
	return func() { f.Close() }, nil
}

// lockStore takes DATA/store.lock alone, for 'scepter store restore': no
// other command has the database open (shareStore) while it is replaced.
func lockStore(dataDir string) (unlock func(), err error) {
	path := filepath.Join(dataDir, storeLockFile)
	f, _, err := openLockFile(path)
	if err != nil {
		return nil, fmt.Errorf("store lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another scepter command has the database in %s open (a certs, challenge, audit, ca or admin command): let it finish, then restore", dataDir)
		}
		if noFileLocks(err) {
			return func() {}, errNoLocks
		}
		return nil, fmt.Errorf("store lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// noFileLocks: flock failed because the file system takes no locks (some
// network mounts), not because another process holds the lock.
func noFileLocks(err error) bool {
	return errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP)
}
