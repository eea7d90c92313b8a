//go:build !unix

package agent

import (
	"errors"
	"os"
	"os/exec"
)

var errLocked = errors.New("another scepter agent is working on this certificate")

// lockFile is a no-op where flock is not available: run one agent per
// configuration there.
func lockFile(path string) (func(), error) { return func() {}, nil }

// ownerOf cannot tell here: there are no numeric owners.
func ownerOf(path string) (uid, gid int, ok bool) { return 0, 0, false }

func chownLike(f *os.File, like string) {}

func copyOwner(dir, like string) {}

func foreignOwner(path, like string) bool { return false }

func ownProcessGroup(cmd *exec.Cmd) {}

func processIdentity(pid int) string { return "" }

// processAlive cannot tell here: a post_renew command is not known to
// outlive the agent that started it.
func processAlive(pid int, identity string) bool { return false }

// writableDir: on Windows the mode bits say nothing; nothing is checked.
func writableDir(dir string) error { return nil }
