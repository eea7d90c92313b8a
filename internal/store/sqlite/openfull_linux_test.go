package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/scepter/scepter/internal/store"
)

// Open on a full disk says the disk is full and to make room, also for an
// existing database, where SQLite fails to grow the -shm file with
// "disk I/O error (4874)" (SQLITE_IOERR_SHMSIZE) rather than SQLITE_FULL;
// the same I/O error on a disk with room is left as SQLite words it. A
// child process makes the writes fail: RLIMIT_FSIZE refuses any file
// growth past 4 KiB (EFBIG), as a full disk refuses it (ENOSPC), and the
// free space it measures is the test's.
func TestOpenOnAFullDiskSaysSo(t *testing.T) {
	tests := []struct {
		name     string
		existing bool   // a database Open made and closed, else none yet
		free     uint64 // bytes free, as freeSpace measures them
		diskFull bool
		want     string // in the error
	}{
		{"existing database, no room", true, 8 << 10, true, "the disk is full (8 KiB free on the file system of "},
		{"new database, no room", false, 0, true, "the disk is full (0 KiB free on the file system of "},
		{"existing database, room left", true, 1 << 30, false, "disk I/O error (4874)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scepter.db")
			if tt.existing {
				if err := openAt(t, path).Close(); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestOpenOnAFullDiskHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SCEPTER_TEST_OPEN_DB="+path, fmt.Sprintf("SCEPTER_TEST_OPEN_FREE=%d", tt.free))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			got := string(out)
			if !strings.Contains(got, tt.want) {
				t.Errorf("Open: %s\nwant it to say %q", got, tt.want)
			}
			if full := strings.Contains(got, "diskfull=true"); full != tt.diskFull {
				t.Errorf("Open: %s\nwraps store.ErrDiskFull: %t, want %t", got, full, tt.diskFull)
			}
			if tt.diskFull && !strings.Contains(got, "make room in the data directory, then try again") {
				t.Errorf("Open: %s\nwant it to say what to do", got)
			}
		})
	}
}

// TestOpenOnAFullDiskHelperProcess opens the database of
// TestOpenOnAFullDiskSaysSo with no file allowed to grow past 4 KiB and
// prints the error.
func TestOpenOnAFullDiskHelperProcess(t *testing.T) {
	path := os.Getenv("SCEPTER_TEST_OPEN_DB")
	if path == "" {
		t.Skip("run by TestOpenOnAFullDiskSaysSo")
	}
	free, err := strconv.ParseUint(os.Getenv("SCEPTER_TEST_OPEN_FREE"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// Go ignores SIGXFSZ, so a write past the limit fails with EFBIG.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 4096, Max: 4096}); err != nil {
		t.Fatal(err)
	}
	tun := defaultTuning()
	tun.freeSpace = func(string) (uint64, error) { return free, nil }
	s, err := open(context.Background(), path, tun)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with no room to write")
	}
	fmt.Printf("diskfull=%t\n%v\n", errors.Is(err, store.ErrDiskFull), err)
}
