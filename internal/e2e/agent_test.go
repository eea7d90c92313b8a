package e2e

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// The renewal agent against the real binary: `scepter enroll` / `scepter est
// enroll` make the certificates, `scepter agent --once` renews them at their
// renewal point and not before, the post_renew command runs once per
// renewal, `scepter agent status` says so; and agent processes killed with
// SIGKILL in the middle of renewals never leave a key and a certificate
// that do not match.
//
// The agent's clock is moved with the scepter_clockoffset build
// (SCEPTER_TEST_CLOCK_OFFSET), the server's is not. Its profile issues for
// 24 hours (plus the 5 minutes of backdating) and accepts a renewal at any
// time (renewal_window = 100%, as the server's own clock sees a fresh
// certificate); the offsets stay below SCEP's 24-hour signingTime skew.
const agentServerConfig = `
[profiles.agent]
validity = "24h"
renewal_window = "100%"
`

// agentRun runs the agent: with the ordinary build when offset is "", else
// with the clock-offset build moved by offset.
func agentRun(t *testing.T, offset string, args ...string) result {
	t.Helper()
	b, env := bin(t), []string(nil)
	if offset != "" {
		b, env = clockOffsetBin(t), []string{"SCEPTER_TEST_CLOCK_OFFSET=" + offset}
	}
	r := run(t, runOpts{env: env}, b, append([]string{"agent"}, args...)...)
	if testing.Verbose() {
		t.Logf("agent %s (offset %q) printed:\n%s%s", strings.Join(args, " "), offset, r.stdout, r.stderr)
	}
	return r
}

func mustAgent(t *testing.T, offset string, args ...string) result {
	t.Helper()
	r := agentRun(t, offset, args...)
	if r.err != nil {
		t.Fatalf("scepter agent failed:\n%s", r)
	}
	return r
}

// lineCount counts the lines of a file (0 when it does not exist).
func lineCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// expectAgentPair fails unless keyPath holds the key of the first certificate
// in certPath (they may be one file).
func expectAgentPair(t *testing.T, keyPath, certPath string) *x509.Certificate {
	t.Helper()
	c := readCert(t, certPath)
	if !pki.SamePublicKey(readKey(t, keyPath).Public(), c.PublicKey) {
		t.Fatalf("%s and %s do not hold a matching key and certificate", keyPath, certPath)
	}
	return c
}

// statusBlock returns the lines `agent status` prints for one certificate.
func statusBlock(t *testing.T, out, name string) string {
	t.Helper()
	for _, b := range strings.Split(out, "\n\n") {
		if strings.HasPrefix(strings.TrimSpace(b), name+" (") {
			return b
		}
	}
	t.Fatalf("agent status says nothing of %s:\n%s", name, out)
	return ""
}

func expectAgentStatus(t *testing.T, out, name string, c *x509.Certificate, due bool) {
	t.Helper()
	b := statusBlock(t, out, name)
	expectContains(t, "agent status of "+name, b, "subject:       "+c.Subject.String(), "serial:        "+shownSerial(c.SerialNumber),
		"expires:       "+c.NotAfter.UTC().Format("2006-01-02 15:04:05Z"), "next renewal:  ")
	if strings.Contains(b, "due now") != due {
		t.Errorf("agent status of %s: due %v, want %v:\n%s", name, !due, due, b)
	}
}

func TestAgentSCEP(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	writeFile(t, cfg, agentServerConfig)
	s := startServer(t, serverOpts{prepared: true, challenge: "agent-secret", args: []string{"--config", cfg, "--challenge-profile", "agent"}})
	url := s.Base + "/scep/agent"
	fp := s.RootFingerprint()
	dir := t.TempDir()
	for _, n := range []string{"a", "b"} {
		d := filepath.Join(dir, n)
		os.Mkdir(d, 0o700)
		if r := enroll(t, d, url, s.Challenge, "CN=agent-scep-"+n+",O=Acme", "--dns", "agent-scep-"+n+".example", "--ca-fingerprint", fp); r.err != nil {
			t.Fatalf("enroll:\n%s", r)
		}
	}
	aKey, aCert := filepath.Join(dir, "a", "key.pem"), filepath.Join(dir, "a", "cert.pem")
	bKey, bCert := filepath.Join(dir, "b", "key.pem"), filepath.Join(dir, "b", "cert.pem")
	a0, b0 := expectAgentPair(t, aKey, aCert), expectAgentPair(t, bKey, bCert)
	config := filepath.Join(dir, "agent.toml")
	writeFile(t, config, fmt.Sprintf(`once_attempts = 1

[[certificate]]
name = "a"
protocol = "scep"
url = %[1]q
ca_fingerprint = %[2]q
key_path = "a/key.pem"
cert_path = "a/cert.pem"
chain_path = "a/chain.pem"
post_renew = "echo \"$SCEPTER_AGENT_NAME renewed\" >> post-a.log"

[[certificate]]
name = "b"
protocol = "scep"
url = %[1]q
ca_fingerprint = %[2]q
key_path = "b/key.pem"
cert_path = "b/cert.pem"
renew_before = "2h"
post_renew = "echo renewed >> post-b.log"
`, url, fp))
	postA, postB := filepath.Join(dir, "post-a.log"), filepath.Join(dir, "post-b.log")

	// Fresh certificates: nothing is due.
	r := mustAgent(t, "", "--once", "--config", config)
	expectContains(t, "agent --once log", r.stderr, "not due for renewal")
	if c := expectAgentPair(t, aKey, aCert); !c.Equal(a0) || !expectAgentPair(t, bKey, bCert).Equal(b0) || lineCount(t, postA)+lineCount(t, postB) != 0 {
		t.Fatal("agent --once renewed a certificate before its renewal point")
	}
	st := mustAgent(t, "", "status", "--config", config).stdout
	expectAgentStatus(t, st, "a", a0, false)
	expectAgentStatus(t, st, "b", b0, false)

	// 20 hours on: past a's point (two thirds), before b's (2 hours before
	// the end).
	r = mustAgent(t, "20h", "--once", "--config", config)
	a1 := expectAgentPair(t, aKey, aCert)
	if a1.Equal(a0) {
		t.Fatalf("a was not renewed 20 hours on:\n%s", r)
	}
	if !expectAgentPair(t, bKey, bCert).Equal(b0) {
		t.Fatal("b was renewed before renew_before")
	}
	s.Verify(aCert)
	s.ExpectRecorded(a1)
	if pki.SamePublicKey(a1.PublicKey, a0.PublicKey) {
		t.Error("a kept its key; rekey is the default")
	}
	if keyDesc(a1.PublicKey) != keyDesc(a0.PublicKey) {
		t.Errorf("a's new key is %s, want %s like the old one", keyDesc(a1.PublicKey), keyDesc(a0.PublicKey))
	}
	if a1.Subject.String() != a0.Subject.String() || strings.Join(a1.DNSNames, ",") != "agent-scep-a.example" {
		t.Errorf("a renewed as %s %v, want the old names", a1.Subject, a1.DNSNames)
	}
	if n := lineCount(t, postA); n != 1 || readFile(t, postA) != "a renewed\n" {
		t.Errorf("post_renew of a ran %d times: %q", n, readFile(t, postA))
	}
	if fi, err := os.Stat(aKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a's key: %v %v, want mode 0600", fi.Mode(), err)
	}
	if chain := readCerts(t, filepath.Join(dir, "a", "chain.pem")); len(chain) == 0 || !chain[len(chain)-1].Equal(readCert(t, s.CAFile("root.crt"))) {
		t.Error("a's chain does not end at the root")
	}

	// Now: the new certificate is not due.
	mustAgent(t, "", "--once", "--config", config)
	if !expectAgentPair(t, aKey, aCert).Equal(a1) || lineCount(t, postA) != 1 {
		t.Fatal("a was renewed again at once")
	}

	// 23 hours on: b is due, and a's new certificate too.
	mustAgent(t, "23h", "--once", "--config", config)
	a2, b1 := expectAgentPair(t, aKey, aCert), expectAgentPair(t, bKey, bCert)
	if a2.Equal(a1) || b1.Equal(b0) {
		t.Fatal("not renewed 23 hours on")
	}
	s.Verify(bCert)
	if lineCount(t, postA) != 2 || lineCount(t, postB) != 1 {
		t.Errorf("post_renew ran %d times for a (want 2) and %d for b (want 1)", lineCount(t, postA), lineCount(t, postB))
	}
	st = mustAgent(t, "", "status", "--config", config).stdout
	expectAgentStatus(t, st, "a", a2, false)
	expectAgentStatus(t, st, "b", b1, false)
	st = mustAgent(t, "23h", "status", "--config", config).stdout
	expectAgentStatus(t, st, "a", a2, true)

	// A missing file: status and --once say so, and fail.
	os.Remove(bKey)
	r = agentRun(t, "", "status", "--config", config)
	if r.err == nil || !strings.Contains(statusBlock(t, r.stdout, "b"), "key file "+bKey+" is missing") {
		t.Errorf("agent status with b's key missing:\n%s", r)
	}
	if r = agentRun(t, "", "--once", "--config", config); r.err == nil {
		t.Errorf("agent --once with b's key missing succeeded:\n%s", r)
	}
}

func TestAgentEST(t *testing.T) {
	t.Parallel()
	e := startEST(t, estOpts{prepared: true, config: agentServerConfig})
	const user, pass = "agent-user", "agent-password-0123"
	e.addUser(t, user, pass)
	fp := e.RootFingerprint()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	writeFile(t, pw, pass+"\n")
	estEnroll := func(cn, sub string) {
		os.Mkdir(filepath.Join(dir, sub), 0o700)
		mustRun(t, runOpts{}, bin(t), "est", "enroll", "--url", e.HTTPS+"/agent", "--ca-fingerprint", fp, "--user", user, "--password-file", pw,
			"--subject", "CN="+cn, "--dns", cn+".example", "--key-type", "p256",
			"--out", filepath.Join(dir, sub, "cert.pem"), "--key-out", filepath.Join(dir, sub, "key.pem"))
	}
	estEnroll("agent-est", "est")
	estEnroll("agent-haproxy", "h")
	// HAProxy's one file: certificate, chain, key.
	site := filepath.Join(dir, "h", "site.pem")
	writeFile(t, site, readFile(t, filepath.Join(dir, "h", "cert.pem"))+readFile(t, filepath.Join(dir, "h", "chain.pem"))+readFile(t, filepath.Join(dir, "h", "key.pem")))
	estKey, estCert := filepath.Join(dir, "est", "key.pem"), filepath.Join(dir, "est", "cert.pem")
	e0, h0 := expectAgentPair(t, estKey, estCert), expectAgentPair(t, site, site)
	config := filepath.Join(dir, "agent.toml")
	writeFile(t, config, fmt.Sprintf(`once_attempts = 1
retry_initial = "1m"
retry_max = "1h"

[[certificate]]
name = "est"
protocol = "est"
url = %[1]q
ca_fingerprint = %[2]q
key_path = "est/key.pem"
cert_path = "est/cert.pem"
chain_path = "est/chain.pem"
post_renew = "echo renewed >> post-est.log"

[[certificate]]
name = "haproxy"
protocol = "est"
url = %[1]q
ca_fingerprint = %[2]q
key_path = "h/site.pem"
cert_path = "h/site.pem"
chain_path = "h/site.pem"
rekey = false
post_renew = "echo renewed >> post-h.log"
`, e.HTTPS+"/agent", fp))
	postE, postH := filepath.Join(dir, "post-est.log"), filepath.Join(dir, "post-h.log")

	mustAgent(t, "", "--once", "--config", config)
	if !expectAgentPair(t, estKey, estCert).Equal(e0) || !expectAgentPair(t, site, site).Equal(h0) || lineCount(t, postE)+lineCount(t, postH) != 0 {
		t.Fatal("agent --once renewed before the renewal point")
	}
	st := mustAgent(t, "", "status", "--config", config).stdout
	expectAgentStatus(t, st, "est", e0, false)
	expectAgentStatus(t, st, "haproxy", h0, false)
	expectContains(t, "agent status", statusBlock(t, st, "haproxy"), "key and cert:  "+site)

	mustAgent(t, "20h", "--once", "--config", config)
	e1, h1 := expectAgentPair(t, estKey, estCert), expectAgentPair(t, site, site)
	if e1.Equal(e0) || h1.Equal(h0) {
		t.Fatal("not renewed 20 hours on")
	}
	e.verify(t, estCert)
	e.expectESTRecord(t, e1, "agent")
	e.expectESTRecord(t, h1, "agent")
	if pki.SamePublicKey(e1.PublicKey, e0.PublicKey) || !pki.SamePublicKey(h1.PublicKey, h0.PublicKey) {
		t.Error("want a new key for est (rekey by default) and the same for haproxy (rekey = false)")
	}
	if certs := readCerts(t, site); len(certs) < 2 || !certs[len(certs)-1].Equal(readCert(t, e.CAFile("root.crt"))) {
		t.Errorf("%s holds %d certificates; want the certificate and its chain up to the root", site, len(certs))
	}
	if fi, err := os.Lstat(site); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v %v, want a regular file with mode 0600", site, fi.Mode(), err)
	}
	if lineCount(t, postE) != 1 || lineCount(t, postH) != 1 {
		t.Errorf("post_renew ran %d and %d times, want once each", lineCount(t, postE), lineCount(t, postH))
	}
	st = mustAgent(t, "", "status", "--config", config).stdout
	expectAgentStatus(t, st, "est", e1, false)
	expectAgentStatus(t, st, "haproxy", h1, false)

	// Long-running, 20 hours on: both certificates are due at the start
	// and renewed; the new ones are due at once too (for this clock), which
	// waits retry_max rather than looping. SIGTERM ends it cleanly.
	p := startProc(t, dir, []string{"SCEPTER_TEST_CLOCK_OFFSET=20h"}, clockOffsetBin(t), "agent", "--config", config)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.out.String(), "msg=sleeping") {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the long-running agent did not renew and go to sleep (exited %v):\n%s", p.exited(), p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(t)
	if p.err != nil {
		t.Errorf("agent did not exit cleanly on SIGTERM: %v\n%s", p.err, p.out.String())
	}
	expectContains(t, "long-running agent log", p.out.String(), "agent started", "already due for renewal", "agent stopping")
	if e2 := expectAgentPair(t, estKey, estCert); e2.Equal(e1) || lineCount(t, postE) != 2 || lineCount(t, postH) != 2 {
		t.Errorf("long-running agent: renewed %v, post_renew ran %d and %d times (want 2 and 2)\n%s", !e2.Equal(e1), lineCount(t, postE), lineCount(t, postH), p.out.String())
	}
}

// killWatch is an agent's stderr, watched for the line that precedes an
// install.
type killWatch struct {
	mu         sync.Mutex
	buf        bytes.Buffer
	installing chan struct{}
	once       sync.Once
}

func (w *killWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte("installing the new key")) {
		w.once.Do(func() { close(w.installing) })
	}
	return len(p), nil
}

func (w *killWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var renewedLine = regexp.MustCompile(`msg=renewed cert=(\w+)`)

// TestAgentKilledMidRenewal: `scepter agent --once` processes, each renewing
// two certificates (separate key and certificate files with a chain file,
// and one combined file), are killed with SIGKILL at random moments, half
// of them just after the agent says it is installing; after each kill the
// files hold a matching key and certificate, and a last run recovers.
func TestAgentKilledMidRenewal(t *testing.T) {
	t.Parallel()
	e := startEST(t, estOpts{prepared: true, config: agentServerConfig})
	const user, pass = "kill-user", "kill-password-0123"
	e.addUser(t, user, pass)
	fp := e.RootFingerprint()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	writeFile(t, pw, pass+"\n")
	for _, cn := range []string{"kill-sep", "kill-comb"} {
		mustRun(t, runOpts{}, bin(t), "est", "enroll", "--url", e.HTTPS+"/agent", "--ca-fingerprint", fp, "--user", user, "--password-file", pw,
			"--subject", "CN="+cn, "--key-type", "p256", "--out", filepath.Join(dir, cn+".crt"), "--key-out", filepath.Join(dir, cn+".key"))
	}
	comb := filepath.Join(dir, "comb.pem")
	writeFile(t, comb, readFile(t, filepath.Join(dir, "kill-comb.crt"))+readFile(t, filepath.Join(dir, "kill-comb.key")))
	sepKey, sepCert := filepath.Join(dir, "kill-sep.key"), filepath.Join(dir, "kill-sep.crt")
	config := filepath.Join(dir, "agent.toml")
	// renew_before longer than the lifetime: due at every run.
	writeFile(t, config, fmt.Sprintf(`once_attempts = 1

[[certificate]]
name = "sep"
protocol = "est"
url = %[1]q
ca_fingerprint = %[2]q
key_path = "kill-sep.key"
cert_path = "kill-sep.crt"
chain_path = "chain.pem"
renew_before = "30d"
post_renew = "echo renewed >> post-sep.log"

[[certificate]]
name = "comb"
protocol = "est"
url = %[1]q
ca_fingerprint = %[2]q
key_path = "comb.pem"
cert_path = "comb.pem"
renew_before = "30d"
`, e.HTTPS+"/agent", fp))
	check := func(when string) {
		t.Helper()
		for _, kc := range [][2]string{{sepKey, sepCert}, {comb, comb}} {
			c := readCert(t, kc[1])
			if !pki.SamePublicKey(readKey(t, kc[0]).Public(), c.PublicKey) {
				t.Fatalf("%s: %s and %s do not match", when, kc[0], kc[1])
			}
		}
	}
	check("before")
	// One undisturbed run, to time it.
	start := time.Now()
	mustAgent(t, "", "--once", "--config", config)
	full := time.Since(start)
	check("after an undisturbed run")
	t.Logf("an undisturbed run takes %v", full)

	const wantKills, budget = 30, 45 * time.Second
	var kills, duringInstall, finished int
	began := time.Now()
	for i := 0; kills < wantKills && time.Since(began) < budget && i < 3*wantKills; i++ {
		w := &killWatch{installing: make(chan struct{})}
		cmd := exec.Command(bin(t), "agent", "--once", "--config", config)
		cmd.Stdout, cmd.Stderr = w, w
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var timer <-chan time.Time
		if i%2 == 0 {
			// At a random moment of a run.
			timer = time.After(time.Duration(rand.Int64N(int64(full + full/4))))
		} else {
			// Just after it starts installing, while it writes.
			select {
			case <-w.installing:
				timer = time.After(time.Duration(rand.Int64N(int64(3 * time.Millisecond))))
			case err := <-done:
				t.Fatalf("the agent ended without installing anything (%v):\n%s", err, w.String())
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("the agent did not start installing within 30 s:\n%s", w.String())
			}
		}
		var err error
		select {
		case <-timer:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err = <-done
		case err = <-done:
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			kills++
			out := w.String()
			if strings.Count(out, "installing the new key") > len(renewedLine.FindAllString(out, -1)) {
				duringInstall++
			}
		} else if err != nil {
			t.Fatalf("run %d failed on its own: %v\n%s", i, err, w.String())
		} else {
			finished++
		}
		check(fmt.Sprintf("after run %d (%d kills)", i, kills))
	}
	t.Logf("%d runs killed (%d of them between \"installing\" and \"renewed\"), %d finished, in %v", kills, duringInstall, finished, time.Since(began).Round(time.Millisecond))
	if kills < wantKills/2 {
		t.Errorf("only %d runs were killed", kills)
	}

	// The next run recovers and renews; nothing is left behind.
	mustAgent(t, "", "--once", "--config", config)
	check("after the recovery run")
	st := mustAgent(t, "", "status", "--config", config).stdout
	expectContains(t, "agent status", st, "serial:", "next renewal:")
	var left []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".scepter-agent-tmp-") {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("temporary files left after the recovery run: %v", left)
	}
	if gens, _ := filepath.Glob(filepath.Join(dir, ".scepter-agent", "sep", "gen-*")); len(gens) != 1 {
		t.Errorf("generations of sep: %v, want one", gens)
	}
	e.verify(t, sepCert)
}
