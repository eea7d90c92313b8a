package main

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// failingWriter is a stdout that takes nothing (a full disk, a closed pipe).
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A one-time challenge or an API token whose secret cannot be written to
// stdout is of use to nobody but whoever finds it later: the command fails
// and takes it back (the challenge deleted, the token revoked).
func TestSecretNotWrittenIsTakenBack(t *testing.T) {
	s := startServe(t, "")
	ctx := context.Background()
	e, _, _ := testEnv(nil)
	e.stdout = failingWriter{}
	err := run(ctx, e, []string{"challenge", "new", "--data-dir", s.dataDir})
	if err == nil || !strings.Contains(err.Error(), "it was deleted") {
		t.Errorf("challenge new to a full stdout: %v, want a failure saying it was deleted", err)
	}
	e2, out, _ := testEnv(nil)
	if err := run(ctx, e2, []string{"challenge", "list", "--data-dir", s.dataDir, "--json"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `"unused"`) {
		t.Errorf("an unused challenge remains:\n%s", out.String())
	}

	err = run(ctx, e, []string{"admin", "token", "new", "--data-dir", s.dataDir, "--name", "lost", "--role", "auditor"})
	if err == nil || !strings.Contains(err.Error(), "was revoked") {
		t.Errorf("admin token new to a full stdout: %v, want a failure saying it was revoked", err)
	}
	e3, out, _ := testEnv(nil)
	if err := run(ctx, e3, []string{"admin", "token", "list", "--data-dir", s.dataDir}); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "lost") && !strings.Contains(line, "revoked") {
			t.Errorf("the token is not revoked: %q", line)
		}
	}
}
