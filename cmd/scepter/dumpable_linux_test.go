package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// serve turns core dumps off before it reads a key (PR_SET_DUMPABLE 0): a
// core file would hold the CA's and the RA's keys (r123 observation). A
// process of its own runs serve, since the flag, once off, stays off for
// the whole test binary.
func TestServeIsNotDumpable(t *testing.T) {
	if os.Getenv("SCEPTER_TEST_DUMPABLE_CHILD") == "1" {
		before, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, errb, err := serveOnce(t, "--data-dir", filepath.Join(t.TempDir(), "data")); err != nil {
			t.Fatalf("serve: %v\n%s", err, errb)
		}
		after, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("dumpable before=%d after=%d\n", before, after)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeIsNotDumpable$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SCEPTER_TEST_DUMPABLE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the serving process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "dumpable before=1 after=0") {
		t.Errorf("want the process dumpable before serve and not after it:\n%s", out)
	}
}
