package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

const (
	cmdTimeout   = 90 * time.Second // any one external command
	readyTimeout = 60 * time.Second // a server answering GetCACaps
	// readyPoll is how often a starting server is asked whether it is
	// ready: about a hundred servers start per run, each ready on average
	// half a poll before it is seen, and a refused connection costs
	// next to nothing.
	readyPoll = 25 * time.Millisecond
)

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// need ends the test when an external program is missing: a skip normally,
// a failure when SCEPTER_E2E_REQUIRE=1. It returns the resolved paths.
func need(t testing.TB, progs ...string) []string {
	t.Helper()
	var paths []string
	for _, p := range progs {
		var path string
		var err error
		if filepath.IsAbs(p) {
			path = p
			var fi os.FileInfo
			if fi, err = os.Stat(p); err == nil && fi.Mode()&0o111 == 0 {
				err = errors.New("not executable")
			}
		} else {
			path, err = exec.LookPath(p)
		}
		if err != nil {
			if requireAll() {
				t.Fatalf("required external client %s is missing (%v); scripts/test installs it", p, err)
			}
			t.Skipf("external client %s is missing (%v); set SCEPTER_E2E_REQUIRE=1 to make this a failure", p, err)
		}
		paths = append(paths, path)
	}
	return paths
}

// result is what an external command did.
type result struct {
	cmdline        string
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("$ %s\nerror: %v\n--- stdout ---\n%s\n--- stderr ---\n%s", r.cmdline, r.err, r.stdout, r.stderr)
}

// runOpts tunes run.
type runOpts struct {
	dir     string
	env     []string // added to the test's environment
	stdin   string
	timeout time.Duration
	quiet   bool // do not log the command line (polling loops)
}

// run runs a command with a timeout and returns what it did. It never fails
// the test; see mustRun.
func run(t testing.TB, o runOpts, name string, args ...string) result {
	t.Helper()
	timeout := o.timeout
	if timeout == 0 {
		timeout = cmdTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = o.dir
	// A command on a server's --data-dir finds its --store too.
	cmd.Env = append(append(os.Environ(), storeEnv(args)...), o.env...)
	cmd.WaitDelay = 5 * time.Second
	if o.stdin != "" {
		cmd.Stdin = strings.NewReader(o.stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	r := result{cmdline: shellQuote(name, args), stdout: stdout.String(), stderr: stderr.String(), err: err}
	if !o.quiet || err != nil {
		t.Logf("ran (%v, err=%v): %s", time.Since(start).Round(time.Millisecond), err, r.cmdline)
	}
	return r
}

// mustRun is run that fails the test, with the output, when the command fails.
func mustRun(t testing.TB, o runOpts, name string, args ...string) result {
	t.Helper()
	r := run(t, o, name, args...)
	if r.err != nil {
		t.Fatalf("command failed:\n%s", r)
	}
	return r
}

func shellQuote(name string, args []string) string {
	parts := []string{name}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$\\,=;&|*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// freePort returns a TCP port that was free a moment ago on every address,
// for a server that binds a port it is told (micromdm's scepserver binds
// ":port"). It is drawn from below the kernel's ephemeral range: a port from
// 127.0.0.1:0 is one the kernel also hands to outgoing connections, and a
// closed client connection in TIME_WAIT keeps such a port from being bound
// for a minute, which under a parallel suite failed CI.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := pickPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// pickPort is freePort for code without a test to fail.
func pickPort() (int, error) {
	low := ephemeralLow()
	const floor = 10000
	for range 200 {
		port := floor + rand.IntN(low-floor)
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port between %d and %d", floor, low)
}

// ephemeralLow is the first port of the kernel's range for outgoing
// connections (Linux's default is 32768).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	return low
}

// proc is a long-running child process (a server or a daemon).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error // set when done is closed
}

func startProc(t testing.TB, dir string, env []string, name string, args ...string) *proc {
	t.Helper()
	p, err := launch(dir, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started pid %d: %s", p.cmd.Process.Pid, shellQuote(name, args))
	return p
}

// launch is startProc for code without a test to fail or log to.
func launch(dir string, env []string, name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", shellQuote(name, args), err)
	}
	p := &proc{name: filepath.Base(name), cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 10 s, then kills.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	if err := p.terminate(); err != nil {
		t.Error(err)
	}
}

// terminate is stop for code without a test to fail: it says when the
// process had to be killed.
func (p *proc) terminate() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) did not stop within 10 s of SIGTERM; killed it", p.name, p.cmd.Process.Pid)
}

// waitHTTP200 polls url until it answers 200 or the process exits.
func waitHTTP200(p *proc, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.err)
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(readyPoll)
	}
	return fmt.Errorf("%s not ready after %v (last: %s)", url, timeout, last)
}

// Server is a running `scepter serve`.
type Server struct {
	t       testing.TB
	Bin     string
	DataDir string
	Addr    string // 127.0.0.1:PORT
	Base    string // http://127.0.0.1:PORT
	URL     string // http://127.0.0.1:PORT/scep
	// Challenge is the static challenge passed with --challenge ("" when none).
	Challenge string
	// Store is the --store URL of a server on PostgreSQL ("" on SQLite).
	Store string
	// env is added to the environment of the server and of the commands
	// run through Run and MustRun.
	env      []string
	p        *proc
	stopOnce sync.Once
}

// Output is everything the server printed so far.
func (s *Server) Output() string { return s.p.out.String() }

// waitReadyz polls base/readyz until it answers want, and fails the test
// when it has not within the time given.
func waitReadyz(t testing.TB, base string, want int, within time.Duration) {
	t.Helper()
	last := 0
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(readyPoll) {
		code, _, err := httpGet(base + "/readyz")
		if err == nil && code == want {
			return
		}
		last = code
	}
	t.Fatalf("/readyz did not answer %d within %v (last: %d)", want, within, last)
}

// waitOutput waits until a process has written want or exited, or gives
// up quietly after timeout (the caller's own check then shows the output).
func waitOutput(p *proc, want string, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// Once the process has exited its output is complete (Wait copies
		// all of it first).
		if strings.Contains(p.out.String(), want) || p.exited() {
			return
		}
	}
}

// CAFile names a PEM file in DATA/ca/.
func (s *Server) CAFile(name string) string { return filepath.Join(s.DataDir, "ca", name) }

type serverOpts struct {
	challenge string   // --challenge; "" for none
	args      []string // extra serve flags
	dataDir   string   // reuse this data directory ("" for a fresh one)
	// prepared starts the server on a copy of the data directory one
	// server of this run left after its first start (prepared_test.go)
	// rather than on an empty one where it makes a CA: for tests that
	// check neither a first start nor which CA a server has against
	// another server's. Ignored with dataDir, and on PostgreSQL.
	prepared bool
	// store is the --store URL; "" for the data directory's, which is a
	// fresh PostgreSQL database when the test runs on PostgreSQL
	// (postgres_test.go: serverStore).
	store string
	// env is added to the environment of the server and of the scepter
	// commands run through it (Run, MustRun; cli and addUser on EST).
	env []string
}

// startServer starts `scepter serve` on a free 127.0.0.1 port in a fresh data
// directory, waits until GetCACaps answers 200, and stops it at the end of
// the test after checking it still serves.
func startServer(t *testing.T, o serverOpts) *Server {
	t.Helper()
	b := bin(t)
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
	}
	store := serverStore(t, o, dataDir)
	if o.prepared && o.dataDir == "" && store == "" && storeArg(o.args) == "" {
		copyPrepared(t, dataDir, o.args)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// EST's HTTPS listener on a port of its own (a test that wants a
		// known one passes --est-listen in o.args, which comes later and wins).
		args := []string{"serve", "--data-dir", dataDir, "--listen", addr, "--est-listen", "127.0.0.1:0"}
		if o.challenge != "" {
			args = append(args, "--challenge", o.challenge)
		}
		if store != "" {
			args = append(args, "--store", store)
		}
		args = append(args, o.args...)
		p := startProc(t, "", o.env, b, args...)
		s := &Server{t: t, Bin: b, DataDir: dataDir, Addr: addr, Base: "http://" + addr, URL: "http://" + addr + "/scep", Challenge: o.challenge, Store: store, env: o.env, p: p}
		err := waitHTTP200(p, s.URL+"?operation=GetCACaps", readyTimeout)
		if err == nil {
			// The banner is written before serving, but it reaches our
			// buffer through a pipe copied by another goroutine: wait for it
			// so that tests reading Output see all of it.
			waitOutput(p, "Data directory:", 10*time.Second)
			// The 200 may have come from another process that took the port
			// between freePort and our bind (another test's server, or
			// another suite's on this machine): it counts only when this
			// server says it listens there.
			if !p.exited() && strings.Contains(p.out.String(), " listening on "+addr+"\n") {
				t.Cleanup(s.Stop)
				return s
			}
			err = fmt.Errorf("%s answered, but not from this server (exited: %v)", s.URL, p.exited())
		}
		p.stop(t)
		lastErr = fmt.Errorf("%v\n--- server output ---\n%s", err, p.out.String())
		if !strings.Contains(p.out.String(), "address already in use") {
			break
		}
	}
	t.Fatalf("scepter serve did not start: %v", lastErr)
	return nil
}

// Stop checks the server still serves, stops it (SIGTERM, then kill), and
// shows its output when the test failed or runs verbose. It runs once; the
// test's cleanup calls it too.
func (s *Server) Stop() { s.stopOnce.Do(s.shutdown) }

func (s *Server) shutdown() {
	t := s.t
	if s.p.exited() {
		t.Errorf("scepter serve exited during the test: %v", s.p.err)
	} else {
		if code, _, err := httpGet(s.URL + "?operation=GetCACaps"); err != nil || code != http.StatusOK {
			t.Errorf("server no longer serves GetCACaps at the end of the test: status %d, err %v", code, err)
		}
		s.p.stop(t)
		if s.p.err != nil {
			t.Errorf("scepter serve did not exit cleanly on SIGTERM: %v", s.p.err)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("--- scepter serve output ---\n%s", s.Output())
	}
}

// Run runs a scepter subcommand.
func (s *Server) Run(args ...string) result {
	s.t.Helper()
	return run(s.t, runOpts{env: s.env}, s.Bin, args...)
}

// MustRun runs a scepter subcommand and fails the test if it fails.
func (s *Server) MustRun(args ...string) result {
	s.t.Helper()
	return mustRun(s.t, runOpts{env: s.env}, s.Bin, args...)
}

// RootFingerprint is "sha256:HEX" of DATA/ca/root.crt.
func (s *Server) RootFingerprint() string {
	s.t.Helper()
	return "sha256:" + fingerprintHex(readCert(s.t, s.CAFile("root.crt")))
}

// Verify runs `openssl verify` on certPath against the server's root, with
// the issuing CA as untrusted intermediate, and returns the certificate.
func (s *Server) Verify(certPath string) *x509.Certificate {
	s.t.Helper()
	opensslVerify(s.t, s.CAFile("root.crt"), s.CAFile("issuing.crt"), certPath)
	c := readCert(s.t, certPath)
	if c.IsCA {
		s.t.Errorf("%s: issued certificate has CA:TRUE", certPath)
	}
	return c
}

// enroll runs `scepter enroll` into dir and returns the result; cert.pem and
// key.pem land in dir.
func enroll(t testing.TB, dir, url, challenge, subject string, extra ...string) result {
	t.Helper()
	args := []string{"enroll", "--url", url, "--challenge", challenge, "--subject", subject,
		"--out", filepath.Join(dir, "cert.pem"), "--key-out", filepath.Join(dir, "key.pem")}
	args = append(args, extra...)
	return run(t, runOpts{dir: dir}, bin(t), args...)
}

// certEntry is one object of `certs list --json`.
type certEntry struct {
	Serial   string `json:"serial"`
	Subject  string `json:"subject"`
	NotAfter string `json:"not_after"`
	Status   string `json:"status"`
	Protocol string `json:"protocol"`
	Profile  string `json:"profile"`
}

// ListCerts runs `scepter certs list --json` (with extra flags) and parses
// it. It returns the devices' certificates: the server's own HTTPS
// certificate (protocol "internal") is in the inventory too, and left out.
func (s *Server) ListCerts(extra ...string) []certEntry {
	s.t.Helper()
	args := append([]string{"certs", "list", "--data-dir", s.DataDir, "--json"}, extra...)
	r := s.MustRun(args...)
	var list []certEntry
	out := strings.TrimSpace(r.stdout)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		s.t.Fatalf("certs list --json is not a JSON array of objects: %v\n%s", err, r)
	}
	var devices []certEntry
	for i, e := range list {
		if e.Serial == "" || e.Subject == "" || e.NotAfter == "" || e.Status == "" || e.Protocol == "" {
			s.t.Errorf("certs list --json entry %d lacks serial/subject/not_after/status/protocol: %+v", i, e)
		}
		if e.Protocol != "internal" {
			devices = append(devices, e)
		}
	}
	return devices
}

// findSerial returns the entry with c's serial, or nil.
func findSerial(list []certEntry, c *x509.Certificate) *certEntry {
	want := serialHex(c.SerialNumber)
	for i := range list {
		if normSerial(list[i].Serial) == want {
			return &list[i]
		}
	}
	return nil
}

// ExpectRecorded fails unless the certificate is in `certs list`.
func (s *Server) ExpectRecorded(c *x509.Certificate) {
	s.t.Helper()
	list := s.ListCerts()
	if findSerial(list, c) == nil {
		s.t.Errorf("certificate serial %s (%s) is not in `certs list --json`: %+v", serialHex(c.SerialNumber), c.Subject, list)
	}
}

func serialHex(n *big.Int) string { return n.Text(16) }

// shownSerial is a serial as the CLI, the console and the log show it:
// in whole bytes (0e67…, where serialHex is the store's e67…).
func shownSerial(n *big.Int) string { return pki.SerialText(n) }

// normSerial accepts "0A:1B", "0a1b", "0x0a1b" and returns "a1b".
func normSerial(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "0x")
	s = strings.ReplaceAll(s, ":", "")
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return s
}

func httpGet(url string) (int, []byte, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// opensslVerify runs `openssl verify -CAfile root [-untrusted inter] cert`.
func opensslVerify(t testing.TB, root, inter, certPath string) {
	t.Helper()
	need(t, "openssl")
	args := []string{"verify", "-CAfile", root}
	if inter != "" {
		args = append(args, "-untrusted", inter)
	}
	args = append(args, certPath)
	r := mustRun(t, runOpts{}, "openssl", args...)
	if !strings.Contains(r.stdout, ": OK") {
		t.Fatalf("openssl verify did not say OK:\n%s", r)
	}
}

// readCerts reads every certificate in a PEM or DER file.
func readCerts(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := parseCerts(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return certs
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("no PEM certificate, and not DER either: %v", err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// parseCertsFile reads the first certificate of a file without a testing.TB
// (for goroutines that must not call t.Fatal).
func parseCertsFile(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return certs[0], nil
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	return readCerts(t, path)[0]
}

func fingerprintHex(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// readKey reads a PEM private key (PKCS#1, SEC1 or PKCS#8).
func readKey(t testing.TB, path string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return k
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(blk.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				t.Fatalf("%s: %T is not a signer", path, k)
			}
			return s
		}
	}
	t.Fatalf("%s: no PEM private key found", path)
	return nil
}

// expectKeyMatches fails unless the certificate holds the key's public half.
func expectKeyMatches(t testing.TB, c *x509.Certificate, keyPath string) {
	t.Helper()
	k := readKey(t, keyPath)
	if !pki.SamePublicKey(k.Public(), c.PublicKey) {
		t.Errorf("certificate %s does not carry the public key of %s", c.Subject, keyPath)
	}
}

// keyDesc describes a public key, e.g. "rsa2048" or "p256".
func keyDesc(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("p%d", k.Curve.Params().BitSize)
	case ed25519.PublicKey:
		return "ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// expectFailed fails the test unless r failed; it returns the combined output.
func expectFailed(t testing.TB, r result, why string) string {
	t.Helper()
	if r.err == nil {
		t.Fatalf("%s: expected the command to fail, it succeeded:\n%s", why, r)
	}
	return r.stdout + r.stderr
}

// expectContains fails unless s contains every one of subs (case-insensitive).
func expectContains(t testing.TB, what, s string, subs ...string) {
	t.Helper()
	ls := strings.ToLower(s)
	for _, sub := range subs {
		if !strings.Contains(ls, strings.ToLower(sub)) {
			t.Errorf("%s does not mention %q:\n%s", what, sub, s)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
