package crl

import (
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// The log of a CRL number that cannot be recorded says what to do for its
// cause: "make room" only for a full disk (r107 D3: it said so for a
// directory the server may not write, too).
func TestNumbersRemedyFollowsTheCause(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("write: %w", syscall.ENOSPC), "make room"},
		{fmt.Errorf("open: %w", fs.ErrPermission), "let the user the server runs as write the directory"},
		{fmt.Errorf("open: %w", syscall.EROFS), "mount the data directory writable"},
		{fmt.Errorf("odd"), "see err"},
	} {
		if got := numbersRemedy(tc.err); !strings.Contains(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}
