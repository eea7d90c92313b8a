package server

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// The body read timeout is documented with its figure and what a slow
// client gets (r126): README, where the other limits are, and
// docs/deployment.md, where a slow body is said to hold no slot.
func TestBodyReadTimeoutIsDocumented(t *testing.T) {
	secs := fmt.Sprintf("%d s", bodyRestWait/time.Second)
	for _, tc := range []struct{ file, want string }{
		{"../../README.md", "then " + secs + " (fixed) from their end for its body"},
		{"../../README.md", "its body then has " + secs + ", not configurable"},
		{"../../README.md", "answered 400 and its connection closed (\"the request body ended early or could not be read in time\""},
		{"../../docs/deployment.md", "for " + secs + " at most from the end of its headers, after which it gets 400"},
	} {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("%s does not say %q", tc.file, tc.want)
		}
	}
	// The text the README quotes is the one the guard answers.
	src, err := os.ReadFile("limits.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"the request body ended early or could not be read in time"`) {
		t.Error("limits.go no longer answers the text README quotes")
	}
}
