package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
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

// A stdout that throws the secret away (/dev/null, or closed, which Go
// reopens on /dev/null) is refused before anything is made.
func TestSecretToDevNullRefused(t *testing.T) {
	s := startServe(t, "")
	ctx := context.Background()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	e, _, _ := testEnv(nil)
	e.stdout = null
	for _, args := range [][]string{
		{"challenge", "new", "--data-dir", s.dataDir},
		{"admin", "token", "new", "--data-dir", s.dataDir, "--name", "nulled", "--role", "auditor"},
	} {
		if err := run(ctx, e, args); !errors.Is(err, errStdoutDiscarded) {
			t.Errorf("%v to /dev/null: %v, want it refused", args[:2], err)
		}
	}
	e2, out, _ := testEnv(nil)
	if err := run(ctx, e2, []string{"challenge", "list", "--data-dir", s.dataDir, "--json"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `"id"`) {
		t.Errorf("a challenge was made:\n%s", out.String())
	}
	e3, out, _ := testEnv(nil)
	if err := run(ctx, e3, []string{"admin", "token", "list", "--data-dir", s.dataDir}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "nulled") {
		t.Errorf("a token was made:\n%s", out.String())
	}
}

// A reader that went away (`scepter challenge new | (exec 0<&-; …)`) made
// SIGPIPE kill the process after the challenge was stored: the command now
// sees the write fail and takes the challenge back. Run in a child process,
// whose stdout (fd 1) is a pipe with no reader.
func TestSecretToClosedPipeTakenBack(t *testing.T) {
	if dir := os.Getenv("SCEPTER_TEST_CLOSED_PIPE_DATA"); dir != "" {
		e := env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: func(string) (string, bool) { return "", false }}
		os.Exit(exitCode(run(context.Background(), e, []string{"challenge", "new", "--data-dir", dir})))
	}
	s := startServe(t, "")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecretToClosedPipeTakenBack$")
	cmd.Env = append(os.Environ(), "SCEPTER_TEST_CLOSED_PIPE_DATA="+s.dataDir)
	cmd.Stdout = w
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	w.Close()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("challenge new into a closed pipe: %v (want exit 1, not a signal)\n%s", err, stderr.String())
	}
	e, out, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"challenge", "list", "--data-dir", s.dataDir, "--json"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `"unused"`) {
		t.Errorf("an unused challenge remains:\n%s", out.String())
	}
}
