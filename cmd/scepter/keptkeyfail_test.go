package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// runWithPassword runs one scepter command with SCEPTER_EST_PASSWORD set
// to password ("": none); it returns its error and what it wrote.
func runWithPassword(password string, args ...string) (string, error) {
	vars := map[string]string{}
	if password != "" {
		vars["SCEPTER_EST_PASSWORD"] = password
	}
	e, out, errb := testEnv(vars)
	err := run(context.Background(), e, args)
	return out.String() + errb.String(), err
}

// startForwarder forwards TCP connections made to its address on
// 127.0.0.1 to target; stop closes the listener and every connection
// (an HTTP client may keep one idle), so that afterwards the address is
// refused, as when the server is down.
func startForwarder(t *testing.T, target string) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			c.Close() // stopped
			return false
		}
		conns = append(conns, c)
		return true
	}
	conns = []net.Conn{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil || !track(c) || !track(u) {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); done <- struct{}{} }()
				go func() { io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	stop = sync.OnceFunc(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	})
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// withHost is rawURL with its host and port replaced by addr.
func withHost(t *testing.T, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// The server driven into its lockout (too many wrong challenges or
// passwords from one address, other devices behind the same NAT, say)
// while an approved request waits to be collected: the refusal, in the
// server's own words (SCEP: a badRequest FAILURE; EST: 429), says to keep
// the held key and run again later, never to remove it (r64 D4).
func TestHeldKeyKeptThroughTheServersLockout(t *testing.T) {
	for _, tt := range []struct {
		name string
		args func(s *testServer, dir, subject, challenge string) []string
		// password is the EST password of a run with challenge.
		password func(challenge string) string
	}{
		{"scep enroll", func(s *testServer, dir, subject, ch string) []string {
			return []string{"enroll", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--challenge", ch, "--subject", "CN=" + subject,
				"--key-type", "p256", "--out", filepath.Join(dir, subject+".pem"), "--key-out", filepath.Join(dir, subject+"-key.pem")}
		}, func(string) string { return "" }},
		{"est enroll", func(s *testServer, dir, subject, _ string) []string {
			return []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=" + subject,
				"--out", filepath.Join(dir, subject+".pem"), "--key-out", filepath.Join(dir, subject+"-key.pem")}
		}, func(ch string) string { return ch }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startServe(t, "[profiles.default]\napproval = true\n")
			d := t.TempDir()
			heldKeyFile := filepath.Join(d, "held-key.pem")
			if out, err := runWithPassword(tt.password("test"), tt.args(s, d, "held", "test")...); err == nil || !strings.Contains(err.Error(), "pending manual approval") {
				t.Fatalf("%v, want the request held\n%s", err, out)
			}
			ids := s.pending(t)
			if len(ids) != 1 {
				t.Fatalf("held requests %v, want one", ids)
			}
			s.approve(t, ids[0])
			// Other devices at this address with wrong challenges: past
			// the server's limit (10 in 10 minutes) it locks the address out.
			for i := range 11 {
				ch := fmt.Sprintf("wrong%d", i)
				if out, err := runWithPassword(tt.password(ch), tt.args(s, d, fmt.Sprintf("other-%d", i), ch)...); err == nil {
					t.Fatalf("a wrong challenge was taken\n%s", out)
				}
			}

			out, err := runWithPassword(tt.password("test"), tt.args(s, d, "held", "test")...)
			if err == nil {
				t.Fatalf("collected while the address is locked out\n%s", out)
			}
			msg := err.Error()
			if !strings.Contains(msg, "too many failed attempts") || !strings.Contains(msg, "from this address") {
				t.Fatalf("%q: want the server's lockout", msg)
			}
			if !strings.Contains(msg, "keep it") || !strings.Contains(msg, "again later") || strings.Contains(msg, "remove it") {
				t.Errorf("%q: want it to say to keep the key and run again later, not to remove it", msg)
			}
			for _, p := range []string{heldKeyFile, heldKeyFile + heldMarkerSuffix} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("after the lockout: %v", err)
				}
			}
		})
	}
}

// A run that takes up a kept key and finds the server down fails before
// it asks anything (EST at /csrattrs, SCEP at GetCACaps): the message says
// the key is kept, as `renew --rekey`'s does, and the key stays (r64 D3).
func TestKeptKeyNamedWhenTheServerIsDown(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\nrenewal_window = \"100%\"\n")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	// A certificate to renew, issued at once by a one-time run through
	// the approval: enrolled, approved, collected.
	enrollArgs := func(u string) []string {
		return []string{"est", "enroll", "--url", u, "--ca-fingerprint", s.fingerprint, "--subject", "CN=down-renewed",
			"--out", path("cert.pem"), "--key-out", path("key.pem")}
	}
	if _, err := runWithPassword("test", enrollArgs(s.estURL)...); err == nil || !strings.Contains(err.Error(), "pending manual approval") {
		t.Fatalf("est enroll: %v, want it held", err)
	}
	s.approve(t, s.pending(t)[0])
	if out, err := runWithPassword("test", enrollArgs(s.estURL)...); err != nil {
		t.Fatalf("est enroll, collecting: %v\n%s", err, out)
	}

	estURL, _ := url.Parse(s.estURL)
	scepURL, _ := url.Parse(s.scepURL)
	for _, tt := range []struct {
		name     string
		upstream string // the server's host:port
		args     func(u string) []string
		password string
		keyFile  string // the key kept by the held run
		want     string
	}{
		{"est enroll", estURL.Host, func(u string) []string {
			return []string{"est", "enroll", "--url", u, "--ca-fingerprint", s.fingerprint, "--subject", "CN=down-est",
				"--out", path("est.pem"), "--key-out", path("est-key.pem")}
		}, "test", path("est-key.pem"), "keep it, and run the same command again later"},
		{"est reenroll --rekey", estURL.Host, func(u string) []string {
			return []string{"est", "reenroll", "--url", u, "--ca-fingerprint", s.fingerprint, "--cert", path("cert.pem"), "--key", path("key.pem"), "--rekey",
				"--out", path("cert.pem"), "--key-out", path("key.pem")}
		}, "", path("key.pem.pending"), "the new key is kept in " + path("key.pem.pending")},
		{"scep enroll", scepURL.Host, func(u string) []string {
			return []string{"enroll", "--url", u, "--ca-fingerprint", s.fingerprint, "--challenge", "test", "--subject", "CN=down-scep",
				"--key-type", "p256", "--out", path("scep.pem"), "--key-out", path("scep-key.pem")}
		}, "", path("scep-key.pem"), "keep it, and run the same command again later"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Through a forwarder that then stops: the held request's URL
			// names a server that is down.
			addr, stop := startForwarder(t, tt.upstream)
			u := withHost(t, map[string]string{estURL.Host: s.estURL, scepURL.Host: s.scepURL}[tt.upstream], addr)
			if out, err := runWithPassword(tt.password, tt.args(u)...); err == nil || !strings.Contains(err.Error(), "pending manual approval") {
				t.Fatalf("%v, want the request held\n%s", err, out)
			}
			kept := loadKey(t, tt.keyFile).Public()
			stop()

			out, err := runWithPassword(tt.password, tt.args(u)...)
			if err == nil {
				t.Fatalf("the server is down, and it succeeded\n%s", out)
			}
			if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%q: want the server down and %q", err, tt.want)
			}
			if !strings.Contains(out, "using the key in "+tt.keyFile) {
				t.Errorf("the kept key is not announced:\n%s", out)
			}
			if _, err := os.Stat(tt.keyFile + heldMarkerSuffix); err != nil {
				t.Errorf("the marker: %v", err)
			}
			if got := loadKey(t, tt.keyFile).Public(); !pki.SamePublicKey(kept, got) {
				t.Error("the kept key changed")
			}
		})
	}
}

// `est reenroll --rekey` with a kept key whose certificate to renew was
// revoked meanwhile: the server's 401 refuses the certificate, which no
// run can change (the kept key is bound to it), so the key is removed and
// the message says why, as `renew --rekey` does for SCEP's badCertId; not
// "run again with the right password" (r64 D2). With or without a
// password besides the certificate.
func TestESTKeptKeyRemovedWhenTheRenewedCertificateIsRevoked(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\nrenewal_window = \"100%\"\n")
	for _, password := range []string{"", "test"} {
		t.Run(fmt.Sprintf("password %q", password), func(t *testing.T) {
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			enroll := []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=revoked-" + password,
				"--out", path("cert.pem"), "--key-out", path("key.pem")}
			if _, err := runWithPassword("test", enroll...); err == nil || !strings.Contains(err.Error(), "pending manual approval") {
				t.Fatalf("est enroll: %v, want it held", err)
			}
			s.approve(t, s.pending(t)[0])
			if out, err := runWithPassword("test", enroll...); err != nil {
				t.Fatalf("est enroll, collecting: %v\n%s", err, out)
			}
			reenroll := func() (string, error) {
				return runWithPassword(password, "est", "reenroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint,
					"--cert", path("cert.pem"), "--key", path("key.pem"), "--rekey", "--out", path("cert.pem"), "--key-out", path("key.pem"))
			}
			if out, err := reenroll(); err == nil || !strings.Contains(err.Error(), "pending manual approval") {
				t.Fatalf("est reenroll --rekey: %v, want it held\n%s", err, out)
			}
			ids := s.pending(t)
			if len(ids) != 1 {
				t.Fatalf("held requests %v, want one", ids)
			}
			serial := loadCert(t, path("cert.pem")).SerialNumber.Text(16)
			if out, err := runCLI("certs", "revoke", "--data-dir", s.dataDir, "--reason", "keyCompromise", serial); err != nil {
				t.Fatalf("certs revoke: %v\n%s", err, out)
			}

			out, err := reenroll()
			if err == nil {
				t.Fatalf("renewed a revoked certificate\n%s", out)
			}
			msg := err.Error()
			if !strings.Contains(out, "using the key in "+path("key.pem.pending")) || !strings.Contains(msg, "HTTP 401: the certificate to renew is revoked") {
				t.Fatalf("%q: want the kept key refused for the revoked certificate\n%s", msg, out)
			}
			if !strings.Contains(msg, path("key.pem.pending")+" is removed") || strings.Contains(msg, "--user and password") {
				t.Errorf("%q: want it to say the kept key is removed, and nothing of a password", msg)
			}
			for _, p := range []string{path("key.pem.pending"), path("key.pem.pending") + heldMarkerSuffix} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s after the refusal: %v, want it removed", p, err)
				}
			}
			// The held re-enrollment, which no approval can issue any
			// more, was rejected by the system at the refusal (r116 D1):
			// no held request is left for the next case.
			if left := s.pending(t); len(left) != 0 {
				t.Errorf("held requests %v after the refusal, want %s rejected", left, ids[0])
			}
		})
	}
}

// A held `est reenroll --rekey` whose certificate is then put on hold
// keeps its key: the server says the certificate is on hold (not
// revoked: EST's credentials check once answered every revoked
// certificate so, and the client removed the key), and once the hold is
// lifted and the request approved, the same command collects the
// certificate for that key (r65 D1).
func TestESTKeptKeyKeptWhileTheRenewedCertificateIsOnHold(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\nrenewal_window = \"100%\"\n")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	enroll := []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=on-hold",
		"--out", path("cert.pem"), "--key-out", path("key.pem")}
	if _, err := runWithPassword("test", enroll...); err == nil || !strings.Contains(err.Error(), "pending manual approval") {
		t.Fatalf("est enroll: %v, want it held", err)
	}
	s.approve(t, s.pending(t)[0])
	if out, err := runWithPassword("test", enroll...); err != nil {
		t.Fatalf("est enroll, collecting: %v\n%s", err, out)
	}
	reenroll := func() (string, error) {
		return runWithPassword("", "est", "reenroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint,
			"--cert", path("cert.pem"), "--key", path("key.pem"), "--rekey", "--out", path("cert.pem"), "--key-out", path("key.pem"))
	}
	if out, err := reenroll(); err == nil || !strings.Contains(err.Error(), "pending manual approval") {
		t.Fatalf("est reenroll --rekey: %v, want it held\n%s", err, out)
	}
	ids := s.pending(t)
	if len(ids) != 1 {
		t.Fatalf("held requests %v, want one", ids)
	}
	kept, err := os.ReadFile(path("key.pem.pending"))
	if err != nil {
		t.Fatal(err)
	}
	serial := loadCert(t, path("cert.pem")).SerialNumber.Text(16)
	if out, err := runCLI("certs", "revoke", "--data-dir", s.dataDir, "--reason", "certificateHold", serial); err != nil {
		t.Fatalf("certs revoke --reason certificateHold: %v\n%s", err, out)
	}

	out, err := reenroll()
	if err == nil {
		t.Fatalf("renewed a certificate on hold\n%s", out)
	}
	if msg := err.Error(); !strings.Contains(msg, "HTTP 401: the certificate to renew is on hold") || strings.Contains(msg, "is removed") {
		t.Fatalf("%q: want the server's on-hold refusal and the kept key kept", msg)
	}
	if got, err := os.ReadFile(path("key.pem.pending")); err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("the kept key after the on-hold refusal: %v, want it kept as it was", err)
	}

	if out, err := runCLI("certs", "unhold", "--data-dir", s.dataDir, serial); err != nil {
		t.Fatalf("certs unhold: %v\n%s", err, out)
	}
	s.approve(t, ids[0])
	if out, err := reenroll(); err != nil {
		t.Fatalf("est reenroll --rekey after the hold was lifted and the request approved: %v\n%s", err, out)
	}
	keyOut, err := os.ReadFile(path("key.pem"))
	if err != nil || !bytes.Equal(keyOut, kept) {
		t.Fatalf("key.pem after collecting: %v; want the key kept for the request", err)
	}
}
