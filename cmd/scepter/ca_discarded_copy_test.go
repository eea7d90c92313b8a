package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// A node holding a copy of a next CA that another node discarded, past
// the copy's switch time: the CLI sets the copy aside as serve does.
// 'ca show' names the real current CA as current and the copy as
// discarded, 'requests approve' issues from the real one (it used to
// ask for the discarded CA's keys), and serve warns at its start.
func TestCLISetsAsideANextCADiscardedElsewhere(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	if err := os.WriteFile(cfg, []byte("[profiles.default]\napproval = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := serveInProcess(t, nil, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", dir, "--config", cfg)
	if srv.ended {
		t.Fatalf("serve: %v\n%s", srv.err, srv.errb.String())
	}
	var scepURL string
	for _, line := range strings.Split(srv.out.String(), "\n") {
		if k, v, _ := strings.Cut(line, ":"); k == "SCEP URL" {
			scepURL = strings.TrimSpace(v)
		}
	}
	d := t.TempDir()
	out, err := runCLI("enroll", "--url", scepURL, "--challenge", "test", "--subject", "CN=held-discard", "--key-type", "p256",
		"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem"))
	if err == nil || !strings.Contains(err.Error(), "pending manual approval") {
		t.Fatalf("enroll: %v, want it held\n%s", err, out)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(dir, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := a.Active(pki.SystemClock{}.Now())
	current := ca.Fingerprint(cur.Cert)
	discarded := putBackDiscardedNext(t, dir)

	show, errOut, err := runCA(t, nil, dir, "show")
	if err != nil {
		t.Fatalf("ca show: %v\n%s", err, errOut)
	}
	curPart, nextPart, _ := strings.Cut(show, "\nNext issuing CA")
	nextPart, _, _ = strings.Cut(nextPart, "\nPrevious issuing CAs")
	if !strings.Contains(curPart, current) || strings.Contains(curPart, discarded) {
		t.Errorf("ca show's current CA is not %s:\n%s", current, show)
	}
	if !strings.Contains(nextPart, "discarded in the store") || !strings.Contains(nextPart, "rollover --discard") || !strings.Contains(nextPart, discarded) {
		t.Errorf("ca show does not show the copy %s as discarded:\n%s", discarded, show)
	}

	e, listOut, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"requests", "list", "--json", "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	var reqs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(listOut.Bytes(), &reqs); err != nil || len(reqs) != 1 {
		t.Fatalf("requests list: %v\n%s", err, listOut)
	}
	if out, err := runCLI("requests", "approve", reqs[0].ID, "--data-dir", dir); err != nil {
		t.Fatalf("requests approve: %v\n%s", err, out)
	}

	_, stderr, err := serveOnce(t, "--data-dir", dir, "--config", cfg)
	if err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "level=WARN") || strings.Count(stderr, "was discarded at") != 1 || !strings.Contains(stderr, "run 'scepter ca rollover --discard' on this node") {
		t.Errorf("serve does not warn once of the discarded copy:\n%s", stderr)
	}
}

// putBackDiscardedNext rolls dir over, discards the next CA (recorded in
// the store) and puts a copy of it back, its switch time past, as another
// node that had copied it would hold it. It returns the copy's fingerprint.
func putBackDiscardedNext(t *testing.T, dir string) string {
	t.Helper()
	if _, errOut, err := runCA(t, nil, dir, "rollover", "--switch-in", "48h"); err != nil {
		t.Fatalf("rollover: %v\n%s", err, errOut)
	}
	nextDir := filepath.Join(dir, "ca", ca.NextDir)
	copyOf := filepath.Join(t.TempDir(), "next")
	if o, err := exec.Command("cp", "-a", nextDir, copyOf).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, o)
	}
	if out, errOut, err := runCA(t, nil, dir, "rollover", "--discard"); err != nil {
		t.Fatalf("--discard: %v\n%s\n%s", err, out, errOut)
	}
	if o, err := exec.Command("cp", "-a", copyOf, nextDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, o)
	}
	past := pki.SystemClock{}.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + "\n"
	if err := os.WriteFile(filepath.Join(nextDir, ca.SwitchAtFile), []byte(past), 0o600); err != nil {
		t.Fatal(err)
	}
	certs, err := keys.LoadCertFile(filepath.Join(nextDir, ca.IssuingCertFile))
	if err != nil {
		t.Fatal(err)
	}
	return ca.Fingerprint(certs[0])
}

// 'ca show' needs no store: without one it says nothing new; one that
// cannot be reached is said, and the CA is shown all the same.
func TestCAShowStore(t *testing.T) {
	dir, _ := caDataDir(t, ca.InitOptions{})
	if err := os.Remove(filepath.Join(dir, "scepter.db")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		wantNote  bool
		wantUsage bool
	}{
		{"no store", nil, false, false},
		{"unreachable store", []string{"--store", "postgres://scepter@127.0.0.1:28521/scepter?connect_timeout=5"}, true, false},
		{"not a store URL", []string{"--store", "mysql://127.0.0.1/x"}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runCA(t, nil, dir, append([]string{"show"}, tc.args...)...)
			if tc.wantUsage {
				if exitCode(err) != 2 {
					t.Fatalf("err = %v (exit %d), want a usage error", err, exitCode(err))
				}
				return
			}
			if err != nil || !strings.Contains(out, "Current issuing CA") {
				t.Fatalf("ca show: %v\n%s\n%s", err, out, errOut)
			}
			if got := strings.Contains(errOut, "The store could not be read"); got != tc.wantNote {
				t.Errorf("note about the store: %v, want %v\n%s", got, tc.wantNote, errOut)
			}
		})
	}
}
