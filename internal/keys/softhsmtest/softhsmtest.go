// Package softhsmtest sets up SoftHSM2 tokens for tests, each in a
// directory of its own (a softhsm2.conf naming a token directory, given to
// SoftHSM through $SOFTHSM2_CONF), so no global setup is needed.
//
// SoftHSM reads its configuration, and sees the tokens that exist, when a
// process first initializes the module; tokens made later by softhsm2-util
// stay invisible to it. So a test binary that uses SoftHSM in its own
// process makes its tokens up front (a Pool, set up by TestMain and filled
// before the first test opens the module), while a test that starts
// `scepter serve` gives each server an Env of its own.
//
// A test that needs SoftHSM and cannot have it is skipped, or fails when
// SCEPTER_E2E_REQUIRE=1 (as the end-to-end tests treat missing clients).
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// DefaultPIN is the user PIN of the tokens made here; soPIN the security
// officer's.
const (
	DefaultPIN = "123456"
	soPIN      = "12345678"
)

// modulePaths are where Debian and others install the module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// Required reports whether a missing SoftHSM fails the tests
// (SCEPTER_E2E_REQUIRE=1) instead of skipping them.
func Required() bool { return os.Getenv("SCEPTER_E2E_REQUIRE") == "1" }

// Need ends the test when what it needs is missing: a skip normally, a
// failure when SCEPTER_E2E_REQUIRE=1.
func Need(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s; scripts/test installs softhsm2 (SCEPTER_E2E_REQUIRE=1 makes this a failure)", msg)
	}
	t.Skipf("%s; set SCEPTER_E2E_REQUIRE=1 to make this a failure", msg)
}

// find locates the module and softhsm2-util.
func find() (module, util string, err error) {
	if p := os.Getenv("SOFTHSM2_MODULE"); p != "" {
		module = p
	} else {
		for _, p := range modulePaths {
			if _, err := os.Stat(p); err == nil {
				module = p
				break
			}
		}
	}
	if module == "" {
		return "", "", fmt.Errorf("SoftHSM2 is not installed (no libsofthsm2.so in %v; $SOFTHSM2_MODULE names another)", modulePaths)
	}
	if _, err := os.Stat(module); err != nil {
		return "", "", fmt.Errorf("SoftHSM2 module: %v", err)
	}
	util, err = exec.LookPath("softhsm2-util")
	if err != nil {
		return "", "", fmt.Errorf("softhsm2-util is missing: %v", err)
	}
	return module, util, nil
}

// Module returns the path of libsofthsm2.so, ending the test (see Need)
// when SoftHSM2 is not installed.
func Module(t testing.TB) string {
	t.Helper()
	m, _, err := find()
	if err != nil {
		Need(t, "%v", err)
	}
	return m
}

// Env is one SoftHSM2 configuration: Conf names the token directory under
// Dir.
type Env struct {
	Dir    string
	Conf   string
	Module string
	util   string
}

// NewEnv writes a SoftHSM2 configuration with an empty token directory in
// dir, ending the test (see Need) when SoftHSM2 is not installed.
func NewEnv(t testing.TB, dir string) *Env {
	t.Helper()
	e, err := newEnv(dir)
	if err != nil {
		Need(t, "%v", err)
	}
	return e
}

func newEnv(dir string) (*Env, error) {
	module, util, err := find()
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	return &Env{Dir: dir, Conf: conf, Module: module, util: util}, nil
}

// Environ is what a process needs in its environment to use this Env.
func (e *Env) Environ() []string { return []string{"SOFTHSM2_CONF=" + e.Conf} }

// Token is an initialized token: its label, user PIN, and a file holding
// the PIN (mode 0600).
type Token struct {
	Env     *Env
	Label   string
	PIN     string
	PINFile string
}

// InitToken initializes a new token labelled label in the Env with
// softhsm2-util (user PIN DefaultPIN).
func (e *Env) InitToken(t testing.TB, label string) *Token {
	t.Helper()
	tok, err := e.initToken(label)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *Env) initToken(label string) (*Token, error) {
	cmd := exec.Command(e.util, "--init-token", "--free", "--label", label, "--pin", DefaultPIN, "--so-pin", soPIN)
	cmd.Env = append(os.Environ(), e.Environ()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token %s: %v\n%s", label, err, out)
	}
	pinFile := filepath.Join(e.Dir, label+".pin")
	if err := os.WriteFile(pinFile, []byte(DefaultPIN+"\n"), 0o600); err != nil {
		return nil, err
	}
	return &Token{Env: e, Label: label, PIN: DefaultPIN, PINFile: pinFile}, nil
}

// URI is the token's RFC 7512 URI with the module and the PIN file, as
// --pkcs11-uri takes it.
func (tok *Token) URI() string {
	return "pkcs11:token=" + tok.Label + "?module-path=" + tok.Env.Module + "&pin-source=file:" + tok.PINFile
}

// Pool is a set of tokens in an Env used by this process: made all at once
// on first use (before the module is first initialized, which must not
// happen otherwise than through the Pool's tokens), then handed out one
// per test. NewPool sets $SOFTHSM2_CONF for the process.
type Pool struct {
	dir  string
	size int

	once   sync.Once
	env    *Env
	tokens []*Token
	err    error

	mu   sync.Mutex
	next int
}

// NewPool prepares a pool of size tokens in dir (made on first use).
func NewPool(dir string, size int) *Pool { return &Pool{dir: dir, size: size} }

// Main is the TestMain of a test binary whose tests share one Pool: it
// sets *pool to a Pool of size tokens in a temporary directory, runs the
// tests, removes the directory and exits with the tests' status.
func Main(m *testing.M, pool **Pool, size int) {
	dir, err := os.MkdirTemp("", "scepter-softhsm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "softhsmtest:", err)
		os.Exit(1)
	}
	*pool = NewPool(dir, size)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Take returns a token no other test of this process has had, ending the
// test (see Need) when SoftHSM2 is not installed.
func (p *Pool) Take(t testing.TB) *Token {
	t.Helper()
	p.once.Do(func() {
		if p.env, p.err = newEnv(p.dir); p.err != nil {
			return
		}
		if p.err = os.Setenv("SOFTHSM2_CONF", p.env.Conf); p.err != nil {
			return
		}
		for i := 0; i < p.size; i++ {
			tok, err := p.env.initToken("scepter-test-" + strconv.Itoa(i))
			if err != nil {
				p.err = err
				return
			}
			p.tokens = append(p.tokens, tok)
		}
	})
	if p.err != nil {
		if p.env == nil {
			Need(t, "%v", p.err)
		}
		t.Fatal(p.err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= len(p.tokens) {
		t.Fatalf("softhsmtest: all %d tokens of the pool are taken; make the pool bigger", len(p.tokens))
	}
	tok := p.tokens[p.next]
	p.next++
	return tok
}

// Env is the pool's Env (nil before the first Take).
func (p *Pool) Env() *Env { return p.env }
