package sqlite

import (
	"fmt"
	"os"
	"syscall"
)

// freeSpace returns how many bytes this process may still write on the file
// system holding dir: the blocks left to unprivileged users, or to root
// the blocks reserved for it as well.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	blocks := st.Bavail
	if os.Geteuid() == 0 {
		blocks = st.Bfree
	}
	return blocks * uint64(st.Bsize), nil
}
