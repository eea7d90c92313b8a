package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The generated static challenge is printed when it is created, never
// again on a later start (finding 9).
func TestStaticChallengePrintedOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	secret := strings.TrimSpace(readFile(t, filepath.Join(s.DataDir, "challenge.txt")))
	if secret == "" || !strings.Contains(s.Output(), secret) {
		t.Fatalf("the first start does not show the generated challenge:\n%s", s.Output())
	}
	s.Stop()
	again := startServer(t, serverOpts{dataDir: s.DataDir})
	if strings.Contains(again.Output(), secret) {
		t.Errorf("a later start prints the static challenge again:\n%s", again.Output())
	}
	if !strings.Contains(again.Output(), "challenge.txt") {
		t.Errorf("a later start does not say where the challenge is:\n%s", again.Output())
	}
}

// A one-time challenge is bound to a profile and, when asked, to an
// identity (finding 1): `challenge new --subject --dns`, refused for another
// name without being used up, then good for its own.
func TestBoundChallengeFromTheCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true})
	r := s.MustRun("challenge", "new", "--data-dir", s.DataDir, "--subject", "CN=bound-dev", "--dns", "bound-dev.example")
	secret := strings.TrimSpace(r.stdout)
	if !strings.Contains(r.stderr, "profile default") || !strings.Contains(r.stderr, "bound to CN=bound-dev bound-dev.example") {
		t.Errorf("challenge new does not say what it is bound to:\n%s", r)
	}
	dir := t.TempDir()
	out := expectFailed(t, enroll(t, dir, s.URL, secret, "CN=someone-else", "--dns", "bound-dev.example", "--key-type", "rsa2048"), "a bound challenge for another subject")
	expectContains(t, "the refusal", out, "badRequest", "bound to another subject")
	if r := enroll(t, dir, s.URL, secret, "CN=bound-dev", "--dns", "bound-dev.example", "--key-type", "rsa2048"); r.err != nil {
		t.Fatalf("the bound identity:\n%s", r)
	}
	list := s.MustRun("challenge", "list", "--data-dir", s.DataDir)
	expectContains(t, "challenge list", list.stdout, "used", "CN=bound-dev", "dns:bound-dev.example")
	if strings.Contains(list.stdout+list.stderr, secret) {
		t.Error("challenge list shows a secret")
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
