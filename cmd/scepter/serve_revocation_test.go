package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

func TestResolvePublicURL(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname")
	}
	tcp := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cases := []struct {
		name, flag string
		listen     net.Addr
		want       string
		warn       bool
		bad        bool
	}{
		{"default, loopback listener", "", tcp("127.0.0.1:8080"), "http://127.0.0.1:8080", false, false},
		{"default, IPv6 loopback", "", tcp("[::1]:8080"), "http://[::1]:8080", false, false},
		{"default, wildcard: the machine's name", "", tcp("0.0.0.0:8080"), "http://" + net.JoinHostPort(host, "8080"), false, false},
		{"default, IPv6 wildcard", "", tcp("[::]:9000"), "http://" + net.JoinHostPort(host, "9000"), false, false},
		{"set, trailing slash dropped", "http://ca.example.com/pki/", tcp("0.0.0.0:8080"), "http://ca.example.com/pki", false, false},
		{"set, loopback on a network listener", "http://localhost:8080", tcp("0.0.0.0:8080"), "http://localhost:8080", true, false},
		{"default loopback is fine on a LAN address", "", tcp("192.0.2.10:8080"), "http://192.0.2.10:8080", false, false},
		{"not http", "ftp://ca.example", tcp("127.0.0.1:1"), "", false, true},
		{"no host", "http://", tcp("127.0.0.1:1"), "", false, true},
		{"a query", "http://ca.example/?x=1", tcp("127.0.0.1:1"), "", false, true},
		{"user info", "http://u:p@ca.example", tcp("127.0.0.1:1"), "", false, true},
		{"no scheme", "ca.example:8080", tcp("127.0.0.1:1"), "", false, true},
		{"https: CRLs are fetched over http", "https://ca.example.com", tcp("0.0.0.0:443"), "https://ca.example.com", true, false},
	}
	for _, c := range cases {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		f := revocationFlags{publicURL: c.flag}
		got, err := f.resolvePublicURL(c.listen, log)
		if c.bad {
			if err == nil {
				t.Errorf("%s: accepted %q", c.name, got)
			}
			f.crlValidity, f.ocspValidity, f.responderValidity = time.Hour, time.Hour, time.Hour
			if err := f.check(); err == nil {
				t.Errorf("%s: the flag check accepted it", c.name)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
		if warned := strings.Contains(logs.String(), "level=WARN"); warned != c.warn {
			t.Errorf("%s: warned %v, want %v: %s", c.name, warned, c.warn, logs.String())
		}
	}
}

// The server.started event's digest follows the configuration but not its
// secrets: a short secret must not be recoverable from it by guessing.
func TestConfigDigestLeavesSecretsOut(t *testing.T) {
	digest := func(args ...string) string {
		t.Helper()
		e, _, _ := testEnv(nil)
		fs, f := newServeFlags(e)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		profiles, err := f.profileSet()
		if err != nil {
			t.Fatal(err)
		}
		d, err := configDigest(fs, profiles)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := digest("--challenge", "one")
	if digest("--challenge", "two") != base {
		t.Error("the digest depends on the challenge's value")
	}
	if digest("--challenge", "one", "--ndes-password", "x") != digest("--challenge", "one", "--ndes-password", "y") {
		t.Error("the digest depends on the NDES password's value")
	}
	if digest("--challenge", "one", "--listen", "127.0.0.1:9999") == base {
		t.Error("the digest does not follow --listen")
	}
	if digest() == base {
		t.Error("the digest does not tell a set challenge from none")
	}
}

// A --public-url refused is refused before anything is made: no data
// directory, no CA. Nothing goes into certificates that would not work
// there: an empty query or fragment, a port out of range or empty, a host
// that is not an ASCII host name.
func TestBadPublicURLCreatesNothing(t *testing.T) {
	for _, bad := range []string{"ftp://x", "http://ca.example/?q=1", "http://u@ca.example", "ca.example",
		"http://ca.example/p?", "http://ca.example/p#", "http://ca.example:99999", "http://ca.example:", "http://ca.example:0",
		"http://ünicode.example", "http://.example", "http://ca..example", "http://-bad-.example", "http://1.2.3",
		"http://ca.example:080", "http://ca.example/a/../b", "http://ca.example/a//b", "http://[fe80::1%25eth0]"} {
		dir := filepath.Join(t.TempDir(), "data")
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0",
			"--est-listen", "127.0.0.1:0", "--challenge", "test", "--public-url", bad})
		if err == nil || !strings.Contains(err.Error(), "--public-url") || exitCode(err) != 2 {
			t.Errorf("--public-url %q: %v (exit %d), want a usage error", bad, err, exitCode(err))
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("--public-url %q: the data directory was made (%v)", bad, err)
		}
	}
}

// A --crl-validity under the floor is a usage error naming the floor,
// before anything is made: a CRL is replaced at half of its validity, and
// with 2m it was replaced every second. The floor itself is taken.
func TestCRLValidityFloor(t *testing.T) {
	for _, c := range []struct {
		value string
		ok    bool
	}{
		{"1m", false}, {"2m", false}, {"9m59s", false}, {"10m", true}, {"24h", true},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		e, _, _ := testEnv(nil)
		flags, f := newServeFlags(e)
		if err := flags.Parse([]string{"--crl-validity", c.value}); err != nil {
			t.Fatal(err)
		}
		if err := f.revocation.check(); (err == nil) != c.ok {
			t.Errorf("--crl-validity %s: check says %v, want accepted %v", c.value, err, c.ok)
		}
		if c.ok {
			continue
		}
		// A value accepted would start the server: stopped after a while.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := run(ctx, e, []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0",
			"--est-listen", "127.0.0.1:0", "--challenge", "test", "--crl-validity", c.value})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "--crl-validity") || !strings.Contains(err.Error(), "at least 10m0s") ||
			exitCode(err) != 2 {
			t.Errorf("--crl-validity %s: %v (exit %d), want a usage error naming the floor 10m0s", c.value, err, exitCode(err))
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("--crl-validity %s: the data directory was made (%v)", c.value, err)
		}
	}
}

// A bad --est-server-name is refused as a usage error naming the flag
// before anything is made; it was found only when the HTTPS certificate was
// issued, after a whole CA had been created.
func TestBadESTServerNameCreatesNothing(t *testing.T) {
	for _, bad := range []string{"bad_name!", "-x.example", "a..example", "10.9.9.300"} {
		dir := filepath.Join(t.TempDir(), "data")
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0",
			"--est-listen", "127.0.0.1:0", "--challenge", "test", "--est-server-name", bad})
		if err == nil || !strings.Contains(err.Error(), "--est-server-name") || exitCode(err) != 2 {
			t.Errorf("--est-server-name %q: %v (exit %d), want a usage error", bad, err, exitCode(err))
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("--est-server-name %q: the data directory was made (%v)", bad, err)
		}
	}
}

// The banner said a generated static challenge was "valid at profile
// default only" when that profile took one-time challenges only and so
// refused it: it now says that it is accepted nowhere, and a static
// challenge given is warned about.
func TestStaticChallengeScopeInTheBanner(t *testing.T) {
	tests := []struct {
		name, config string
		args         []string
		wantOut      string
		wantLog      string // "" for no warning
	}{
		{"generated, default profile any", "", nil, "static, valid at profile default only", ""},
		{"generated, default profile onetime", "[profiles.default]\nchallenge = \"onetime\"\n", nil,
			"static, but accepted nowhere: profile default takes onetime challenges only", ""},
		{"given, profile webhook", "[profiles.default]\nchallenge = \"webhook\"\n", []string{"--challenge", "test", "--webhook-url", "http://127.0.0.1:9/"},
			"", "profile default takes webhook challenges only"},
		{"given, another profile static", "[profiles.default]\nchallenge = \"onetime\"\n[profiles.lab]\nchallenge = \"static\"\n",
			[]string{"--challenge-profile", "lab"}, "static, valid at profile lab only", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "scepter.toml")
			if err := os.WriteFile(cfg, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := serveInProcess(t, nil, append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off",
				"--data-dir", filepath.Join(dir, "data"), "--config", cfg}, tc.args...)...)
			if srv.ended {
				t.Fatalf("serve stopped: %v\n%s", srv.err, srv.errb.String())
			}
			out, logs := srv.out.String(), srv.errb.String()
			if tc.wantOut != "" && !strings.Contains(out, tc.wantOut) {
				t.Errorf("start-up lines lack %q:\n%s", tc.wantOut, out)
			}
			if tc.wantOut == "" && strings.Contains(out, "Challenge password:") {
				t.Errorf("start-up lines name a given challenge:\n%s", out)
			}
			if got := strings.Contains(logs, "accepted nowhere"); got != (tc.wantLog != "") || !strings.Contains(logs, tc.wantLog) {
				t.Errorf("log, want a warning %q: %v\n%s", tc.wantLog, got, logs)
			}
		})
	}
}

// A profile that takes the static challenge only, while the static
// challenge is valid at another profile, can never enroll a SCEP device
// (r48): the start warns, naming it and what to change.
func TestStaticOnlyProfileElsewhereWarned(t *testing.T) {
	tests := []struct {
		name, config string
		args         []string
		warned       bool
	}{
		{"static profile beside the default", "[profiles.st]\nchallenge = \"static\"\n", nil, true},
		{"the static profile is the challenge profile", "[profiles.st]\nchallenge = \"static\"\n", []string{"--challenge-profile", "st"}, false},
		{"any beside the default", "[profiles.st]\nchallenge = \"any\"\n", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "scepter.toml")
			if err := os.WriteFile(cfg, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := serveInProcess(t, nil, append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off",
				"--data-dir", filepath.Join(dir, "data"), "--config", cfg}, tc.args...)...)
			if srv.ended {
				t.Fatalf("serve stopped: %v\n%s", srv.err, srv.errb.String())
			}
			logs := srv.errb.String()
			if got := strings.Contains(logs, "profiles [st] take the static challenge only"); got != tc.warned {
				t.Errorf("warned %v, want %v:\n%s", got, tc.warned, logs)
			}
		})
	}
}

// A profile allowing EST serverkeygen and holding requests for approval
// refuses every serverkeygen: serve says so at start (r57).
func TestKeygenHeldForApprovalWarned(t *testing.T) {
	for _, tc := range []struct {
		name            string
		keygen, approve bool
		warned          bool
	}{
		{"both", true, true, true},
		{"keygen only", true, false, false},
		{"approval only", false, true, false},
	} {
		p := pki.DefaultProfile()
		p.Name, p.ServerKeyGen, p.RequireApproval = "kg", tc.keygen, tc.approve
		w := keygenHeldForApproval(map[string]pki.Profile{"kg": p, "default": pki.DefaultProfile()})
		if got := strings.Contains(w, "profiles [kg] allow EST serverkeygen"); got != tc.warned {
			t.Errorf("%s: warning %q", tc.name, w)
		}
	}
}
