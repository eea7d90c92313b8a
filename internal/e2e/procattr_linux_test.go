package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a child process get SIGKILL when the test binary dies
// (a go test timeout or an interrupted run skips the cleanups), so no server
// or daemon outlives the run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
