//go:build !linux

package sqlite

import (
	"errors"
	"fmt"
)

// freeSpace is not measured here: only SQLite's own SQLITE_FULL tells Open
// that the disk is full (see explainFullDisk).
func freeSpace(dir string) (uint64, error) {
	return 0, fmt.Errorf("free space of %s: %w", dir, errors.ErrUnsupported)
}
