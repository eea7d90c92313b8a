package health

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

// TestFileWriteCause (r104 observation): a check that cannot write a file
// it must (the CRL numbers) says why on /readyz in fixed words, whatever
// wraps the error, and names no file; an error it does not know is left
// to the log.
func TestFileWriteCause(t *testing.T) {
	wrap := func(errno error) error {
		return fmt.Errorf("crl: recording CRL number 2: %w", &fs.PathError{Op: "open", Path: "/data/crl-numbers/x.tmp", Err: errno})
	}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{wrap(syscall.ENOSPC), "the disk is full"},
		{wrap(syscall.EDQUOT), "the disk quota is used up"},
		{wrap(syscall.EROFS), "the file system is read-only"},
		{wrap(syscall.EACCES), "permission denied"},
		{wrap(syscall.EPERM), "permission denied"},
		{wrap(syscall.ENOTDIR), "a file stands where its directory belongs"},
		{errors.Join(errors.New("another issuer"), wrap(syscall.ENOSPC)), "the disk is full"},
		{wrap(syscall.EIO), ""},
		{errors.New("crl: something else"), ""},
	} {
		if got := FileWriteCause(tt.err); got != tt.want {
			t.Errorf("FileWriteCause(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
