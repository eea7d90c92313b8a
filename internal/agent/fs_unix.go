//go:build unix

package agent

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// errLocked: another agent holds the certificate's lock.
var errLocked = errors.New("another scepter agent is working on this certificate")

// lockFile takes an exclusive lock on path (flock), which the kernel
// releases when the process ends, however it ends.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func ownerOf(path string) (uid, gid int, ok bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// chownLike gives f the owner and group of the file at like (best effort:
// only root may give a file away; as anyone else the file stays ours).
func chownLike(f *os.File, like string) {
	if uid, gid, ok := ownerOf(like); ok && (uid != os.Geteuid() || gid != os.Getegid()) {
		_ = f.Chown(uid, gid)
	}
}

// foreignOwner reports whether path belongs to neither the agent's user nor
// the owner of like: a directory whose owner may rename what is in it.
func foreignOwner(path, like string) bool {
	uid, _, ok := ownerOf(path)
	if !ok || uid == os.Geteuid() {
		return false
	}
	luid, _, ok := ownerOf(like)
	return !ok || uid != luid
}

// copyOwner gives the directory dir the owner and group of like.
func copyOwner(dir, like string) {
	if uid, gid, ok := ownerOf(like); ok && (uid != os.Geteuid() || gid != os.Getegid()) {
		_ = os.Lchown(dir, uid, gid)
	}
}

// ownProcessGroup runs cmd in a process group of its own, and a timeout
// kills the whole group (the shell and what it started).
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// processIdentity says which process pid is, as far as the system tells:
// on Linux its start time (in clock ticks since boot) and the boot's ID,
// so that a number used again by another process, or after a reboot, is
// not taken for it; "" elsewhere.
func processIdentity(pid int) string {
	start, _ := procStat(pid)
	if start == "" {
		return ""
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return start + "@" + strings.TrimSpace(string(boot))
}

// procStat is the start time and state of pid from /proc (Linux); "" when
// there is none.
func procStat(pid int) (start string, state byte) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0
	}
	// pid (comm) state ppid … : comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return "", 0
	}
	return f[19], f[0][0] // starttime is the 22nd field, state the 3rd
}

// processAlive: the process pid still runs, and is the one identity (from
// processIdentity, "" when unknown) names. A zombie has ended.
func processAlive(pid int, identity string) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if _, state := procStat(pid); state == 'Z' {
		return false
	}
	if identity != "" {
		if now := processIdentity(pid); now != "" && now != identity {
			return false
		}
	}
	return true
}

// writableDir: this process's effective user may create and remove
// entries in dir (write and search permission, a writable mount), as the
// kernel judges it, without writing anything.
func writableDir(dir string) error {
	return unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS)
}
