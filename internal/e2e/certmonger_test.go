package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Where Debian's certmonger package puts its daemon and SCEP helper
// (/usr/sbin may be missing from a non-login PATH).
const (
	certmongerDaemon = "/usr/sbin/certmonger"
	scepSubmit       = "/usr/lib/certmonger/scep-submit"
)

// certmongerd is a private certmonger daemon: no D-Bus, it listens on its
// own unix socket (-L -P) and keeps all its state in a temp directory, so it
// neither needs nor touches the system's certmonger.
type certmongerd struct {
	dir string
	env []string
	p   *proc
}

func startCertmonger(t *testing.T) *certmongerd {
	t.Helper()
	paths := need(t, certmongerDaemon, "getcert", scepSubmit)
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "cm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	env := []string{}
	for _, d := range []string{"requests", "cas", "tmp", "local", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "sock")
	env = append(env,
		"CERTMONGER_REQUESTS_DIR="+filepath.Join(dir, "requests"),
		"CERTMONGER_CAS_DIR="+filepath.Join(dir, "cas"),
		"CERTMONGER_TMPDIR="+filepath.Join(dir, "tmp"),
		"CERTMONGER_LOCAL_CA_DIR="+filepath.Join(dir, "local"),
		"CERTMONGER_CONFIG_DIR="+filepath.Join(dir, "config"),
		"CERTMONGER_SYSTEM_LOCK_FILE="+filepath.Join(dir, "lock"),
		"CERTMONGER_PVT_ADDRESS=unix:path="+sock,
	)
	// -n: foreground; -L -P: only a private listening socket, no bus;
	// -B: no idle timeout; -d 2: log what it does (and the helper's output).
	p := startProc(t, dir, env, paths[0], "-n", "-L", "-P", sock, "-B", "-d", "2")
	cm := &certmongerd{dir: dir, env: env, p: p}
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- certmonger daemon log ---\n%s", p.out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !fileExists(sock) {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("certmonger did not open %s: %v\n%s", sock, p.err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cm
}

// getcert talks to this daemon.
func (cm *certmongerd) getcert(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, runOpts{dir: cm.dir, env: cm.env, timeout: 60 * time.Second}, "getcert", args...)
}

// poll is getcert without logging, for polling loops.
func (cm *certmongerd) poll(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, runOpts{dir: cm.dir, env: cm.env, timeout: 60 * time.Second, quiet: true}, "getcert", args...)
}

// addSCEPCA registers a SCEP CA and waits until the daemon has fetched its
// certificates (GetCACaps/GetCACert through scep-submit); a request made
// before that ends in CA_UNCONFIGURED ("No RA certificate").
func (cm *certmongerd) addSCEPCA(t *testing.T, name, url string) {
	t.Helper()
	mustRun(t, runOpts{dir: cm.dir, env: cm.env}, "getcert", "add-scep-ca", "-c", name, "-u", url)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := cm.poll(t, "list-cas", "-c", name)
		if strings.Contains(r.stdout, "certificate thumbprint") {
			t.Logf("certmonger discovered the CA:\n%s", r.stdout)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("certmonger did not fetch the CA certificates of %s within 30 s:\n%s", url, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var cmStatus = regexp.MustCompile(`(?m)^\s*status:\s*(\S+)`)

// waitFinal polls `getcert list -i id` until the request reaches a state
// where it no longer moves by itself, and returns that state.
func (cm *certmongerd) waitFinal(t *testing.T, id string, timeout time.Duration) (string, result) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last result
	for {
		last = cm.poll(t, "list", "-i", id)
		status := ""
		if m := cmStatus.FindStringSubmatch(last.stdout); m != nil {
			status = m[1]
		}
		switch status {
		case "MONITORING", "CA_UNREACHABLE", "CA_REJECTED", "CA_UNCONFIGURED", "NEED_GUIDANCE", "NEED_TO_NOTIFY_REJECTION":
			return status, last
		}
		if time.Now().After(deadline) {
			return "TIMEOUT(" + status + ")", last
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitIssued fails unless the request ends MONITORING (issued and saved).
func (cm *certmongerd) waitIssued(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	if status, last := cm.waitFinal(t, id, timeout); status != "MONITORING" {
		t.Fatalf("certmonger request %s ended in %s, want MONITORING:\n%s", id, status, last)
	}
}

// TestCertmonger: the certmonger daemon (which runs scep-submit for every
// SCEP step, all of them as GET, PKIOperation included) discovers the CA
// and enrolls; scep-submit alone reads GetCACaps and GetCACert.
func TestCertmonger(t *testing.T) {
	t.Parallel()
	need(t, certmongerDaemon, "getcert", scepSubmit)
	s := startServer(t, serverOpts{prepared: true, challenge: "cm-secret"})

	t.Run("scep-submit-cacaps", func(t *testing.T) {
		r := mustRun(t, runOpts{}, scepSubmit, "-u", s.URL, "-c")
		expectContains(t, "scep-submit -c (GetCACaps)", r.stdout, "AES", "SHA-256", "POSTPKIOperation")
	})

	t.Run("scep-submit-cacert", func(t *testing.T) {
		// Prints the RA certificate first, then the CA and the others
		// (certmonger 0.79 calls the root "the CA" and puts the issuing CA
		// among the others; both reach the verifier).
		r := mustRun(t, runOpts{}, scepSubmit, "-u", s.URL, "-C")
		certs, err := parseCerts([]byte(r.stdout))
		if err != nil {
			t.Fatalf("scep-submit -C printed no certificates: %v\n%s", err, r)
		}
		ra := readCert(t, s.CAFile("ra.crt"))
		if !bytes.Equal(certs[0].Raw, ra.Raw) {
			t.Errorf("scep-submit took %q for the RA certificate, want %q", certs[0].Subject, ra.Subject)
		}
		for _, f := range []string{"issuing.crt", "root.crt"} {
			want := readCert(t, s.CAFile(f))
			found := false
			for _, c := range certs {
				found = found || bytes.Equal(c.Raw, want.Raw)
			}
			if !found {
				t.Errorf("GetCACert did not carry %s (%s) to scep-submit:\n%s", f, want.Subject, r.stdout)
			}
		}
	})

	t.Run("daemon-enroll", func(t *testing.T) {
		cm := startCertmonger(t)
		tp := startTap(t, s.Addr)
		// The legacy CGI path, as certmonger users usually configure it.
		cm.addSCEPCA(t, "scepter-e2e", tp.Base()+"/cgi-bin/pkiclient.exe")
		out := t.TempDir()
		for _, tc := range []struct{ id, bits string }{{"cm-2048", "2048"}, {"cm-4096", "4096"}} {
			certPath := filepath.Join(out, tc.id+".crt")
			keyPath := filepath.Join(out, tc.id+".key")
			r := cm.getcert(t, "request", "-c", "scepter-e2e", "-I", tc.id,
				"-k", keyPath, "-f", certPath, "-g", tc.bits,
				"-N", "CN="+tc.id+",O=Acme", "-D", tc.id+".example.com",
				"-L", s.Challenge, "-w", "--wait-timeout", "60")
			if r.err != nil && !strings.Contains(r.stdout, "added") {
				t.Fatalf("getcert request:\n%s", r)
			}
			cm.waitIssued(t, tc.id, 90*time.Second)
			c := s.Verify(certPath)
			expectKeyMatches(t, c, keyPath)
			if c.Subject.CommonName != tc.id {
				t.Errorf("subject CN = %q, want %q", c.Subject.CommonName, tc.id)
			}
			if len(c.DNSNames) != 1 || c.DNSNames[0] != tc.id+".example.com" {
				t.Errorf("DNS SANs = %v, want [%s.example.com]", c.DNSNames, tc.id)
			}
			if got := keyDesc(c.PublicKey); got != "rsa"+tc.bits {
				t.Errorf("key = %s, want rsa%s", got, tc.bits)
			}
			s.ExpectRecorded(c)
		}
		// Every PKIOperation as a long GET; AES both ways.
		expectWire(t, tp, wantWire{method: "GET", minQuery: 3000, reqCipherPrefix: "AES-", replySame: true})
	})

	t.Run("daemon-wrong-challenge", func(t *testing.T) {
		cm := startCertmonger(t)
		cm.addSCEPCA(t, "scepter-e2e", s.URL)
		out := t.TempDir()
		before := len(s.ListCerts())
		cm.getcert(t, "request", "-c", "scepter-e2e", "-I", "cm-bad",
			"-k", filepath.Join(out, "bad.key"), "-f", filepath.Join(out, "bad.crt"),
			"-N", "CN=cm-bad,O=Acme", "-L", "wrong-challenge", "-w", "--wait-timeout", "60")
		if status, last := cm.waitFinal(t, "cm-bad", 60*time.Second); status != "CA_REJECTED" && status != "NEED_TO_NOTIFY_REJECTION" {
			t.Fatalf("certmonger request with a wrong challenge ended in %s, want CA_REJECTED:\n%s", status, last)
		}
		if fileExists(filepath.Join(out, "bad.crt")) {
			t.Errorf("certmonger wrote a certificate for a wrong challenge")
		}
		if after := len(s.ListCerts()); after != before {
			t.Errorf("a wrong challenge recorded a certificate: %d -> %d", before, after)
		}
	})
}
